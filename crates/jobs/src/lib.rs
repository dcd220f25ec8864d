//! The durable job queue runtime (issue 4): workers, handlers, retries, recurring jobs. Rows live in the store.

//! Memory rows (issue 4): the embedded memory engine's storage.

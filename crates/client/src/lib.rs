//! A Rust client for Sensei's ingestion API (being written).

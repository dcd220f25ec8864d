//! The real application on 127.0.0.1:0 (filled in with the web crate).
pub struct TestApp;

//! Generated demo conversations (being written).

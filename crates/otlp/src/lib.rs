//! OTLP/HTTP trace export (placeholder; being written).

//! The `loupe` binary's library half: the runtime (the engine that wires ingest to the store
//! and the graph, the server that binds the OTLP receivers and the API, its configuration,
//! listeners, TLS and self-telemetry) and the commands ([`cli`]) that use it. Kept as a library
//! so end-to-end tests start a real server in process. Commands use the runtime; the runtime
//! never uses a command.

pub mod cli;
pub mod columnar;
pub mod config;
pub mod edges_table;
pub mod engine;
pub mod listen;
pub mod server;
pub mod telemetry;
pub mod tls;

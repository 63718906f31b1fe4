//! The `loupe` binary's library half: the engine that wires ingest to the store and the graph,
//! the server that binds the OTLP receivers and the API, and the commands (`ask`, `eval`,
//! `replay`, `demo`, `simulate`, `bench`, `query`). Kept as a library so end-to-end tests start a real server in process.

pub mod ablation;
pub mod ask;
pub mod baselines;
pub mod bench;
pub mod bench_store;
pub mod columnar;
pub mod config;
pub mod demo;
pub mod edges_table;
pub mod engine;
pub mod eval;
pub mod eval_sim;
pub mod listen;
pub mod mcp;
pub mod query;
pub mod replay;
pub mod server;
pub mod simulate;
pub mod telemetry;
pub mod tls;
pub mod train;

//! loupe's scenario simulator: a microservice system described as data (a topology), its
//! traffic through the day, and a library of faults and red herrings, turned into labelled
//! OpenTelemetry data: traces, metrics and logs as OTLP requests, plus the change webhooks a
//! CI/CD system would send.
//!
//! Two ways to use it: run a [`Simulation`] step by step against the clock (the live stream of
//! `loupe simulate stream` and `loupe demo`), or generate labelled case sets on disk
//! ([`cases::write_suite`]) for `loupe eval sim` and training. Everything random comes from the
//! seed, so a seed reproduces its output byte for byte.
//!
//! It is a generator of realistic shapes, not a judge of accuracy: real labelled data is.

pub mod cases;
mod error;
pub mod fault;
mod metrics;
mod otlp;
pub mod scenario;
mod sim;
pub mod topology;
mod trace;

pub use error::{Error, Result};
pub use fault::{FaultKind, HerringKind, Impact, Planned, Target};
pub use metrics::{MetricExport, Temporality};
pub use scenario::{plan_case, CaseSpec, GroundTruth};
pub use sim::{Batch, Notice, Simulation};
pub use topology::Topology;

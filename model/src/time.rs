//! Time in loupe: unix nanoseconds (`u64`), as OTLP carries it, and the clock that tells "now".
//!
//! Data keeps its own event time; only defaults such as "the last five minutes" read the clock,
//! which is injected so tests and replays never depend on the wall clock.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in unix nanoseconds.
pub trait Clock: Send + Sync {
    /// The current time, unix nanoseconds.
    fn now_unix_nano(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_nano(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

//! Admission control in front of the receivers' decoders: a budget of request bytes in flight,
//! a cap on the requests waiting for room in it, and a watermark on the process's resident
//! memory. A request is admitted before its body is decoded (for its declared `Content-Length`
//! before a byte is read, else once its body is read) and holds its bytes until it is
//! acknowledged or refused; decompression grows the hold by the decompressed size.
//!
//! A refusal is transient and retryable, in the OTLP specification's forms ("OTLP/gRPC
//! Throttling", "OTLP/HTTP Throttling"): gRPC `UNAVAILABLE` with `google.rpc.RetryInfo`, HTTP
//! 503 with `Retry-After`. Nothing refused was written, so nothing acknowledged is lost. The
//! model is the OpenTelemetry Collector's admission `BoundedQueue` (a byte semaphore and a
//! bounded number of waiters) plus its `memory_limiter`'s soft limit.

use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::metrics::{Reason, ReceiverMetrics, Transport};

/// How often resident memory is read from `/proc` at most.
const MEMORY_RECHECK: Duration = Duration::from_millis(250);

/// Admission settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Request bytes (wire plus decompressed) admitted at once, across all receivers
    /// (default 256 MiB; `--ingest-max-inflight-bytes`).
    pub max_inflight_bytes: usize,
    /// Requests that may wait for room in the budget; past them a request is refused at once
    /// (default 64).
    pub max_waiters: usize,
    /// Longest a request waits for room before it is refused (default 250 ms: a fast refusal
    /// lets the exporter back off rather than hold a connection).
    pub max_wait: Duration,
    /// Resident memory above which ingest is refused, bytes; `None`: 80 % of the machine's
    /// memory or of the cgroup's limit, whichever is smaller (see [`default_memory_limit`]).
    pub memory_limit_bytes: Option<u64>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_inflight_bytes: 256 << 20,
            max_waiters: 64,
            max_wait: Duration::from_millis(250),
            memory_limit_bytes: None,
        }
    }
}

/// 80 % of the smaller of `MemTotal` (`/proc/meminfo`) and the cgroup v2 limit
/// (`/sys/fs/cgroup/memory.max`), bytes; `None` when neither can be read.
pub fn default_memory_limit() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(kib_field)
    });
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let least = match (total, cgroup) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(least / 5 * 4)
}

/// `"  12345 kB"` → bytes.
fn kib_field(value: &str) -> Option<u64> {
    let kib: u64 = value.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// The process's resident set size, bytes (`VmRSS` of `/proc/self/status`); `None` off Linux.
pub fn resident_memory() -> Option<u64> {
    read_vm_rss(Path::new("/proc/self/status"))
}

fn read_vm_rss(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(kib_field)
    })
}

/// The admission gate; shared by the OTLP receivers and the changes route.
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    memory_limit: Option<u64>,
    budget: Arc<Semaphore>,
    waiting: AtomicUsize,
    rss: AtomicU64,
    /// When the gate was made: `rss_read_at` counts milliseconds from it.
    born: Instant,
    /// When `rss` was last read (ms since `born`; `u64::MAX`: never).
    rss_read_at: AtomicU64,
    metrics: ReceiverMetrics,
}

/// Bytes a request holds in the budget; released when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl Admission {
    /// A gate with `config`, counting into `metrics`.
    pub fn new(config: AdmissionConfig, metrics: ReceiverMetrics) -> Arc<Self> {
        let budget = config.max_inflight_bytes.clamp(1, Semaphore::MAX_PERMITS);
        metrics.inflight_limit.set(budget as i64);
        Arc::new(Self {
            memory_limit: config.memory_limit_bytes.or_else(default_memory_limit),
            config: AdmissionConfig {
                max_inflight_bytes: budget,
                ..config
            },
            budget: Arc::new(Semaphore::new(budget)),
            waiting: AtomicUsize::new(0),
            rss: AtomicU64::new(0),
            born: Instant::now(),
            rss_read_at: AtomicU64::new(u64::MAX),
            metrics,
        })
    }

    /// The settings in force (the memory limit resolved).
    pub fn config(&self) -> AdmissionConfig {
        AdmissionConfig {
            memory_limit_bytes: self.memory_limit,
            ..self.config
        }
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &ReceiverMetrics {
        &self.metrics
    }

    /// Bytes admitted and not yet released.
    pub fn inflight_bytes(&self) -> usize {
        self.config.max_inflight_bytes - self.budget.available_permits()
    }

    /// Refuses when resident memory is over the watermark (read at most every 250 ms).
    ///
    /// # Errors
    /// [`Error::Overloaded`] naming the memory and the limit.
    pub fn check_memory(&self, transport: Transport) -> Result<()> {
        let Some(limit) = self.memory_limit else {
            return Ok(());
        };
        // One request in a recheck period reads /proc (the one that wins the swap); the rest
        // use the last reading, without a lock.
        let now = self.born.elapsed().as_millis() as u64;
        let last = self.rss_read_at.load(Ordering::Relaxed);
        let stale =
            last == u64::MAX || now.saturating_sub(last) >= MEMORY_RECHECK.as_millis() as u64;
        if stale
            && self
                .rss_read_at
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            if let Some(rss) = resident_memory() {
                self.rss.store(rss, Ordering::Relaxed);
            }
        }
        let rss = self.rss.load(Ordering::Relaxed);
        if rss > limit {
            self.metrics.refused_request(transport, Reason::memory);
            return Err(Error::Overloaded(format!(
                "resident memory {} MiB is over the ingest watermark of {} MiB",
                rss >> 20,
                limit >> 20
            )));
        }
        Ok(())
    }

    /// Admits a request of `bytes` (a request larger than the whole budget takes all of it):
    /// at once when there is room, else after waiting up to `max_wait` behind at most
    /// `max_waiters` others.
    ///
    /// # Errors
    /// [`Error::Overloaded`] when the queue of waiters is full or the wait runs out.
    pub async fn admit(self: &Arc<Self>, bytes: usize, transport: Transport) -> Result<Ticket> {
        let permit = self.acquire(bytes, transport).await?;
        Ok(Ticket {
            admission: self.clone(),
            permit: Mutex::new(Some(permit)),
        })
    }

    async fn acquire(
        self: &Arc<Self>,
        bytes: usize,
        transport: Transport,
    ) -> Result<OwnedSemaphorePermit> {
        let want = bytes
            .clamp(1, self.config.max_inflight_bytes)
            .min(u32::MAX as usize) as u32;
        let permit = match self.budget.clone().try_acquire_many_owned(want) {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.config.max_waiters {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    self.metrics.refused_request(transport, Reason::queue_full);
                    return Err(Error::Overloaded(format!(
                        "{} requests are already waiting for the ingest budget of {} bytes",
                        self.config.max_waiters, self.config.max_inflight_bytes
                    )));
                }
                self.metrics.waiting.inc();
                let waited = tokio::time::timeout(
                    self.config.max_wait,
                    self.budget.clone().acquire_many_owned(want),
                )
                .await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                self.metrics.waiting.dec();
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => {
                        self.metrics.refused_request(transport, Reason::overloaded);
                        return Err(Error::Overloaded(format!(
                            "the ingest budget of {} bytes stayed full for {} ms",
                            self.config.max_inflight_bytes,
                            self.config.max_wait.as_millis()
                        )));
                    }
                }
            }
        };
        self.metrics.inflight_bytes.inc_by(i64::from(want));
        Ok(permit)
    }
}

impl Ticket {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, |p| p.num_permits())
    }

    /// Holds `more` bytes besides those held, on the same terms as
    /// [`Admission::admit`]; stops growing at the whole budget.
    ///
    /// # Errors
    /// [`Error::Overloaded`] as for admission.
    pub async fn grow(&self, more: usize, transport: Transport) -> Result<()> {
        let room = self
            .admission
            .config
            .max_inflight_bytes
            .saturating_sub(self.bytes());
        let more = more.min(room);
        if more == 0 {
            return Ok(());
        }
        let extra = self.admission.acquire(more, transport).await?;
        let mut held = self.permit.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            Some(permit) => permit.merge(extra),
            None => *held = Some(extra),
        }
        Ok(())
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let bytes = self.bytes();
        self.admission.metrics.inflight_bytes.dec_by(bytes as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(budget: usize, waiters: usize) -> Arc<Admission> {
        Admission::new(
            AdmissionConfig {
                max_inflight_bytes: budget,
                max_waiters: waiters,
                max_wait: Duration::from_millis(50),
                memory_limit_bytes: Some(u64::MAX),
            },
            ReceiverMetrics::default(),
        )
    }

    #[tokio::test]
    async fn a_full_budget_refuses_after_the_wait_and_admits_once_released() {
        let gate = gate(1000, 4);
        let first = gate.admit(800, Transport::http).await.unwrap();
        assert_eq!(gate.inflight_bytes(), 800);
        let refused = gate.admit(300, Transport::http).await.unwrap_err();
        assert!(matches!(refused, Error::Overloaded(_)), "{refused}");
        assert_eq!(gate.inflight_bytes(), 800, "a refusal holds nothing");
        drop(first);
        assert_eq!(gate.inflight_bytes(), 0);
        let second = gate.admit(300, Transport::http).await.unwrap();
        assert_eq!(second.bytes(), 300);
    }

    #[tokio::test]
    async fn a_waiter_is_admitted_when_room_is_made_within_the_wait() {
        let gate = gate(1000, 4);
        let first = gate.admit(1000, Transport::grpc).await.unwrap();
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.admit(10, Transport::grpc).await.map(|t| t.bytes()) })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(first);
        assert_eq!(waiter.await.unwrap().unwrap(), 10);
    }

    #[tokio::test]
    async fn waiters_past_the_cap_are_refused_at_once() {
        let gate = gate(10, 1);
        let _held = gate.admit(10, Transport::http).await.unwrap();
        let g = gate.clone();
        let waiting = tokio::spawn(async move { g.admit(5, Transport::http).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let started = Instant::now();
        let refused = gate.admit(5, Transport::http).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(40), "no wait");
        assert!(refused.to_string().contains("already waiting"), "{refused}");
        assert!(!waiting.await.unwrap());
    }

    #[tokio::test]
    async fn oversized_requests_take_the_whole_budget_and_growth_stops_there() {
        let gate = gate(100, 2);
        let ticket = gate.admit(1 << 20, Transport::http).await.unwrap();
        assert_eq!(ticket.bytes(), 100);
        ticket.grow(50, Transport::http).await.unwrap();
        assert_eq!(ticket.bytes(), 100);
        drop(ticket);
        let small = gate.admit(40, Transport::http).await.unwrap();
        small.grow(30, Transport::http).await.unwrap();
        assert_eq!((small.bytes(), gate.inflight_bytes()), (70, 70));
    }

    #[test]
    fn memory_over_the_watermark_refuses() {
        let gate = Admission::new(
            AdmissionConfig {
                memory_limit_bytes: Some(1),
                ..AdmissionConfig::default()
            },
            ReceiverMetrics::default(),
        );
        if resident_memory().is_some() {
            let e = gate.check_memory(Transport::grpc).unwrap_err();
            assert!(e.to_string().contains("watermark"), "{e}");
        }
        let roomy = Admission::new(
            AdmissionConfig {
                memory_limit_bytes: Some(u64::MAX),
                ..AdmissionConfig::default()
            },
            ReceiverMetrics::default(),
        );
        roomy.check_memory(Transport::grpc).unwrap();
    }

    #[test]
    fn proc_fields_parse() {
        assert_eq!(kib_field("   2048 kB"), Some(2 << 20));
        assert_eq!(kib_field("x"), None);
        assert!(default_memory_limit().is_none_or(|b| b > 0));
    }
}

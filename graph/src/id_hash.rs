//! The hasher of the ingest path's maps keyed by trace and span ids (the trace table, the span
//! join buffer, the span-log index).

/// Ids come from the wire, so the hash is seeded per map (foldhash's `RandomState`), and it is
/// faster than the standard SipHash on 16- and 24-byte keys.
pub(crate) type Ids = foldhash::fast::RandomState;

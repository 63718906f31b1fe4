//! Trace and span ids: fixed-size byte arrays, shown as lowercase hex as OTLP/JSON does.

use std::fmt;

use crate::error::{Error, Result};

/// A W3C trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// A span id: 8 bytes, never all zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N]> {
    let array: [u8; N] = bytes.try_into().map_err(|_| Error::InvalidIdLength {
        field,
        len: bytes.len(),
        expected: N,
    })?;
    if array.iter().all(|b| *b == 0) {
        return Err(Error::ZeroId { field });
    }
    Ok(array)
}

impl TraceId {
    /// Reads a trace id from its wire bytes.
    ///
    /// # Errors
    /// [`Error::InvalidIdLength`] unless 16 bytes, [`Error::ZeroId`] if all zero.
    pub fn from_bytes(field: &'static str, bytes: &[u8]) -> Result<Self> {
        fixed(field, bytes).map(Self)
    }
}

impl SpanId {
    /// Reads a span id from its wire bytes.
    ///
    /// # Errors
    /// [`Error::InvalidIdLength`] unless 8 bytes, [`Error::ZeroId`] if all zero.
    pub fn from_bytes(field: &'static str, bytes: &[u8]) -> Result<Self> {
        fixed(field, bytes).map(Self)
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_check_length_and_zero() {
        assert_eq!(
            SpanId::from_bytes("span_id", &[1, 2, 3]),
            Err(Error::InvalidIdLength {
                field: "span_id",
                len: 3,
                expected: 8
            })
        );
        assert_eq!(
            TraceId::from_bytes("trace_id", &[0; 16]),
            Err(Error::ZeroId { field: "trace_id" })
        );
        let id = SpanId::from_bytes("span_id", &[0xab, 0, 0, 0, 0, 0, 0, 1]).unwrap();
        assert_eq!(id.to_string(), "ab00000000000001");
    }
}

//! Parsing of time and duration parameters.

use std::time::UNIX_EPOCH;

use crate::error::{ApiError, Result};

/// A timestamp given as integer unix nanoseconds or an RFC 3339 string, in unix nanoseconds.
///
/// # Errors
/// [`ApiError::InvalidParameter`] naming `name` when it is neither.
pub fn parse_time(name: &str, value: &serde_json::Value) -> Result<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(|| {
            ApiError::invalid(name, "unix nanoseconds must be a non-negative integer")
        }),
        serde_json::Value::String(s) => parse_time_str(name, s),
        _ => Err(ApiError::invalid(
            name,
            "expected an RFC 3339 string or integer unix nanoseconds",
        )),
    }
}

/// As [`parse_time`], for a query-string value.
///
/// # Errors
/// [`ApiError::InvalidParameter`] naming `name`.
pub fn parse_time_str(name: &str, s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        ApiError::invalid(
            name,
            format!("{s:?} is neither RFC 3339 nor unix nanoseconds ({e})"),
        )
    })?;
    let d = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| ApiError::invalid(name, "before 1970"))?;
    u64::try_from(d.as_nanos()).map_err(|_| ApiError::invalid(name, "out of range"))
}

/// A duration given as a humantime string (`5m`, `90s`, `1h 30m`) or integer nanoseconds, in
/// nanoseconds; never zero.
///
/// # Errors
/// [`ApiError::InvalidParameter`] naming `name`.
pub fn parse_duration(name: &str, s: &str) -> Result<u64> {
    let nanos = match s.parse::<u64>() {
        Ok(n) => n,
        Err(_) => {
            let d = humantime::parse_duration(s)
                .map_err(|e| ApiError::invalid(name, format!("{s:?}: {e}")))?;
            u64::try_from(d.as_nanos()).map_err(|_| ApiError::invalid(name, "out of range"))?
        }
    };
    if nanos == 0 {
        return Err(ApiError::invalid(name, "must be greater than zero"));
    }
    Ok(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        assert_eq!(parse_time("at", &serde_json::json!(5)).unwrap(), 5);
        assert_eq!(
            parse_time("at", &serde_json::json!("1970-01-01T00:00:01Z")).unwrap(),
            1_000_000_000
        );
        assert_eq!(
            parse_time_str("at", "2023-01-29T08:43:00Z").unwrap(),
            1_674_981_780_000_000_000
        );
        assert!(parse_time("at", &serde_json::json!(-1)).is_err());
        let e = parse_time_str("at", "yesterday").unwrap_err().to_string();
        assert!(e.starts_with("invalid at:"), "{e}");
        assert_eq!(parse_duration("window", "5m").unwrap(), 300_000_000_000);
        assert_eq!(parse_duration("window", "1500").unwrap(), 1500);
        assert!(parse_duration("window", "0s").is_err());
    }
}

//! Slack's request signature, version `v0` (docs.slack.dev/authentication/
//! verifying-requests-from-slack): `X-Slack-Signature: v0=` + hex HMAC-SHA256, keyed by the
//! app's signing secret, of `v0:{X-Slack-Request-Timestamp}:{raw body}`; a timestamp more than
//! five minutes from now is a replay.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Largest distance between a request's timestamp and now, seconds.
pub const MAX_SKEW_SECONDS: u64 = 5 * 60;

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A header is missing or not ASCII.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The timestamp is not unix seconds.
    #[error("X-Slack-Request-Timestamp is not unix seconds")]
    BadTimestamp,
    /// The timestamp is more than five minutes from now.
    #[error("X-Slack-Request-Timestamp is more than five minutes from the server's clock")]
    Stale,
    /// The signature is not `v0=` and 64 hex digits, or does not match.
    #[error("X-Slack-Signature does not match the body")]
    BadSignature,
}

/// Checks one request: `timestamp` and `signature` are the headers' values (`None` when
/// absent), `body` the raw bytes as received, `now` unix seconds. The comparison is in constant
/// time (`Mac::verify_slice`).
///
/// # Errors
/// The first [`Refusal`] that applies.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: u64,
) -> Result<(), Refusal> {
    let timestamp = timestamp.ok_or(Refusal::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(Refusal::Missing("X-Slack-Signature"))?;
    let seconds: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| Refusal::BadTimestamp)?;
    if seconds.abs_diff(now) > MAX_SKEW_SECONDS {
        return Err(Refusal::Stale);
    }
    let expected = signature
        .strip_prefix("v0=")
        .and_then(|h| decode_hex(h.trim()))
        .ok_or(Refusal::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Refusal::BadSignature)?;
    mac.update(b"v0:");
    mac.update(timestamp.trim().as_bytes());
    mac.update(b":");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| Refusal::BadSignature)
}

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`: what Slack sends (and what tests sign
/// with).
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    // A key of any length is valid for HMAC.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::from("v0=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example (docs.slack.dev/authentication/verifying-requests-from-slack).
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: u64 = 1531420618;
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn check(secret: &[u8], ts: &str, sig: &str, body: &[u8], now: u64) -> Result<(), Refusal> {
        verify(secret, Some(ts), Some(sig), body, now)
    }

    #[test]
    fn slacks_documented_vector_verifies_and_signs() {
        assert_eq!(
            check(SECRET, &TS.to_string(), SIGNATURE, BODY.as_bytes(), TS + 10),
            Ok(())
        );
        assert_eq!(sign(SECRET, TS, BODY.as_bytes()), SIGNATURE);
    }

    #[test]
    fn a_changed_byte_secret_or_timestamp_fails() {
        let mut body = BODY.as_bytes().to_vec();
        body[10] ^= 1;
        assert_eq!(
            check(SECRET, &TS.to_string(), SIGNATURE, &body, TS),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check(
                b"8f742231b10e8888abcd99yyyzzz85a6",
                &TS.to_string(),
                SIGNATURE,
                BODY.as_bytes(),
                TS
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check(
                SECRET,
                &(TS + 1).to_string(),
                SIGNATURE,
                BODY.as_bytes(),
                TS
            ),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check(SECRET, &TS.to_string(), "v0=zz", BODY.as_bytes(), TS),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            check(
                SECRET,
                &TS.to_string(),
                &SIGNATURE.replace("v0=", "v1="),
                BODY.as_bytes(),
                TS
            ),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn five_minutes_is_the_replay_bound_both_ways() {
        let ts = TS.to_string();
        assert_eq!(
            check(SECRET, &ts, SIGNATURE, BODY.as_bytes(), TS + 299),
            Ok(())
        );
        assert_eq!(
            check(SECRET, &ts, SIGNATURE, BODY.as_bytes(), TS + 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check(SECRET, &ts, SIGNATURE, BODY.as_bytes(), TS - 301),
            Err(Refusal::Stale)
        );
        assert_eq!(
            check(SECRET, "yesterday", SIGNATURE, BODY.as_bytes(), TS),
            Err(Refusal::BadTimestamp)
        );
    }

    #[test]
    fn missing_headers_are_named() {
        assert_eq!(
            verify(SECRET, None, Some(SIGNATURE), BODY.as_bytes(), TS),
            Err(Refusal::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(SECRET, Some("1"), None, BODY.as_bytes(), TS),
            Err(Refusal::Missing("X-Slack-Signature"))
        );
    }
}

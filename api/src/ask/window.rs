//! Time windows as people type them in a question, found inside it and read against a fixed
//! `now` and time zone: "since 14:00", "in the last 30 minutes", "between 2 and 3pm",
//! "yesterday", "at 09:30 UTC", "2h ago", "during incident 3", RFC 3339 timestamps.
//!
//! No published crate reads *windows* inside free text (see `shared/research/chatops.md`
//! §3.2), so this is a small hand-written extractor over tokens; durations go through
//! `humantime`, clock times and dates through `chrono` with `chrono-tz` zones.
//!
//! Rules (N, UNIT and T the parsed pieces):
//! - `since T` → `[T, now)`; `in/over/for the last/past N UNIT`, `last N UNIT`, `past hour` →
//!   `[now − N, now)`;
//! - `between T1 and T2`, `from T1 to/until T2` → `[T1, T2)` (`2 and 3pm`: T1 takes T2's
//!   meridiem);
//! - `yesterday`, `today` (alone: the day; before a window: the day its clock times fall on);
//! - `at/around T`, `N UNIT ago` → `[T − 15 min, T + 15 min)`;
//! - `during incident N` → the incident's window (read by the caller);
//! - a bare clock time is today's when it has passed, else yesterday's.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

/// Half-width of the window around a point in time (`at 14:05`, `2h ago`).
const AROUND_NANOS: i64 = 15 * 60 * 1_000_000_000;

/// A window read from a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WindowSpec {
    /// `[start, end)`, unix nanoseconds.
    Range {
        /// Start, unix nanoseconds.
        start: u64,
        /// End (exclusive), unix nanoseconds.
        end: u64,
    },
    /// The window of an incident (`during incident 3`).
    Incident {
        /// Its id.
        id: u64,
    },
}

/// What was found: the window and the token range it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The window.
    pub window: WindowSpec,
    /// Tokens `[from, to)` of the question that said it.
    pub tokens: (usize, usize),
    /// The words, as typed (lowercased).
    pub phrase: String,
}

/// The clock a question is read against.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Now, unix nanoseconds.
    pub now: u64,
    /// The asker's zone.
    pub zone: Tz,
}

impl Clock {
    fn now(&self) -> DateTime<Tz> {
        self.zone.timestamp_nanos(self.now as i64)
    }
}

/// Finds the first time window in `tokens` (lowercased words, punctuation trimmed).
/// Returns `Err` with a sentence when a window phrase is there but cannot be read (a
/// `between` without its second time, `since` without a time); `Ok(None)` when the question
/// names no time.
pub fn find(tokens: &[String], clock: Clock) -> Result<Option<Found>, String> {
    let t: Vec<&str> = tokens.iter().map(String::as_str).collect();
    for i in 0..t.len() {
        if let Some((window, end)) = at(&t, i, clock)? {
            return Ok(Some(Found {
                window,
                tokens: (i, end),
                phrase: t[i..end].join(" "),
            }));
        }
    }
    Ok(None)
}

type Step = Result<Option<(WindowSpec, usize)>, String>;

fn range(start: DateTime<Tz>, end: DateTime<Tz>) -> WindowSpec {
    let ns = |d: DateTime<Tz>| d.timestamp_nanos_opt().unwrap_or(0).max(0) as u64;
    WindowSpec::Range {
        start: ns(start),
        end: ns(end),
    }
}

fn around(t: DateTime<Tz>) -> WindowSpec {
    range(
        t - Duration::nanoseconds(AROUND_NANOS),
        t + Duration::nanoseconds(AROUND_NANOS),
    )
}

/// A window that starts at token `i`, with the index past its last token.
fn at(t: &[&str], i: usize, clock: Clock) -> Step {
    let now = clock.now();
    let word = t[i];
    // during incident N / during #N
    if word == "during" {
        if let Some((id, end)) = incident_ref(t, i + 1) {
            return Ok(Some((WindowSpec::Incident { id }, end)));
        }
    }
    // since T
    // ("since" without a time may mean "because": no window then.)
    if word == "since" {
        // since 30 minutes ago
        if let Some((nanos, end)) = span(t, i + 1) {
            if t.get(end) == Some(&"ago") {
                return Ok(Some((
                    range(now - Duration::nanoseconds(nanos), now),
                    end + 1,
                )));
            }
        }
        let day = day_before(t, i, clock);
        if let Some((p, end)) = point(t, i + 1, clock, day) {
            return Ok(Some((range(p.min(now), now), end)));
        }
    }
    // (in|over|for|during) (the) (last|past) [N] UNIT
    let mut j = i;
    if matches!(word, "in" | "over" | "for" | "during" | "within") {
        j += 1;
        if t.get(j) == Some(&"the") {
            j += 1;
        }
    } else if word == "the" {
        j += 1;
    }
    if matches!(t.get(j), Some(&"last" | &"past" | &"previous")) {
        if let Some((nanos, end)) = span(t, j + 1) {
            return Ok(Some((range(now - Duration::nanoseconds(nanos), now), end)));
        }
    }
    // between T1 and T2 / from T1 to T2
    if word == "between" || word == "from" {
        let day = day_before(t, i, clock);
        let sep = t
            .iter()
            .enumerate()
            .skip(i + 2)
            .find(|(_, w)| matches!(**w, "and" | "to" | "until" | "till" | "-"))
            .map(|(k, _)| k);
        if let Some(k) = sep {
            if let Some(w) = between(t, (i, k), clock, day) {
                return w.map(Some);
            }
            // "between frontend and checkout" is no window; "between 2pm and" is a broken one.
            if word == "between" && looks_like_time(t, i + 1, clock, day) {
                return Err(format!(
                    "I could not read the times in \"{}\"",
                    t[i..].join(" ")
                ));
            }
        } else if word == "between" && looks_like_time(t, i + 1, clock, day) {
            return Err("\"between\" needs two times, as in \"between 14:00 and 15:00\"".into());
        }
    }
    // at/around T
    if matches!(word, "at" | "around" | "about") {
        let day = day_before(t, i, clock);
        if let Some((p, end)) = point(t, i + 1, clock, day) {
            return Ok(Some((around(p), end)));
        }
    }
    // N UNIT ago
    if let Some((nanos, end)) = span(t, i) {
        if t.get(end) == Some(&"ago") {
            return Ok(Some((around(now - Duration::nanoseconds(nanos)), end + 1)));
        }
    }
    // yesterday / today (alone; a clock window after them is read by the rules above)
    if matches!(word, "yesterday" | "today") {
        if let Some(next) = t.get(i + 1) {
            if matches!(*next, "between" | "from" | "at" | "around" | "since") {
                return match at(t, i + 1, clock)? {
                    Some((w, end)) => Ok(Some((w, end))),
                    None => Ok(None),
                };
            }
        }
        // Local midnights (a day is not always 24 hours: daylight saving).
        let midnight = |d: NaiveDate| local(clock, d, NaiveTime::MIN, false);
        let today = now.date_naive();
        let (Some(start_today), Some(start_yesterday)) =
            (midnight(today), today.pred_opt().and_then(midnight))
        else {
            return Ok(None);
        };
        return Ok(Some(if word == "today" {
            (range(start_today, now), i + 1)
        } else {
            (range(start_yesterday, start_today), i + 1)
        }));
    }
    // an RFC 3339 timestamp alone
    if let Ok(p) = DateTime::parse_from_rfc3339(&word.to_uppercase()) {
        return Ok(Some((around(p.with_timezone(&clock.zone)), i + 1)));
    }
    Ok(None)
}

/// `between T1 and T2` with `between` at `i` and `and` at `k`: T1 on `day` (or its latest past
/// day), T2 on T1's day or the next, the end no later than now; T1 takes T2's meridiem when
/// it has none ("2 and 3pm"). `None` when the times do not read.
fn between(
    t: &[&str],
    (i, k): (usize, usize),
    clock: Clock,
    day: Option<NaiveDate>,
) -> Option<Result<(WindowSpec, usize), String>> {
    let now = clock.now();
    let (_, second_end, _) = clock_time(t, k + 1)
        .or_else(|| point(t, k + 1, clock, day).map(|(_, e)| (NaiveTime::MIN, e, false)))?;
    let meridiem = t[k + 1..second_end].iter().find_map(|w| {
        if w.ends_with("pm") {
            Some("pm")
        } else if w.ends_with("am") {
            Some("am")
        } else {
            None
        }
    });
    let mut first: Vec<String> = t[i + 1..k].iter().map(|s| s.to_string()).collect();
    if let (Some(m), Some(last)) = (meridiem, first.last_mut()) {
        if last.chars().all(|c| c.is_ascii_digit() || c == ':') && !last.is_empty() {
            last.push_str(m);
        }
    }
    let first_refs: Vec<&str> = first.iter().map(String::as_str).collect();
    let (p1, used) = point(&first_refs, 0, clock, day)?;
    if used != first_refs.len() {
        return None;
    }
    let (mut p2, end) = point(t, k + 1, clock, Some(p1.date_naive()))?;
    if p2 <= p1 {
        p2 += Duration::days(1);
    }
    let p2 = p2.min(now);
    if p1 >= p2 {
        return Some(Err(format!(
            "the window \"{}\" has not begun yet",
            t[i..end].join(" ")
        )));
    }
    Some(Ok((range(p1, p2), end)))
}

/// Whether the word at `i` starts a time (`2pm`, `14:00`) or a number meant as one (`10`).
fn looks_like_time(t: &[&str], i: usize, clock: Clock, day: Option<NaiveDate>) -> bool {
    point(t, i, clock, day).is_some()
        || t.get(i)
            .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit()))
}

/// The day that `yesterday`/`today` just before token `i` names, if any.
fn day_before(t: &[&str], i: usize, clock: Clock) -> Option<NaiveDate> {
    let today = clock.now().date_naive();
    match i.checked_sub(1).map(|k| t[k]) {
        Some("yesterday") => today.pred_opt(),
        Some("today") => Some(today),
        _ => None,
    }
}

/// `incident 3`, `#3`, `incident #3`, `inc-3` at `i`: the id and the index past it.
pub fn incident_ref(t: &[&str], i: usize) -> Option<(u64, usize)> {
    let number = |w: &str| w.trim_start_matches('#').parse::<u64>().ok();
    let w = *t.get(i)?;
    if matches!(w, "incident" | "inc") {
        return t.get(i + 1).and_then(|n| number(n)).map(|n| (n, i + 2));
    }
    if let Some(rest) = w.strip_prefix("inc-").or(w.strip_prefix("incident-")) {
        return rest.parse().ok().map(|n| (n, i + 1));
    }
    if w.starts_with('#') {
        return number(w).map(|n| (n, i + 1));
    }
    None
}

/// A span of time at `i`: `30m`, `30 minutes`, `1h30m`, `hour` (one), `2 hours`, `half an
/// hour`, `day`; in nanoseconds, with the index past it.
fn span(t: &[&str], i: usize) -> Option<(i64, usize)> {
    let unit = |w: &str| -> Option<i64> {
        let s = 1_000_000_000i64;
        Some(match w.trim_end_matches('s') {
            "sec" | "second" | "s" => s,
            "min" | "minute" | "m" | "mn" | "mins" => 60 * s,
            "hour" | "hr" | "h" => 3600 * s,
            "day" | "d" => 86_400 * s,
            "week" | "wk" | "w" => 7 * 86_400 * s,
            _ => return None,
        })
    };
    let w = *t.get(i)?;
    if w == "half"
        && t.get(i + 1) == Some(&"an")
        && t.get(i + 2).is_some_and(|u| u.starts_with("hour"))
    {
        return Some((1800 * 1_000_000_000, i + 3));
    }
    if let Some(u) = unit(w) {
        // "last hour": one unit; but not "last m" and such single letters.
        return (w.len() > 1).then_some((u, i + 1));
    }
    let words = [
        ("a", 1),
        ("an", 1),
        ("one", 1),
        ("two", 2),
        ("three", 3),
        ("five", 5),
        ("ten", 10),
        ("fifteen", 15),
        ("thirty", 30),
    ];
    let n = w
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n > 0.0)
        .or_else(|| words.iter().find(|(k, _)| *k == w).map(|(_, v)| *v as f64));
    if let (Some(n), Some(u)) = (n, t.get(i + 1).and_then(|u| unit(u))) {
        return Some(((n * u as f64) as i64, i + 2));
    }
    // "30m", "1h30m", "90s": humantime
    if w.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(d) = humantime::parse_duration(w) {
            return i64::try_from(d.as_nanos()).ok().map(|n| (n, i + 1));
        }
    }
    None
}

/// A point in time at `i` on `day` (default: the latest past one): `14:00`, `2pm`, `2:30 pm`,
/// `14h`, `09:30 utc`, `noon`, `midnight`, `2026-12-06 14:00`, RFC 3339; with the index past
/// it.
fn point(
    t: &[&str],
    i: usize,
    clock: Clock,
    day: Option<NaiveDate>,
) -> Option<(DateTime<Tz>, usize)> {
    let now = clock.now();
    let w = *t.get(i)?;
    if w == "now" {
        return Some((now, i + 1));
    }
    if let Ok(p) = DateTime::parse_from_rfc3339(&w.to_uppercase()) {
        return Some((p.with_timezone(&clock.zone), i + 1));
    }
    // A date first: 2026-12-06 [time]
    if let Ok(date) = NaiveDate::parse_from_str(w, "%Y-%m-%d") {
        if let Some((time, end, utc)) = clock_time(t, i + 1) {
            return Some((local(clock, date, time, utc)?, end));
        }
        return Some((local(clock, date, NaiveTime::MIN, false)?, i + 1));
    }
    if matches!(w, "yesterday" | "today") {
        let date = if w == "today" {
            now.date_naive()
        } else {
            now.date_naive().pred_opt()?
        };
        return match clock_time(t, i + 1) {
            Some((time, end, utc)) => Some((local(clock, date, time, utc)?, end)),
            None => Some((local(clock, date, NaiveTime::MIN, false)?, i + 1)),
        };
    }
    let (time, mut end, utc) = clock_time(t, i)?;
    // The day: said before ("yesterday at 9am"), said after ("at 9am yesterday"), or the
    // latest past one, on the clock the time was said in (a UTC time on UTC's date).
    let today = if utc {
        now.with_timezone(&Utc).date_naive()
    } else {
        now.date_naive()
    };
    let after = match t.get(end) {
        Some(&"yesterday") => today.pred_opt(),
        Some(&"today") => Some(today),
        _ => None,
    };
    if after.is_some() {
        end += 1;
    }
    let date = match day.or(after) {
        Some(d) => d,
        None => {
            if local(clock, today, time, utc)? <= now {
                today
            } else {
                today.pred_opt()?
            }
        }
    };
    Some((local(clock, date, time, utc)?, end))
}

/// `date` at `time` in the asker's zone (in UTC when `utc`).
fn local(clock: Clock, date: NaiveDate, time: NaiveTime, utc: bool) -> Option<DateTime<Tz>> {
    let naive = date.and_time(time);
    if utc {
        return Some(Utc.from_utc_datetime(&naive).with_timezone(&clock.zone));
    }
    clock.zone.from_local_datetime(&naive).earliest()
}

/// A clock time at `i`: `14:00`, `14:05:30`, `2pm`, `2 pm`, `2:30pm`, `14h`, `noon`,
/// `midnight`, optionally followed by `utc`/`z`/`gmt`; the time, the index past it, and
/// whether it was said in UTC.
fn clock_time(t: &[&str], i: usize) -> Option<(NaiveTime, usize, bool)> {
    let w = *t.get(i)?;
    let (mut time, mut end) = match w {
        "noon" | "midday" => (NaiveTime::from_hms_opt(12, 0, 0)?, i + 1),
        "midnight" => (NaiveTime::MIN, i + 1),
        _ => {
            let (body, meridiem, end) = if let Some(b) = w.strip_suffix("pm") {
                (b, Some(12), i + 1)
            } else if let Some(b) = w.strip_suffix("am") {
                (b, Some(0), i + 1)
            } else if matches!(t.get(i + 1), Some(&"pm" | &"p.m.")) {
                (w, Some(12), i + 2)
            } else if matches!(t.get(i + 1), Some(&"am" | &"a.m.")) {
                (w, Some(0), i + 2)
            } else {
                (w.strip_suffix('h').unwrap_or(w), None, i + 1)
            };
            let parts: Vec<&str> = body.split(':').collect();
            if parts.is_empty()
                || parts.len() > 3
                || parts
                    .iter()
                    .any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_digit()) || p.len() > 2)
            {
                return None;
            }
            // A bare number is a time only with a meridiem or an `h` ("2pm", "14h").
            if parts.len() == 1 && meridiem.is_none() && !w.ends_with('h') {
                return None;
            }
            let mut h: u32 = parts[0].parse().ok()?;
            let m: u32 = parts.get(1).map_or(Some(0), |p| p.parse().ok())?;
            let s: u32 = parts.get(2).map_or(Some(0), |p| p.parse().ok())?;
            if let Some(add) = meridiem {
                if !(1..=12).contains(&h) {
                    return None;
                }
                h = h % 12 + add;
            }
            (NaiveTime::from_hms_opt(h, m, s)?, end)
        }
    };
    let mut utc = false;
    if matches!(t.get(end), Some(&"utc" | &"z" | &"gmt")) {
        utc = true;
        end += 1;
    }
    time = time.with_nanosecond_zero();
    Some((time, end, utc))
}

trait ZeroNanos {
    fn with_nanosecond_zero(self) -> Self;
}

impl ZeroNanos for NaiveTime {
    fn with_nanosecond_zero(self) -> Self {
        use chrono::Timelike;
        self.with_nanosecond(0).unwrap_or(self)
    }
}

//! Entity names in a question, resolved against the names the graph knows: exact, then prefix,
//! then fuzzy (Jaro–Winkler, Damerau–Levenshtein from `strsim`), asking back when two names
//! score alike instead of guessing (`shared/research/chatops.md` §3.4).

use serde::Serialize;

/// A name the graph knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Known {
    /// Entity id (`service:cart`).
    pub id: String,
    /// Its kind (`service`, `database`, `pod`, `node`, …).
    pub kind: String,
    /// The name people type (`cart`; a pod's name without namespace and uid).
    pub name: String,
}

/// What a run of words resolved to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// One entity; the token range it took.
    One(Known, (usize, usize)),
    /// Several score alike; the choices, best first.
    Ambiguous(Vec<Known>, (usize, usize)),
}

/// Score of an exact match (after normalizing), a prefix match, and the least fuzzy score kept.
const EXACT: f64 = 1.0;
const PREFIX: f64 = 0.95;
const FUZZY_MIN: f64 = 0.92;
/// Two candidates closer than this are ambiguous.
const TIE: f64 = 0.03;

/// A comparable key: lowercase, `-`, `_`, `.`, `/` and spaces as one `-`, a trailing
/// `-service`/`-svc` dropped.
pub fn key(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        if matches!(c, '-' | '_' | '.' | '/' | ' ') {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        } else {
            out.push(c);
        }
    }
    let out = out.trim_end_matches('-');
    out.strip_suffix("-service")
        .or(out.strip_suffix("-svc"))
        .unwrap_or(out)
        .to_owned()
}

fn score(word: &str, name: &str) -> f64 {
    if word == name {
        return EXACT;
    }
    if word.len() >= 3 && name.starts_with(word) {
        return PREFIX;
    }
    let jw = strsim::jaro_winkler(word, name) * 0.97;
    let dl = if word.len() >= 5 && strsim::damerau_levenshtein(word, name) <= 1 {
        0.94
    } else {
        0.0
    };
    jw.max(dl)
}

/// Best matches of `words[from..to]` joined, among `known`: `(score, entity)`, best first,
/// those at or above the fuzzy floor.
fn matches<'a>(phrase: &str, known: &[(String, &'a Known)]) -> Vec<(f64, &'a Known)> {
    let word = key(phrase);
    let mut out: Vec<(f64, &Known)> = known
        .iter()
        .filter_map(|&(ref name, k)| {
            let s = score(&word, name);
            // A pod's name is generated: its own name, or a prefix that goes past the name of
            // its workload (`payment-67shm`), never a fuzzy match (a near miss is another pod).
            let keep = match k.kind.as_str() {
                "pod" | "service_instance" => {
                    s >= EXACT || (s >= PREFIX && word.len() >= 8 && word.contains('-'))
                }
                "node" => s >= PREFIX,
                _ => s >= FUZZY_MIN,
            };
            keep.then_some((s, k))
        })
        .collect();
    out.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then_with(|| kind_rank(a.1).cmp(&kind_rank(b.1)))
    });
    out
}

/// Services before databases and the rest, when two names are the same.
fn kind_rank(k: &Known) -> u8 {
    match k.kind.as_str() {
        "service" => 0,
        "database" | "messaging_destination" | "external" => 1,
        "node" => 2,
        _ => 3,
    }
}

/// The first entity named in `words` (the question's words that are not part of its window
/// or its grammar; `None` marks a word taken). Runs of up to three words are tried, longest
/// first, left to right.
pub fn find(words: &[Option<&str>], known: &[Known]) -> Option<Resolved> {
    // Each name's key once, not once per run of words tried.
    let keyed: Vec<(String, &Known)> = known.iter().map(|k| (key(&k.name), k)).collect();
    for start in 0..words.len() {
        for len in (1..=3).rev() {
            let end = start + len;
            if end > words.len() || words[start..end].iter().any(Option::is_none) {
                continue;
            }
            let phrase: Vec<&str> = words[start..end].iter().flatten().copied().collect();
            let found = matches(&phrase.join("-"), &keyed);
            let Some(&(best, first)) = found.first() else {
                continue;
            };
            // One entity may be known by two names (`shop/cart` and `cart`): once.
            let mut alike: Vec<Known> = Vec::new();
            for (_, k) in found.iter().take_while(|(s, _)| best - s < TIE) {
                if !alike.iter().any(|a| a.id == k.id) {
                    alike.push((*k).clone());
                }
            }
            // The same name of several kinds (service cart, node cart): the service.
            let distinct_names = {
                let mut n: Vec<String> = alike.iter().map(|k| key(&k.name)).collect();
                n.dedup();
                n.len()
            };
            return Some(if alike.len() > 1 && distinct_names > 1 {
                Resolved::Ambiguous(alike.into_iter().take(4).collect(), (start, end))
            } else {
                Resolved::One(first.clone(), (start, end))
            });
        }
    }
    None
}

/// The names nearest to `word` (for "did you mean"), best first, at most `n`, with a
/// Jaro–Winkler similarity of at least `min`.
pub fn nearest(word: &str, known: &[Known], n: usize, min: f64) -> Vec<Known> {
    let word = key(word);
    let mut scored: Vec<(f64, &Known)> = known
        .iter()
        .filter(|k| !matches!(k.kind.as_str(), "pod" | "service_instance" | "operation"))
        .map(|k| (strsim::jaro_winkler(&word, &key(&k.name)), k))
        .filter(|(s, _)| *s >= min)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(n).map(|(_, k)| k.clone()).collect()
}

//! The grammar's word lists.

#[rustfmt::skip]
/// Words that carry no name: grammar, filler, and every intent's trigger words.
pub(super) const STOP: &[&str] = &[
    "alert", "alerts", "alerting", "high", "higher", "low", "everything", "anything", "morning",
    "afternoon", "evening", "tonight", "this", "requests", "request", "spiking", "spike",
    "a", "an", "the", "is", "are", "was", "were", "be", "been", "being", "am", "do", "does",
    "did", "to", "of", "in", "on", "for", "with", "at", "by", "from", "and", "or", "it", "its",
    "it's", "this", "that", "these", "those", "there", "what", "what's", "whats", "who", "whom",
    "which", "why", "how", "how's", "when", "where", "me", "my", "we", "our", "us", "you", "your",
    "i", "please", "can", "could", "would", "should", "tell", "show", "give", "get", "list",
    "find", "now", "right", "currently", "current", "so", "very", "really", "just", "any", "all",
    "some", "service", "services", "svc", "app", "application", "system", "prod", "production",
    "loupe", "slow", "slower", "slowly", "latency", "laggy", "lag", "failing", "fails", "failed",
    "fail", "failure", "failures", "error", "errors", "erroring", "5xx", "500s", "down", "broken",
    "wrong", "timeouts", "timeout", "timing", "out", "problem", "problems", "issue", "issues",
    "up", "root", "cause", "causes", "diagnose", "investigate", "explain", "happening", "going",
    "on?", "with", "changed", "change", "changes", "deploy", "deploys", "deployed", "deployment",
    "deployments", "rollout", "rollouts", "release", "releases", "released", "config",
    "configuration", "flag", "flags", "new", "recently", "depends", "depend", "dependents",
    "dependencies", "dependency", "calls", "call", "callers", "caller", "uses", "use", "used",
    "upstream", "downstream", "blast", "radius", "impact", "impacted", "affected", "affects",
    "status", "health", "healthy", "doing", "ok", "okay", "fine", "state", "incident",
    "incidents", "open", "opened", "firing", "active", "ongoing", "accept", "accepted", "confirm",
    "approve", "reject", "rejected", "dismiss", "deny", "help", "hi", "hello", "hey", "has",
    "have", "had", "about", "anything", "something", "else", "details", "detail", "info",
    "summary", "red", "metrics", "look", "like", "doing?", "went", "since", "last", "past",
    "between", "ago", "today", "yesterday", "hour", "hours", "minutes", "during", "over",
    "around", "into", "who's", "whose", "talk", "talks", "reach", "reaches", "recent", "latest",
    "since?", "because",
];

#[rustfmt::skip]
/// The grammar's own words, which a misspelling of is read as the word.
pub(super) const VOCABULARY: &[&str] = &[
    "changed", "deployed", "deploys", "depends", "dependencies", "status", "healthy", "incidents",
    "incident", "failing", "errors", "slow", "latency", "blast", "radius",
    "yesterday", "minutes", "hours", "between", "since", "diagnose", "wrong", "happening",
];

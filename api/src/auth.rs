//! Bearer tokens with scopes on all three listeners (`Authorization: Bearer <token>`, which
//! OpenTelemetry exporters send through `OTEL_EXPORTER_OTLP_HEADERS`).
//!
//! - **Scopes**: `ingest` (the OTLP receivers and `POST /api/v1/changes`), `read` (the GET API,
//!   SQL, analysis, `ask`, MCP, the UI's calls) and `admin` (verdicts, manual incidents; it
//!   includes `read`).
//! - **The tokens file** holds one token per line, `sha256:<64 hex> <name> <scope>[,<scope>]`,
//!   `#` comments: only SHA-256 digests of tokens, never tokens. A presented token is hashed
//!   and compared with every digest in constant time (`subtle`). The file is read again when
//!   its modification time changes (checked at most once a second) and on [`Tokens::reload`]
//!   (SIGHUP); a file that no longer parses keeps the tokens last read, with a warning.
//! - **Open routes**: `/healthz`, `/readyz`, `/api/v1/openapi.json`, the web page and its assets
//!   (the page asks for a token), and `/slack/*` (Slack signs its requests instead).
//! - **Refusals**: HTTP 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3) when the token is
//!   missing or unknown, 403 when its scopes do not cover the route, in the API's error shape;
//!   gRPC `UNAUTHENTICATED` (16) and `PERMISSION_DENIED` (7) as Trailers-Only responses, which
//!   the OTLP specification lists as not retryable.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Send telemetry and changes.
    Ingest,
    /// Read: the API's GET routes, SQL, analysis, `ask`, MCP, the UI.
    Read,
    /// Write: verdicts, manual incidents (includes `read`).
    Admin,
}

impl Scope {
    /// `ingest`, `read` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "ingest" => Ok(Self::Ingest),
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown scope {other:?}: the scopes are ingest, read and admin"
            )),
        }
    }
}

/// `ingest,read` as scopes.
///
/// # Errors
/// An unknown or missing scope.
pub fn parse_scopes(s: &str) -> Result<Vec<Scope>, String> {
    let scopes: Vec<Scope> = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    if scopes.is_empty() {
        return Err("no scope: give ingest, read or admin (comma-separated)".into());
    }
    Ok(scopes)
}

/// Who a request comes from: the token's name and scopes. Put in the request's extensions by
/// [`require`] for the handlers (`ask` refuses verdicts to a token without `admin`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name in the tokens file.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

impl Principal {
    /// Whether the scopes cover `scope` (`admin` covers `read`).
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope == Scope::Read && self.scopes.contains(&Scope::Admin))
    }
}

#[derive(Debug, Clone)]
struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// A tokens file that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `sha256:<hex> <name> <scopes>`.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: PathBuf,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// `token create` with a name the file already has.
    #[error("{path} already has a token named {name:?}: choose another name")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
}

fn parse_file(path: &Path, text: &str) -> Result<Vec<Entry>, TokensError> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| TokensError::Line {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hash, name, scopes] = fields[..] else {
            return Err(bad(
                "expected `sha256:<64 hex digits> <name> <scope>[,<scope>]`".into(),
            ));
        };
        let digest = hash
            .strip_prefix("sha256:")
            .and_then(decode_hex32)
            .ok_or_else(|| bad("the digest is not `sha256:` and 64 hex digits".into()))?;
        let scopes = parse_scopes(scopes).map_err(bad)?;
        if out.iter().any(|e| e.principal.name == name) {
            return Err(bad(format!("a second token named {name:?}")));
        }
        out.push(Entry {
            digest,
            principal: Principal {
                name: name.to_owned(),
                scopes,
            },
        });
    }
    Ok(out)
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

struct Loaded {
    entries: Vec<Entry>,
    modified: Option<SystemTime>,
}

/// The tokens of a tokens file, read again when it changes.
pub struct Tokens {
    path: PathBuf,
    loaded: RwLock<Loaded>,
    checked: Mutex<Instant>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens").field("path", &self.path).finish()
    }
}

/// How often the file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

impl Tokens {
    /// Reads `path`.
    ///
    /// # Errors
    /// The file cannot be read, or a line does not parse (with its number).
    pub fn open(path: &Path) -> Result<Self, TokensError> {
        let (entries, modified) = Self::read(path)?;
        Ok(Self {
            path: path.to_owned(),
            loaded: RwLock::new(Loaded { entries, modified }),
            checked: Mutex::new(Instant::now()),
        })
    }

    fn read(path: &Path) -> Result<(Vec<Entry>, Option<SystemTime>), TokensError> {
        let io = |source| TokensError::Io {
            path: path.to_owned(),
            source,
        };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let text = std::fs::read_to_string(path).map_err(io)?;
        Ok((parse_file(path, &text)?, modified))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.loaded.read().map_or(0, |l| l.entries.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads the file again; on an error the tokens last read stay.
    ///
    /// # Errors
    /// The file cannot be read or does not parse.
    pub fn reload(&self) -> Result<usize, TokensError> {
        let (entries, modified) = Self::read(&self.path)?;
        let n = entries.len();
        if let Ok(mut l) = self.loaded.write() {
            *l = Loaded { entries, modified };
        }
        Ok(n)
    }

    fn reload_if_changed(&self) {
        {
            // Never wait on the hot path: another request is looking at the file now.
            let Ok(mut checked) = self.checked.try_lock() else {
                return;
            };
            if checked.elapsed() < RECHECK {
                return;
            }
            *checked = Instant::now();
        }
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let known = self.loaded.read().ok().and_then(|l| l.modified);
        if modified != known {
            match self.reload() {
                Ok(n) => {
                    tracing::info!(tokens = n, path = %self.path.display(), "tokens file read again")
                }
                Err(error) => {
                    tracing::warn!(%error, "the tokens file changed but does not parse: keeping the tokens last read")
                }
            }
        }
    }

    /// The principal whose token `token` is, comparing its SHA-256 with every digest in
    /// constant time.
    pub fn check(&self, token: &str) -> Option<Principal> {
        self.reload_if_changed();
        let presented = digest(token);
        let loaded = self.loaded.read().ok()?;
        let mut found = None;
        for e in &loaded.entries {
            if bool::from(e.digest.ct_eq(&presented)) {
                found = Some(e.principal.clone());
            }
        }
        found
    }
}

/// A new random token: `loupe_` and 64 hex digits (256 bits from the operating system's
/// generator, through `rand`'s thread generator).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("loupe_{}", hex(&bytes))
}

/// Makes a token named `name` with `scopes`, appends its digest line to `path` (created with
/// mode 0600 and a header when missing) and returns the token, which is written nowhere.
///
/// # Errors
/// A name with whitespace or already in the file, a file that does not parse, or I/O.
pub fn create_token(path: &Path, name: &str, scopes: &[Scope]) -> Result<String, TokensError> {
    let io = |source| TokensError::Io {
        path: path.to_owned(),
        source,
    };
    if name.is_empty() || name.chars().any(char::is_whitespace) || name.starts_with('#') {
        return Err(TokensError::Line {
            path: path.to_owned(),
            line: 0,
            reason: format!("the name {name:?} must be one word"),
        });
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    if parse_file(path, &existing)?
        .iter()
        .any(|e| e.principal.name == name)
    {
        return Err(TokensError::Duplicate {
            path: path.to_owned(),
            name: name.to_owned(),
        });
    }
    let token = new_token();
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let mut line = String::new();
    if existing.is_empty() {
        line.push_str("# loupe tokens: sha256:<digest of the token> <name> <scopes>; made by `loupe token create`\n");
    } else if !existing.ends_with('\n') {
        line.push('\n');
    }
    line.push_str(&format!(
        "sha256:{} {name} {}\n",
        hex(&digest(&token)),
        scopes.join(",")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(token)
}

/// Which listener a request came to: the refusals differ (gRPC status or HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The REST API, the web UI, MCP and Slack.
    Api,
    /// OTLP/HTTP.
    OtlpHttp,
    /// OTLP/gRPC.
    OtlpGrpc,
}

/// What a request on `listener` needs: `None` is open.
pub fn needs(listener: Listener, method: &Method, path: &str) -> Option<Scope> {
    if listener != Listener::Api {
        return Some(Scope::Ingest);
    }
    let get = method == Method::GET || method == Method::HEAD;
    match path {
        "/healthz" | "/readyz" | "/api/v1/openapi.json" if get => None,
        "/api/v1/changes" if method == Method::POST => Some(Scope::Ingest),
        "/api/v1/incidents" if method == Method::POST => Some(Scope::Admin),
        p if method == Method::POST
            && p.starts_with("/api/v1/incidents/")
            && p.ends_with("/verdict") =>
        {
            Some(Scope::Admin)
        }
        p if p.starts_with("/slack/") => None,
        // The web page and its assets: everything the UI serves outside the API.
        p if get && !p.starts_with("/api/") && !p.starts_with("/mcp") && p != "/metrics" => None,
        _ => Some(Scope::Read),
    }
}

/// The state of [`require`].
#[derive(Clone)]
pub struct Auth {
    /// The tokens.
    pub tokens: Arc<Tokens>,
    /// The listener it guards.
    pub listener: Listener,
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A refusal in the listener's protocol.
fn refuse(
    listener: Listener,
    status: StatusCode,
    message: String,
    scope: Option<Scope>,
) -> Response {
    if listener == Listener::OtlpGrpc {
        let code = if status == StatusCode::FORBIDDEN {
            "7"
        } else {
            "16"
        };
        return (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/grpc"),
                ),
                (
                    header::HeaderName::from_static("grpc-status"),
                    HeaderValue::from_static(code),
                ),
                (
                    header::HeaderName::from_static("grpc-message"),
                    HeaderValue::from_str(&message).unwrap_or(HeaderValue::from_static("refused")),
                ),
            ],
        )
            .into_response();
    }
    let challenge = match (status, scope) {
        (StatusCode::FORBIDDEN, Some(s)) => {
            format!("Bearer realm=\"loupe\", error=\"insufficient_scope\", scope=\"{s}\"")
        }
        (_, _) if message.contains("not known") => {
            "Bearer realm=\"loupe\", error=\"invalid_token\"".to_owned()
        }
        _ => "Bearer realm=\"loupe\"".to_owned(),
    };
    let error = if status == StatusCode::FORBIDDEN {
        ApiError::PermissionDenied(message)
    } else {
        ApiError::Unauthenticated(message)
    };
    let mut response = error.into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

/// Middleware: lets open routes through, checks the bearer token of the others against the
/// scope the route needs, and puts the [`Principal`] in the request's extensions.
pub async fn require(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let Some(scope) = needs(auth.listener, request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    // GitHub cannot send a bearer token: its signed deliveries go on to the changes route,
    // which takes them only when X-Hub-Signature-256 matches the configured secret.
    if auth.listener == Listener::Api
        && request.method() == Method::POST
        && request.uri().path() == "/api/v1/changes"
        && bearer(&request).is_none()
        && request.headers().contains_key("x-hub-signature-256")
    {
        return next.run(request).await;
    }
    let Some(token) = bearer(&request) else {
        return refuse(
            auth.listener,
            StatusCode::UNAUTHORIZED,
            format!(
                "this needs a bearer token with the {scope} scope (Authorization: Bearer <token>)"
            ),
            Some(scope),
        );
    };
    // A hash and a compare per token; the file's time is looked at once a second.
    let principal = match auth.tokens.check(token) {
        Some(p) => p,
        None => {
            return refuse(
                auth.listener,
                StatusCode::UNAUTHORIZED,
                "the bearer token is not known".into(),
                None,
            )
        }
    };
    if !principal.may(scope) {
        return refuse(
            auth.listener,
            StatusCode::FORBIDDEN,
            format!(
                "the token {:?} lacks the {scope} scope this needs",
                principal.name
            ),
            Some(scope),
        );
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// `router` behind [`require`] for `listener`; unchanged without tokens.
pub fn guard(
    router: axum::Router,
    tokens: Option<Arc<Tokens>>,
    listener: Listener,
) -> axum::Router {
    match tokens {
        Some(tokens) => router.layer(axum::middleware::from_fn_with_state(
            Auth { tokens, listener },
            require,
        )),
        None => router,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        std::env::temp_dir().join(format!("loupe-auth-{name}-{}-{nanos}", std::process::id()))
    }

    #[test]
    fn created_tokens_check_with_their_scopes_and_only_digests_are_stored() {
        let path = temp("create");
        let ingest = create_token(&path, "collector", &[Scope::Ingest]).unwrap();
        let admin = create_token(&path, "oncall", &[Scope::Admin]).unwrap();
        assert!(ingest.starts_with("loupe_") && ingest.len() == 70);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&ingest[6..]) && !text.contains(&admin[6..]));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let tokens = Tokens::open(&path).unwrap();
        assert_eq!(tokens.len(), 2);
        let p = tokens.check(&ingest).unwrap();
        assert_eq!(p.name, "collector");
        assert!(p.may(Scope::Ingest) && !p.may(Scope::Read) && !p.may(Scope::Admin));
        let p = tokens.check(&admin).unwrap();
        assert!(p.may(Scope::Read) && p.may(Scope::Admin) && !p.may(Scope::Ingest));
        assert_eq!(tokens.check("loupe_nope"), None);
        assert_eq!(tokens.check(&ingest[..69]), None);
        assert!(matches!(
            create_token(&path, "collector", &[Scope::Read]),
            Err(TokensError::Duplicate { .. })
        ));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_bad_line_is_named_and_a_changed_file_is_read_again() {
        let path = temp("lines");
        std::fs::write(&path, "# c\nsha256:abc x read\n").unwrap();
        let e = Tokens::open(&path).unwrap_err().to_string();
        assert!(
            e.ends_with(":2: the digest is not `sha256:` and 64 hex digits"),
            "{e}"
        );
        std::fs::write(&path, format!("sha256:{} x rea\n", "0".repeat(64))).unwrap();
        assert!(Tokens::open(&path)
            .unwrap_err()
            .to_string()
            .contains("unknown scope \"rea\""));
        std::fs::write(&path, "").unwrap();
        let tokens = Tokens::open(&path).unwrap();
        assert!(tokens.is_empty());
        let token = create_token(&path, "late", &[Scope::Read]).unwrap();
        // Read again on the next check once a second has passed (or at once on reload).
        assert_eq!(tokens.reload().unwrap(), 1);
        assert_eq!(tokens.check(&token).unwrap().name, "late");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn routes_need_the_scopes_the_readme_says() {
        use Listener::*;
        let cases = [
            (Api, Method::GET, "/healthz", None),
            (Api, Method::GET, "/readyz", None),
            (Api, Method::GET, "/api/v1/openapi.json", None),
            (Api, Method::GET, "/", None),
            (Api, Method::GET, "/incidents/3", None),
            (Api, Method::GET, "/assets/app/main.js", None),
            (Api, Method::POST, "/slack/commands", None),
            (Api, Method::GET, "/api/v1/graph", Some(Scope::Read)),
            (Api, Method::GET, "/api/v1/incidents", Some(Scope::Read)),
            (Api, Method::POST, "/api/v1/query", Some(Scope::Read)),
            (Api, Method::POST, "/api/v1/ask", Some(Scope::Read)),
            (Api, Method::POST, "/api/v1/analyze", Some(Scope::Read)),
            (Api, Method::POST, "/mcp", Some(Scope::Read)),
            (Api, Method::GET, "/mcp", Some(Scope::Read)),
            (Api, Method::GET, "/metrics", Some(Scope::Read)),
            (Api, Method::POST, "/api/v1/changes", Some(Scope::Ingest)),
            (Api, Method::POST, "/api/v1/incidents", Some(Scope::Admin)),
            (
                Api,
                Method::POST,
                "/api/v1/incidents/3/causes/service:cart/verdict",
                Some(Scope::Admin),
            ),
            (Api, Method::POST, "/healthz", Some(Scope::Read)),
            (OtlpHttp, Method::POST, "/v1/traces", Some(Scope::Ingest)),
            (
                OtlpGrpc,
                Method::POST,
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                Some(Scope::Ingest),
            ),
        ];
        for (listener, method, path, want) in cases {
            assert_eq!(
                needs(listener, &method, path),
                want,
                "{listener:?} {method} {path}"
            );
        }
    }
}

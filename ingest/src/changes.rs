//! Change intake: `POST /api/v1/changes` with loupe's own JSON schema, an Argo CD notification
//! webhook, or a GitHub `deployment_status` webhook, turned into [`ChangeEvent`]s for a
//! [`ChangeSink`].
//!
//! loupe's schema (one object, an array, or `{"changes": [...]}`):
//!
//! ```json
//! {"kind": "deployment", "time": "2025-06-12T09:36:21Z", "service": "checkout",
//!  "environment": "production", "version_from": "1.14.1", "version_to": "1.14.2",
//!  "commit": "983c55c", "author": "jane", "source": "deploy.sh", "summary": "…",
//!  "end_time": …, "object": {"kind": "Deployment", "name": "checkout", "namespace": "shop"},
//!  "flag": "paymentFailure", "reason": "…", "id": "sender's id, to drop repeats"}
//! ```
//!
//! `kind` is `deployment`, `config`, `feature_flag`, `scaling` or `kubernetes_event`; times are
//! RFC 3339 strings or integer unix nanoseconds, `time` defaulting to the time of receipt.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use loupe_model::time::SharedClock;
use loupe_model::{ChangeEvent, ChangeKind, ObjectRef};
use serde_json::Value;

/// Where accepted changes go: made durable, then into the graph.
pub trait ChangeSink: Send + Sync + 'static {
    /// Records `changes`; returns their ids in the graph.
    ///
    /// # Errors
    /// A message when they could not be made durable (nothing was recorded).
    fn record_changes(&self, changes: Vec<ChangeEvent>) -> Result<Vec<String>, String>;
}

/// A payload that is not a change the endpoint understands; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChangeError(pub String);

type Parsed = Result<Vec<ChangeEvent>, ChangeError>;

fn missing(field: &str) -> ChangeError {
    ChangeError(format!("missing or invalid field {field}"))
}

fn text<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn owned(v: &Value, pointer: &str) -> Option<String> {
    text(v, pointer).map(str::to_owned)
}

/// A time given as integer unix nanoseconds or an RFC 3339 string.
fn time(v: &Value, field: &str) -> Result<Option<u64>, ChangeError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| missing(field)),
        Some(Value::String(s)) => rfc3339(s)
            .map(Some)
            .ok_or_else(|| ChangeError(format!("field {field}: {s:?} is not RFC 3339"))),
        Some(_) => Err(missing(field)),
    }
}

fn rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(s).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(d.as_nanos()).ok()
}

/// The tag of an image reference (`ghcr.io/acme/checkout:1.14.2` → `1.14.2`).
fn image_tag(image: &str) -> Option<&str> {
    let name = image.rsplit('/').next()?;
    let tag = name.split_once(':')?.1;
    Some(tag.split('@').next().unwrap_or(tag))
}

/// loupe's own schema.
///
/// # Errors
/// [`ChangeError`] naming the first invalid field.
pub fn parse_loupe(body: &Value, now: u64) -> Parsed {
    let items: Vec<&Value> = match body {
        Value::Array(items) => items.iter().collect(),
        Value::Object(o) if o.contains_key("changes") => o["changes"]
            .as_array()
            .ok_or_else(|| missing("changes"))?
            .iter()
            .collect(),
        Value::Object(_) => vec![body],
        _ => return Err(ChangeError("expected a change object or an array".into())),
    };
    let many = body.is_array() || body.get("changes").is_some();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            one_loupe(item, now).map_err(|e| match many {
                true => ChangeError(format!("change {i}: {e}")),
                false => e,
            })
        })
        .collect()
}

fn one_loupe(item: &Value, now: u64) -> Result<ChangeEvent, ChangeError> {
    let kind: ChangeKind = serde_json::from_value(item.get("kind").cloned().unwrap_or(Value::Null))
        .map_err(|_| {
            ChangeError(
                "field kind must be deployment, config, feature_flag, scaling or kubernetes_event"
                    .into(),
            )
        })?;
    let t = time(item, "time")?.unwrap_or(now);
    let mut c = ChangeEvent::new(kind, t, text(item, "/source").unwrap_or("api"));
    c.end_time_unix_nano = time(item, "end_time")?;
    c.service = owned(item, "/service");
    c.environment = owned(item, "/environment");
    c.version_from = owned(item, "/version_from");
    c.version_to = owned(item, "/version_to");
    c.commit = owned(item, "/commit");
    c.author = owned(item, "/author");
    c.summary = owned(item, "/summary").unwrap_or_default();
    c.flag = owned(item, "/flag");
    c.reason = owned(item, "/reason");
    c.external_id = owned(item, "/id");
    if let Some(o) = item.get("object") {
        c.object = Some(ObjectRef {
            kind: owned(o, "/kind").ok_or_else(|| missing("object.kind"))?,
            name: owned(o, "/name").ok_or_else(|| missing("object.name"))?,
            namespace: owned(o, "/namespace"),
        });
    }
    if c.service.is_none() && c.object.is_none() {
        return Err(ChangeError(
            "a change needs a service or an object it concerns".into(),
        ));
    }
    Ok(c)
}

/// An Argo CD notification webhook: either a template that sends the whole `app` (with
/// `commit_metadata`, as the commonly documented CD-visibility template does), or the
/// `on-deployed` example's `{resources, revision, source}`. Each synced Deployment, StatefulSet
/// or DaemonSet is a deployment of the service of the same name, unless `service` overrides it.
///
/// # Errors
/// [`ChangeError`] when the body has neither shape.
pub fn parse_argocd(body: &Value, service: Option<&str>, now: u64) -> Parsed {
    let (app, result) = match body.get("app") {
        Some(app) => (
            Some(app),
            app.pointer("/status/operationState/syncResult")
                .ok_or_else(|| missing("app.status.operationState.syncResult"))?,
        ),
        None if body.get("resources").is_some() => (None, body),
        None => {
            return Err(ChangeError(
                "not an Argo CD notification: neither app nor resources".into(),
            ))
        }
    };
    let revision = owned(result, "/revision");
    let started = app
        .and_then(|a| text(a, "/status/operationState/startedAt"))
        .and_then(rfc3339);
    let finished = app
        .and_then(|a| text(a, "/status/operationState/finishedAt"))
        .and_then(rfc3339);
    let phase = app.and_then(|a| text(a, "/status/operationState/phase"));
    // The version before: the image tag of the previous history entry.
    let previous_images: Vec<String> = app
        .and_then(|a| a.pointer("/status/history")?.as_array())
        .and_then(|h| h.len().checked_sub(2).map(|i| &h[i]))
        .and_then(|entry| entry.pointer("/source/kustomize/images")?.as_array())
        .map(|images| {
            images
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let workloads = result
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("resources"))?
        .iter()
        .filter(|r| {
            matches!(
                text(r, "/kind"),
                Some("Deployment" | "StatefulSet" | "DaemonSet" | "Rollout")
            )
        });
    let mut out = Vec::new();
    for w in workloads {
        let name = text(w, "/name").ok_or_else(|| missing("resources[].name"))?;
        let images: Vec<&str> = w
            .get("images")
            .and_then(Value::as_array)
            .map(|i| i.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let image_name = |i: &str| i.rsplit_once(':').map(|(n, _)| n.to_owned());
        let version_to = images.first().and_then(|i| image_tag(i)).map(str::to_owned);
        let version_from = images.first().and_then(|now_image| {
            let repo = image_name(now_image)?;
            previous_images
                .iter()
                .find(|p| image_name(p).as_deref() == Some(repo.as_str()))
                .and_then(|p| image_tag(p))
                .map(str::to_owned)
        });
        let mut c = ChangeEvent::new(ChangeKind::Deployment, started.unwrap_or(now), "argocd");
        c.end_time_unix_nano = finished;
        c.service = Some(service.unwrap_or(name).to_owned());
        c.environment = app.and_then(|a| owned(a, "/spec/destination/namespace"));
        c.object = Some(ObjectRef {
            kind: text(w, "/kind").unwrap_or("Deployment").to_owned(),
            name: name.to_owned(),
            namespace: owned(w, "/namespace"),
        });
        c.version_from = version_from;
        c.version_to = version_to.clone();
        c.commit = revision.clone();
        c.author = body
            .pointer("/commit_metadata/Author")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let app_name = app.and_then(|a| text(a, "/metadata/name")).unwrap_or(name);
        c.summary = format!(
            "Argo CD synced {app_name}: {} {name}{}{}",
            text(w, "/kind").unwrap_or("Deployment"),
            version_to.map(|v| format!(" to {v}")).unwrap_or_default(),
            phase.map(|p| format!(" ({p})")).unwrap_or_default(),
        );
        c.external_id = revision.as_ref().map(|r| format!("{app_name}/{name}@{r}"));
        out.push(c);
    }
    Ok(out)
}

/// A GitHub `deployment_status` webhook (`X-GitHub-Event: deployment_status`): a deployment of
/// the repository's service (or `deployment.payload.service`, or `service`) to the status's
/// environment, at the status's time. Statuses other than `success`, `failure` and `error` (a
/// deployment still queued or in progress) are not changes yet.
///
/// # Errors
/// [`ChangeError`] naming a missing field.
pub fn parse_github_deployment_status(body: &Value, service: Option<&str>) -> Parsed {
    let state =
        text(body, "/deployment_status/state").ok_or_else(|| missing("deployment_status.state"))?;
    if !matches!(state, "success" | "failure" | "error") {
        return Ok(Vec::new());
    }
    let created = text(body, "/deployment_status/created_at")
        .and_then(rfc3339)
        .ok_or_else(|| missing("deployment_status.created_at"))?;
    let service = service
        .map(str::to_owned)
        .or_else(|| owned(body, "/deployment/payload/service"))
        .or_else(|| owned(body, "/repository/name"))
        .ok_or_else(|| missing("repository.name"))?;
    let mut c = ChangeEvent::new(ChangeKind::Deployment, created, "github");
    c.environment = owned(body, "/deployment_status/environment")
        .or_else(|| owned(body, "/deployment/environment"));
    c.version_to =
        owned(body, "/deployment/payload/version").or_else(|| owned(body, "/deployment/ref"));
    c.version_from = owned(body, "/deployment/payload/previous_version");
    c.commit = owned(body, "/deployment/sha");
    c.author = owned(body, "/deployment/creator/login").or_else(|| owned(body, "/sender/login"));
    c.summary = format!(
        "GitHub deployment of {service}{} to {} {state}",
        c.version_to
            .as_ref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
        c.environment.as_deref().unwrap_or("an environment"),
    );
    c.external_id = body
        .pointer("/deployment_status/id")
        .map(|id| id.to_string());
    c.service = Some(service);
    Ok(vec![c])
}

/// Picks the parser: GitHub by its `X-GitHub-Event` header, Argo CD by `?source=argocd` or its
/// body, else loupe's schema.
///
/// # Errors
/// [`ChangeError`] from the parser, or for a GitHub event other than `deployment_status`/`ping`.
pub fn parse(
    headers: &HeaderMap,
    source: Option<&str>,
    service: Option<&str>,
    body: &Value,
    now: u64,
) -> Parsed {
    if let Some(event) = headers.get("x-github-event").and_then(|v| v.to_str().ok()) {
        return match event {
            "deployment_status" => parse_github_deployment_status(body, service),
            "ping" => Ok(Vec::new()),
            other => Err(ChangeError(format!(
                "GitHub event {other:?} is not a change; subscribe the webhook to deployment_status"
            ))),
        };
    }
    let argocd = source == Some("argocd")
        || body.pointer("/app/kind").and_then(Value::as_str) == Some("Application")
        || (body.get("resources").is_some() && body.get("revision").is_some());
    if argocd {
        parse_argocd(body, service, now)
    } else {
        parse_loupe(body, now)
    }
}

#[derive(Clone)]
struct ChangeState {
    sink: Arc<dyn ChangeSink>,
    clock: SharedClock,
    limit_bytes: usize,
    github_secret: Option<Arc<str>>,
}

/// The header GitHub signs webhook deliveries with.
pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";

/// Checks a GitHub webhook delivery's `X-Hub-Signature-256: sha256=<hex>`, the HMAC-SHA256 of
/// the raw body keyed by the webhook's secret (GitHub Docs, "Validating webhook deliveries"),
/// in constant time.
///
/// # Errors
/// A message saying why the delivery is not taken: no secret configured, a malformed header,
/// or a signature that does not match.
pub fn verify_github_signature(
    secret: Option<&str>,
    header: &[u8],
    body: &[u8],
) -> Result<(), String> {
    use hmac::{Hmac, KeyInit, Mac};
    let Some(secret) = secret else {
        return Err("the request carries X-Hub-Signature-256 but no GitHub webhook secret is configured (--github-webhook-secret, changes.github_webhook_secret)".into());
    };
    let hex_sig = std::str::from_utf8(header)
        .ok()
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or("X-Hub-Signature-256 is not of the form sha256=<hex>")?;
    let signature = hex::decode(hex_sig).map_err(|_| "X-Hub-Signature-256 is not hex")?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|_| "the GitHub webhook secret cannot key an HMAC")?;
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| {
        "X-Hub-Signature-256 does not match the body: check the webhook's secret".to_owned()
    })
}

/// Largest body `POST /api/v1/changes` takes, bytes.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// `POST /api/v1/changes` on a router for the REST port. A delivery that carries
/// `X-Hub-Signature-256` is taken only when the signature matches `github_secret` (the
/// authentication layer lets such deliveries through without a bearer token for this check).
pub fn changes_router(
    sink: Arc<dyn ChangeSink>,
    clock: SharedClock,
    github_secret: Option<&str>,
) -> Router {
    Router::new()
        .route("/api/v1/changes", post(post_changes))
        .with_state(ChangeState {
            sink,
            clock,
            limit_bytes: MAX_BODY_BYTES,
            github_secret: github_secret.map(Arc::from),
        })
}

fn error(status: StatusCode, code: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message.to_string()}});
    (status, Json(body)).into_response()
}

async fn post_changes(
    State(state): State<ChangeState>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if body.len() > state.limit_bytes {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("body exceeds {} bytes", state.limit_bytes),
        );
    }
    if let Some(signature) = headers.get(GITHUB_SIGNATURE) {
        if let Err(why) =
            verify_github_signature(state.github_secret.as_deref(), signature.as_bytes(), &body)
        {
            return error(StatusCode::UNAUTHORIZED, "unauthenticated", why);
        }
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("invalid JSON: {e}"),
            )
        }
    };
    let now = state.clock.now_unix_nano();
    let parsed = parse(
        &headers,
        query.get("source").map(String::as_str),
        query.get("service").map(String::as_str),
        &value,
        now,
    );
    let changes = match parsed {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_change", e),
    };
    if changes.is_empty() {
        return (StatusCode::OK, Json(serde_json::json!({"recorded": []}))).into_response();
    }
    let sink = state.sink.clone();
    match tokio::task::spawn_blocking(move || sink.record_changes(changes)).await {
        Ok(Ok(ids)) => (
            StatusCode::CREATED,
            Json(serde_json::json!({"recorded": ids})),
        )
            .into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/changes")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn github_signatures_check_against_the_secret() {
        // GitHub Docs, "Validating webhook deliveries": secret "It's a Secret to Everybody",
        // payload "Hello, World!".
        let header = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secret = Some("It's a Secret to Everybody");
        verify_github_signature(secret, header, b"Hello, World!").unwrap();
        let wrong = verify_github_signature(secret, header, b"Hello, World?").unwrap_err();
        assert!(wrong.contains("does not match"), "{wrong}");
        let unset = verify_github_signature(None, header, b"Hello, World!").unwrap_err();
        assert!(unset.contains("no GitHub webhook secret"), "{unset}");
        let bad = verify_github_signature(secret, b"sha1=abc", b"").unwrap_err();
        assert!(bad.contains("sha256=<hex>"), "{bad}");
    }

    #[test]
    fn loupe_schema_round_trip_and_errors() {
        let body = serde_json::json!({"kind": "deployment", "time": "2025-06-12T09:36:21Z",
            "service": "checkout", "version_from": "1.14.1", "version_to": "1.14.2", "id": "d-1"});
        let c = parse_loupe(&body, 7).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].time_unix_nano, 1_749_720_981_000_000_000);
        assert_eq!(c[0].source, "api");
        assert_eq!(c[0].external_id.as_deref(), Some("d-1"));
        let no_time = serde_json::json!([{"kind": "config", "service": "cart"}]);
        assert_eq!(parse_loupe(&no_time, 7).unwrap()[0].time_unix_nano, 7);
        let bad_kind = serde_json::json!({"kind": "reboot", "service": "cart"});
        assert!(parse_loupe(&bad_kind, 7).unwrap_err().0.contains("kind"));
        let bad_time =
            serde_json::json!([{"kind": "config", "service": "cart", "time": "yesterday"}]);
        let e = parse_loupe(&bad_time, 7).unwrap_err().0;
        assert!(e.contains("change 0") && e.contains("time"), "{e}");
        let no_target = serde_json::json!({"kind": "config"});
        assert!(parse_loupe(&no_target, 7).is_err());
    }

    #[test]
    fn argocd_notification_with_the_whole_app() {
        let c = parse_argocd(&testdata("argocd-notification.json"), None, 0).unwrap();
        assert_eq!(c.len(), 1, "one synced Deployment");
        let c = &c[0];
        assert_eq!(c.service.as_deref(), Some("checkout"));
        assert_eq!(c.version_from.as_deref(), Some("1.14.1"));
        assert_eq!(c.version_to.as_deref(), Some("1.14.2"));
        assert_eq!(
            c.commit.as_deref(),
            Some("06195e682359dc0bec379941917d02ce45f7478b")
        );
        assert_eq!(c.environment.as_deref(), Some("shop"));
        assert!(c.author.as_deref().unwrap().starts_with("deploy-bot"));
        assert_eq!(c.time_unix_nano, rfc3339("2025-06-12T09:35:58Z").unwrap());
        assert_eq!(c.end_time_unix_nano, rfc3339("2025-06-12T09:36:21Z"));
        let object = c.object.as_ref().unwrap();
        assert_eq!(
            (object.kind.as_str(), object.namespace.as_deref()),
            ("Deployment", Some("shop"))
        );
    }

    #[test]
    fn argocd_sync_result_example_and_service_override() {
        let body = testdata("argocd-notification-syncresult.json");
        let c = parse(&HeaderMap::new(), None, Some("checkout-api"), &body, 99).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].service.as_deref(), Some("checkout-api"));
        assert_eq!(c[0].version_to.as_deref(), Some("1.14.2"));
        assert_eq!(
            c[0].time_unix_nano, 99,
            "no time in this shape: the time of receipt"
        );
    }

    #[test]
    fn github_deployment_status() {
        let mut headers = HeaderMap::new();
        headers.insert("x-github-event", "deployment_status".parse().unwrap());
        let body = testdata("github-deployment-status.json");
        let c = parse(&headers, None, None, &body, 0).unwrap();
        assert_eq!(c.len(), 1);
        let c = &c[0];
        assert_eq!(c.service.as_deref(), Some("checkout"));
        assert_eq!(c.environment.as_deref(), Some("production"));
        assert_eq!(c.version_to.as_deref(), Some("v1.14.2"));
        assert_eq!(c.version_from.as_deref(), Some("1.14.1"));
        assert_eq!(
            c.commit.as_deref(),
            Some("983c55c77cc15b128bcd62039c29a3a66ee77fdf")
        );
        assert_eq!(c.author.as_deref(), Some("jane-doe"));
        assert_eq!(c.external_id.as_deref(), Some("3914602185"));
        // Still in progress: not a change yet.
        let mut pending = body.clone();
        pending["deployment_status"]["state"] = "in_progress".into();
        assert!(parse(&headers, None, None, &pending, 0).unwrap().is_empty());
        headers.insert("x-github-event", "push".parse().unwrap());
        assert!(parse(&headers, None, None, &body, 0).is_err());
    }
}

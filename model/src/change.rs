//! Changes and events: deployments, configuration and feature-flag changes, scaling, and
//! Kubernetes events, whether posted to the API, sent by a CI/CD tool's webhook, carried as
//! OTLP log records, or inferred from telemetry.

use serde::{Deserialize, Serialize};

use crate::semconv;
use crate::telemetry::{LogRecord, Resource};

/// What a change is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new version of a service rolled out.
    Deployment,
    /// A configuration change.
    Config,
    /// A feature flag changed its variant.
    FeatureFlag,
    /// Replicas or resources scaled.
    Scaling,
    /// A Kubernetes event (`OOMKilled`, `BackOff`, `Unhealthy`, …): not a change someone made,
    /// but something that happened to an object.
    KubernetesEvent,
}

impl ChangeKind {
    /// The snake-case name used in ids and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::Config => "config",
            Self::FeatureFlag => "feature_flag",
            Self::Scaling => "scaling",
            Self::KubernetesEvent => "kubernetes_event",
        }
    }

    /// Whether it is an event (something that happened) rather than a change (something done).
    pub fn is_event(self) -> bool {
        self == Self::KubernetesEvent
    }
}

/// The Kubernetes object a change or event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `Pod`, `Deployment`, `StatefulSet`, `Node`, …
    pub kind: String,
    /// Object name.
    pub name: String,
    /// Namespace, for namespaced objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One change or event, in loupe's terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// What it is.
    pub kind: ChangeKind,
    /// When it happened (a rollout's start), unix nanoseconds.
    pub time_unix_nano: u64,
    /// When it finished (a rollout's end), unix nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time_unix_nano: Option<u64>,
    /// The service changed or affected (`service.name`, or `namespace/name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Deployment environment (`deployment.environment.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Version (or flag variant, or config revision) before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_from: Option<String>,
    /// Version (or flag variant, or config revision) after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_to: Option<String>,
    /// Commit (VCS revision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Where it came from: `api`, `argocd`, `github`, `k8s_events`, `openfeature`, `otlp`,
    /// `inferred`.
    pub source: String,
    /// A sentence for people.
    pub summary: String,
    /// The Kubernetes object it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// A Kubernetes event's reason (`OOMKilled`, `BackOff`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A feature flag's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
    /// The sender's own id for it (a webhook delivery, an event uid), used to drop repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl ChangeEvent {
    /// An empty change of `kind` at `time_unix_nano` from `source`.
    pub fn new(kind: ChangeKind, time_unix_nano: u64, source: &str) -> Self {
        Self {
            kind,
            time_unix_nano,
            end_time_unix_nano: None,
            service: None,
            environment: None,
            version_from: None,
            version_to: None,
            commit: None,
            author: None,
            source: source.to_owned(),
            summary: String::new(),
            object: None,
            reason: None,
            flag: None,
            external_id: None,
        }
    }
}

/// Attribute keys of change events carried as OTLP log records.
pub mod keys {
    /// Kubernetes events (OpenTelemetry Collector `k8s_events` receiver).
    pub const K8S_EVENT_REASON: &str = "k8s.event.reason";
    /// The event object's uid.
    pub const K8S_EVENT_UID: &str = "k8s.event.uid";
    /// The involved object's kind (resource attribute of the `k8s_events` receiver).
    pub const K8S_OBJECT_KIND: &str = "k8s.object.kind";
    /// The involved object's name.
    pub const K8S_OBJECT_NAME: &str = "k8s.object.name";
    /// The OpenFeature evaluation event name (feature-flag semantic conventions).
    pub const FEATURE_FLAG_EVALUATION: &str = "feature_flag.evaluation";
    /// The flag's key.
    pub const FEATURE_FLAG_KEY: &str = "feature_flag.key";
    /// The evaluated variant (semantic conventions 1.32 and later).
    pub const FEATURE_FLAG_RESULT_VARIANT: &str = "feature_flag.result.variant";
    /// The evaluated variant (before 1.32).
    pub const FEATURE_FLAG_VARIANT: &str = "feature_flag.variant";
    /// A deployment's status (`succeeded`, `failed`…; deployment semantic conventions).
    pub const DEPLOYMENT_STATUS: &str = "deployment.status";
    /// A deployment's name.
    pub const DEPLOYMENT_NAME: &str = "deployment.name";
    /// A deployment's id.
    pub const DEPLOYMENT_ID: &str = "deployment.id";
    /// The revision deployed (VCS semantic conventions).
    pub const VCS_REF_HEAD_REVISION: &str = "vcs.ref.head.revision";
    /// The pipeline that deployed (CI/CD semantic conventions).
    pub const CICD_PIPELINE_NAME: &str = "cicd.pipeline.name";
}

/// A feature-flag evaluation seen in a log record: `(flag key, variant)`. Not a change by
/// itself: a change is a flag whose variant differs from the one evaluated before.
pub fn flag_evaluation(record: &LogRecord) -> Option<(&str, &str)> {
    if record.event_name != keys::FEATURE_FLAG_EVALUATION {
        return None;
    }
    let key = record.attributes.get_str(keys::FEATURE_FLAG_KEY)?;
    let variant = record
        .attributes
        .get_str(keys::FEATURE_FLAG_RESULT_VARIANT)
        .or_else(|| record.attributes.get_str(keys::FEATURE_FLAG_VARIANT))?;
    Some((key, variant))
}

/// The change or event a log record carries, if it carries one: a Kubernetes event (the
/// `k8s_events` receiver's attributes, or the `k8sobjects` receiver's watch body), or a
/// deployment event (`deployment.*` attributes), whose service is the one the resource names
/// (else a `service.name` record attribute). Only records marked as events (an event name, or a
/// `k8s.event.*`, `deployment.*` or `event.domain` attribute) are looked at further.
pub fn from_log_record(resource: &Resource, record: &LogRecord) -> Option<ChangeEvent> {
    // Every log record passes here: a plain one is turned away after one look at its own
    // attributes (change events are marked on the record, by name or attribute).
    let marked = !record.event_name.is_empty()
        || record.attributes.0.iter().any(|(k, _)| {
            k.starts_with("k8s.event.") || k.starts_with("deployment.") || k == "event.domain"
        });
    if !marked {
        return None;
    }
    let attr = |key: &str| {
        record
            .attributes
            .get_str(key)
            .or_else(|| resource.attributes.get_str(key))
    };
    if let Some(reason) = attr(keys::K8S_EVENT_REASON) {
        let mut e = ChangeEvent::new(
            ChangeKind::KubernetesEvent,
            record.time_unix_nano,
            "k8s_events",
        );
        e.reason = Some(reason.to_owned());
        e.summary = record.body.clone();
        e.external_id = attr(keys::K8S_EVENT_UID).map(str::to_owned);
        e.object = match (attr(keys::K8S_OBJECT_KIND), attr(keys::K8S_OBJECT_NAME)) {
            (Some(kind), Some(name)) => Some(ObjectRef {
                kind: kind.to_owned(),
                name: name.to_owned(),
                namespace: attr(semconv::K8S_NAMESPACE_NAME).map(str::to_owned),
            }),
            _ => None,
        };
        return Some(e);
    }
    if record.attributes.get_str("event.domain") == Some("k8s")
        || record.event_name == "k8s.events"
        || record.event_name == "events"
    {
        return from_k8s_watch_body(record);
    }
    if attr(keys::DEPLOYMENT_STATUS).is_some() || record.event_name.starts_with("deployment") {
        let mut e = ChangeEvent::new(ChangeKind::Deployment, record.time_unix_nano, "otlp");
        e.service = resource_service(resource).or_else(|| {
            record
                .attributes
                .get_str(semconv::SERVICE_NAME)
                .map(str::to_owned)
        });
        e.environment = attr(semconv::DEPLOYMENT_ENVIRONMENT_NAME).map(str::to_owned);
        e.version_to = attr(semconv::SERVICE_VERSION).map(str::to_owned);
        e.commit = attr(keys::VCS_REF_HEAD_REVISION).map(str::to_owned);
        e.external_id = attr(keys::DEPLOYMENT_ID).map(str::to_owned);
        let name = attr(keys::DEPLOYMENT_NAME)
            .or(attr(keys::CICD_PIPELINE_NAME))
            .unwrap_or("deployment");
        let status = attr(keys::DEPLOYMENT_STATUS).unwrap_or("reported");
        e.summary = if record.body.is_empty() {
            format!("{name} {status}")
        } else {
            record.body.clone()
        };
        return Some(e);
    }
    None
}

/// The service a resource names, unless it is unnamed.
fn resource_service(resource: &Resource) -> Option<String> {
    (resource.service_name() != semconv::UNKNOWN_SERVICE).then(|| resource.service_key())
}

/// A Kubernetes `Event` object as the `k8sobjects` receiver sends it in watch mode: the body is
/// the watch event (`{"type": …, "object": {…}}`) as JSON.
fn from_k8s_watch_body(record: &LogRecord) -> Option<ChangeEvent> {
    let body: serde_json::Value = serde_json::from_str(&record.body).ok()?;
    let object = body.get("object").unwrap_or(&body);
    if object.get("kind").and_then(|k| k.as_str()) != Some("Event") {
        return None;
    }
    let text =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
    let mut e = ChangeEvent::new(
        ChangeKind::KubernetesEvent,
        record.time_unix_nano,
        "k8sobjects",
    );
    e.reason = text(object, "reason");
    e.summary = text(object, "message").unwrap_or_default();
    e.external_id = object.get("metadata").and_then(|m| text(m, "uid"));
    let involved = object
        .get("involvedObject")
        .or_else(|| object.get("regarding"))?;
    e.object = Some(ObjectRef {
        kind: text(involved, "kind")?,
        name: text(involved, "name")?,
        namespace: text(involved, "namespace"),
    });
    Some(e)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::telemetry::{AttributeValue, Attributes};

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        Attributes(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), AttributeValue::String(v.to_string())))
                .collect(),
        )
    }

    fn record(event_name: &str, body: &str, pairs: &[(&str, &str)]) -> LogRecord {
        LogRecord {
            time_unix_nano: 42,
            severity_number: 13,
            severity_text: "Warning".into(),
            body: body.into(),
            event_name: event_name.into(),
            attributes: attrs(pairs),
            trace_id: None,
            span_id: None,
        }
    }

    #[test]
    fn a_k8s_events_record_is_a_kubernetes_event_on_its_object() {
        let resource = Arc::new(Resource {
            attributes: attrs(&[
                ("k8s.object.kind", "Pod"),
                ("k8s.object.name", "checkout-7d9f8b6c5-x2x9z"),
            ]),
        });
        let r = record(
            "",
            "Back-off restarting failed container",
            &[
                ("k8s.event.reason", "BackOff"),
                ("k8s.namespace.name", "shop"),
                ("k8s.event.uid", "u-1"),
            ],
        );
        let e = from_log_record(&resource, &r).unwrap();
        assert_eq!(e.kind, ChangeKind::KubernetesEvent);
        assert_eq!(e.reason.as_deref(), Some("BackOff"));
        assert_eq!(e.external_id.as_deref(), Some("u-1"));
        let object = e.object.unwrap();
        assert_eq!(
            (object.kind.as_str(), object.name.as_str()),
            ("Pod", "checkout-7d9f8b6c5-x2x9z")
        );
        assert_eq!(object.namespace.as_deref(), Some("shop"));
    }

    #[test]
    fn a_k8sobjects_watch_body_is_read_as_json() {
        let body = r#"{"type":"ADDED","object":{"kind":"Event","reason":"OOMKilling","message":"Memory cgroup out of memory","metadata":{"uid":"e-9"},"involvedObject":{"kind":"Pod","name":"cart-0","namespace":"shop"}}}"#;
        let r = record("", body, &[("event.domain", "k8s")]);
        let e = from_log_record(&Resource::default(), &r).unwrap();
        assert_eq!(e.reason.as_deref(), Some("OOMKilling"));
        assert_eq!(e.object.unwrap().name, "cart-0");
        // Not an Event object: nothing.
        let r = record(
            "",
            r#"{"type":"ADDED","object":{"kind":"Pod"}}"#,
            &[("event.domain", "k8s")],
        );
        assert!(from_log_record(&Resource::default(), &r).is_none());
    }

    #[test]
    fn flag_evaluations_and_deployments_and_plain_logs() {
        let r = record(
            "feature_flag.evaluation",
            "",
            &[
                ("feature_flag.key", "paymentFailure"),
                ("feature_flag.variant", "on"),
            ],
        );
        assert_eq!(flag_evaluation(&r), Some(("paymentFailure", "on")));
        assert!(
            from_log_record(&Resource::default(), &r).is_none(),
            "an evaluation is not a change"
        );
        let resource = Resource {
            attributes: attrs(&[("service.name", "payment"), ("service.version", "1.4.2")]),
        };
        let r = record(
            "",
            "",
            &[
                ("deployment.status", "succeeded"),
                ("deployment.name", "payment-prod"),
                ("vcs.ref.head.revision", "abc123"),
            ],
        );
        let e = from_log_record(&resource, &r).unwrap();
        assert_eq!(e.kind, ChangeKind::Deployment);
        assert_eq!(e.service.as_deref(), Some("payment"));
        assert_eq!(e.version_to.as_deref(), Some("1.4.2"));
        assert_eq!(e.commit.as_deref(), Some("abc123"));
        assert_eq!(e.summary, "payment-prod succeeded");
        assert!(from_log_record(&resource, &record("", "GET /cart 200", &[])).is_none());
    }
}

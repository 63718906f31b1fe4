//! Posting a message to a Slack `response_url` (docs.slack.dev/interactivity/
//! handling-user-interaction#message_responses): HTTPS with rustls and the system's root
//! certificates. Only `https://hooks.slack.com/…` (or another `*.slack.com` host) is posted
//! to, unless the host is listed in `slack.response_url_hosts` (a test's mock, a proxy): a
//! signed request cannot make loupe post elsewhere.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, Request, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Longest wait for Slack to take a message.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// Posts JSON messages to `response_url`s.
pub struct ResponsePoster {
    client: Option<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
    extra_hosts: Vec<String>,
}

impl ResponsePoster {
    /// A poster that also posts to `extra_hosts` (host names or `host:port`, any scheme).
    /// Without root certificates on the system it can still post to plain-HTTP extra hosts,
    /// and says why it cannot reach Slack when asked to.
    pub fn new(extra_hosts: Vec<String>) -> Self {
        let connector = match hyper_rustls::HttpsConnectorBuilder::new().with_native_roots() {
            Ok(b) => Some(b.https_or_http().enable_http1().build()),
            Err(error) => {
                tracing::warn!(%error, "no root certificates: replies to Slack's response_url cannot be sent");
                None
            }
        };
        Self {
            client: connector.map(|c| Client::builder(TokioExecutor::new()).build(c)),
            extra_hosts,
        }
    }

    /// `url` as a URI if loupe may post to it.
    ///
    /// # Errors
    /// When it is not a URL, or names a host that is not Slack's or an allowed one.
    pub fn allowed(&self, url: &str) -> Result<Uri, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("response_url {url:?} is not a URL"))?;
        let host = uri.host().unwrap_or("").to_ascii_lowercase();
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_ascii_lowercase())
            .unwrap_or_default();
        let slack = uri.scheme_str() == Some("https")
            && (host == "slack.com" || host.ends_with(".slack.com"));
        let listed = self
            .extra_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&authority));
        if slack || listed {
            Ok(uri)
        } else {
            Err(format!(
                "response_url host {host:?} is not Slack's (https://*.slack.com) nor in slack.response_url_hosts"
            ))
        }
    }

    /// Posts `message` to `url`.
    ///
    /// # Errors
    /// A refused URL, no TLS roots, a network error, a timeout, or a status other than 2xx
    /// (with the start of Slack's answer).
    pub async fn post(&self, url: &str, message: &Value) -> Result<(), String> {
        let uri = self.allowed(url)?;
        let client = self
            .client
            .as_ref()
            .ok_or("no root certificates on this system to verify Slack's")?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(message.to_string())))
            .map_err(|e| e.to_string())?;
        let response = tokio::time::timeout(POST_TIMEOUT, client.request(request))
            .await
            .map_err(|_| format!("no answer within {POST_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(200)
                    .collect::<String>()
            })
            .unwrap_or_default();
        Err(format!("{status}: {body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_slack_and_listed_hosts_are_posted_to() {
        let p = ResponsePoster {
            client: None,
            extra_hosts: vec!["127.0.0.1:9000".into()],
        };
        assert!(p.allowed("https://hooks.slack.com/commands/T1/2/x").is_ok());
        assert!(p.allowed("http://hooks.slack.com/commands/T1/2/x").is_err());
        assert!(p.allowed("https://hooks.slack.com.evil.example/x").is_err());
        assert!(p.allowed("https://example.com/x").is_err());
        assert!(p.allowed("http://127.0.0.1:9000/hook").is_ok());
        assert!(p.allowed("http://127.0.0.1:9001/hook").is_err());
        assert!(p.allowed("not a url").is_err());
    }
}

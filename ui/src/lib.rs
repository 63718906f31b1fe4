//! The incident-investigation web UI: a single-page app (Preact + htm, uPlot, dagre, all
//! vendored as published ES modules, see `ui/VENDOR.md`) whose files under `ui/assets/` are
//! embedded in the binary and served here.
//!
//! Routes:
//! - `GET /` and every other GET outside `/api/` and `/assets/` (`/incidents/3`,
//!   `/map?at=…`): `index.html`, so that deep links load the app, which routes on the path;
//! - `GET /assets/{path}`: the file `ui/assets/{path}` with the content type of its extension;
//!   404 when there is none;
//! - anything else (an unknown `/api/…` route, a missing file, another method): 404 in the
//!   API's error shape `{"error":{"code":"not_found","message":…}}`.
//!
//! Caching: files under `assets/vendor/` carry their version in their names and are cached for
//! a year (`immutable`); everything else is revalidated on each load (`no-cache` with a strong
//! `ETag`, the SHA-256 of its bytes, answered with 304 when it matches). The page is served with
//! a content security policy that allows only its own scripts.
//!
//! Release builds embed the files at compile time; debug builds read them from `ui/assets` at
//! request time (rust-embed's default), so the page can be edited without rebuilding.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

/// The files under `ui/assets/`.
#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The content security policy of every response: scripts, styles, fonts and fetches from
/// this origin only; inline styles are allowed (uPlot and the map set `style` attributes),
/// inline scripts are not.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; \
    base-uri 'none'; frame-ancestors 'none'";

/// Cache policy of versioned vendor files.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Serves the app: `/`, `/assets/{path}`, and `index.html` for the app's deep links (as the
/// router's fallback, so merge it into a router that has no fallback of its own).
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
        .fallback(fallback)
}

async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers)
}

async fn asset(uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches("/assets/");
    file(path, &headers)
}

/// `index.html` for a GET of an app path (anything but `/api/…` and `/assets/…`: an entity id
/// may hold dots, `/entities/node%3Aip-10-0-1-5.ec2.internal`); a 404 otherwise.
async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    let app_path = !path.starts_with("/api/") && path != "/api" && !path.starts_with("/assets/");
    if (method == Method::GET || method == Method::HEAD) && app_path {
        return file("index.html", &headers);
    }
    not_found(&format!("no route for {method} {path}"))
}

/// The embedded file at `path` (relative to `ui/assets`), or 404.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(found) = Assets::get(path) else {
        return not_found(&format!("no asset {path}"));
    };
    let etag = format!("\"{}\"", hex(&found.metadata.sha256_hash()));
    let cache = if path.starts_with("vendor/") {
        IMMUTABLE
    } else {
        "no-cache"
    };
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        found.data.into_owned().into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&content_type(path, found.metadata.mimetype())) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

/// The content type of `path`: the HTML standard's `text/javascript` for scripts (ES modules
/// included, which `mime_guess` calls `application/javascript`), UTF-8 for text, else what
/// `guessed` says from the extension.
fn content_type(path: &str, guessed: &str) -> String {
    match path.rsplit('.').next() {
        Some("js" | "mjs") => "text/javascript; charset=utf-8".into(),
        Some("html" | "css" | "svg" | "md" | "txt") => format!("{guessed}; charset=utf-8"),
        _ => guessed.to_owned(),
    }
}

fn not_found(message: &str) -> Response {
    let mut escaped = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '"' => escaped.push_str("\\\""),
            '\\' => escaped.push_str("\\\\"),
            c if (c as u32) < 0x20 => escaped.push_str(&format!("\\u{:04x}", c as u32)),
            c => escaped.push(c),
        }
    }
    let body = format!("{{\"error\":{{\"code\":\"not_found\",\"message\":\"{escaped}\"}}}}");
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut request = Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = router()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    /// Every file under `ui/assets`, as a path relative to it.
    fn files_on_disk() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut out = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn every_asset_is_served_with_the_content_type_of_its_extension() {
        let files = files_on_disk();
        assert!(files.iter().any(|f| f == "index.html"));
        for f in &files {
            let (status, headers, body) = get(&format!("/assets/{f}"), &[]).await;
            assert_eq!(status, StatusCode::OK, "{f}");
            assert!(!body.is_empty(), "{f}");
            let ty = headers[header::CONTENT_TYPE].to_str().unwrap();
            let want = match f.rsplit('.').next().unwrap() {
                "html" => "text/html",
                "js" | "mjs" => "text/javascript",
                "css" => "text/css",
                "svg" => "image/svg+xml",
                "png" => "image/png",
                "md" => "text/markdown",
                "txt" | "LICENSE" => "text/plain",
                _ => continue,
            };
            assert!(ty.starts_with(want), "{f}: {ty}, want {want}");
        }
    }

    #[tokio::test]
    async fn routes_answer_as_a_browser_and_an_api_client_expect() {
        // (path, status, content type prefix, body fragment)
        let cases = [
            ("/", 200, "text/html", "<html"),
            ("/incidents", 200, "text/html", "<html"),
            ("/incidents/3", 200, "text/html", "<html"),
            ("/entities/service%3Acart?at=1", 200, "text/html", "<html"),
            (
                "/map?at=2026-12-07T10:00:00Z&window=5m",
                200,
                "text/html",
                "<html",
            ),
            (
                "/assets/no-such-file.js",
                404,
                "application/json",
                "no asset",
            ),
            (
                "/assets/app/no-such.css",
                404,
                "application/json",
                "no asset",
            ),
            (
                "/entities/node%3Aip-10-0-1-5.ec2.internal",
                200,
                "text/html",
                "<html",
            ),
            (
                "/api/v1/no-such-route",
                404,
                "application/json",
                "not_found",
            ),
            ("/api", 404, "application/json", "not_found"),
        ];
        for (path, status, ty, fragment) in cases {
            let (got, headers, body) = get(path, &[]).await;
            assert_eq!(got.as_u16(), status, "{path}");
            let got_ty = headers[header::CONTENT_TYPE].to_str().unwrap();
            assert!(got_ty.starts_with(ty), "{path}: {got_ty}");
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains(fragment), "{path}: {text}");
        }
    }

    #[tokio::test]
    async fn the_page_is_revalidated_and_vendor_files_are_cached_for_good() {
        let (_, headers, _) = get("/", &[]).await;
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert!(headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'"));
        let etag = headers[header::ETAG].to_str().unwrap().to_owned();
        let (status, _, body) = get("/incidents/7", &[("if-none-match", &etag)]).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let (status, _, _) = get("/", &[("if-none-match", "\"stale\"")]).await;
        assert_eq!(status, StatusCode::OK);
        let vendor: Vec<String> = files_on_disk()
            .into_iter()
            .filter(|f| f.starts_with("vendor/"))
            .collect();
        for f in &vendor {
            let (_, headers, _) = get(&format!("/assets/{f}"), &[]).await;
            assert_eq!(headers[header::CACHE_CONTROL], IMMUTABLE, "{f}");
        }
    }

    #[tokio::test]
    async fn a_path_outside_the_assets_is_not_served() {
        for path in [
            "/assets/../Cargo.toml",
            "/assets/%2e%2e/Cargo.toml",
            "/assets/..%2fsrc%2flib.rs",
        ] {
            let (status, _, body) = get(path, &[]).await;
            let text = String::from_utf8_lossy(&body);
            assert!(
                !text.contains("[package]") && !text.contains("RustEmbed"),
                "{path}"
            );
            assert!(
                status == StatusCode::NOT_FOUND || text.contains("<html"),
                "{path}: {status}"
            );
        }
    }

    #[tokio::test]
    async fn other_methods_on_app_paths_get_a_404() {
        let response = router()
            .oneshot(Request::post("/incidents").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}

//! TLS on the listeners: an OpenTelemetry exporter that trusts the test CA sends over TLS; a
//! certificate replaced on disk is served to the next connection without a restart; with a
//! client CA, a receiver refuses a client without a certificate and takes one with, while the
//! API still serves a browser without one. The certificates are in `testdata/tls`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loupe::tls::TlsFiles;
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::trace::SpanExporter as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::support::{sdk_span, start_with, temp_dir};

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testdata/tls")
        .join(name)
}

fn pem(name: &str) -> String {
    std::fs::read_to_string(testdata(name)).unwrap()
}

fn der(name: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(testdata(name))
        .unwrap()
        .to_vec()
}

/// A TLS client that trusts the test CA, with the test client certificate if `with_cert`.
fn client(with_cert: bool) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(testdata("ca.pem")).unwrap())
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(testdata("client.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(testdata("client.key")).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects to `addr` over TLS as `localhost` and sends `GET path`: the certificate the server
/// showed and the first line of its answer (an error when the server refuses).
async fn get(addr: SocketAddr, path: &str, with_cert: bool) -> Result<(Vec<u8>, String), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut tls = client(with_cert)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer)
        .await
        .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer);
    let first = text.lines().next().unwrap_or("").to_owned();
    if first.is_empty() {
        return Err("no answer".into());
    }
    Ok((cert, first))
}

fn exporter(addr: SocketAddr, identity: bool) -> SpanExporter {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem("ca.pem")))
        .domain_name("localhost");
    if identity {
        tls = tls.identity(Identity::from_pem(pem("client.pem"), pem("client.key")));
    }
    SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("https://localhost:{}", addr.port()))
        .with_tls_config(tls)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporters_send_over_tls_and_a_renewed_certificate_is_served_without_a_restart() {
    let dir = temp_dir("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::copy(testdata("server-a.pem"), &cert).unwrap();
    std::fs::copy(testdata("server-a.key"), &key).unwrap();
    let files = TlsFiles {
        cert_file: cert.clone(),
        key_file: key.clone(),
        client_ca_file: None,
    };
    let server = start_with(None, |c| c.tls = Some(files)).await;

    let (shown, status) = get(server.http_addr, "/healthz", false).await.unwrap();
    assert_eq!(shown, der("server-a.pem"));
    assert_eq!(status, "HTTP/1.1 200 OK");
    // An OTLP/gRPC exporter that trusts the CA (ALPN h2 over TLS).
    let result = exporter(server.otlp_grpc_addr, false)
        .export(vec![sdk_span(6)])
        .await;
    assert!(result.is_ok(), "{result:?}");
    // Plain TCP to a TLS listener is not served.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        client
            .get(
                format!("http://{}/healthz", server.http_addr)
                    .parse()
                    .unwrap(),
            )
            .await
    })
    .await;
    assert!(
        !matches!(refused, Ok(Ok(ref r)) if r.status() == 200),
        "plain HTTP was served"
    );

    // The renewed certificate replaces the old one on disk: the next connection gets it.
    std::fs::copy(testdata("server-b.key"), &key).unwrap();
    std::fs::copy(testdata("server-b.pem"), &cert).unwrap();
    let mut shown = Vec::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok((c, _)) = get(server.http_addr, "/healthz", false).await {
            shown = c;
            if shown == der("server-b.pem") {
                break;
            }
        }
    }
    assert_eq!(
        shown,
        der("server-b.pem"),
        "the renewed certificate is served"
    );
    let result = exporter(server.otlp_grpc_addr, false)
        .export(vec![sdk_span(6)])
        .await;
    assert!(result.is_ok(), "{result:?}");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_the_receivers_need_a_client_certificate_and_the_api_does_not() {
    let files = TlsFiles {
        cert_file: testdata("server-a.pem"),
        key_file: testdata("server-a.key"),
        client_ca_file: Some(testdata("ca.pem")),
    };
    let server = start_with(None, |c| c.tls = Some(files)).await;
    // OTLP/HTTP: refused without a client certificate, served with one.
    let without = get(server.otlp_http_addr, "/v1/traces", false).await;
    assert!(
        without.is_err(),
        "served without a client certificate: {without:?}"
    );
    let (_, status) = get(server.otlp_http_addr, "/v1/traces", true)
        .await
        .unwrap();
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    // OTLP/gRPC through the exporter: refused without its identity, taken with it.
    assert!(exporter(server.otlp_grpc_addr, false)
        .export(vec![sdk_span(6)])
        .await
        .is_err());
    let result = exporter(server.otlp_grpc_addr, true)
        .export(vec![sdk_span(6)])
        .await;
    assert!(result.is_ok(), "{result:?}");
    // The API (the browser's listener) asks for no client certificate.
    let (_, status) = get(server.http_addr, "/healthz", false).await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    server.shutdown().await;
}

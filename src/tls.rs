//! TLS on the listeners (rustls with the `ring` provider): a certificate and key from PEM files,
//! optionally a CA that client certificates must chain to (mutual TLS), read again when a
//! file's modification time changes (looked at before each handshake, at most once a second)
//! and on SIGHUP, so a renewed certificate needs no restart. ALPN offers `h2` and `http/1.1`
//! (gRPC needs `h2`). Handshakes run in their own tasks with a 10 s limit, so a client that
//! stalls its handshake holds no one else up.
//!
//! Key names follow the OpenTelemetry Collector's `configtls`: `cert_file`, `key_file`,
//! `client_ca_file`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the files' modification times are looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// The files of a listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, PEM, leaf first.
    pub cert_file: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// CA certificates (PEM) that client certificates must chain to; none: no client
    /// certificates asked for.
    pub client_ca_file: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut out = vec![self.cert_file.as_path(), self.key_file.as_path()];
        out.extend(self.client_ca_file.as_deref());
        out
    }

    fn modified(&self) -> Vec<Option<SystemTime>> {
        self.paths()
            .iter()
            .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
            .collect()
    }

    /// A rustls server configuration from the files.
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate or key, or a key that does not fit.
    pub fn server_config(&self) -> anyhow::Result<ServerConfig> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert_file)
            .and_then(Iterator::collect)
            .with_context(|| format!("reading certificates from {}", self.cert_file.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no PEM certificate",
            self.cert_file.display()
        );
        let key = PrivateKeyDer::from_pem_file(&self.key_file)
            .with_context(|| format!("reading a private key from {}", self.key_file.display()))?;
        // ring, not aws-lc-rs: no C build of aws-lc (its post-quantum key exchange is the
        // price, hence the deprecation).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?;
        let builder = match &self.client_ca_file {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(ca)
                    .with_context(|| format!("reading {}", ca.display()))?
                {
                    roots
                        .add(cert.with_context(|| format!("reading {}", ca.display()))?)
                        .with_context(|| format!("a CA certificate in {}", ca.display()))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .with_context(|| format!("client CAs from {}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key).with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                self.key_file.display(),
                self.cert_file.display()
            )
        })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A listener's TLS configuration, read again when its files change.
pub struct Tls {
    files: TlsFiles,
    config: RwLock<(Arc<ServerConfig>, Vec<Option<SystemTime>>)>,
    checked: Mutex<Instant>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

impl Tls {
    /// Reads the files.
    ///
    /// # Errors
    /// As [`TlsFiles::server_config`].
    pub fn load(files: TlsFiles) -> anyhow::Result<Self> {
        let stamps = files.modified();
        let config = Arc::new(files.server_config()?);
        Ok(Self {
            files,
            config: RwLock::new((config, stamps)),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// Reads the files again; on an error the configuration last read stays.
    ///
    /// # Errors
    /// As [`TlsFiles::server_config`].
    pub fn reload(&self) -> anyhow::Result<()> {
        let stamps = self.files.modified();
        let config = Arc::new(self.files.server_config()?);
        if let Ok(mut c) = self.config.write() {
            *c = (config, stamps);
        }
        Ok(())
    }

    /// The configuration for the next handshake, read again first if a file changed.
    pub fn current(&self) -> Option<Arc<ServerConfig>> {
        let due = self.checked.lock().ok().is_some_and(|mut at| {
            let due = at.elapsed() >= RECHECK;
            if due {
                *at = Instant::now();
            }
            due
        });
        if due {
            let known = self.config.read().ok().map(|c| c.1.clone());
            if known.as_ref() != Some(&self.files.modified()) {
                match self.reload() {
                    Ok(()) => {
                        tracing::info!(cert = %self.files.cert_file.display(), "TLS files changed: read again")
                    }
                    Err(error) => tracing::warn!(
                        error = format!("{error:#}"),
                        "TLS files changed but do not load: keeping the certificate last read"
                    ),
                }
            }
        }
        self.config.read().ok().map(|c| c.0.clone())
    }
}

/// Connections that finished their TLS handshake, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and shakes hands with `tls` in a task per connection.
    pub fn new(tcp: TcpListener, tls: Arc<Tls>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(error) => {
                        // Out of file descriptors, say: wait rather than spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Some(config) = tls.current() else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let acceptor = TlsAcceptor::from(config);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop has ended (never while the listener lives): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

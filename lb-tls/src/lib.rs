//! # lb-tls: TLS termination for lbd
//!
//! Builds one `rustls::ServerConfig` per `https` listener from the config, on the main thread,
//! at start and on every reload; all workers share it (so session tickets are shared too), and a
//! bad certificate rejects the reload while the old config keeps serving.
//!
//! ```text
//! [listeners.tls] ──build──▶ certs::load (PEM, key/cert match, SAN names)
//!                            sni::SniResolver (exact → *.wildcard → default)
//!                            policy (TLS 1.2/1.3 bounds), ALPN h2 + http/1.1
//!                 ──▶ Arc<ServerConfig> ──▶ every worker's accept loop (lb-tcp's TlsStream)
//! ```
//!
//! Only the `ring` provider is linked (no aws-lc-rs); configs are built with
//! `builder_with_provider`, so no process-wide default provider is needed.
#![forbid(unsafe_code)]

mod certs;
pub mod client_hello;
mod sni;
mod tickets;

use std::sync::Arc;

use lb_core::config::{ClientAuth, ListenerConfig, TlsVersion};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;

pub use certs::{load, LoadedCert};
pub use rustls::server::ProducesTickets;
pub use rustls::ServerConfig;
pub use sni::SniResolver;
pub use tickets::FileTicketer;

/// The crypto provider lbd uses everywhere.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A session-ticket producer: with a key file, keys shared by several nodes (see
/// [`FileTicketer`]); otherwise random keys that rotate every 6 hours (rustls' default). The daemon
/// makes one at start and gives it to every listener's config, so tickets stay valid across
/// workers and reloads.
pub fn ticketer(key_file: Option<&std::path::Path>) -> Result<Arc<dyn ProducesTickets>, String> {
    match key_file {
        Some(path) => FileTicketer::load(path),
        None => rustls::crypto::ring::Ticketer::new().map_err(|e| format!("session tickets: {e}")),
    }
}

/// The `X-Forwarded-Client-Cert` value for a verified client certificate chain:
/// `Hash=<SHA-256 of the leaf, hex>` then one `DNS=<name>` per subjectAltName DNS name.
pub fn client_identity(chain: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = chain.first()?;
    let hash = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    let mut out = String::from("Hash=");
    for b in hash.as_ref() {
        out.push_str(&format!("{b:02x}"));
    }
    if let Ok(cert) = webpki::EndEntityCert::try_from(leaf) {
        for name in cert.valid_dns_names() {
            out.push_str(";DNS=");
            out.push_str(name);
        }
    }
    Some(out)
}

fn client_verifier(
    auth: ClientAuth,
    ca: Option<&std::path::Path>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>, String> {
    let Some(ca) = ca.filter(|_| auth != ClientAuth::Off) else { return Ok(None) };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("client_ca {}: {e}", ca.display()))? {
        let cert = cert.map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("client_ca {}: {e}", ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("client_ca {}: no CERTIFICATE block", ca.display()));
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let builder = if auth == ClientAuth::Optional { builder.allow_unauthenticated() } else { builder };
    builder.build().map(Some).map_err(|e| format!("client_ca {}: {e}", ca.display()))
}

/// The client config lbd uses towards a cluster's endpoints (ALPN `h2` or `http/1.1`).
pub fn client_config(tls: &lb_core::config::UpstreamTls, h2: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&tls.ca).map_err(|e| format!("ca {}: {e}", tls.ca.display()))? {
        roots
            .add(cert.map_err(|e| format!("ca {}: {e}", tls.ca.display()))?)
            .map_err(|e| format!("ca {}: {e}", tls.ca.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("ca {}: no CERTIFICATE block", tls.ca.display()));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut cfg = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let loaded = load(cert, key, &provider)?;
            builder
                .with_client_auth_cert(
                    loaded.key.cert.clone(),
                    rustls::pki_types::PrivateKeyDer::from_pem_file(key)
                        .map_err(|e| format!("key {}: {e}", key.display()))?,
                )
                .map_err(|e| format!("client certificate {}: {e}", cert.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = if h2 { vec![b"h2".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(cfg))
}

/// A served certificate, for the expiry metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Listener name.
    pub listener: String,
    /// Certificate file.
    pub path: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: Option<i64>,
}

/// A listener's TLS config and what it serves.
pub type ListenerTls = (Arc<ServerConfig>, Vec<CertInfo>);

/// Builds the server config of an `https` listener (`None` for listeners without TLS), and
/// describes its certificates.
pub fn server_config(
    listener: &ListenerConfig,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<Option<ListenerTls>, String> {
    build(listener, tickets, false)
}

/// The TLS config of a listener's HTTP/3 side (TLS 1.3, ALPN `h3`, early data when `zero_rtt`):
/// `None` unless it serves HTTP/3.
pub fn quic_server_config(
    listener: &ListenerConfig,
    tickets: &Arc<dyn ProducesTickets>,
) -> Result<Option<Arc<ServerConfig>>, String> {
    if !listener.tls.as_ref().is_some_and(|t| t.http3) {
        return Ok(None);
    }
    Ok(build(listener, tickets, true)?.map(|(c, _)| c))
}

fn build(
    listener: &ListenerConfig,
    tickets: &Arc<dyn ProducesTickets>,
    quic: bool,
) -> Result<Option<ListenerTls>, String> {
    let Some(tls) = &listener.tls else { return Ok(None) };
    let mut ring = rustls::crypto::ring::default_provider();
    // The server picks, AES-128-GCM first: its SHA-256 runs on the CPU's SHA extensions, where
    // ring's SHA-384 (AES-256-GCM's hash) has no hardware path and was the largest single cost
    // of a full handshake here (perf: 8% of lbd's CPU). The stable sort keeps the rest in order.
    ring.cipher_suites.sort_by_key(|s| !s.suite().as_str().is_some_and(|n| n.contains("AES_128_GCM")));
    if let Some(names) = &tls.cipher_suites {
        ring.cipher_suites.retain(|s| s.suite().as_str().is_some_and(|n| names.iter().any(|w| w == n)));
    }
    let provider = Arc::new(ring);
    let mut loaded = Vec::new();
    for c in &tls.certificates {
        loaded.push(load(&c.cert, &c.key, &provider).map_err(|e| format!("listener `{}`: {e}", listener.name))?);
    }
    let infos = loaded
        .iter()
        .zip(&tls.certificates)
        .map(|(l, c)| CertInfo {
            listener: listener.name.clone(),
            path: c.cert.display().to_string(),
            not_after: l.not_after,
        })
        .collect();
    let resolver = SniResolver::new(loaded).ok_or_else(|| format!("listener `{}`: no certificate", listener.name))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (*v >= tls.min_version && *v <= tls.max_version) || (quic && *v == TlsVersion::Tls13))
            .filter(|(v, _)| !quic || *v == TlsVersion::Tls13)
            .map(|(_, p)| p)
            .collect();
    let verifier = client_verifier(tls.client_auth, tls.client_ca.as_deref(), &provider)
        .map_err(|e| format!("listener `{}`: {e}", listener.name))?;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("listener `{}`: {e}", listener.name))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(resolver));
    cfg.ticketer = tickets.clone();
    // One TLS 1.3 ticket per full handshake (rustls sends 2 by default): the stateless tickets
    // can be used more than once, and each costs an AEAD seal and a record on the handshake path.
    cfg.send_tls13_tickets = 1;
    cfg.ignore_client_order = true;
    cfg.alpn_protocols = if quic {
        if tls.zero_rtt {
            // QUIC needs u32::MAX here. rustls accepts 0-RTT only on stateful resumption (RFC 8446
            // §8.1): single-use session ids in this process's cache instead of stateless tickets,
            // so an early-data flight cannot be replayed against this node.
            cfg.max_early_data_size = u32::MAX;
            cfg.ticketer = Arc::new(NoTickets);
            cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(16384);
        }
        vec![b"h3".to_vec()]
    } else if tls.http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Some((Arc::new(cfg), infos)))
}

/// No stateless tickets (the QUIC side with 0-RTT resumes from the session cache instead).
#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }

    fn lifetime(&self) -> u32 {
        0
    }

    fn encrypt(&self, _plain: &[u8]) -> Option<Vec<u8>> {
        None
    }

    fn decrypt(&self, _cipher: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

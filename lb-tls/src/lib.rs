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
//!                 ──▶ Arc<ServerConfig> ──▶ every worker's accept loop (tokio-rustls)
//! ```
//!
//! Only the `ring` provider is linked (no aws-lc-rs); configs are built with
//! `builder_with_provider`, so no process-wide default provider is needed.
#![forbid(unsafe_code)]

mod certs;
mod sni;

use std::sync::Arc;

use lb_core::config::{ListenerConfig, TlsVersion};

pub use certs::{load, LoadedCert};
pub use rustls::ServerConfig;
pub use sni::SniResolver;

/// The crypto provider lbd uses everywhere.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the server config of an `https` listener; `None` for listeners without TLS.
pub fn server_config(listener: &ListenerConfig) -> Result<Option<Arc<ServerConfig>>, String> {
    let Some(tls) = &listener.tls else { return Ok(None) };
    let provider = provider();
    let mut loaded = Vec::new();
    for c in &tls.certificates {
        loaded.push(load(&c.cert, &c.key, &provider).map_err(|e| format!("listener `{}`: {e}", listener.name))?);
    }
    let resolver = SniResolver::new(loaded).ok_or_else(|| format!("listener `{}`: no certificate", listener.name))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| *v >= tls.min_version && *v <= tls.max_version)
            .map(|(_, p)| p)
            .collect();
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("listener `{}`: {e}", listener.name))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    cfg.alpn_protocols =
        if tls.http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Some(Arc::new(cfg)))
}

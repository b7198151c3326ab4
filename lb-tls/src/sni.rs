//! Certificate choice by SNI: an exact name first, then a wildcard for the parent domain
//! (`*.example.com` covers exactly one label, as TLS wildcards do), else the default (the
//! listener's first certificate). Clients that send no SNI get the default.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::certs::LoadedCert;

/// Resolves a server certificate from the ClientHello's server name.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    /// `certs` in config order; the first is the default. `None` when empty.
    pub fn new(certs: Vec<LoadedCert>) -> Option<Self> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in &certs {
            for n in &c.names {
                // Earlier certificates win for a name listed twice.
                match n.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()).or_insert_with(|| c.key.clone()),
                    None => exact.entry(n.clone()).or_insert_with(|| c.key.clone()),
                };
            }
        }
        Some(Self { exact, wildcard, default })
    }

    /// The certificate for `server_name` (already lowercase).
    pub fn pick(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else { return self.default.clone() };
        if let Some(k) = self.exact.get(name) {
            return k.clone();
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .cloned()
            .unwrap_or_else(|| self.default.clone())
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(str::to_ascii_lowercase);
        Some(self.pick(name.as_deref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(names: &[&str]) -> LoadedCert {
        let ck =
            rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("rcgen");
        let der = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).expect("key");
        let signing = crate::provider().key_provider.load_private_key(der).expect("signing key");
        LoadedCert {
            key: Arc::new(CertifiedKey::new(vec![ck.cert.der().clone()], signing)),
            names: names.iter().map(|s| s.to_string()).collect(),
            not_after: None,
        }
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let (d, a, w) = (cert(&["default.test"]), cert(&["a.test"]), cert(&["*.b.test", "b.test"]));
        let r = SniResolver::new(vec![d.clone(), a.clone(), w.clone()]).expect("resolver");
        let is = |got: Arc<CertifiedKey>, want: &LoadedCert| Arc::ptr_eq(&got, &want.key);
        assert!(is(r.pick(Some("a.test")), &a));
        assert!(is(r.pick(Some("x.b.test")), &w));
        assert!(is(r.pick(Some("b.test")), &w));
        assert!(is(r.pick(Some("y.x.b.test")), &d), "a wildcard covers one label only");
        assert!(is(r.pick(Some("other.test")), &d));
        assert!(is(r.pick(None), &d));
        assert!(SniResolver::new(Vec::new()).is_none());
    }
}

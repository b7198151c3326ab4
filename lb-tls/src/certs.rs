//! Loading a certificate chain and its key from PEM files, with the checks an operator needs:
//! readable, parseable, key matching the certificate, and the DNS names it is valid for.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A certificate ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// Chain and signing key.
    pub key: Arc<CertifiedKey>,
    /// DNS names from the certificate's subjectAltName (lowercase; may start with `*.`).
    pub names: Vec<String>,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: Option<i64>,
}

/// Loads `cert` (PEM chain, leaf first) and `key` (PEM, PKCS#8, PKCS#1 or SEC1; ECDSA, RSA or Ed25519).
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<LoadedCert, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate {}: {e}", cert.display()))?;
    let leaf = chain.first().ok_or_else(|| format!("certificate {}: no CERTIFICATE block", cert.display()))?;
    let names: Vec<String> = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| format!("certificate {}: not a usable X.509 certificate: {e}", cert.display()))?
        .valid_dns_names()
        .map(str::to_ascii_lowercase)
        .collect();
    let not_after =
        x509_parser::parse_x509_certificate(leaf.as_ref()).ok().map(|(_, c)| c.validity().not_after.timestamp());
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("key {}: {e}", key.display()))?;
    let signing = provider.key_provider.load_private_key(der).map_err(|e| format!("key {}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("key {} does not belong to certificate {}: {e}", key.display(), cert.display()))?;
    Ok(LoadedCert { key: Arc::new(certified), names, not_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, sans: &[&str]) -> (std::path::PathBuf, std::path::PathBuf) {
        let ck =
            rcgen::generate_simple_self_signed(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("rcgen");
        let (c, k) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
        std::fs::write(&c, ck.cert.pem()).expect("write");
        std::fs::write(&k, ck.signing_key.serialize_pem()).expect("write");
        (c, k)
    }

    #[test]
    fn loads_names_and_rejects_mismatched_or_missing_files() {
        let dir = std::env::temp_dir().join(format!("lb-tls-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = crate::provider();
        let (a_crt, a_key) = write_pair(&dir, "a", &["a.test", "*.a.test"]);
        let (_, b_key) = write_pair(&dir, "b", &["b.test"]);
        let a = load(&a_crt, &a_key, &p).expect("a loads");
        assert_eq!(a.names, vec!["a.test", "*.a.test"]);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
        assert!(a.not_after.is_some_and(|t| t > now), "{:?}", a.not_after);
        let err = load(&a_crt, &b_key, &p).expect_err("mismatch");
        assert!(err.contains("does not belong to certificate"), "{err}");
        let err = load(&dir.join("missing.crt"), &a_key, &p).expect_err("missing");
        assert!(err.contains("missing.crt"), "{err}");
        std::fs::write(dir.join("junk.crt"), "not pem").expect("write");
        let err = load(&dir.join("junk.crt"), &a_key, &p).expect_err("junk");
        assert!(err.contains("no CERTIFICATE block"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

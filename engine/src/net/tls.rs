//! TLS for `https://` client and peer URLs: rustls with the ring provider.
//!
//! A node reads its certificate chain, private key and trusted CA from PEM files (etcd's
//! `--cert-file`, `--key-file`, `--trusted-ca-file` and their `--peer-*` twins) and builds a
//! server config (client URLs and the accepting side of peer URLs) and, for peers, a client
//! config (the dialing side, which checks the other member's certificate against the trusted
//! CA and presents its own). Every failure is an error that names the file; nothing panics.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The PEM files of one side (client URLs or peer URLs) and whether it demands certificates of
/// the other end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// How the flags of this side begin, for error messages: `""` (`--cert-file`...) for
    /// client URLs, `"peer-"` (`--peer-cert-file`...) for peer URLs.
    pub flag_prefix: &'static str,
    /// This node's certificate chain (`--cert-file`, `--peer-cert-file`).
    pub cert: PathBuf,
    /// Its private key (`--key-file`, `--peer-key-file`): PKCS#8, PKCS#1 or SEC1.
    pub key: PathBuf,
    /// CA certificates that sign the other ends' certificates (`--trusted-ca-file`,
    /// `--peer-trusted-ca-file`).
    pub trusted_ca: Option<PathBuf>,
    /// Refuse, at the handshake, a connection without a certificate signed by `trusted_ca`
    /// (`--client-cert-auth`, `--peer-client-cert-auth`).
    pub client_cert_auth: bool,
}

/// The ring provider, named explicitly so no process-wide default is needed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

impl TlsFiles {
    /// The flag named `name` on this side (`--cert-file`, `--peer-cert-file`, ...).
    fn flag(&self, name: &str) -> String {
        format!("--{}{name}", self.flag_prefix)
    }

    /// The certificate chain and the private key.
    fn certified_key(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
        let certs = load_certs(&self.cert, &self.flag("cert-file"))?;
        let key = load_key(&self.key, &self.flag("key-file"))?;
        Ok((certs, key))
    }

    /// The message of a certificate and key that rustls refuses together.
    fn pair_error(&self, e: rustls::Error) -> String {
        let why = match e {
            rustls::Error::InconsistentKeys(_) => "the key is not the certificate's".to_string(),
            e => e.to_string(),
        };
        format!(
            "{} {} and {} {}: {why}",
            self.flag("cert-file"),
            self.cert.display(),
            self.flag("key-file"),
            self.key.display()
        )
    }
}

/// Every certificate in the PEM file at `path` (at least one).
pub fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_file(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {}: not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {}: no CERTIFICATE block found",
            path.display()
        ));
    }
    Ok(certs)
}

/// The first private key in the PEM file at `path`.
pub fn load_key(path: &Path, what: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read_file(path, what)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!(
            "{what} {}: no PRIVATE KEY block found (PKCS#8, RSA or EC, unencrypted)",
            path.display()
        ),
        e => format!("{what} {}: not valid PEM: {e}", path.display()),
    })
}

/// A root store holding every certificate of the CA file at `path`.
fn load_roots(path: &Path, what: &str) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, what)? {
        roots.add(cert).map_err(|e| {
            format!(
                "{what} {}: not a usable CA certificate: {e}",
                path.display()
            )
        })?;
    }
    Ok(Arc::new(roots))
}

/// The server side: this node's certificate, and the check of the other end's certificate
/// that `files` asks for (required with `client_cert_auth`, checked when offered if only a CA
/// is given, not asked for otherwise).
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let (certs, key) = files.certified_key()?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match (&files.trusted_ca, files.client_cert_auth) {
        (None, true) => {
            return Err(format!(
                "{} needs {} (the CA that signs the certificates it asks for)",
                files.flag("client-cert-auth"),
                files.flag("trusted-ca-file")
            ));
        }
        (None, false) => builder.with_no_client_auth(),
        (Some(ca), required) => {
            let roots = load_roots(ca, &files.flag("trusted-ca-file"))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let verifier = if required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("{} {}: {e}", files.flag("trusted-ca-file"), ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| files.pair_error(e))?;
    Ok(Arc::new(config))
}

/// The dialing side of peer connections: trusts only `files.trusted_ca` and presents this
/// node's certificate.
pub fn client_config(files: &TlsFiles) -> Result<Arc<ClientConfig>, String> {
    let ca = files.trusted_ca.as_ref().ok_or_else(|| {
        format!(
            "dialing over TLS needs {} to check the other end's certificate",
            files.flag("trusted-ca-file")
        )
    })?;
    let roots = load_roots(ca, &files.flag("trusted-ca-file"))?;
    let (certs, key) = files.certified_key()?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| files.pair_error(e))?;
    Ok(Arc::new(config))
}

/// Both sides of TLS between members.
#[derive(Clone)]
pub struct PeerTls {
    /// Accepts other members' connections.
    pub acceptor: TlsAcceptor,
    /// Dials other members.
    pub connector: TlsConnector,
}

impl fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PeerTls")
    }
}

impl PeerTls {
    /// Both configs from the `--peer-*` files.
    pub fn new(files: &TlsFiles) -> Result<PeerTls, String> {
        Ok(PeerTls {
            acceptor: TlsAcceptor::from(server_config(files)?),
            connector: TlsConnector::from(client_config(files)?),
        })
    }
}

/// The name a dialer checks the server's certificate against: the host of a `host:port`
/// authority (an IP address or a DNS name; IPv6 in brackets).
pub fn server_name(authority: &str) -> Result<ServerName<'static>, String> {
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{authority:?}: not a host name for TLS: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_authorities() {
        assert_eq!(
            server_name("127.0.0.1:2380").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("localhost:2380").unwrap(),
            ServerName::try_from("localhost").unwrap()
        );
        assert_eq!(
            server_name("[::1]:2380").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn missing_and_bad_files_are_errors_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("floe-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let files = TlsFiles {
            flag_prefix: "peer-",
            cert: dir.join("missing.pem"),
            key: junk.clone(),
            trusted_ca: None,
            client_cert_auth: false,
        };
        let e = server_config(&files).unwrap_err();
        assert!(
            e.contains("--peer-cert-file") && e.contains("missing.pem"),
            "{e}"
        );
        let files = TlsFiles {
            cert: junk.clone(),
            ..files
        };
        let e = server_config(&files).unwrap_err();
        assert!(
            e.contains("junk.pem") && e.contains("no CERTIFICATE"),
            "{e}"
        );
        let e = load_key(&junk, "--key-file").unwrap_err();
        assert!(
            e.contains("junk.pem") && e.contains("no PRIVATE KEY"),
            "{e}"
        );
        let e = client_config(&files).unwrap_err();
        assert!(e.contains("--peer-trusted-ca-file"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

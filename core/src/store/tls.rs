//! Postgres over TLS, as the database URL's `sslmode` says, with libpq's meanings:
//!
//! | sslmode | TLS | the server's certificate |
//! |---|---|---|
//! | (none), `disable` | never | - |
//! | `prefer` | when the server offers it | not checked |
//! | `require` | always | not checked; chain checked when a CA file is given (as libpq) |
//! | `verify-ca` | always | chains to the CA file (or the system's roots) |
//! | `verify-full` | always | chains to it and names the host of the URL |
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`: the verifying modes
//! are taken out of the URL here and become `require` with a verifying rustls client.

use super::StoreError;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// A database URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = StoreError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(StoreError::Config(format!(
                    "invalid sslmode `{other}` in the database URL: use disable, prefer, require, verify-ca or verify-full"
                )));
            }
        })
    }
}

/// `url` without its `sslmode` (URL or `key=value` form) and the mode it named.
pub fn split_mode(url: &str) -> Result<(String, Option<SslMode>), StoreError> {
    let mut mode = None;
    let mut take = |part: &str| -> Result<bool, StoreError> {
        match part.strip_prefix("sslmode=") {
            Some(value) => {
                mode = Some(value.parse::<SslMode>()?);
                Ok(false)
            }
            None => Ok(true),
        }
    };
    let rest = if url.contains("://") {
        match url.split_once('?') {
            None => url.to_string(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for part in query.split('&') {
                    if take(part)? {
                        kept.push(part);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for part in url.split_whitespace() {
            if take(part)? {
                kept.push(part);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode))
}

/// How the certificate of a TLS connection is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Nothing,
    Chain,
    ChainAndName,
}

/// The TLS connector `mode` asks for (`None`: no TLS), trusting `ca_file` or else the
/// system's roots.
pub(super) fn connector(
    mode: Option<SslMode>,
    ca_file: Option<&Path>,
) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>, StoreError> {
    let check = match (mode, ca_file) {
        (None | Some(SslMode::Disable), _) => return Ok(None),
        (Some(SslMode::Prefer), _) | (Some(SslMode::Require), None) => Check::Nothing,
        (Some(SslMode::Require | SslMode::VerifyCa), _) => Check::Chain,
        (Some(SslMode::VerifyFull), _) => Check::ChainAndName,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        Check::Nothing => Arc::new(AnyCertificate(provider.clone())),
        Check::Chain | Check::ChainAndName => {
            let roots = Arc::new(roots(ca_file)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| StoreError::Config(format!("Postgres TLS: {e}")))?;
            if check == Check::Chain {
                Arc::new(ChainOnly(webpki))
            } else {
                webpki
            }
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("Postgres TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

/// The CA certificates of `ca_file`, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                StoreError::Config(format!(
                    "cannot read the database CA file {}: {e}",
                    path.display()
                ))
            };
            for certificate in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                roots
                    .add(certificate.map_err(|e| unreadable(&e))?)
                    .map_err(|e| unreadable(&e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err(StoreError::Config(
            "no CA certificate to check the Postgres server's with: set --database-ca-file (OCELOT_DATABASE_CA_FILE)"
                .into(),
        ));
    }
    Ok(roots)
}

/// `prefer`, and `require` without a CA: encrypted, the certificate not checked (libpq's
/// meaning); the handshake's signatures still are.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name is not.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifying_modes_leave_the_url() {
        let (url, mode) =
            split_mode("postgres://ocelot@db.internal:5432/ocelot?sslmode=verify-full").unwrap();
        assert_eq!(url, "postgres://ocelot@db.internal:5432/ocelot");
        assert_eq!(mode, Some(SslMode::VerifyFull));
        let (url, mode) =
            split_mode("postgres://o@h/db?connect_timeout=5&sslmode=verify-ca&application_name=x")
                .unwrap();
        assert_eq!(
            url,
            "postgres://o@h/db?connect_timeout=5&application_name=x"
        );
        assert_eq!(mode, Some(SslMode::VerifyCa));
        let (url, mode) = split_mode("host=db user=ocelot sslmode=require").unwrap();
        assert_eq!(url, "host=db user=ocelot");
        assert_eq!(mode, Some(SslMode::Require));
        let (url, mode) = split_mode("postgres://o@h/db").unwrap();
        assert_eq!(url, "postgres://o@h/db");
        assert_eq!(mode, None);
    }

    #[test]
    fn an_unknown_mode_is_refused() {
        let Err(error) = split_mode("postgres://o@h/db?sslmode=allow-anything") else {
            panic!("an unknown sslmode was accepted");
        };
        assert!(error.to_string().contains("verify-full"), "{error}");
    }

    #[test]
    fn no_mode_and_disable_mean_no_tls() {
        assert!(connector(None, None).unwrap().is_none());
        assert!(connector(Some(SslMode::Disable), None).unwrap().is_none());
        assert!(connector(Some(SslMode::Require), None).unwrap().is_some());
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let Err(error) = connector(
            Some(SslMode::VerifyFull),
            Some(Path::new("/nonexistent/ca.pem")),
        ) else {
            panic!("a missing CA file was accepted");
        };
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
    }
}

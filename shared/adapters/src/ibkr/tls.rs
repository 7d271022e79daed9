//! How the gateway's certificate is verified. The Client Portal gateway serves a
//! self-signed certificate (its `root/conf.yaml` can point at another keystore), so
//! "trust the public CAs" rarely fits and "accept anything" must never ship: a
//! deployment pins the gateway's certificate or names the CA that signed it.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use super::error::IbkrError;
use crate::config::Config;

/// The trust anchor for an https gateway.
#[derive(Clone, PartialEq, Eq)]
pub enum GatewayTrust {
    /// The public web PKI (a gateway behind a publicly trusted certificate).
    WebPki,
    /// Only certificates issued by these CA certificates (PEM), host name checked.
    CaPem(String),
    /// Only the certificate whose DER encoding has this SHA-256: the gateway's own
    /// self-signed certificate, whatever host name it names.
    Pinned([u8; 32]),
    /// Any certificate: only for a gateway on this host (loopback), as in
    /// development with the gateway's bundled certificate.
    InsecureLoopback,
}

impl std::fmt::Debug for GatewayTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WebPki => f.write_str("WebPki"),
            Self::CaPem(_) => f.write_str("CaPem(..)"),
            Self::Pinned(pin) => write!(f, "Pinned({})", hex::encode(pin)),
            Self::InsecureLoopback => f.write_str("InsecureLoopback"),
        }
    }
}

/// Parses a SHA-256 fingerprint written as hex, with or without `:` separators
/// (the form `openssl x509 -fingerprint -sha256` prints).
///
/// # Errors
/// `Config` when it is not 32 bytes of hex.
pub fn parse_pin(text: &str) -> Result<[u8; 32], IbkrError> {
    let clean: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    let bytes = hex::decode(&clean)
        .map_err(|e| IbkrError::Config(format!("IBKR_TLS_CERT_SHA256 is not hex: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        IbkrError::Config(format!(
            "IBKR_TLS_CERT_SHA256 must be a SHA-256 (32 bytes), not {} bytes",
            b.len()
        ))
    })
}

impl GatewayTrust {
    /// The trust configured by `IBKR_TLS_CERT_SHA256`, `IBKR_TLS_CA_PEM` or
    /// `IBKR_ALLOW_SELF_SIGNED` (at most one of them), else the web PKI.
    ///
    /// # Errors
    /// `Config` for a malformed pin or more than one setting.
    pub fn from_config(c: &Config) -> Result<Self, IbkrError> {
        let pin = c.ibkr_tls_cert_sha256.as_deref().filter(|s| !s.is_empty());
        let ca = c
            .ibkr_tls_ca_pem
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        match (pin, ca, c.ibkr_allow_self_signed) {
            (Some(p), None, false) => Ok(Self::Pinned(parse_pin(p)?)),
            (None, Some(pem), false) => Ok(Self::CaPem(pem.to_string())),
            (None, None, true) => Ok(Self::InsecureLoopback),
            (None, None, false) => Ok(Self::WebPki),
            _ => Err(IbkrError::Config(
                "set only one of IBKR_TLS_CERT_SHA256, IBKR_TLS_CA_PEM and IBKR_ALLOW_SELF_SIGNED"
                    .into(),
            )),
        }
    }

    /// Configures `builder` to verify the gateway at `url` this way.
    ///
    /// # Errors
    /// `Config` for a CA bundle without a certificate, or an insecure setting for a
    /// gateway that is not on this host.
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
        url: &url::Url,
    ) -> Result<reqwest::ClientBuilder, IbkrError> {
        match self {
            Self::WebPki => Ok(builder),
            Self::CaPem(pem) => {
                let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                    .map_err(|e| IbkrError::Config(format!("IBKR_TLS_CA_PEM: {e}")))?;
                if certs.is_empty() {
                    return Err(IbkrError::Config(
                        "IBKR_TLS_CA_PEM holds no certificate".into(),
                    ));
                }
                Ok(builder.tls_certs_only(certs))
            }
            Self::Pinned(pin) => Ok(builder.tls_backend_preconfigured(pinned_config(*pin)?)),
            Self::InsecureLoopback => {
                let loopback = match url.host() {
                    Some(url::Host::Domain(d)) => d == "localhost",
                    Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                    Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                    None => false,
                };
                if !loopback {
                    return Err(IbkrError::Config(format!(
                        "IBKR_ALLOW_SELF_SIGNED accepts any certificate and is only for a gateway on this host, not {}: pin its certificate (IBKR_TLS_CERT_SHA256) or name its CA (IBKR_TLS_CA_PEM)",
                        url.host_str().unwrap_or("")
                    )));
                }
                Ok(builder.tls_danger_accept_invalid_certs(true))
            }
        }
    }
}

fn pinned_config(pin: [u8; 32]) -> Result<rustls::ClientConfig, IbkrError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(PinnedCertificate {
        sha256: pin,
        provider: Arc::clone(&provider),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IbkrError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts exactly one server certificate, by the SHA-256 of its DER encoding;
/// the handshake signatures are still checked, so only the holder of that
/// certificate's key passes.
#[derive(Debug)]
struct PinnedCertificate {
    sha256: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if Sha256::digest(end_entity.as_ref()).as_slice() == self.sha256 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_with_or_without_colons() {
        let hexed = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");

        assert_eq!(parse_pin(&hexed).unwrap(), [0xab; 32]);
        assert_eq!(parse_pin(&colons).unwrap(), [0xab; 32]);
        assert!(matches!(parse_pin("abcd"), Err(IbkrError::Config(_))));
        assert!(matches!(parse_pin("zz"), Err(IbkrError::Config(_))));
    }

    #[test]
    fn accepting_any_certificate_is_refused_for_a_remote_gateway() {
        let remote = url::Url::parse("https://10.0.1.5:5000/v1/api").unwrap();
        let local = url::Url::parse("https://localhost:5000/v1/api").unwrap();

        let refused = GatewayTrust::InsecureLoopback.apply(reqwest::Client::builder(), &remote);
        let allowed = GatewayTrust::InsecureLoopback.apply(reqwest::Client::builder(), &local);

        assert!(matches!(refused, Err(IbkrError::Config(m)) if m.contains("10.0.1.5")));
        assert!(allowed.is_ok());
    }
}

//! Transport safety: the client trusts the gateway's certificate only as configured
//! (its CA, or its pinned SHA-256) and refuses any other, against an in-process TLS
//! gateway with generated certificates.

use std::net::SocketAddr;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tradeflow_adapters::ibkr::{GatewayTrust, IbkrClient, IbkrError, IbkrSettings, RetryPolicy};

struct Served {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A CA and a `localhost` certificate it signed, plus an impostor: a self-signed
/// `localhost` certificate nobody configured.
struct Pki {
    ca_pem: String,
    gateway: Served,
    impostor: Served,
    other_ca_pem: String,
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("test TLS setup");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(
        ca_params.clone(),
        KeyPair::generate().expect("test TLS setup"),
    )
    .expect("test TLS setup");
    let other_ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("test TLS setup"))
            .expect("test TLS setup");
    let names = vec!["localhost".to_string()];
    let key = KeyPair::generate().expect("test TLS setup");
    let cert = CertificateParams::new(names.clone())
        .expect("test TLS setup")
        .signed_by(&key, &ca)
        .expect("test TLS setup");
    let impostor_key = KeyPair::generate().expect("test TLS setup");
    let impostor = CertificateParams::new(names)
        .expect("test TLS setup")
        .self_signed(&impostor_key)
        .expect("test TLS setup");
    let der = |k: &KeyPair| PrivateKeyDer::from(PrivatePkcs8KeyDer::from(k.serialize_der()));
    Pki {
        ca_pem: ca.pem(),
        other_ca_pem: other_ca.pem(),
        gateway: Served {
            cert: cert.der().clone(),
            key: der(&key),
        },
        impostor: Served {
            cert: impostor.der().clone(),
            key: der(&impostor_key),
        },
    }
}

/// An https gateway answering every request with an authenticated status.
async fn serve(s: &Served) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("test TLS setup")
        .with_no_client_auth()
        .with_single_cert(vec![s.cert.clone()], s.key.clone_key())
        .expect("test TLS setup");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("test TLS setup");
    let addr = listener.local_addr().expect("test TLS setup");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while let Ok(n) = tls.read(&mut buf[read..]).await {
                    read += n;
                    if n == 0 || buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let body =
                    r#"{"authenticated":true,"competing":false,"connected":true,"message":""}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

fn client(host: &str, addr: SocketAddr, trust: GatewayTrust) -> IbkrClient {
    IbkrClient::new(IbkrSettings {
        trust,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        ..IbkrSettings::new(format!("https://{host}:{}/v1/api", addr.port()), "DU1")
    })
    .expect("client builds")
}

fn pin(cert: &CertificateDer<'_>) -> [u8; 32] {
    Sha256::digest(cert.as_ref()).into()
}

fn refused(r: Result<tradeflow_adapters::ibkr::types::AuthStatus, IbkrError>) -> bool {
    matches!(r, Err(IbkrError::GatewayUnreachable { .. }))
}

#[tokio::test]
async fn the_gateways_ca_is_trusted_and_another_ca_is_not() {
    let p = pki();
    let gateway = serve(&p.gateway).await;
    let impostor = serve(&p.impostor).await;

    let trusted = client("localhost", gateway, GatewayTrust::CaPem(p.ca_pem.clone()))
        .auth_status()
        .await;
    let wrong_ca = client(
        "localhost",
        gateway,
        GatewayTrust::CaPem(p.other_ca_pem.clone()),
    )
    .auth_status()
    .await;
    let not_signed_by_it = client("localhost", impostor, GatewayTrust::CaPem(p.ca_pem.clone()))
        .auth_status()
        .await;

    assert!(trusted.unwrap().healthy());
    assert!(refused(wrong_ca));
    assert!(refused(not_signed_by_it));
}

#[tokio::test]
async fn a_pinned_certificate_is_trusted_by_its_hash_alone_and_no_other_is() {
    let p = pki();
    let gateway = serve(&p.gateway).await;
    let impostor = serve(&p.impostor).await;
    let pinned = GatewayTrust::Pinned(pin(&p.gateway.cert));

    let by_name = client("localhost", gateway, pinned.clone())
        .auth_status()
        .await;
    // The pin holds whatever name the certificate was issued for (an IP here).
    let by_ip = client("127.0.0.1", gateway, pinned.clone())
        .auth_status()
        .await;
    let impostor_answer = client("localhost", impostor, pinned).auth_status().await;

    assert!(by_name.unwrap().healthy());
    assert!(by_ip.unwrap().healthy());
    assert!(refused(impostor_answer));
}

#[tokio::test]
async fn without_a_configured_trust_a_self_signed_gateway_is_refused() {
    let p = pki();
    let impostor = serve(&p.impostor).await;

    let public_pki = client("localhost", impostor, GatewayTrust::WebPki)
        .auth_status()
        .await;
    let local_dev = client("localhost", impostor, GatewayTrust::InsecureLoopback)
        .auth_status()
        .await;

    assert!(refused(public_pki));
    // Accepting anything is only for a gateway on this host (and refused elsewhere).
    assert!(local_dev.unwrap().healthy());
    assert!(matches!(
        IbkrClient::new(IbkrSettings {
            trust: GatewayTrust::InsecureLoopback,
            ..IbkrSettings::new("https://10.0.1.5:5000/v1/api", "DU1")
        }),
        Err(IbkrError::Config(_))
    ));
}

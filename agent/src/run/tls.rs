//! TLS to the agent API: trust only the CA pinned on the kernel command line, check the chain
//! and validity but not the name (the controller is reached by whatever address the machine
//! booted from, which no certificate can list in advance).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;

use super::RunError;

/// A verifier that accepts any server name on a certificate chaining to the trusted CA.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The chain and validity are checked before the name: a name error means they passed.
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A verifier trusting `ca` alone, whatever the server's name.
fn verifier(ca: CertificateDer<'static>) -> Result<AnyName, RunError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(ca)
        .map_err(|e| RunError::TlsSetup(e.to_string()))?;
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| RunError::TlsSetup(e.to_string()))?;
    Ok(AnyName(webpki))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client configuration (ring, HTTP/2) trusting `ca` alone, whatever the server's name.
fn client_config(ca: CertificateDer<'static>) -> Result<ClientConfig, RunError> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| RunError::TlsSetup(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier(ca)?))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Dials like tonic does (TCP keepalive, no delay) and runs TLS trusting the pinned CA over
/// the connection. Give it `http://` URIs: tonic must not attempt TLS itself.
#[derive(Clone)]
pub(super) struct Connector {
    tcp: HttpConnector,
    tls: tokio_rustls::TlsConnector,
}

impl Connector {
    /// A connector trusting `ca` (the pinned CA's DER) alone.
    pub(super) fn new(ca: CertificateDer<'static>, keepalive: Duration) -> Result<Self, RunError> {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_keepalive(Some(keepalive));
        Ok(Self {
            tcp,
            tls: tokio_rustls::TlsConnector::from(Arc::new(client_config(ca)?)),
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let tls = self.tls.clone();
        // Only SNI: the certificate's names are not checked.
        let name = uri
            .host()
            .unwrap_or_default()
            .trim_matches(['[', ']'])
            .to_string();
        let tcp = self.tcp.call(uri);
        Box::pin(async move {
            let name = ServerName::try_from(name)?;
            let stream = tcp.await?.into_inner();
            Ok(TokioIo::new(tls.connect(name, stream).await?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

    fn ca(name: &str) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.der().clone(), Issuer::new(params, key))
    }

    fn leaf(issuer: &Issuer<'_, KeyPair>, name: &str) -> CertificateDer<'static> {
        let params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .signed_by(&KeyPair::generate().unwrap(), issuer)
            .unwrap()
            .der()
            .clone()
    }

    #[test]
    fn the_pinned_ca_is_trusted_for_any_name_and_no_other_ca_is() {
        let (pinned, pinned_issuer) = ca("Groundwork agent API CA");
        let (_, other_issuer) = ca("Another CA");
        // An impostor with the pinned CA's name but its own key.
        let (_, impostor) = ca("Groundwork agent API CA");
        let verifier = verifier(pinned.clone()).unwrap();
        let verify = |cert: &CertificateDer<'_>| {
            verifier.verify_server_cert(
                cert,
                &[],
                &ServerName::try_from("10.0.0.1").unwrap(),
                &[],
                UnixTime::now(),
            )
        };
        // Issued by the pinned CA for another name: accepted.
        verify(&leaf(&pinned_issuer, "controller.example")).unwrap();
        // Another CA, even for the right name: refused.
        let err = verify(&leaf(&other_issuer, "10.0.0.1")).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
            ),
            "{err:?}"
        );
        let err = verify(&leaf(&impostor, "10.0.0.1")).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature)
            ),
            "{err:?}"
        );
        assert_eq!(
            client_config(pinned).unwrap().alpn_protocols,
            [b"h2".to_vec()]
        );
    }
}

//! rustls client configuration: system roots, a given CA bundle, or an explicit
//! "insecure" opt-out. TLS 1.2 and 1.3 are enabled (many BMCs, and
//! sushy-tools, speak only TLS 1.2).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{BmcError, TlsOptions};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Build the rustls configuration for the given options.
pub(crate) fn client_config(opts: &TlsOptions) -> Result<ClientConfig, BmcError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| BmcError::Protocol(format!("TLS setup: {e}")))?;
    if opts.insecure {
        let verifier = AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth());
    }
    let mut roots = RootCertStore::empty();
    match &opts.ca_bundle_pem {
        Some(pem) => {
            let mut count = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| BmcError::Protocol(format!("invalid CA bundle PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| BmcError::Protocol(format!("invalid CA certificate: {e}")))?;
                count += 1;
            }
            if count == 0 {
                return Err(BmcError::Protocol(
                    "CA bundle contains no PEM certificate".to_string(),
                ));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::debug!(error = %err, "could not load some system CA certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "loaded system CA certificates");
        }
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The `insecure` opt-out: any certificate and host name is accepted, but the
/// handshake signatures are still checked so the session keys are sound.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_garbage_bundle_is_rejected() {
        let opts = TlsOptions {
            ca_bundle_pem: Some(b"not a pem".to_vec()),
            insecure: false,
        };
        assert!(matches!(client_config(&opts), Err(BmcError::Protocol(_))));
    }

    #[test]
    fn system_roots_and_insecure_build() {
        assert!(client_config(&TlsOptions::default()).is_ok());
        let insecure = TlsOptions {
            ca_bundle_pem: None,
            insecure: true,
        };
        assert!(client_config(&insecure).is_ok());
    }
}

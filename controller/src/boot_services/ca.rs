//! TLS of the agent API. The CA lives in a Secret that whichever replica starts first creates
//! (the others read it, so every replica serves under one CA); each process issues itself a
//! server certificate from it in memory at start. The ramdisk fetches the CA certificate from
//! `/boot/ca.crt` and trusts it only if it matches the pin on its kernel command line, which
//! the iPXE script puts there.
//!
//! The chart creates the Secret empty (so that `helm uninstall` removes it); an empty Secret is
//! filled the same way, first writer wins (the replace carries the resourceVersion read).
//!
//! Delete the Secret's data and restart the replicas to rotate the CA (ramdisks booted before keep
//! the old pin and fail with `CAFingerprintMismatch`; their attempts are retried). A Secret
//! created beforehand with another CA (`ca.crt` and `ca.key`, PEM) is used as it is.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tracing::info;

/// Key of the CA certificate (PEM) in the Secret.
const CA_CERT: &str = "ca.crt";
/// Key of the CA's private key (PKCS#8 PEM) in the Secret.
const CA_KEY: &str = "ca.key";
/// Validity of a generated CA and of each server certificate, from a day before issue (ramdisk
/// clocks lag) on.
const VALIDITY: SignedDuration = SignedDuration::from_hours(24 * 365 * 10);

/// Why the agent API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or creating the Secret failed.
    #[error("agent CA Secret {namespace}/{name}: {source}")]
    Api {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// Cause.
        source: kube::Error,
    },
    /// The Secret lacks the CA or holds something unusable.
    #[error("agent CA Secret {namespace}/{name}: {detail}")]
    Malformed {
        /// Namespace of the Secret.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// Generating or signing a certificate failed.
    #[error("agent API certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

impl CaError {
    /// CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Api { .. } => "AgentCASecretUnavailable",
            Self::Malformed { .. } => "AgentCASecretMalformed",
            Self::Certificate(_) => "AgentCertificateFailed",
        }
    }
}

/// The CA, as kept in the Secret.
#[derive(Clone, Debug)]
pub struct AgentCa {
    cert_pem: String,
    key_pem: String,
}

/// What the agent API and the HTTP boot service need of the CA, for this process.
#[derive(Clone, Debug)]
pub struct AgentTls {
    /// The CA certificate (PEM), served at `/boot/ca.crt`.
    pub ca_pem: String,
    /// Its pin for the kernel command line (`groundwork.ca=`).
    pub ca_pin: String,
    /// The agent API's server certificate and key, issued by the CA.
    pub identity: tonic::transport::Identity,
}

/// A new CA: ECDSA P-256, valid for ten years.
pub fn generate() -> Result<AgentCa, CaError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Groundwork agent API CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params);
    let cert = params.self_signed(&key)?;
    Ok(AgentCa {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The CA in Secret `name` of `namespace`, created (with a new CA) when absent. Replicas that
/// race to create it all end up with the one that was created first.
pub async fn load_or_create(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<AgentCa, CaError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_err = |source| CaError::Api {
        namespace: namespace.to_string(),
        name: name.to_string(),
        source,
    };
    let data = |ca: &AgentCa| {
        BTreeMap::from([
            (CA_CERT.to_string(), ByteString(ca.cert_pem.clone().into())),
            (CA_KEY.to_string(), ByteString(ca.key_pem.clone().into())),
        ])
    };
    let stored = match secrets.get_opt(name).await.map_err(api_err)? {
        // The chart's empty Secret (so `helm uninstall` removes it): filled by the first
        // replica; a replica that loses the race (409) reads the winner's.
        Some(mut empty) if empty.data.as_ref().is_none_or(|d| d.is_empty()) => {
            let ca = generate()?;
            empty.data = Some(data(&ca));
            match secrets.replace(name, &PostParams::default(), &empty).await {
                Ok(_) => {
                    info!(%namespace, %name, "filled the agent API CA");
                    return Ok(ca);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    secrets.get(name).await.map_err(api_err)?
                }
                Err(e) => return Err(api_err(e)),
            }
        }
        Some(s) => s,
        None => {
            let ca = generate()?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_string()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/name".to_string(),
                        "groundwork".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(data(&ca)),
                ..Default::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    info!(%namespace, %name, "created the agent API CA");
                    return Ok(ca);
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    secrets.get(name).await.map_err(api_err)?
                }
                Err(e) => return Err(api_err(e)),
            }
        }
    };
    let field = |key: &str| {
        stored
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .ok_or_else(|| CaError::Malformed {
                namespace: namespace.to_string(),
                name: name.to_string(),
                detail: format!("no {key} (PEM)"),
            })
    };
    Ok(AgentCa {
        cert_pem: field(CA_CERT)?,
        key_pem: field(CA_KEY)?,
    })
}

/// Issues this process's server certificate from `ca`. Its names (`advertise`, `localhost`,
/// 127.0.0.1) are informational: agents reach us by whatever address iPXE used and check the
/// chain, not the name.
pub fn issue(ca: &AgentCa, advertise: Option<Ipv4Addr>) -> Result<AgentTls, CaError> {
    let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes())
        .map_err(|e| rcgen::Error::PemError(format!("the CA certificate is not PEM: {e}")))?;
    let issuer = Issuer::from_ca_cert_der(&ca_der, KeyPair::from_pem(&ca.key_pem)?)?;
    let mut names: Vec<String> = advertise.iter().map(ToString::to_string).collect();
    names.extend(["localhost".to_string(), "127.0.0.1".to_string()]);
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "Groundwork agent API");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    set_validity(&mut params);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(AgentTls {
        ca_pem: ca.cert_pem.clone(),
        ca_pin: proto::ca_pin(&ca_der),
        identity: tonic::transport::Identity::from_pem(cert.pem(), key.serialize_pem()),
    })
}

/// Valid from a day ago (whole days) to [`VALIDITY`] later.
fn set_validity(params: &mut CertificateParams) {
    let day = |t: Timestamp| {
        let d = t.to_zoned(jiff::tz::TimeZone::UTC).date();
        rcgen::date_time_ymd(
            d.year().into(),
            d.month().unsigned_abs(),
            d.day().unsigned_abs(),
        )
    };
    let now = Timestamp::now();
    params.not_before = day(now - SignedDuration::from_hours(24));
    params.not_after = day(now + VALIDITY);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificates_chain_to_the_ca_and_the_pin_is_of_its_der() {
        let ca = generate().unwrap();
        let tls = issue(&ca, Some(Ipv4Addr::new(10, 0, 0, 1))).unwrap();
        let der = CertificateDer::from_pem_slice(tls.ca_pem.as_bytes()).unwrap();
        assert_eq!(tls.ca_pin, proto::ca_pin(&der));
        assert!(tls.ca_pin.starts_with("sha256:") && tls.ca_pin.len() == 7 + 64);
        // The same stored CA gives the same pin on every replica.
        assert_eq!(issue(&ca, None).unwrap().ca_pin, tls.ca_pin);
        assert!(matches!(
            issue(
                &AgentCa {
                    cert_pem: "junk".into(),
                    key_pem: ca.key_pem.clone()
                },
                None
            ),
            Err(CaError::Certificate(_))
        ));
    }
}

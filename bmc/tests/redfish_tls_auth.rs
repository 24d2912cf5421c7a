//! The Redfish driver against a real sushy-tools serving HTTPS (TLS 1.2 only,
//! certificate signed by a CA made by the test with `openssl`) behind basic
//! auth (bcrypt htpasswd).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bmc::{Bmc, BmcAddress, Credentials, PowerAction, PowerState, TlsOptions};
use common::wait::eventually;
use common::{Sushy, SushyOptions, test_config};

const USER: &str = "admin";
const PASSWORD: &str = "tls-s3cret";

fn start() -> Sushy {
    Sushy::start(SushyOptions {
        systems: 2,
        tls: true,
        basic_auth: Some((USER.into(), PASSWORD.into())),
        ..Default::default()
    })
}

fn driver(address: &str, password: &str, tls: TlsOptions) -> std::sync::Arc<dyn Bmc> {
    bmc::connect(
        BmcAddress::parse(address).unwrap(),
        Credentials::new(USER, password),
        tls,
        test_config(),
    )
    .unwrap()
}

fn with_ca(sushy: &Sushy) -> TlsOptions {
    TlsOptions {
        ca_bundle_pem: sushy.ca_pem.clone(),
        insecure: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_with_ca_bundle_and_basic_auth_works() {
    let sushy = start();
    let bmc = driver(&sushy.address(0), PASSWORD, with_ca(&sushy));
    let id = bmc.identity().await.unwrap();
    assert_eq!(id.uuid.as_deref(), Some(sushy.systems[0].uuid.as_str()));
    bmc.power(PowerAction::On).await.unwrap();
    eventually(
        std::time::Duration::from_secs(5),
        "power on over TLS",
        || async { (bmc.power_state().await.unwrap() == PowerState::On).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_by_name_resends_credentials() {
    let sushy = start();
    // sushy-tools answers /Systems/<name> with a 307 to /Systems/<uuid>; the
    // second hop needs the Authorization header too.
    let bmc = driver(&sushy.address_by_name(1), PASSWORD, with_ca(&sushy));
    assert_eq!(
        bmc.identity().await.unwrap().uuid.as_deref(),
        Some(sushy.systems[1].uuid.as_str())
    );
    assert!(
        sushy.log().contains(" 307 "),
        "expected a redirect:\n{}",
        sushy.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_unknown_ca_is_refused_unless_insecure() {
    let sushy = start();
    // System roots only: the test CA is unknown.
    let bmc = driver(&sushy.address(0), PASSWORD, TlsOptions::default());
    let err = bmc.power_state().await.unwrap_err();
    assert_eq!(err.reason(), "ProtocolError", "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("TLS") && msg.to_lowercase().contains("certificate"),
        "{msg}"
    );
    // A different CA bundle: refused too.
    let other_ca = common::TempDir::new("otherca");
    let (ca, _, _) = common::make_certs(other_ca.path());
    let wrong = TlsOptions {
        ca_bundle_pem: Some(std::fs::read(ca).unwrap()),
        insecure: false,
    };
    let err = driver(&sushy.address(0), PASSWORD, wrong)
        .power_state()
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "ProtocolError", "{err}");
    // The explicit opt-out works.
    let insecure = TlsOptions {
        ca_bundle_pem: None,
        insecure: true,
    };
    let bmc = driver(&sushy.address(0), PASSWORD, insecure);
    assert_eq!(bmc.power_state().await.unwrap(), PowerState::Off);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_authentication_failed_and_not_leaked() {
    let sushy = start();
    let wrong = "definitely-wrong-pw";
    let bmc = driver(&sushy.address(0), wrong, with_ca(&sushy));
    let err = bmc.identity().await.unwrap_err();
    assert_eq!(err.reason(), "AuthenticationFailed", "{err}");
    assert!(matches!(err, bmc::BmcError::AuthenticationFailed(_)));
    let shown = format!("{err} {err:?} {bmc:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(PASSWORD),
        "{shown}"
    );
    // Not retried: one 401 per request, no backoff loop.
    assert_eq!(sushy.log().matches(" 401 ").count(), 1, "{}", sushy.log());
}

//! The chart installs into the real API server, and the controller works under the chart's
//! ServiceAccount with exactly the chart's RBAC (not as admin). Two electors never lead at once.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use controller::netboot::ca;
use crds::{Rack, Server};
use e2e::{
    RunningController, admin_client, apply_examples, controlplane_dir, eventually, namespace,
    repo_root,
};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

fn helm(args: &[&str]) -> String {
    let kubeconfig = controlplane_dir().join("kubeconfig");
    let out = Command::new("helm")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .expect("helm is not on PATH: hack/test.sh builds it from Go modules");
    assert!(
        out.status.success(),
        "helm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn client_as_service_account(namespace: &str, name: &str) -> kube::Client {
    let admin = admin_client().await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin, namespace);
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let token = sas
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = token.status.unwrap().token;
    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(controlplane_dir().join("kubeconfig")).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn controller_works_under_the_charts_rbac() {
    let admin = admin_client().await;
    let release_ns = namespace(&admin, "gw-system").await;
    let chart = repo_root().join("charts/groundwork");
    let chart = chart.to_str().unwrap();
    helm(&["lint", chart]);
    let rendered = helm(&[
        "template",
        "gw",
        chart,
        "--namespace",
        &release_ns,
        "--kube-version",
        "1.36.3",
    ]);
    assert!(rendered.contains("kind: Deployment"));
    assert!(
        !rendered.contains("--boot-services"),
        "boot services are opt-in"
    );
    // With the boot services: their flags, ports, capabilities and token Secret render.
    let boot = helm(&[
        "template",
        "gw",
        chart,
        "--namespace",
        &release_ns,
        "--kube-version",
        "1.36.3",
        "--set",
        "boot.enabled=true",
        "--set",
        "hostNetwork=true",
        "--set",
        "boot.dhcpInterfaces={eth1,eth2}",
    ]);
    for needle in [
        "--boot-services",
        "--dhcp-interface=eth1,eth2",
        "NET_BIND_SERVICE",
        "gw-controller-boot-token",
        "name: http-boot",
        "--agent-ca-secret=gw-controller-agent-ca",
        "name: gw-controller-agent-ca",
    ] {
        assert!(
            boot.contains(needle),
            "{needle} missing from the rendered chart"
        );
    }
    let release = format!("gw{}", std::process::id());
    helm(&[
        "install",
        &release,
        chart,
        "--namespace",
        &release_ns,
        "--set",
        "boot.enabled=true",
    ]);

    let site = namespace(&admin, "rbac-site").await;
    apply_examples(&admin, &site).await;
    let sa_client = client_as_service_account(&release_ns, &format!("{release}-controller")).await;

    // The identity is really not admin: it cannot change a Server's spec (RBAC lets it patch
    // Servers for its finalizer; the chart's admission policy refuses anything else).
    let servers: Api<Server> = Api::namespaced(sa_client.clone(), &site);
    let edit = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "spec": {"online": false}});
    eventually(
        Duration::from_secs(20),
        "the admission policy to refuse a spec change",
        || async {
            let denied = servers
                .patch(
                    "a01-u01",
                    &PatchParams::apply("intruder").force(),
                    &Patch::Apply(&edit),
                )
                .await;
            matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403).then_some(())
        },
    )
    .await;
    let tagged = servers
        .patch(
            "a01-u01",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}})),
        )
        .await;
    assert!(
        matches!(tagged, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{tagged:?}"
    );
    // Its own finalizer it may add and remove.
    for finalizers in [json!([crds::SERVER_FINALIZER]), json!([])] {
        servers
            .patch(
                "a01-u01",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": finalizers}})),
            )
            .await
            .unwrap();
    }

    let controller = RunningController::start(sa_client.clone(), &site).await;
    let racks: Api<Rack> = Api::namespaced(admin.clone(), &site);
    eventually(
        Duration::from_secs(30),
        "the rack to converge under the chart's RBAC",
        || async {
            let st = racks.get("a01").await.ok()?.status?;
            (st.server_count == 4
                && st
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"))
            .then_some(())
        },
    )
    .await;
    assert!(
        !controller
            .metrics
            .registry_text()
            .contains("reconcile_errors_total{"),
        "{}",
        controller.metrics.registry_text()
    );

    // Leader election with the chart's Role: one holder at a time.
    let lease = format!("{release}-controller");
    let a = controller::leader::Elector::new(
        sa_client.clone(),
        &release_ns,
        &lease,
        "replica-a",
        Duration::from_secs(15),
    );
    let b = controller::leader::Elector::new(
        sa_client.clone(),
        &release_ns,
        &lease,
        "replica-b",
        Duration::from_secs(15),
    );
    assert!(a.try_acquire().await.unwrap(), "first replica leads");
    assert!(
        !b.try_acquire().await.unwrap(),
        "second replica must not lead while the lease is fresh"
    );
    a.release().await;
    assert!(
        b.try_acquire().await.unwrap(),
        "second replica leads once the first released"
    );
    // The agent API's CA: created in the release namespace, then read, under the chart's RBAC;
    // nowhere else.
    let ca_secret = format!("{release}-controller-agent-ca");
    let created = ca::load_or_create(&sa_client, &release_ns, &ca_secret)
        .await
        .unwrap();
    let read = ca::load_or_create(&sa_client, &release_ns, &ca_secret)
        .await
        .unwrap();
    assert_eq!(
        ca::issue(&created, None).unwrap().ca_pin,
        ca::issue(&read, None).unwrap().ca_pin,
        "every replica serves under the one CA"
    );
    let elsewhere = ca::load_or_create(&sa_client, &site, &ca_secret).await;
    assert!(
        matches!(elsewhere, Err(ca::CaError::Api { source: kube::Error::Api(ref s), .. }) if s.code == 403),
        "{elsewhere:?}"
    );
    controller.stop().await;
}

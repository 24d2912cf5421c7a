//! The chart installs into the real API server, and the controller works under the chart's
//! ServiceAccount with exactly the chart's RBAC (not as admin). The chart's admission policy
//! narrows what that identity may write to Servers: its own finalizer, and creating only what
//! auto-enrolment creates. Two electors never lead at once.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use controller::admission::Probe;
use controller::boot_services::agent_api::enroll;
use controller::boot_services::ca;
use crds::{Rack, Server};
use e2e::{
    RunningController, admin_client, apply_examples, client_as_service_account, eventually, helm,
    helm_run, namespace, repo_root,
};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use serde_json::json;

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
    for needle in [
        "--admission-policy=gw-controller-server-writes",
        "name: gw-controller-server-writes",
        "policyName: gw-controller-server-writes",
        "--log-format=text",
    ] {
        assert!(
            rendered.contains(needle),
            "{needle} missing from the rendered chart"
        );
    }
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
        "--set",
        "logFormat=json",
    ]);
    for needle in [
        "--boot-services",
        "--dhcp-interface=eth1,eth2",
        "NET_BIND_SERVICE",
        "gw-controller-boot-token",
        "name: http-boot",
        "--agent-ca-secret=gw-controller-agent-ca",
        "name: gw-controller-agent-ca",
        "--log-format=json",
    ] {
        assert!(
            boot.contains(needle),
            "{needle} missing from the rendered chart"
        );
    }
    let bad = helm_run(&["template", "gw", chart, "--set", "logFormat=yaml"]);
    assert!(
        !bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("logFormat"),
        "the values schema accepts logFormat=yaml: {bad:?}"
    );
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
    // The API server loads a new policy asynchronously (it refreshes them about once a
    // second), so right after the install a write may still pass: wait with a dry run, which
    // changes nothing whatever the answer, then prove a real write is refused.
    let policy = format!("{release}-controller-server-writes");
    let policy = &policy;
    let servers: Api<Server> = Api::namespaced(sa_client.clone(), &site);
    let before = servers.get("a01-u01").await.unwrap();
    assert!(before.spec.online, "the example server is declared online");
    let edit = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "spec": {"online": false}});
    eventually(
        Duration::from_secs(20),
        "the admission policy to refuse a dry-run spec change",
        || async {
            let dry = servers
                .patch(
                    "a01-u01",
                    &PatchParams::apply("intruder").force().dry_run(),
                    &Patch::Apply(&edit),
                )
                .await;
            match dry {
                Ok(_) => None,
                Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(policy) => Some(()),
                Err(e) => panic!("dry-run probe failed: {e}"),
            }
        },
    )
    .await;
    let denied = servers
        .patch(
            "a01-u01",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&edit),
        )
        .await;
    assert!(
        matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403 && s.message.contains(policy)),
        "{denied:?}"
    );
    let after = servers.get("a01-u01").await.unwrap();
    assert_eq!(
        (&after.metadata.resource_version, &after.spec),
        (&before.metadata.resource_version, &before.spec),
        "a refused write changed the Server"
    );
    // The controller's own startup check (--admission-policy) sees the same: its probe is
    // refused for its identity, and for an identity the policy does not narrow it is not.
    let probe = |client: kube::Client| {
        let ns = release_ns.clone();
        async move {
            controller::admission::probe(&client, &ns, policy)
                .await
                .unwrap()
        }
    };
    assert_eq!(probe(sa_client.clone()).await, Probe::Enforced);
    assert_eq!(probe(admin.clone()).await, Probe::NotEnforced);
    let probes: Api<Server> = Api::namespaced(admin.clone(), &release_ns);
    assert!(
        probes
            .get_opt(controller::admission::PROBE_NAME)
            .await
            .unwrap()
            .is_none(),
        "the probe is a dry run"
    );
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

    // Creating Servers: only auto-enrolment's, exactly as the enrolment code builds them, so a
    // stolen controller token cannot declare machines.
    let enrol_ns = namespace(&admin, "rbac-enrol").await;
    let recorder = Recorder::new(
        sa_client.clone(),
        Reporter {
            controller: "rbac-test".into(),
            instance: None,
        },
    );
    let enrolled = enroll::enroll(&sa_client, &recorder, &enrol_ns, "52:54:00:ee:00:01", None)
        .await
        .unwrap();
    assert_eq!(
        enrolled.metadata.name.as_deref(),
        Some("discovered-525400ee0001")
    );
    let discovered = |mac: &str| {
        json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {
                "name": format!("discovered-{}", mac.replace(':', "")),
                "annotations": {crds::annotations::DISCOVERED: "2026-01-01T00:00:00Z"},
            },
            "spec": {"bootMACAddress": mac},
        })
    };
    let as_controller: Api<Server> = Api::namespaced(sa_client.clone(), &enrol_ns);
    let create = |doc: serde_json::Value| {
        let api = as_controller.clone();
        async move {
            let server: Server = serde_json::from_value(doc).unwrap();
            api.create(&PostParams::default(), &server).await
        }
    };
    // The control: the enrolment shape written by hand is allowed, so each refusal below is
    // the change it makes.
    create(discovered("52:54:00:ee:00:02")).await.unwrap();
    type Change = fn(&mut serde_json::Value);
    let changes: [(&str, Change); 16] = [
        ("an image", |d| {
            d["spec"]["image"] = json!({"url": "http://10.0.0.1/os.raw",
                "checksum": format!("sha256:{}", "0".repeat(64))});
        }),
        ("a BMC", |d| {
            d["spec"]["bmc"] = json!({"address": "ipmi://10.0.0.1",
                "credentialsSecretRef": {"name": "bmc"}});
        }),
        ("power on", |d| d["spec"]["online"] = json!(true)),
        ("a rack position", |d| {
            d["spec"]["rackRef"] = json!({"name": "a01"});
            d["spec"]["rackUnit"] = json!(3);
        }),
        ("user data", |d| {
            d["spec"]["userData"] = json!({"name": "x"})
        }),
        ("network data", |d| {
            d["spec"]["networkData"] = json!({"name": "x"})
        }),
        ("node labels", |d| {
            d["spec"]["node"] = json!({"labels": {"a": "b"}});
        }),
        ("externally provisioned", |d| {
            d["spec"]["externallyProvisioned"] = json!(true);
        }),
        ("another boot mode", |d| {
            d["spec"]["bootMode"] = json!("Legacy")
        }),
        ("no cleaning", |d| d["spec"]["cleaning"] = json!("Disabled")),
        ("any name", |d| d["metadata"]["name"] = json!("intruder")),
        ("another MAC's name", |d| {
            d["metadata"]["name"] = json!("discovered-525400ee00ff");
        }),
        ("no discovered annotation", |d| {
            d["metadata"]["annotations"] = json!({"x": "y"});
        }),
        ("another annotation", |d| {
            d["metadata"]["annotations"][crds::annotations::PAUSED] = json!("yes");
        }),
        ("a label", |d| d["metadata"]["labels"] = json!({"a": "b"})),
        ("a finalizer", |d| {
            d["metadata"]["finalizers"] = json!([crds::SERVER_FINALIZER]);
        }),
    ];
    for (i, (what, change)) in changes.iter().enumerate() {
        let mut doc = discovered(&format!("52:54:00:ee:01:{i:02x}"));
        change(&mut doc);
        let refused = create(doc).await;
        assert!(
            matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403 && s.message.contains(policy)),
            "creating a discovered Server with {what}: {refused:?}"
        );
    }
    // The same through server-side apply (which creates what does not exist).
    let arbitrary = json!({
        "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": "intruder"},
        "spec": {
            "bootMACAddress": "52:54:00:ee:02:01", "online": true,
            "image": {"url": "http://10.0.0.1/os.raw", "checksum": format!("sha256:{}", "0".repeat(64))},
        },
    });
    let applied = as_controller
        .patch(
            "intruder",
            &PatchParams::apply("intruder").force(),
            &Patch::Apply(&arbitrary),
        )
        .await;
    assert!(
        matches!(applied, Err(kube::Error::Api(ref s)) if s.code == 403 && s.message.contains(policy)),
        "{applied:?}"
    );
    let mut names: Vec<_> = Api::<Server>::namespaced(admin.clone(), &enrol_ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["discovered-525400ee0001", "discovered-525400ee0002"]
    );

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

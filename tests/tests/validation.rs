//! Admission: every invalid object of the table is rejected by the real API server with its
//! field path and message; every example is accepted; unsafe changes are refused.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use e2e::{admin_client, apply_doc, example_documents, namespace};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn cases() -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(e2e::repo_root().join("tests/invalid/cases.yaml")).unwrap();
    let table: Value = serde_yaml::from_str(&text).unwrap();
    let cases = table["cases"].as_array().unwrap().clone();
    (table["bases"].clone(), cases)
}

#[tokio::test]
async fn invalid_objects_are_rejected_with_field_and_message() {
    let client = admin_client().await;
    let ns = namespace(&client, "invalid").await;
    let (bases, cases) = cases();
    assert!(cases.len() >= 20, "the table must hold at least 20 cases");
    // The bases themselves are valid: a rejection below is the patch's doing.
    for kind in ["Rack", "Server", "UpstreamLink"] {
        apply_doc(&client, &ns, bases[kind].clone())
            .await
            .unwrap_or_else(|e| panic!("base {kind} rejected: {e}"));
    }
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut obj = bases[case["kind"].as_str().unwrap()].clone();
        merge(&mut obj, &case["patch"]);
        if case["patch"]["metadata"]["name"].is_null() {
            obj["metadata"]["name"] = name.into();
        }
        let field = case["field"].as_str().unwrap();
        let message = case["message"].as_str().unwrap();
        match apply_doc(&client, &ns, obj).await {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(kube::Error::Api(status)) => {
                if status.code != 422
                    || !status.message.contains(&format!("{field}:"))
                    || !status.message.contains(message)
                {
                    failures.push(format!("{name}: {} {:?}", status.code, status.message));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "cases not rejected as expected:\n{}",
        failures.join("\n")
    );
}

#[tokio::test]
async fn every_example_is_accepted() {
    let client = admin_client().await;
    let ns = namespace(&client, "examples").await;
    let docs = example_documents();
    assert!(docs.iter().filter(|d| d["kind"] == "Server").count() >= 3);
    assert_eq!(
        docs.iter().filter(|d| d["kind"] == "UpstreamLink").count(),
        2
    );
    for doc in docs {
        let name = doc["metadata"]["name"].clone();
        apply_doc(&client, &ns, doc)
            .await
            .unwrap_or_else(|e| panic!("example {name} rejected: {e}"));
    }
}

#[tokio::test]
async fn boot_mac_and_rack_cannot_change_while_provisioned() {
    let client = admin_client().await;
    let ns = namespace(&client, "transition").await;
    let (bases, _) = cases();
    let mut server = bases["Server"].clone();
    server["metadata"]["name"] = "s1".into();
    apply_doc(&client, &ns, server.clone()).await.unwrap();
    let ar = e2e::resource_of("groundwork.dev/v1alpha1", "Server");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
    let status = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "status": {"state": "Provisioned"}});
    api.patch_status(
        "s1",
        &PatchParams::apply("e2e-status").force(),
        &Patch::Apply(&status),
    )
    .await
    .unwrap();

    let mut moved = server.clone();
    moved["spec"]["bootMACAddress"] = "52:54:00:00:00:99".into();
    let err = apply_doc(&client, &ns, moved)
        .await
        .expect_err("bootMACAddress changed while provisioned");
    assert!(
        err.to_string()
            .contains("bootMACAddress cannot change while the server is provisioned"),
        "{err}"
    );
    let mut rerack = server.clone();
    rerack["spec"]["rackRef"]["name"] = "b07".into();
    let err = apply_doc(&client, &ns, rerack)
        .await
        .expect_err("rackRef changed while provisioned");
    assert!(
        err.to_string()
            .contains("rackRef cannot change while the server is provisioned"),
        "{err}"
    );

    // Once it is Available again the change is allowed.
    let status = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "status": {"state": "Available"}});
    api.patch_status(
        "s1",
        &PatchParams::apply("e2e-status").force(),
        &Patch::Apply(&status),
    )
    .await
    .unwrap();
    let mut moved = server;
    moved["spec"]["bootMACAddress"] = "52:54:00:00:00:99".into();
    apply_doc(&client, &ns, moved).await.unwrap();
}

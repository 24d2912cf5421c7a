//! The admission table (tests/invalid/cases.yaml) evaluated without a cluster, with kube's
//! client-side CEL: every CEL case is rejected with its field path and message, the valid
//! bases and every example pass. Schema-only cases (`serverOnly`) need the API server.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;

use kube::core::cel::Validator;
use serde_json::Value;

fn schema_of(kind: &str) -> Value {
    let crd = crds::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .unwrap()
        .open_api_v3_schema
        .as_ref()
        .unwrap();
    serde_json::to_value(schema).unwrap()
}

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

fn table() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/invalid/cases.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn cel_cases_rejected_without_a_cluster() {
    let table = table();
    let validator = Validator::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in table["cases"].as_array().unwrap() {
        if case["serverOnly"].as_bool().unwrap_or(false) {
            continue;
        }
        let kind = case["kind"].as_str().unwrap();
        let mut obj = table["bases"][kind].clone();
        merge(&mut obj, &case["patch"]);
        let name = case["name"].as_str().unwrap();
        let field = case["field"].as_str().unwrap();
        let message = case["message"].as_str().unwrap();
        checked += 1;
        match validator.validate(&schema_of(kind), &obj, None) {
            Ok(()) => failures.push(format!("{name}: accepted")),
            Err(errors) => {
                let hit = errors.iter().any(|e| {
                    e.message.contains(message)
                        && e.field_path
                            .replace('/', ".")
                            .trim_start_matches('.')
                            .starts_with(field.split('[').next().unwrap_or(field))
                });
                if !hit {
                    failures.push(format!("{name}: {errors}"));
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} CEL cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn bases_and_examples_pass_cel() {
    let table = table();
    let validator = Validator::new();
    for kind in ["Rack", "Server", "UpstreamLink"] {
        validator
            .validate(&schema_of(kind), &table["bases"][kind], None)
            .unwrap();
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            let kind = value["kind"].as_str().unwrap_or_default();
            if [
                "Rack",
                "Server",
                "UpstreamLink",
                "BorderRouter",
                "BlackholeRoute",
            ]
            .contains(&kind)
            {
                validator
                    .validate(&schema_of(kind), &value, None)
                    .unwrap_or_else(|e| panic!("{kind}: {e}"));
            }
        }
    }
}

//! Golden-file tests for the renderer. These tests never write the golden
//! files: regenerate them with `hack/routing-golden.sh` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use routing::{RouterConfig, render};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 3,
        "expected at least 3 golden inputs, found {v:?}"
    );
    v
}

fn load(input: &Path) -> RouterConfig {
    serde_json::from_str(&std::fs::read_to_string(input).unwrap()).unwrap()
}

/// The render of each input equals its checked-in golden file, byte for byte.
#[test]
fn render_matches_golden_files() {
    for input in cases() {
        let rendered = render(&load(&input)).unwrap();
        let golden_path = input.with_extension("conf");
        let golden = std::fs::read_to_string(&golden_path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run hack/routing-golden.sh)",
                golden_path.display()
            )
        });
        if rendered.main != golden {
            let first = rendered
                .main
                .lines()
                .zip(golden.lines())
                .position(|(a, b)| a != b)
                .map_or("length".to_string(), |i| format!("line {}", i + 1));
            panic!(
                "{} differs from the render at {first}; if intended, run hack/routing-golden.sh and review",
                golden_path.display()
            );
        }
    }
}

/// Rendering is deterministic and independent of input order.
#[test]
fn render_is_order_independent() {
    for input in cases() {
        let cfg = load(&input);
        let mut shuffled = cfg.clone();
        shuffled.links.reverse();
        shuffled.own_prefixes.reverse();
        shuffled.blackholes.reverse();
        for l in &mut shuffled.links {
            l.export.prefixes.reverse();
            l.export.communities.reverse();
        }
        let a = render(&cfg).unwrap();
        let b = render(&shuffled).unwrap();
        assert_eq!(a.main, b.main, "{}", input.display());
        assert_eq!(a.config_hash(), b.config_hash());
    }
}

/// Each golden file parses with the real `bird -p` (secrets file beside it).
#[test]
fn golden_files_parse_with_bird() {
    let tmp = std::env::temp_dir().join(format!("gw-golden-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for input in cases() {
        let rendered = render(&load(&input)).unwrap();
        let conf = tmp.join(input.with_extension("conf").file_name().unwrap());
        std::fs::copy(input.with_extension("conf"), &conf).unwrap();
        std::fs::write(tmp.join(&rendered.secrets_file), &rendered.secrets).unwrap();
        let out = Command::new("bird")
            .arg("-p")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("`bird` must be installed: run hack/deps/routing.sh");
        assert!(
            out.status.success(),
            "bird -p {}: {}",
            conf.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// Secrets stay out of the main file; the hash still changes with them.
#[test]
fn passwords_only_in_secrets_file() {
    let input = golden_dir().join("full.json");
    let cfg = load(&input);
    let rendered = render(&cfg).unwrap();
    assert!(!rendered.main.contains("not-a-real-secret"));
    assert!(rendered.secrets.contains("not-a-real-secret"));
    assert!(!format!("{rendered:?}").contains("not-a-real-secret"));
    assert!(
        rendered
            .main
            .lines()
            .any(|l| l == "include \"groundwork-secrets.conf\";")
    );

    let mut changed = cfg.clone();
    changed.links[0].password = Some(routing::Password::new("another-one"));
    let other = render(&changed).unwrap();
    assert_eq!(rendered.main, other.main);
    assert_ne!(rendered.config_hash(), other.config_hash());
}

/// Invalid input never renders.
#[test]
fn invalid_input_is_rejected_with_reason() {
    let mut cfg = load(&golden_dir().join("minimal.json"));
    cfg.links[0]
        .export
        .prefixes
        .push("198.51.100.0/24".parse().unwrap());
    let err = render(&cfg).unwrap_err();
    assert_eq!(err.reason(), "ExportPrefixNotOwned");
}

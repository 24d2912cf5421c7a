//! The controller's container image, built with no container engine (`hack/image/build.sh`):
//! - two builds of one commit give the same image digest and the same archive bytes;
//! - its config: user 65532:65532, the controller as entrypoint, no command, port 8080;
//! - its one layer (read from the archive, not from the build's scratch files): the static
//!   controller and edge daemon, ipmitool with its libraries, the iPXE binaries where the
//!   controller looks for them, the CA bundle, and no shell at all;
//! - the controller carries CAP_NET_BIND_SERVICE and CAP_NET_RAW as permitted file
//!   capabilities (the boot services raise them), the edge none;
//! - ipmitool and the controller run from the layer's own files (`chroot`, as UID 65532);
//! - the Containerfile builds the same thing: it runs the same rootfs script, from scratch,
//!   with the same user, entrypoint, port and labels.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::netlab::run;
use e2e::repo_root;
use serde_json::Value;

/// One `hack/image/build.sh DIR` run: (archive, digest, ref).
fn build(dir: &Path) -> (PathBuf, String, String) {
    let line = run(Command::new(repo_root().join("hack/image/build.sh")).arg(dir));
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts.len(), 3, "build.sh printed {line:?}");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

fn sha256(path: &Path) -> String {
    run(Command::new("sha256sum").arg(path))[..64].to_string()
}

/// A blob of the OCI layout at `layout` by its digest (`sha256:…`).
fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Runs `args` inside `root` as UID/GID 65532.
fn chrooted(root: &Path, args: &[&str]) -> String {
    run(Command::new("chroot")
        .arg("--userspec=65532:65532")
        .arg(root)
        .args(args))
}

#[test]
fn the_image_is_reproducible_minimal_and_what_the_containerfile_builds() {
    let scratch = std::env::temp_dir().join(format!("gw-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let (a, digest_a, reference) = build(&scratch.join("a"));
    let (b, digest_b, _) = build(&scratch.join("b"));
    assert!(digest_a.starts_with("sha256:"), "{digest_a}");
    assert_eq!(digest_a, digest_b, "two builds of one commit");
    assert_eq!(sha256(&a), sha256(&b), "the archives differ");

    // The archive is an OCI layout: index → manifest → config and one layer.
    let layout = scratch.join("unpacked");
    std::fs::create_dir_all(&layout).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&a)
        .arg("-C")
        .arg(&layout));
    assert!(layout.join("oci-layout").exists());
    let index = json(&layout.join("index.json"));
    let entry = &index["manifests"][0];
    assert_eq!(entry["digest"], digest_a.as_str());
    assert_eq!(
        entry["annotations"]["io.containerd.image.name"],
        reference.as_str()
    );
    let manifest = json(&blob(&layout, entry["digest"].as_str().unwrap()));
    let config = json(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let c = &config["config"];
    assert_eq!(c["User"], "65532:65532");
    assert_eq!(
        c["Entrypoint"],
        serde_json::json!(["/usr/local/bin/groundwork-controller"])
    );
    assert!(c["Cmd"].is_null(), "{c}");
    assert!(c["ExposedPorts"]["8080/tcp"].is_object(), "{c}");
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");

    let root = scratch.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let layer = blob(&layout, layers[0]["digest"].as_str().unwrap());
    run(Command::new("tar")
        .args(["--xattrs", "--xattrs-include=security.capability", "-xzf"])
        .arg(&layer)
        .arg("-C")
        .arg(&root));
    // The boot services' capabilities, permitted (not effective) on the controller only.
    let caps = run(Command::new("getcap")
        .arg(root.join("usr/local/bin/groundwork-controller"))
        .arg(root.join("usr/local/bin/groundwork-edge")));
    assert_eq!(
        caps.trim(),
        format!(
            "{} cap_net_bind_service,cap_net_raw=p",
            root.join("usr/local/bin/groundwork-controller").display()
        ),
        "file capabilities: {caps}"
    );
    let listing = run(Command::new("tar").arg("-tzvf").arg(&layer));
    for line in listing.lines() {
        assert!(line.contains(" 0/0 "), "not owned by root: {line}");
    }
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for shell in ["sh", "bash", "dash", "ash", "busybox", "zsh"] {
        assert!(
            !names.iter().any(|n| n.rsplit('/').next() == Some(shell)),
            "a shell in the image: {shell}: {names:?}"
        );
    }
    for path in [
        "usr/lib/ipxe/undionly.kpxe",
        "usr/lib/ipxe/ipxe.efi",
        "etc/ssl/certs/ca-certificates.crt",
        "etc/passwd",
    ] {
        assert!(root.join(path).is_file(), "{path} missing");
    }
    for bin in ["groundwork-controller", "groundwork-edge"] {
        let kind = run(Command::new("file")
            .arg("-b")
            .arg(root.join("usr/local/bin").join(bin)));
        assert!(
            kind.contains("statically linked") || kind.contains("static-pie"),
            "{bin}: {kind}"
        );
    }
    // Both run from the image's own files, as the image's user.
    let ipmitool = chrooted(&root, &["/usr/bin/ipmitool", "-V"]);
    assert!(ipmitool.starts_with("ipmitool version"), "{ipmitool}");
    // The edge daemon's syntax check: `bird -p` parses a configuration and exits.
    std::fs::write(
        root.join("tmp-check.conf"),
        "router id 192.0.2.1;\nprotocol device {}\n",
    )
    .unwrap();
    chrooted(&root, &["/usr/sbin/bird", "-p", "-c", "/tmp-check.conf"]);
    std::fs::remove_file(root.join("tmp-check.conf")).unwrap();
    let help = chrooted(&root, &["/usr/local/bin/groundwork-controller", "--help"]);
    assert!(help.contains("--boot-services"), "{help}");

    // The Containerfile: the same rootfs script, from scratch, the same config.
    let containerfile = std::fs::read_to_string(repo_root().join("Containerfile")).unwrap();
    let build_sh = std::fs::read_to_string(repo_root().join("hack/image/build.sh")).unwrap();
    let final_stage = containerfile.rsplit("\nFROM ").next().unwrap();
    assert!(final_stage.starts_with("scratch\n"), "{final_stage}");
    assert!(containerfile.contains("COPY hack/image/rootfs.sh"));
    assert!(containerfile.contains("RUN /usr/local/bin/rootfs.sh /rootfs /bins"));
    assert!(final_stage.contains("COPY --from=rootfs /rootfs/ /"));
    assert!(final_stage.contains("USER 65532:65532"));
    assert!(final_stage.contains("EXPOSE 8080"));
    assert!(final_stage.contains(r#"ENTRYPOINT ["/usr/local/bin/groundwork-controller"]"#));
    let labels = &config["config"]["Labels"];
    for (key, value) in labels.as_object().unwrap() {
        let value = value.as_str().unwrap();
        assert!(
            final_stage.contains(&format!("{key}=\"{value}\"")),
            "label {key} differs from the Containerfile's"
        );
        assert!(build_sh.contains(key), "{key}");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

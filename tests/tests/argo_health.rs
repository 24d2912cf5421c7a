//! The Argo CD health checks (`charts/groundwork/health/groundwork.lua`) against their sample objects,
//! run by Lua 5.1 (Argo CD's dialect). Fails when `lua5.1` is missing (`hack/deps/lua.sh`
//! installs it) or when any case fails: it never skips.
#![allow(clippy::expect_used)]

use std::process::Command;

#[test]
fn argo_cd_health_checks_pass_every_sample() {
    let root = e2e::repo_root();
    let out = Command::new("lua5.1")
        .arg("charts/groundwork/health/test.lua")
        .current_dir(&root)
        .output()
        .expect("lua5.1 is not installed: run hack/deps/lua.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "health checks failed ({}):\n{stdout}{stderr}",
        out.status
    );
    // Five kinds, each against every fixture: a runner that silently ran nothing must fail.
    assert!(
        stdout.contains(" cases, 0 failed")
            && stdout.lines().filter(|l| l.starts_with("ok   ")).count() >= 50,
        "unexpected runner output:\n{stdout}{stderr}"
    );
}

//! The rack view (`/racks`) rendered by a real browser: headless Chromium loads the page the
//! controller serves against the real API server, every Server is drawn once at its U, and a
//! screenshot is kept as `target/artifacts/rack-view.png`.
//!
//! Needs `/usr/bin/chromium` (`hack/deps/chromium.sh`); fails without it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crds::{Rack, Server};
use e2e::{RunningController, admin_client, apply_doc, eventually, namespace, repo_root};
use kube::api::{Api, ListParams};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";

/// The servers the test racks: (name, rackUnit, heightU).
const SERVERS: [(&str, u32, u32); 3] = [("rv-u01", 1, 1), ("rv-u02", 2, 2), ("rv-u10", 10, 1)];

/// Every `<name ...>` opening tag in `dom`, as its attributes.
fn tags(dom: &str, name: &str) -> Vec<BTreeMap<String, String>> {
    let open = format!("<{name} ");
    dom.match_indices(&open)
        .map(|(at, _)| {
            let rest = &dom[at + open.len()..];
            let tag = &rest[..rest.find('>').unwrap()];
            let mut attrs = BTreeMap::new();
            let mut s = tag.trim_end_matches('/').trim();
            while let Some(eq) = s.find("=\"") {
                let key = s[..eq].trim().to_string();
                let value_and_rest = &s[eq + 2..];
                let end = value_and_rest.find('"').unwrap();
                attrs.insert(key, value_and_rest[..end].to_string());
                s = value_and_rest[end + 1..].trim_start();
            }
            attrs
        })
        .collect()
}

fn num(attrs: &BTreeMap<String, String>, key: &str) -> f64 {
    attrs
        .get(key)
        .unwrap_or_else(|| panic!("attribute {key} missing in {attrs:?}"))
        .parse()
        .unwrap()
}

/// Runs headless Chromium with the flags every run shares, a fresh profile, and `args`.
async fn chromium(args: &[String]) -> std::process::Output {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run hack/deps/chromium.sh"
    );
    let profile = std::env::temp_dir().join(format!(
        "rack-view-chromium-{}-{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    ));
    std::fs::create_dir_all(&profile).unwrap();
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium did not finish within 90 s")
        .expect("chromium could not be started");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rack_view_draws_every_server_at_its_u_in_a_browser() {
    let client = admin_client().await;
    let ns = namespace(&client, "rack-view").await;
    apply_doc(
        &client,
        &ns,
        json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": "rv"},
            "spec": {
                "location": {"site": "e2e", "room": "hall-1", "row": "R", "position": "07"},
                "heightU": 12,
                "power": {"budgetWatts": 2000},
                "torSwitches": [{"name": "rv-tor1", "model": "Edgecore AS7326-56X", "rackUnit": 12}],
                "networks": {"provisioning": {"subnet": "10.10.0.0/24", "gateway": "10.10.0.1"}}
            }
        }),
    )
    .await
    .unwrap();
    for (name, unit, height) in SERVERS {
        apply_doc(
            &client,
            &ns,
            json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": name},
                "spec": {"rackRef": {"name": "rv"}, "rackUnit": unit, "heightU": height,
                    "online": false, "maxPowerWatts": 400 * height}
            }),
        )
        .await
        .unwrap();
    }
    let mut link = e2e::example_documents()
        .into_iter()
        .find(|d| d["kind"] == "UpstreamLink")
        .unwrap();
    link["metadata"]["name"] = "rv-isp".into();
    apply_doc(&client, &ns, link).await.unwrap();

    let running = RunningController::start(client.clone(), &ns).await;
    // Let the controller report, so the page shows states and power.
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "rack and servers to report",
        || {
            let (racks, servers) = (racks.clone(), servers.clone());
            async move {
                let rack = racks.get("rv").await.ok()?;
                let power = rack.status.as_ref()?.power.as_ref()?.declared_watts;
                let listed = servers.list(&ListParams::default()).await.ok()?;
                let reported = listed
                    .items
                    .iter()
                    .filter(|s| s.status.as_ref().is_some_and(|st| st.state.is_some()))
                    .count();
                (power == 1600 && reported == SERVERS.len()).then_some(())
            }
        },
    )
    .await;

    // The HTTP server the binary runs, with the state it builds.
    let app = running.app.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let http = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for url in [
        format!("http://{addr}/racks"),
        format!("http://{addr}/racks/{ns}/rv"),
    ] {
        let dom = chromium(&["--dump-dom".into(), url.clone()]).await;
        let dom = String::from_utf8(dom.stdout).unwrap();
        assert!(dom.contains("<svg"), "no SVG at {url}:\n{dom}");

        let rects = tags(&dom, "rect");
        let rows: BTreeMap<u32, (f64, f64)> = rects
            .iter()
            .filter_map(|r| {
                let u = r.get("data-row")?.parse().ok()?;
                Some((u, (num(r, "y"), num(r, "height"))))
            })
            .collect();
        assert_eq!(
            rows.keys().copied().collect::<Vec<_>>(),
            (1..=12).collect::<Vec<_>>(),
            "one row per U at {url}"
        );
        let drawn: Vec<&BTreeMap<String, String>> = rects
            .iter()
            .filter(|r| r.contains_key("data-server"))
            .collect();
        assert_eq!(
            drawn.len(),
            SERVERS.len(),
            "one data-server element per Server at {url}: {drawn:?}"
        );
        for (name, unit, height) in SERVERS {
            let mine: Vec<_> = drawn.iter().filter(|r| r["data-server"] == name).collect();
            assert_eq!(mine.len(), 1, "{name} drawn once at {url}");
            let rect = mine[0];
            assert_eq!(rect["data-u"], unit.to_string(), "{name}'s data-u at {url}");
            // The rectangle covers exactly the rows of U`unit` .. U`unit + height - 1`.
            let top = rows[&(unit + height - 1)];
            let bottom = rows[&unit];
            let (y, h) = (num(rect, "y"), num(rect, "height"));
            assert!(
                y >= top.0 && y < top.0 + top.1,
                "{name} starts in the row of U{}: y={y}, row {top:?}",
                unit + height - 1
            );
            assert!(
                y + h > bottom.0 && y + h <= bottom.0 + bottom.1,
                "{name} ends in the row of U{unit}: y+h={}, row {bottom:?}",
                y + h
            );
        }
        let switches: Vec<_> = rects
            .iter()
            .filter(|r| r.contains_key("data-switch"))
            .collect();
        assert_eq!(switches.len(), 1);
        assert_eq!(switches[0]["data-u"], "12");
        assert!(dom.contains("<b>1600</b> W declared of <b>2000</b> W budget"));
        assert!(dom.contains("data-link=\"rv-isp\""));
        assert!(dom.contains("AS64500"));
    }

    let artifacts: PathBuf = repo_root().join("target").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let png = artifacts.join("rack-view.png");
    let _ = std::fs::remove_file(&png);
    chromium(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1200,1600".into(),
        format!("http://{addr}/racks/{ns}/rv"),
    ])
    .await;
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        png.display()
    );
    assert!(bytes.len() > 10_000, "screenshot suspiciously small");

    http.abort();
    running.stop().await;
}

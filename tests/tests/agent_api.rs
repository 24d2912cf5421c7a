//! The agent API (gRPC) against the real controller: the boot token is traded for a per-server
//! credential, and a credential only ever acts on its own Server. The client is the generated
//! tonic client the agent uses, over TLS to the CA pinned in the iPXE script; the IPMI BMC
//! simulator takes the network-boot requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../bmc/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::time::Duration;

use agent::run::{RetryPolicy, RunError};
use common::IpmiSim;
use crds::{Server, ServerState};
use e2e::netlab::NetLab;
use e2e::{RunningController, admin_client, eventually, inspection_site, namespace, wait_state};
use kube::api::{Api, Patch, PatchParams};
use proto::agent_v1::agent_client::AgentClient;
use proto::agent_v1::{Disk, Inventory, NextTaskRequest, Nic, RegisterRequest, TaskResult, task};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::json;
use tonic::Code;
use tonic::metadata::MetadataValue;

const MAC_X: &str = "52:54:00:64:00:01";
const MAC_Y: &str = "52:54:00:64:00:02";

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Boot services on loopback ports (no DHCP): the flags, the HTTP boot and agent API ports.
fn loopback_boot_flags(lab: &NetLab) -> (Vec<String>, u16, u16) {
    let (http, grpc, tftp) = (free_tcp_port(), free_tcp_port(), free_tcp_port());
    let flags = vec![
        "--boot-services".to_string(),
        "--boot-http-addr".into(),
        format!("127.0.0.1:{http}"),
        "--agent-grpc-addr".into(),
        format!("127.0.0.1:{grpc}"),
        "--tftp-addr".into(),
        format!("127.0.0.1:{tftp}"),
        "--boot-token-key-file".into(),
        lab.token_key().to_str().unwrap().into(),
    ];
    (flags, http, grpc)
}

/// The agent's parameters from the kernel command line of `MAC_X`'s iPXE script, read by the
/// agent's own parser.
async fn kernel_params(http: u16) -> agent::cmdline::BootParams {
    kernel_params_of(http, MAC_X).await
}

/// The same for any MAC.
/// The iPXE script for `mac`, once the boot services have read the site (they answer 503
/// until then, which a firmware retries).
async fn boot_script(http: u16, mac: &str) -> String {
    let url = format!("http://127.0.0.1:{http}/boot/{mac}.ipxe");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let answer = reqwest::get(&url).await.unwrap();
        if answer.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return answer.text().await.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the boot services answered 503 for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn kernel_params_of(http: u16, mac: &str) -> agent::cmdline::BootParams {
    let script = boot_script(http, mac).await;
    let kernel_line = script.lines().find(|l| l.starts_with("kernel ")).unwrap();
    agent::cmdline::parse(kernel_line).expect("groundwork.agent on the command line")
}

/// One Server `name` with MAC_X behind an IPMI simulator, inspecting, and the controller with
/// its boot services on loopback.
struct Inspecting {
    _ipmi: IpmiSim,
    _lab: NetLab,
    client: kube::Client,
    ns: String,
    controller: RunningController,
    http: u16,
    grpc: u16,
}

async fn one_inspecting(prefix: &str, subnet: &str, name: &str) -> Inspecting {
    let ipmi = IpmiSim::start(1, "admin", "lab-password");
    let client = admin_client().await;
    let ns = namespace(&client, prefix).await;
    let lab = NetLab::new();
    let (flags, http, grpc) = loopback_boot_flags(&lab);
    inspection_site(&client, &ns, subnet, &[(name, MAC_X, ipmi.address(0))]).await;
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    wait_state(&client, &ns, &[name], ServerState::Inspecting).await;
    Inspecting {
        _ipmi: ipmi,
        _lab: lab,
        client,
        ns,
        controller,
        http,
        grpc,
    }
}

fn with_credential<T>(message: T, credential: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {credential}")).unwrap(),
    );
    req
}

fn inventory() -> Inventory {
    Inventory {
        cpu_count: 4,
        cpu_model: "QEMU Virtual CPU".into(),
        memory_bytes: 2 << 30,
        disks: vec![Disk {
            name: "vda".into(),
            size_bytes: 16 << 30,
            serial_number: "gw-x".into(),
            ..Default::default()
        }],
        nics: vec![Nic {
            name: "eth0".into(),
            mac: MAC_X.into(),
            link_up: true,
            ..Default::default()
        }],
        dmi: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_trade_boot_tokens_for_credentials_that_act_only_on_their_own_server() {
    let ipmi = IpmiSim::start(2, "admin", "lab-password");
    let client = admin_client().await;
    let ns = namespace(&client, "agentapi").await;
    let lab = NetLab::new();
    let (flags, http, grpc) = loopback_boot_flags(&lab);
    inspection_site(
        &client,
        &ns,
        "10.64.0.0/24",
        &[("x", MAC_X, ipmi.address(0)), ("y", MAC_Y, ipmi.address(1))],
    )
    .await;
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    wait_state(&client, &ns, &["x", "y"], ServerState::Inspecting).await;
    // The boot token and the CA pin, as iPXE would get them in x's script.
    let params = kernel_params(http).await;
    assert_eq!(params.agent, format!("https://127.0.0.1:{grpc}"));
    let token = params.token.clone();
    assert!(!token.is_empty(), "ramdisk script with a token");
    let mut agent = AgentClient::new(
        agent::run::channel(&params, RetryPolicy::default())
            .await
            .unwrap(),
    );
    let register = |server: String, token: String| RegisterRequest {
        server,
        boot_token: token,
        boot_mac: MAC_X.into(),
        inventory: Some(inventory()),
    };

    // x's token does not register y; a made-up token does not register x.
    let as_y = agent
        .register(register(format!("{ns}/y"), token.clone()))
        .await;
    assert_eq!(as_y.unwrap_err().code(), Code::PermissionDenied);
    let forged = agent
        .register(register(format!("{ns}/x"), "00".repeat(32)))
        .await;
    assert_eq!(forged.unwrap_err().code(), Code::PermissionDenied);
    let registered = agent
        .register(register(format!("{ns}/x"), token.clone()))
        .await
        .unwrap()
        .into_inner();
    let credential = registered.credential;
    assert!(credential.starts_with(&format!("{ns}/x:")));

    // The inventory lands in x's status and inspection completes.
    let x = eventually(Duration::from_secs(30), "x inspected", || async {
        let s = api.get("x").await.ok()?;
        let st = s.status.clone()?;
        (st.state? == ServerState::Available && st.hardware.is_some()).then_some(s)
    })
    .await;
    let hw = x.status.unwrap().hardware.unwrap();
    assert_eq!(
        (hw.cpu_count, hw.disks[0].serial_number.as_deref()),
        (4, Some("gw-x"))
    );

    // Its next task is to power off; the credential acts on x only.
    let next = agent
        .next_task(with_credential(NextTaskRequest {}, &credential))
        .await
        .unwrap()
        .into_inner();
    assert!(
        matches!(next.kind, Some(task::Kind::PowerOff(_))),
        "{next:?}"
    );
    let y = api.get("y").await.unwrap();
    let y_uid = y.metadata.uid.clone().unwrap();
    let y_attempt = y.status.unwrap().boot_attempt.unwrap().id;
    // x's own task id is accepted...
    agent
        .report_result(with_credential(
            TaskResult {
                task_id: next.id.clone(),
                ok: true,
                ..Default::default()
            },
            &credential,
        ))
        .await
        .unwrap();
    // ... y's (same attempt name, other server) is not.
    let on_y = agent
        .report_result(with_credential(
            TaskResult {
                task_id: format!("{y_uid}/{y_attempt}/inspect"),
                ok: true,
                ..Default::default()
            },
            &credential,
        ))
        .await;
    assert_eq!(on_y.unwrap_err().code(), Code::PermissionDenied);
    // x's credential with y's name is refused, as is no credential at all.
    let (_, mac) = credential.rsplit_once(':').unwrap();
    let as_y = agent
        .next_task(with_credential(
            NextTaskRequest {},
            &format!("{ns}/y:{mac}"),
        ))
        .await;
    assert_eq!(as_y.unwrap_err().code(), Code::Unauthenticated);
    let anonymous = agent.next_task(NextTaskRequest {}).await;
    assert_eq!(anonymous.unwrap_err().code(), Code::Unauthenticated);
    // The token was for one attempt: registering again is refused.
    let again = agent.register(register(format!("{ns}/x"), token)).await;
    assert_eq!(again.unwrap_err().code(), Code::FailedPrecondition);
    let y = api.get("y").await.unwrap();
    assert_eq!(
        y.status.unwrap().state,
        Some(ServerState::Inspecting),
        "y untouched"
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_registers_this_machines_inventory_and_is_told_to_power_off() {
    let Inspecting {
        _ipmi,
        _lab,
        client,
        ns,
        controller,
        http,
        grpc,
    } = one_inspecting("agentrun", "10.65.0.0/24", "z").await;

    // The kernel command line iPXE would boot with: TLS, the CA pinned.
    let params = kernel_params(http).await;
    assert_eq!(params.agent, format!("https://127.0.0.1:{grpc}"));
    assert!(params.ca.starts_with("sha256:"), "{params:?}");
    // This machine's real /proc and /sys stand in for the ramdisk's.
    let inventory = agent::inventory::collect("/proc".as_ref(), "/sys".as_ref());
    let cpus = inventory.cpu_count;
    assert!(cpus >= 1 && inventory.memory_bytes > 0);
    let outcome = agent::run::run(
        &params,
        inventory,
        MAC_X,
        &agent::run::RunOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(outcome, agent::run::Outcome::PowerOff);

    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let z = eventually(
        Duration::from_secs(30),
        "z inspected by the agent",
        || async {
            let s = api.get("z").await.ok()?;
            let st = s.status.clone()?;
            (st.state? == ServerState::Available && st.hardware.is_some()).then_some(st)
        },
    )
    .await;
    let hw = z.hardware.unwrap();
    assert_eq!(hw.cpu_count, cpus);
    assert!(hw.memory_bytes > 0);
    controller.stop().await;
}

/// A replica that recorded the call-back and died (or was too slow) before its answer left:
/// the agent's retry of Register, on this or another replica, is answered with the same
/// credential (provision step 7 saw it refused as a closed attempt, and the agent gave up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_whose_answer_was_lost_is_answered_again() {
    let Inspecting {
        _ipmi,
        _lab,
        client,
        ns,
        controller,
        http,
        ..
    } = one_inspecting("agentagain", "10.68.0.0/24", "r").await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    // Hands off: the reconciler would end the inspection on the call-back; the attempt stays
    // open as a cleaning or provisioning one does until the agent's result.
    api.patch(
        "r",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {crds::annotations::PAUSED: "test"}}})),
    )
    .await
    .unwrap();
    let params = kernel_params(http).await;
    let mut agent = AgentClient::new(
        agent::run::channel(&params, RetryPolicy::default())
            .await
            .unwrap(),
    );
    let register = || RegisterRequest {
        server: params.server.clone(),
        boot_token: params.token.clone(),
        boot_mac: MAC_X.into(),
        inventory: Some(inventory()),
    };
    let first = agent.register(register()).await.unwrap().into_inner();
    // The boot services' cache has the call-back once r's script boots the disk (the same
    // cache answers Register): the retry meets a called-back attempt, as after a restart.
    eventually(
        Duration::from_secs(30),
        "the boot services to see r called back",
        || async { (!boot_script(http, MAC_X).await.contains("kernel ")).then_some(()) },
    )
    .await;
    let called_back = api.get("r").await.unwrap().status.unwrap().boot_progress;
    let called_back = called_back.and_then(|p| p.called_back_at);
    assert!(called_back.is_some());
    // The answer was lost; the agent asks again.
    let again = agent.register(register()).await.unwrap().into_inner();
    assert_eq!(again.credential, first.credential);
    assert_eq!(again.server_uid, first.server_uid);
    // Nothing recorded twice; still the same open attempt.
    let st = api.get("r").await.unwrap().status.unwrap();
    assert_eq!(st.boot_progress.and_then(|p| p.called_back_at), called_back);
    assert_eq!(st.state, Some(ServerState::Inspecting));

    // Once the agent's result is in, the token registers nothing more.
    let next = agent
        .next_task(with_credential(NextTaskRequest {}, &first.credential))
        .await
        .unwrap()
        .into_inner();
    agent
        .report_result(with_credential(
            TaskResult {
                task_id: next.id,
                ok: true,
                ..Default::default()
            },
            &first.credential,
        ))
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "Register refused after the result",
        || async {
            let refused = agent.clone().register(register()).await.err()?;
            (refused.code() == Code::FailedPrecondition).then_some(())
        },
    )
    .await;
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_refuses_a_controller_whose_ca_is_not_the_pinned_one() {
    let Inspecting {
        _ipmi,
        _lab,
        client,
        ns,
        controller,
        http,
        ..
    } = one_inspecting("agentpin", "10.66.0.0/24", "p").await;

    // The served CA is the pinned one...
    let mut params = kernel_params(http).await;
    let pem = reqwest::get(format!("http://127.0.0.1:{http}/boot/ca.crt"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(params.ca, proto::ca_pin(&der));
    // ... but this agent was told another one (a controller impersonated, or a stale script).
    params.ca = proto::ca_pin(b"another CA");
    let inventory = agent::inventory::collect("/proc".as_ref(), "/sys".as_ref());
    let refused = agent::run::run(
        &params,
        inventory,
        MAC_X,
        &agent::run::RunOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.reason(), "CAFingerprintMismatch", "{refused}");
    assert!(matches!(refused, RunError::CAFingerprintMismatch { .. }));

    // It never registered: no call-back, still inspecting.
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let st = api.get("p").await.unwrap().status.unwrap();
    assert_eq!(st.state, Some(ServerState::Inspecting));
    assert!(
        st.boot_progress
            .as_ref()
            .is_none_or(|p| p.called_back_at.is_none()),
        "{:?}",
        st.boot_progress
    );
    controller.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_machine_enrols_itself_as_a_discovered_server() {
    const UNKNOWN: &str = "52:54:00:64:00:99";
    let client = admin_client().await;
    let ns = namespace(&client, "enroll").await;
    let lab = NetLab::new();
    let (mut flags, http, _) = loopback_boot_flags(&lab);
    // Without auto-enrolment an unknown machine is sent to its disk.
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let script = boot_script(http, UNKNOWN).await;
    assert!(script.contains("\nexit\n"), "{script}");
    controller.stop().await;

    flags.push("--auto-enroll".into());
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let params = kernel_params_of(http, UNKNOWN).await;
    assert_eq!(
        (params.server.as_str(), params.mode.as_str()),
        ("-", "discover")
    );
    let inventory = agent::inventory::collect("/proc".as_ref(), "/sys".as_ref());
    let cpus = inventory.cpu_count;
    let options = agent::run::RunOptions::default();
    // Twice: the second registration finds the Server the first one created.
    for _ in 0..2 {
        let outcome = agent::run::run(&params, inventory.clone(), UNKNOWN, &options)
            .await
            .unwrap();
        assert_eq!(outcome, agent::run::Outcome::PowerOff);
    }
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let servers = api.list(&Default::default()).await.unwrap().items;
    assert_eq!(servers.len(), 1, "{servers:?}");
    let s = &servers[0];
    assert_eq!(s.metadata.name.as_deref(), Some("discovered-525400640099"));
    assert_eq!(s.spec.boot_mac_address.as_deref(), Some(UNKNOWN));
    assert!(s.spec.bmc.is_none() && s.spec.rack_ref.is_none());
    let st = eventually(
        Duration::from_secs(30),
        "Discovered with its inventory",
        || async {
            let st = api.get("discovered-525400640099").await.ok()?.status?;
            (st.state == Some(ServerState::Discovered)).then_some(st)
        },
    )
    .await;
    assert_eq!(st.hardware.unwrap().cpu_count, cpus);
    // Now known: its next netboot is sent to its disk.
    let script = boot_script(http, UNKNOWN).await;
    assert!(script.contains("\nexit\n"), "{script}");
    controller.stop().await;
}

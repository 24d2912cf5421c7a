//! The Server reconciler: read → validate → decide → apply. This slice resolves
//! references and keeps the state machine; BMC, boot and provisioning work plug into decide.

mod action;
mod decide;
mod lifecycle;
mod observe;
mod read;
mod refresh;
mod standby;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use crds::Server;
use crds::server::{NODE_NETWORK, PowerState, StandbyPolicy, SystemIdentity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{debug, info, warn};

pub use read::secret_refs;

use crate::reconcilers::apply;
use crate::reconcilers::context::Context;
use crate::reconcilers::reconcile::{self, Admission, Error};

/// Kind name for logs and metric labels.
pub const KIND: &str = "Server";

/// Reconciles one Server: read → validate → observe the BMC → decide → write status → act.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Server>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let server = match reconcile::admit(&ctx, KIND, &obj, &ctx.servers).await {
        Admission::Proceed(server) => server,
        Admission::Done(action) => return Ok(action),
    };
    let started = Instant::now();
    let facts = read::read(&ctx, server);
    let rack_name = server.spec.rack_ref.as_ref().map(|r| r.name.as_str());
    let unresolved = validate::validate(rack_name, &facts);
    let bmc = if unresolved.is_empty() {
        observation(&ctx, server).await
    } else {
        decide::Bmc::Absent
    };
    let now = Time(jiff::Timestamp::now());
    let reboot = server
        .annotations()
        .get(crds::annotations::REBOOT)
        .map(String::as_str);
    let inspect = server
        .annotations()
        .get(crds::annotations::INSPECT)
        .map(String::as_str);
    let power_now = match &bmc {
        decide::Bmc::Observed { power, .. } => *power,
        _ => PowerState::Unknown,
    };
    let deleting = server.metadata.deletion_timestamp.is_some();
    let mut lc = lifecycle::Lifecycle {
        image: server.spec.image.as_ref(),
        externally_provisioned: server.spec.externally_provisioned,
        deleting,
        cleaning: server.spec.cleaning,
        boot_mac: server.spec.boot_mac_address.is_some(),
        allocation: Ok(None),
        timeout: ctx.ramdisk_timeout,
        spec_changed: server.status.as_ref().and_then(|s| s.observed_generation)
            != server.metadata.generation,
        standby: standby_gate(&ctx, server),
        heartbeat_timeout: ctx.standby_heartbeat_timeout,
        refresh: ramdisk_refresh(&ctx, server),
    };
    if lifecycle::needs_address(server.status.as_ref(), &lc) {
        lc.allocation = node_address(&ctx, server);
    }
    let mut inputs = decide::Inputs {
        generation: server.metadata.generation,
        unresolved: &unresolved,
        bmc,
        online: server.spec.online,
        reboot_request: reboot,
        inspect_request: inspect,
        boot_mac: server.spec.boot_mac_address.is_some(),
        discovered: server
            .annotations()
            .contains_key(crds::annotations::DISCOVERED),
        current: server.status.as_ref(),
        now: &now,
        lifecycle: lc,
    };
    let mut decision = decide::decide(&inputs, ctx.resync);
    // A plain power change is made before the status is written, and the power read once
    // more: when the BMC has settled, one status write records the change and its result.
    let acted = match decision.action {
        Some(a @ (action::PowerAction::On | action::PowerAction::Off)) => {
            let outcome = act(&ctx, server, a, power_now).await;
            if outcome.is_ok()
                && let Ok(now) = observe::power_state(&ctx, server).await
                && let decide::Bmc::Observed { power, .. } = &mut inputs.bmc
            {
                *power = power_of(now);
                decision = decide::decide(&inputs, ctx.resync);
                decision.action = None;
            }
            Some((a, outcome))
        }
        _ => None,
    };
    if let Some(t) = &decision.transition {
        info!(server = %server.name_any(), namespace = ?server.namespace(), from = ?t.from, to = ?t.to, "state transition");
        observe_lifecycle(&ctx, t, &decision.status);
    }
    // The boot services own status.bootProgress (another field manager): never write it.
    decision.status.boot_progress = None;
    let current = server.status.clone().map(|mut s| {
        s.boot_progress = None;
        s
    });
    let holds = holds_anything(&decision.status);
    if holds && !deleting {
        finalizer(&ctx, server, true).await?;
    }
    apply::status(&ctx, KIND, server, current.as_ref(), &decision.status).await?;
    let held_address = |s: &crds::server::ServerStatus| s.node_address().is_some();
    if server.status.as_ref().is_some_and(held_address) && !held_address(&decision.status) {
        info!(server = %server.name_any(), "node address released");
        ctx.ipam.release(&server.uid().unwrap_or_default());
    }
    if deleting && !holds {
        finalizer(&ctx, server, false).await?;
    }
    for (reason, note) in &decision.refused {
        warn!(server = %server.name_any(), reason, note, "request refused");
        kube_kit::events::publish(
            &ctx.recorder,
            server,
            EventType::Warning,
            reason,
            "Inspect",
            note.clone(),
        )
        .await;
    }
    let mut requeue = decision.requeue;
    let acted = match decision.action {
        Some(action) => Some((action, act(&ctx, server, action, power_now).await)),
        None => acted,
    };
    if let Some((action, outcome)) = acted {
        let (type_, note) = match &outcome {
            Ok(()) => (
                EventType::Normal,
                format!("{} requested through the BMC", action.reason()),
            ),
            Err(e) => (
                EventType::Warning,
                format!("{} failed: {e}", action.reason()),
            ),
        };
        info!(server = %server.name_any(), action = action.reason(), ok = outcome.is_ok(), "power action");
        kube_kit::events::publish(&ctx.recorder, server, type_, action.reason(), "Power", note)
            .await;
        if let Err(e) = outcome {
            ctx.metrics.failed(KIND, e.reason());
            requeue = decide::backoff(decision.status.error_count.saturating_add(1));
        }
    }
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(requeue))
}

/// Provisioning metrics at the transitions that end a phase.
fn observe_lifecycle(ctx: &Context, t: &decide::Transition, status: &crds::server::ServerStatus) {
    use crds::server::ServerState::{Deprovisioning, Error as Failed, Provisioned, Provisioning};
    match (t.from, t.to) {
        (Some(Provisioning), Provisioned) => {
            // The Provisioning phase and its sub-phases just closed: the last five entries
            // before the new state's own.
            let closed = status.phases.iter().rev().skip(1).take(5);
            for p in closed {
                if let Some(ms) = p.duration_ms {
                    ctx.metrics.phase(&p.name, ms as f64 / 1000.0);
                }
            }
        }
        (Some(Provisioning | Deprovisioning), Failed) => ctx
            .metrics
            .provisioning_failed(lifecycle::known_reason(status.last_error_reason.as_deref())),
        _ => {}
    }
}

/// A server that is (being) imaged or holds a node address keeps the finalizer.
fn holds_anything(status: &crds::server::ServerStatus) -> bool {
    use crds::server::ServerState::{Deprovisioning, Provisioned, Provisioning};
    matches!(
        status.state,
        Some(Provisioning | Provisioned | Deprovisioning)
    ) || status.node_address().is_some()
}

/// Adds or removes the Server finalizer (no write when it already is as wanted).
async fn finalizer(ctx: &Context, server: &Server, present: bool) -> Result<(), Error> {
    let mut finalizers = server.finalizers().to_vec();
    let has = finalizers.iter().any(|f| f == crds::SERVER_FINALIZER);
    if has == present {
        return Ok(());
    }
    if present {
        finalizers.push(crds::SERVER_FINALIZER.to_string());
    } else {
        finalizers.retain(|f| f != crds::SERVER_FINALIZER);
    }
    let api: kube::Api<Server> =
        kube::Api::namespaced(ctx.client.clone(), &server.namespace().unwrap_or_default());
    // The resourceVersion makes this a compare-and-swap on the list.
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": server.resource_version(),
        }
    });
    api.patch(
        &server.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(patch),
    )
    .await
    .map_err(Error::Kube)?;
    info!(server = %server.name_any(), present, "finalizer updated");
    Ok(())
}

/// Grants the server a node address from its Rack's node network: the subnet's address
/// number 10 + rack unit when free (stable across status loss), else the lowest free one.
/// Nothing is granted while the node network overlaps another Rack's network: the other
/// Rack's plan may hand out (or have handed out) the same address.
fn node_address(ctx: &Context, server: &Server) -> Result<Option<String>, (&'static str, String)> {
    let namespace = server.namespace().unwrap_or_default();
    let Some(rack_name) = server.spec.rack_ref.as_ref().map(|r| r.name.as_str()) else {
        return Ok(None);
    };
    let Some(rack) = ctx
        .racks
        .get(&ObjectRef::new(rack_name).within(&namespace))
        .and_then(|g| g.0.as_ref().ok().cloned())
    else {
        return Ok(None);
    };
    let Some(node) = rack.spec.networks.node.clone() else {
        return Ok(None);
    };
    let mut overlaps = crate::reconcilers::rack::overlaps(&ctx.racks, &rack);
    overlaps.retain(|o| o.network == "node");
    if !overlaps.is_empty() {
        return Err((
            crds::reasons::NETWORK_OVERLAP,
            format!(
                "{}: no node address is granted until one of the networks changes",
                crate::reconcilers::rack::describe(&overlaps)
            ),
        ));
    }
    let reserved: Vec<(String, String)> = node
        .reserved
        .iter()
        .map(|r| (r.start.clone(), r.end.clone()))
        .collect();
    let pool = crate::ipam::Pool::new(&node.subnet, &node.gateway, &node.dns, &reserved)
        .map_err(|e| ("InvalidIPPool", e.to_string()))?;
    let recorded: Vec<(std::net::IpAddr, String)> = ctx
        .servers
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| {
            s.spec
                .rack_ref
                .as_ref()
                .is_some_and(|r| r.name == rack_name)
        })
        .flat_map(|s| {
            let uid = s.uid().unwrap_or_default();
            s.status
                .iter()
                .flat_map(|st| st.addresses.iter())
                .filter(|a| a.network == NODE_NETWORK)
                .filter_map(move |a| a.address.parse().ok().map(|ip| (ip, uid.clone())))
                .collect::<Vec<_>>()
        })
        .collect();
    let preferred = server
        .spec
        .rack_unit
        .and_then(|u| pool.nth(crds::rack::RESERVED_HEAD.saturating_add(u)));
    ctx.ipam
        .allocate(
            &format!("{namespace}/{rack_name}"),
            &pool,
            &server.uid().unwrap_or_default(),
            preferred,
            &recorded,
        )
        .map(|ip| Some(ip.to_string()))
        .map_err(|e| (e.reason(), e.to_string()))
}

/// What the standby policy and the rack's power budget allow `server`, from the caches: the
/// rack's servers on for their own reasons commit their draw first, then the rack's servers on
/// standby hold seats in arrival order (`standby::gate`).
fn standby_gate(ctx: &Context, server: &Server) -> standby::Gate {
    let namespace = server.namespace().unwrap_or_default();
    let rack_name = server.spec.rack_ref.as_ref().map(|r| r.name.as_str());
    let rack = rack_name.and_then(|name| {
        ctx.racks
            .get(&ObjectRef::new(name).within(&namespace))
            .and_then(|g| g.0.as_ref().ok().cloned())
    });
    let rack_standby = rack.as_ref().and_then(|r| r.spec.standby.as_ref());
    let policy = StandbyPolicy::effective(server.spec.standby, rack_standby.map(|s| s.policy));
    if policy == crds::server::StandbyPolicy::Off || server.spec.externally_provisioned {
        return standby::Gate::Off;
    }
    let peers = rack_peers(ctx, server);
    let others: Vec<&Server> = peers.iter().filter_map(|g| g.0.as_ref().ok()).collect();
    let state = |s: &Server| s.status.as_ref().and_then(|st| st.state);
    let watts = |s: &Server| u64::from(s.spec.max_power_watts.unwrap_or(0));
    let limits = standby::Limits {
        budget_watts: rack
            .as_ref()
            .map_or(0, |r| u64::from(r.spec.power.budget_watts)),
        committed_watts: others
            .iter()
            .filter(|s| standby::committed(state(s), s.spec.online))
            .map(|s| watts(s))
            .sum(),
        max_servers: rack_standby.and_then(|s| s.max_servers),
    };
    let seated: Vec<standby::Seat<'_>> = others
        .iter()
        .filter(|s| state(s) == Some(crds::server::ServerState::Standby))
        .map(|s| seat(s))
        .collect();
    standby::gate(policy, limits, &seated, seat(server))
}

/// The other servers of `server`'s rack, from the cache (none for a server without a rack).
fn rack_peers(ctx: &Context, server: &Server) -> Vec<Arc<DeserializeGuard<Server>>> {
    let Some(rack) = server.spec.rack_ref.as_ref().map(|r| r.name.as_str()) else {
        return Vec::new();
    };
    let (namespace, me) = (server.namespace(), server.uid());
    ctx.servers
        .state()
        .into_iter()
        .filter(|g| {
            g.0.as_ref().is_ok_and(|s| {
                s.namespace() == namespace
                    && s.spec.rack_ref.as_ref().map(|r| r.name.as_str()) == Some(rack)
                    && s.uid() != me
            })
        })
        .collect()
}

/// Why `server`, on standby, goes back through the ramdisk now: its agent runs another ramdisk
/// than the one the boot services serve, and it holds its rack's refresh slot (`refresh.rs`).
fn ramdisk_refresh(ctx: &Context, server: &Server) -> Option<String> {
    let status = server.status.as_ref()?;
    if status.state != Some(crds::server::ServerState::Standby) || server.spec.image.is_some() {
        return None;
    }
    let attempt = status.boot_attempt.as_ref()?;
    let running = status
        .boot_progress
        .as_ref()
        .filter(|p| p.attempt == attempt.credential_attempt())
        .and_then(|p| p.ramdisk_version.as_deref());
    let served = ctx
        .ramdisk
        .version()
        .inspect_err(|e| warn!(server = %server.name_any(), error = %e, "ramdisk version unknown: no refresh"))
        .ok()?;
    let rack = format!(
        "{}/{}",
        server.namespace().unwrap_or_default(),
        server
            .spec
            .rack_ref
            .as_ref()
            .map_or("", |r| r.name.as_str())
    );
    if !refresh::due(running, &served) {
        ctx.refreshes.release(&rack, &server.name_any());
        return None;
    }
    let peers = rack_peers(ctx, server);
    let refreshing: Vec<&str> = peers
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| {
            let st = s.status.as_ref();
            refresh::refreshing(
                st.and_then(|x| x.state),
                st.and_then(|x| x.standby_since.as_ref()),
            )
        })
        .map(|s| s.metadata.name.as_deref().unwrap_or_default())
        .collect();
    match ctx
        .refreshes
        .claim(&rack, &server.name_any(), &refreshing, Instant::now())
    {
        Ok(()) => Some(format!(
            "the agent runs ramdisk {}, the boot services serve {served}: netbooting into the current one",
            running.unwrap_or_default()
        )),
        Err(holder) => {
            debug!(server = %server.name_any(), %holder, "ramdisk refresh waits for its rack's slot");
            None
        }
    }
}

/// A server's standby seat, as the budget rule reads it.
fn seat(s: &Server) -> standby::Seat<'_> {
    standby::Seat {
        name: s.metadata.name.as_deref().unwrap_or_default(),
        watts: s.spec.max_power_watts,
        since: s.status.as_ref().and_then(|st| st.standby_since.as_ref()),
    }
}

/// Performs a decided BMC action.
async fn act(
    ctx: &Context,
    server: &Server,
    action: action::PowerAction,
    power_now: PowerState,
) -> Result<(), observe::ObserveError> {
    match action {
        action::PowerAction::On => observe::power(ctx, server, bmc::PowerAction::On).await,
        action::PowerAction::Off => observe::power(ctx, server, bmc::PowerAction::Off).await,
        action::PowerAction::Reboot => observe::power(ctx, server, bmc::PowerAction::Cycle).await,
        action::PowerAction::Netboot => observe::netboot(ctx, server, power_now).await,
        action::PowerAction::DiskBoot => observe::disk_boot(ctx, server, power_now).await,
    }
}

fn power_of(power: bmc::PowerState) -> PowerState {
    match power {
        bmc::PowerState::On => PowerState::On,
        bmc::PowerState::Off => PowerState::Off,
        bmc::PowerState::Unknown => PowerState::Unknown,
    }
}

async fn observation(ctx: &Context, server: &Server) -> decide::Bmc {
    match observe::observe(ctx, server).await {
        None => decide::Bmc::Absent,
        Some(Ok(o)) => decide::Bmc::Observed {
            power: power_of(o.power),
            identity: o.identity.map(|i| SystemIdentity {
                manufacturer: i.manufacturer,
                model: i.model,
                serial_number: i.serial_number,
                uuid: i.uuid,
                bios_version: i.bios_version,
                bmc_firmware_version: i.bmc_firmware_version,
                mac_addresses: i.mac_addresses,
            }),
        },
        Some(Err(e)) => {
            let reason = e.reason();
            let credentials = matches!(&e, observe::ObserveError::CredentialsIncomplete(_))
                || matches!(
                    &e,
                    observe::ObserveError::Bmc(bmc::BmcError::AuthenticationFailed(_))
                );
            if credentials {
                decide::Bmc::CredentialsRejected {
                    reason,
                    message: e.to_string(),
                }
            } else {
                decide::Bmc::Unreachable {
                    reason,
                    message: e.to_string(),
                }
            }
        }
    }
}

/// Servers to re-check when a Secret changes: those that reference it.
pub fn referencing_secret(
    servers: &Store<DeserializeGuard<Server>>,
    namespace: &str,
    secret: &str,
) -> Vec<ObjectRef<DeserializeGuard<Server>>> {
    servers
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| secret_refs(s).iter().any(|(_, name)| name == secret))
        .map(|s| ObjectRef::new(&s.name_any()).within(namespace))
        .collect()
}

/// Servers to re-check when a Rack changes: those in it.
pub fn in_rack(
    servers: &Store<DeserializeGuard<Server>>,
    namespace: &str,
    rack: &str,
) -> Vec<ObjectRef<DeserializeGuard<Server>>> {
    servers
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| s.spec.rack_ref.as_ref().is_some_and(|r| r.name == rack))
        .map(|s| ObjectRef::new(&s.name_any()).within(namespace))
        .collect()
}

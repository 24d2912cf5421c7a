//! Decide stage (pure): from what was read, the GroundworkMachine's state, its status, and the
//! one write that moves it on (claim, Server intent, release, its own metadata and spec).

use crds::ConditionStatus::{False, True};
use crds::ServerState;
use crds::provider::{
    GroundworkMachineStatus, Initialization, MachineAddress, MachineState, ServerRef,
};
use crds::server::Server;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube_kit::conditions::{Blocker, Desired, kstatus, merge};

use super::select::NoFit;

/// The provider's condition types on a GroundworkMachine (besides the kstatus trio).
pub mod types {
    /// A Server is claimed for the Machine.
    pub const SERVER_CLAIMED: &str = "ServerClaimed";
    /// Cluster API's bootstrap data Secret is there and usable.
    pub const BOOTSTRAP_DATA_READY: &str = "BootstrapDataReady";
    /// The claimed Server is Provisioned.
    pub const SERVER_PROVISIONED: &str = "ServerProvisioned";
    /// `cluster.x-k8s.io/paused` or the Cluster's `spec.paused` (Cluster API contract).
    pub const PAUSED: &str = "Paused";
}

/// The provider's condition reasons.
pub mod reasons {
    /// No Machine owns the GroundworkMachine yet (Cluster API sets the owner reference).
    pub const WAITING_FOR_MACHINE: &str = "WaitingForMachine";
    /// No Server fits: the message names the failure domain and what was missing.
    pub const NO_MATCHING_SERVER: &str = "NoMatchingServer";
    /// A Server is claimed.
    pub const CLAIMED: &str = "Claimed";
    /// The bootstrap provider has not written the data Secret yet.
    pub const WAITING_FOR_BOOTSTRAP_DATA: &str = "WaitingForBootstrapData";
    /// The bootstrap data is not cloud-config (e.g. Ignition), which the NoCloud drive carries.
    pub const UNSUPPORTED_BOOTSTRAP_FORMAT: &str = "UnsupportedBootstrapFormat";
    /// The bootstrap data is in place.
    pub const BOOTSTRAP_DATA_AVAILABLE: &str = "BootstrapDataAvailable";
    /// The Server is being provisioned.
    pub const SERVER_PROVISIONING: &str = "ServerProvisioning";
    /// The Server is Provisioned.
    pub const SERVER_PROVISIONED: &str = "ServerProvisioned";
    /// The Server is being cleaned and returned to the pool.
    pub const RELEASING: &str = "Releasing";
    /// Paused (Cluster API).
    pub const PAUSED: &str = "Paused";
    /// Not paused.
    pub const NOT_PAUSED: &str = "NotPaused";
    /// The Server failed without giving a reason.
    pub const SERVER_ERROR: &str = "ServerError";
}

/// The owning Cluster API Machine, as far as the provider needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `Machine.spec.failureDomain`.
    pub failure_domain: Option<String>,
    /// `Machine.spec.bootstrap.dataSecretName`.
    pub data_secret: Option<String>,
}

/// The bootstrap data Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Not named yet, or named but not there yet.
    Waiting(String),
    /// Its `format` is not `cloud-config`.
    Unsupported(String),
    /// Usable: the Secret's name (its key `value` becomes the Server's user-data).
    Ready(String),
}

/// Everything decide looks at.
pub struct Facts<'a> {
    /// The GroundworkMachine's generation.
    pub generation: Option<i64>,
    /// Being deleted.
    pub deleting: bool,
    /// Carries the provider's finalizer.
    pub has_finalizer: bool,
    /// `spec.providerID`.
    pub provider_id: Option<&'a str>,
    /// Paused by Cluster API.
    pub paused: bool,
    /// The owning Machine; `None` until Cluster API sets the owner reference.
    pub owner: Option<Owner>,
    /// The Server claimed by this GroundworkMachine, if any.
    pub claimed: Option<&'a Server>,
    /// The Server to claim (or why none fits), when none is claimed.
    pub selection: Option<Result<&'a Server, NoFit>>,
    /// The bootstrap data.
    pub bootstrap: Bootstrap,
    /// The failure domain of the claimed (or selected) Server.
    pub domain: Option<String>,
    /// The namespace (provider IDs carry it).
    pub namespace: &'a str,
}

/// What the provider wants on the Server, under its field manager (each apply states all of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// `consumerRef` only: the Server is reserved.
    Claim,
    /// `consumerRef`, image, root device hints, user-data (this bootstrap Secret), cleaning and
    /// power on: the Server is provisioned.
    Provision(String),
    /// `consumerRef` and cleaning only: the image goes, so the Server is cleaned.
    Release,
    /// Nothing: the Server is back in the pool.
    Free,
}

/// The one write of this pass (besides status).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Nothing to write.
    Nothing,
    /// The GroundworkMachine's own metadata and spec: the finalizer and `spec.providerID`.
    Machine {
        /// Keep (or add) the finalizer.
        finalizer: bool,
        /// `spec.providerID`.
        provider_id: Option<String>,
    },
    /// The Server's intent. `precondition`: the resourceVersion the claim was decided on, so
    /// two Machines can never both claim one Server.
    Server {
        /// The Server.
        name: String,
        /// What to state.
        intent: Intent,
        /// resourceVersion precondition (claims only).
        precondition: Option<String>,
    },
}

/// Decide's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The desired status.
    pub status: GroundworkMachineStatus,
    /// The write that moves the Machine on.
    pub write: Write,
}

/// The intent already on `server` from this provider, judged by its spec.
pub fn current_intent(server: &Server, secret: Option<&str>) -> Intent {
    let spec = &server.spec;
    match (&spec.image, &spec.user_data, secret) {
        (Some(_), Some(u), Some(s)) if u.name == s => Intent::Provision(s.to_string()),
        (Some(_), _, _) => Intent::Release,
        (None, _, _) if spec.consumer_ref.is_some() => Intent::Claim,
        (None, _, _) => Intent::Free,
    }
}

/// Decides.
pub fn decide(
    facts: &Facts<'_>,
    current: Option<&GroundworkMachineStatus>,
    now: &Time,
) -> Decision {
    let mut s = Shape::default();
    let machine_write = |finalizer: bool, id: Option<String>| Write::Machine {
        finalizer,
        provider_id: id.or(facts.provider_id.map(str::to_string)),
    };
    let write = if facts.deleting {
        s.state = MachineState::Releasing;
        match facts.claimed {
            None if facts.has_finalizer => machine_write(false, None),
            None => Write::Nothing,
            Some(server) => {
                let state = server_state(server);
                s.claimed(server, facts.domain.as_deref());
                s.progress(
                    reasons::RELEASING,
                    format!("releasing Server {}", server.name_any()),
                );
                if server.spec.image.is_some() {
                    server_write(server, Intent::Release)
                } else if matches!(
                    state,
                    ServerState::Provisioning
                        | ServerState::Provisioned
                        | ServerState::Deprovisioning
                ) {
                    Write::Nothing
                } else {
                    server_write(server, Intent::Free)
                }
            }
        }
    } else if !facts.has_finalizer {
        machine_write(true, None)
    } else if facts.paused {
        return Decision {
            status: paused(facts.generation, current, now),
            write: Write::Nothing,
        };
    } else if let Some(server) = facts.claimed {
        s.claimed(server, facts.domain.as_deref());
        let id = crds::provider::provider_id(facts.namespace, &server.name_any());
        match &facts.bootstrap {
            _ if facts.provider_id != Some(id.as_str()) => {
                s.state = MachineState::WaitingForBootstrapData;
                s.progress(reasons::CLAIMED, "setting spec.providerID".into());
                machine_write(true, Some(id))
            }
            Bootstrap::Waiting(why) | Bootstrap::Unsupported(why) => {
                s.state = MachineState::WaitingForBootstrapData;
                let reason = match &facts.bootstrap {
                    Bootstrap::Unsupported(_) => reasons::UNSUPPORTED_BOOTSTRAP_FORMAT,
                    _ => reasons::WAITING_FOR_BOOTSTRAP_DATA,
                };
                s.bootstrap = Some(Desired::new(
                    types::BOOTSTRAP_DATA_READY,
                    False,
                    reason,
                    why.clone(),
                ));
                if reason == reasons::UNSUPPORTED_BOOTSTRAP_FORMAT {
                    s.stall(reason, why.clone());
                } else {
                    s.progress(reason, why.clone());
                }
                Write::Nothing
            }
            Bootstrap::Ready(secret) => {
                s.bootstrap = Some(Desired::new(
                    types::BOOTSTRAP_DATA_READY,
                    True,
                    reasons::BOOTSTRAP_DATA_AVAILABLE,
                    format!("Secret {secret} is the Server's user-data"),
                ));
                s.provisioning(server);
                let want = Intent::Provision(secret.clone());
                if current_intent(server, Some(secret)) == want {
                    Write::Nothing
                } else {
                    server_write(server, want)
                }
            }
        }
    } else {
        s.state = MachineState::Pending;
        match (&facts.owner, &facts.selection) {
            (None, _) | (_, None) => {
                let why = "waiting for Cluster API to set the owning Machine".to_string();
                s.claim = Some(Desired::new(
                    types::SERVER_CLAIMED,
                    False,
                    reasons::WAITING_FOR_MACHINE,
                    why.clone(),
                ));
                s.progress(reasons::WAITING_FOR_MACHINE, why);
                Write::Nothing
            }
            (Some(_), Some(Err(no_fit))) => {
                s.claim = Some(Desired::new(
                    types::SERVER_CLAIMED,
                    False,
                    reasons::NO_MATCHING_SERVER,
                    no_fit.message.clone(),
                ));
                s.progress(reasons::NO_MATCHING_SERVER, no_fit.message.clone());
                Write::Nothing
            }
            (Some(_), Some(Ok(server))) => {
                s.progress(
                    reasons::CLAIMED,
                    format!("claiming Server {}", server.name_any()),
                );
                Write::Server {
                    name: server.name_any(),
                    intent: Intent::Claim,
                    precondition: server.metadata.resource_version.clone(),
                }
            }
        }
    };
    Decision {
        status: s.status(facts.generation, current, now),
        write,
    }
}

/// A paused Machine's status: as it was, with Paused=True and not Ready (Cluster API contract).
fn paused(
    generation: Option<i64>,
    current: Option<&GroundworkMachineStatus>,
    now: &Time,
) -> GroundworkMachineStatus {
    let mut status = current.cloned().unwrap_or_default();
    let mut desired: Vec<Desired> = kstatus(Err(Blocker::Progressing {
        reason: reasons::PAUSED,
        message: "paused by Cluster API".into(),
    }))
    .into();
    desired.push(Desired::new(
        types::PAUSED,
        True,
        reasons::PAUSED,
        "paused by Cluster API",
    ));
    let mut conditions = merge(&status.conditions, &desired, generation, now);
    conditions.extend(
        status
            .conditions
            .iter()
            .filter(|c| !desired.iter().any(|d| d.type_ == c.type_))
            .cloned(),
    );
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    status.conditions = conditions;
    status.observed_generation = generation;
    status
}

fn server_state(server: &Server) -> ServerState {
    server
        .status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or_default()
}

fn server_write(server: &Server, intent: Intent) -> Write {
    Write::Server {
        name: server.name_any(),
        intent,
        precondition: None,
    }
}

/// The status being built.
#[derive(Default)]
struct Shape {
    state: MachineState,
    server: Option<String>,
    domain: Option<String>,
    provisioned: bool,
    addresses: Vec<MachineAddress>,
    claim: Option<Desired>,
    bootstrap: Option<Desired>,
    server_provisioned: Option<Desired>,
    blocker: Option<Blocker>,
}

impl Shape {
    fn claimed(&mut self, server: &Server, domain: Option<&str>) {
        self.server = Some(server.name_any());
        self.domain = domain.map(str::to_string);
        let rack = server
            .spec
            .rack_ref
            .as_ref()
            .map(|r| format!(" in Rack {}", r.name))
            .unwrap_or_default();
        self.claim = Some(Desired::new(
            types::SERVER_CLAIMED,
            True,
            reasons::CLAIMED,
            format!("Server {}{rack}", server.name_any()),
        ));
    }

    fn provisioning(&mut self, server: &Server) {
        let status = server.status.as_ref();
        let state = server_state(server);
        let name = server.name_any();
        match state {
            ServerState::Provisioned => {
                self.state = MachineState::Provisioned;
                self.provisioned = true;
                if let Some(a) = status.and_then(|s| s.node_address()) {
                    self.addresses.push(MachineAddress {
                        type_: "InternalIP".into(),
                        address: a.address.clone(),
                    });
                }
                self.addresses.push(MachineAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                });
                self.server_provisioned = Some(Desired::new(
                    types::SERVER_PROVISIONED,
                    True,
                    reasons::SERVER_PROVISIONED,
                    format!("Server {name} is Provisioned"),
                ));
            }
            ServerState::Error => {
                self.state = MachineState::Provisioning;
                // The Server's own reason, so no Machine is ever stuck without one.
                let reason = status
                    .and_then(|s| s.last_error_reason.clone())
                    .unwrap_or_else(|| reasons::SERVER_ERROR.into());
                let message = format!(
                    "Server {name} failed ({reason}): {}",
                    status
                        .and_then(|s| s.last_error.as_deref())
                        .unwrap_or("no message")
                );
                self.server_provisioned = Some(Desired::new(
                    types::SERVER_PROVISIONED,
                    False,
                    reasons::SERVER_ERROR,
                    message.clone(),
                ));
                self.stall(reasons::SERVER_ERROR, message);
            }
            other => {
                self.state = MachineState::Provisioning;
                let message = format!("Server {name} is {}", other.as_str());
                self.server_provisioned = Some(Desired::new(
                    types::SERVER_PROVISIONED,
                    False,
                    reasons::SERVER_PROVISIONING,
                    message.clone(),
                ));
                self.progress(reasons::SERVER_PROVISIONING, message);
            }
        }
    }

    fn progress(&mut self, reason: &'static str, message: String) {
        self.blocker
            .get_or_insert(Blocker::Progressing { reason, message });
    }

    fn stall(&mut self, reason: &'static str, message: String) {
        self.blocker = Some(Blocker::Stalled { reason, message });
    }

    fn status(
        self,
        generation: Option<i64>,
        current: Option<&GroundworkMachineStatus>,
        now: &Time,
    ) -> GroundworkMachineStatus {
        let ready = match self.blocker {
            Some(b) => Err(b),
            None if self.provisioned => Ok(()),
            None => Err(Blocker::Progressing {
                reason: reasons::SERVER_PROVISIONING,
                message: "working".into(),
            }),
        };
        let mut desired: Vec<Desired> = kstatus(ready).into();
        desired.extend(self.claim);
        desired.extend(self.bootstrap);
        desired.extend(self.server_provisioned);
        desired.push(Desired::new(
            types::PAUSED,
            False,
            reasons::NOT_PAUSED,
            "not paused",
        ));
        let current_conditions = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
        let state_since = match current {
            Some(c) if c.state == Some(self.state) => c.state_since.clone(),
            _ => Some(now.clone()),
        };
        GroundworkMachineStatus {
            observed_generation: generation,
            state: Some(self.state),
            state_since,
            server_ref: self.server.map(|name| ServerRef { name }),
            failure_domain: self.domain,
            initialization: Some(Initialization {
                provisioned: Some(self.provisioned),
            }),
            addresses: self.addresses,
            conditions: merge(current_conditions, &desired, generation, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{ConsumerRef, Image, RackRef, ServerSpec, ServerStatus};

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }

    fn server(state: ServerState) -> Server {
        let spec: ServerSpec = serde_json::from_value(serde_json::json!({})).unwrap();
        let mut s = Server::new("a02-u05", spec);
        s.spec.rack_ref = Some(RackRef { name: "a02".into() });
        s.metadata.resource_version = Some("7".into());
        s.status = Some(ServerStatus {
            state: Some(state),
            ..Default::default()
        });
        s
    }

    fn claimed(state: ServerState) -> Server {
        let mut s = server(state);
        s.spec.consumer_ref = Some(ConsumerRef {
            uid: "m-1".into(),
            ..Default::default()
        });
        s
    }

    fn facts<'a>(claimed: Option<&'a Server>) -> Facts<'a> {
        Facts {
            generation: Some(1),
            deleting: false,
            has_finalizer: true,
            provider_id: claimed.map(|_| "groundwork://fra1/a02-u05"),
            paused: false,
            owner: Some(Owner {
                failure_domain: Some("a02".into()),
                data_secret: Some("w-1-boot".into()),
            }),
            claimed,
            selection: None,
            bootstrap: Bootstrap::Ready("w-1-boot".into()),
            domain: Some("a02".into()),
            namespace: "fra1",
        }
    }

    fn condition<'a>(
        d: &'a Decision,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        d.status
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn the_finalizer_comes_first() {
        let mut f = facts(None);
        f.has_finalizer = false;
        let d = decide(&f, None, &now());
        assert_eq!(
            d.write,
            Write::Machine {
                finalizer: true,
                provider_id: None
            }
        );
    }

    #[test]
    fn a_claim_carries_the_resource_version_seen() {
        let free = server(ServerState::Available);
        let mut f = facts(None);
        f.selection = Some(Ok(&free));
        let d = decide(&f, None, &now());
        assert_eq!(
            d.write,
            Write::Server {
                name: "a02-u05".into(),
                intent: Intent::Claim,
                precondition: Some("7".into())
            }
        );
        assert_eq!(d.status.state, Some(MachineState::Pending));
    }

    #[test]
    fn nothing_fits_names_it_and_writes_nothing_else() {
        let mut f = facts(None);
        f.selection = Some(Err(NoFit {
            message: "failure domain a02: no Servers".into(),
        }));
        let d = decide(&f, None, &now());
        assert_eq!(d.write, Write::Nothing);
        let c = condition(&d, types::SERVER_CLAIMED);
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reasons::NO_MATCHING_SERVER)
        );
        assert_eq!(c.message, "failure domain a02: no Servers");
        assert_eq!(condition(&d, "Ready").reason, reasons::NO_MATCHING_SERVER);
    }

    #[test]
    fn provider_id_then_intent_then_provisioned() {
        let s = claimed(ServerState::Available);
        let mut f = facts(Some(&s));
        f.provider_id = None;
        let d = decide(&f, None, &now());
        assert_eq!(
            d.write,
            Write::Machine {
                finalizer: true,
                provider_id: Some("groundwork://fra1/a02-u05".into())
            }
        );
        let f = facts(Some(&s));
        let d = decide(&f, None, &now());
        assert_eq!(
            d.write,
            Write::Server {
                name: "a02-u05".into(),
                intent: Intent::Provision("w-1-boot".into()),
                precondition: None
            }
        );
        let mut done = claimed(ServerState::Provisioned);
        done.spec.image = Some(Image::default());
        done.spec.user_data = Some(crds::SecretKeyRef {
            name: "w-1-boot".into(),
            key: Some("value".into()),
        });
        let d = decide(&facts(Some(&done)), None, &now());
        assert_eq!(d.write, Write::Nothing);
        assert_eq!(d.status.state, Some(MachineState::Provisioned));
        assert_eq!(
            d.status.initialization.as_ref().and_then(|i| i.provisioned),
            Some(true)
        );
        assert_eq!(condition(&d, "Ready").status, "True");
    }

    #[test]
    fn a_server_error_surfaces_with_its_reason() {
        let mut s = claimed(ServerState::Error);
        s.spec.image = Some(Image::default());
        s.spec.user_data = Some(crds::SecretKeyRef {
            name: "w-1-boot".into(),
            key: None,
        });
        if let Some(st) = s.status.as_mut() {
            st.last_error_reason = Some("ChecksumMismatch".into());
            st.last_error = Some("sha256 differs".into());
        }
        let d = decide(&facts(Some(&s)), None, &now());
        let c = condition(&d, types::SERVER_PROVISIONED);
        assert!(
            c.message.contains("ChecksumMismatch") && c.message.contains("sha256 differs"),
            "{}",
            c.message
        );
        assert_eq!(condition(&d, "Stalled").status, "True");
    }

    #[test]
    fn release_cleans_then_frees_then_drops_the_finalizer() {
        let mut s = claimed(ServerState::Provisioned);
        s.spec.image = Some(Image::default());
        let mut f = facts(Some(&s));
        f.deleting = true;
        let d = decide(&f, None, &now());
        assert_eq!(d.status.state, Some(MachineState::Releasing));
        assert!(matches!(
            d.write,
            Write::Server {
                intent: Intent::Release,
                ..
            }
        ));
        let cleaning = claimed(ServerState::Deprovisioning);
        f.claimed = Some(&cleaning);
        assert_eq!(decide(&f, None, &now()).write, Write::Nothing);
        let clean = claimed(ServerState::Available);
        f.claimed = Some(&clean);
        assert!(matches!(
            decide(&f, None, &now()).write,
            Write::Server {
                intent: Intent::Free,
                ..
            }
        ));
        f.claimed = None;
        assert_eq!(
            decide(&f, None, &now()).write,
            Write::Machine {
                finalizer: false,
                provider_id: Some("groundwork://fra1/a02-u05".into())
            }
        );
    }

    #[test]
    fn paused_writes_only_the_paused_condition() {
        let s = claimed(ServerState::Available);
        let mut f = facts(Some(&s));
        f.paused = true;
        let d = decide(&f, None, &now());
        assert_eq!(d.write, Write::Nothing);
        assert_eq!(condition(&d, types::PAUSED).status, "True");
    }
}

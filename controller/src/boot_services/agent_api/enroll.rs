//! Auto-enrolment: an unknown machine's agent (discovery ramdisk, `groundwork.server=-`)
//! registers as a new Server named after its boot MAC, with its inventory and without BMC or
//! rack position (someone adds them). The `groundwork.dev/discovered` annotation makes the
//! reconciler start it in state Discovered, whichever of its first write and ours lands first.
//! The chart's admission policy (`charts/groundwork/templates/admission-policy.yaml`) lets the
//! controller create exactly this Server and nothing else: change both together (the chart's
//! RBAC test enrols through this function under the controller's ServiceAccount).

use boot::dhcp::Mac;
use crds::Server;
use crds::server::{BootAttempt, BootPurpose, HardwareInventory, ServerSpec};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use serde_json::json;
use tracing::info;

/// The boot attempt a discovered machine's agent registers under.
pub const DISCOVERY_ATTEMPT: &str = "discover";

/// Why a machine was not enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// Auto-enrolment is off.
    #[error("unknown machine and auto-enrolment is off")]
    Disabled,
    /// The boot MAC does not parse.
    #[error("boot MAC {0:?} is not a MAC address")]
    BadMac(String),
    /// The API refused.
    #[error("enrolment failed: {0}")]
    Api(#[from] kube::Error),
}

/// The name a discovered machine gets: `discovered-<mac without colons>`.
pub fn name_for(mac: Mac) -> String {
    format!("discovered-{}", mac.to_string().replace(':', ""))
}

/// Creates (or finds) the Server of the machine with `boot_mac` in `namespace` and records
/// its inventory; returns it.
pub async fn enroll(
    client: &kube::Client,
    recorder: &kube::runtime::events::Recorder,
    namespace: &str,
    boot_mac: &str,
    hardware: Option<HardwareInventory>,
) -> Result<Server, EnrollError> {
    let mac = Mac::parse(boot_mac).ok_or_else(|| EnrollError::BadMac(boot_mac.to_string()))?;
    let name = name_for(mac);
    let api: Api<Server> = Api::namespaced(client.clone(), namespace);
    let spec = ServerSpec {
        rack_ref: None,
        rack_unit: None,
        height_u: 1,
        bmc: None,
        boot_mac_address: Some(mac.to_string()),
        online: false,
        boot_mode: Default::default(),
        image: None,
        root_device_hints: None,
        user_data: None,
        network_data: None,
        cleaning: Default::default(),
        externally_provisioned: false,
        max_power_watts: None,
        node: None,
        standby: None,
        consumer_ref: None,
    };
    let mut new = Server::new(&name, spec);
    new.metadata.annotations = Some(
        [(
            crds::annotations::DISCOVERED.to_string(),
            Timestamp::now().to_string(),
        )]
        .into(),
    );
    let created = match api.create(&PostParams::default(), &new).await {
        Ok(s) => Some(s),
        Err(kube::Error::Api(e)) if e.code == 409 => None,
        Err(e) => return Err(e.into()),
    };
    let now = Time(Timestamp::now());
    let mut status = json!({
        "bootAttempt": BootAttempt {
            id: DISCOVERY_ATTEMPT.into(),
            purpose: BootPurpose::Inspect,
            requested_at: now,
            try_number: 1,
            disk_boot_at: None,
            ramdisk_attempt: None,
            kexec_at: None,
        },
    });
    if let Some(hw) = &hardware {
        status["hardware"] = json!(hw);
    }
    let server = api
        .patch_status(
            &name,
            &PatchParams {
                field_manager: Some(crds::field_managers::BOOT.into()),
                ..Default::default()
            },
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    if created.is_some() {
        info!(%name, %namespace, %mac, "unknown machine enrolled");
        kube_kit::events::publish(
            recorder,
            &server,
            EventType::Normal,
            "Enrolled",
            "Enroll",
            format!("unknown machine {mac} netbooted and registered itself; add its BMC and rack position"),
        )
        .await;
    }
    Ok(server)
}

//! Boot service metrics, registered into the controller's registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// DHCP messages by rack and message type.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DhcpLabels {
    /// Rack (`namespace/name`), empty when no rack claimed the packet.
    pub rack: String,
    /// `discover`, `offer`, `request`, `ack`, `nak`, `release`, `decline`, `inform`.
    pub message: &'static str,
}

/// Dropped DHCP packets by rack and reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Rack (`namespace/name`), empty when no rack claimed the packet.
    pub rack: String,
    /// Why it was dropped (a [`crate::dhcp::Drop`] label).
    pub reason: &'static str,
}

/// A file or artifact name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabels {
    /// File name.
    pub file: String,
}

/// A TFTP request outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok`, `not_found`, `refused`, `bad_request`, `timeout`.
    pub result: &'static str,
}

/// What kind of iPXE script was served.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScriptLabels {
    /// `ramdisk`, `disk`, `discovery`, `exit`.
    pub kind: &'static str,
}

/// Every boot service metric.
#[derive(Clone, Default)]
pub struct Metrics {
    /// DHCP messages received and sent.
    pub dhcp_messages: Family<DhcpLabels, Counter>,
    /// DHCP packets dropped.
    pub dhcp_dropped: Family<DropLabels, Counter>,
    /// TFTP requests by outcome.
    pub tftp_requests: Family<ResultLabels, Counter>,
    /// TFTP payload bytes sent, by file.
    pub tftp_bytes: Family<FileLabels, Counter>,
    /// HTTP boot bytes sent, by artifact.
    pub http_bytes: Family<FileLabels, Counter>,
    /// iPXE scripts served, by kind.
    pub scripts: Family<ScriptLabels, Counter>,
}

impl Metrics {
    /// Registers every metric in `registry` (names get the registry's prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "dhcp_messages",
            "DHCP messages received and sent, by rack and message type",
            self.dhcp_messages.clone(),
        );
        registry.register(
            "dhcp_dropped",
            "DHCP packets dropped, by rack and reason",
            self.dhcp_dropped.clone(),
        );
        registry.register(
            "tftp_requests",
            "TFTP read requests, by outcome",
            self.tftp_requests.clone(),
        );
        registry.register(
            "tftp_sent_bytes",
            "TFTP payload bytes sent, by file",
            self.tftp_bytes.clone(),
        );
        registry.register(
            "boot_http_sent_bytes",
            "HTTP boot bytes sent, by artifact",
            self.http_bytes.clone(),
        );
        registry.register(
            "ipxe_scripts_served",
            "iPXE scripts served, by kind",
            self.scripts.clone(),
        );
    }

    /// Counts a DHCP message.
    pub fn dhcp(&self, rack: &str, message: &'static str) {
        self.dhcp_messages
            .get_or_create(&DhcpLabels {
                rack: rack.to_string(),
                message,
            })
            .inc();
    }

    /// Counts a dropped DHCP packet.
    pub fn dropped(&self, rack: &str, reason: &'static str) {
        self.dhcp_dropped
            .get_or_create(&DropLabels {
                rack: rack.to_string(),
                reason,
            })
            .inc();
    }
}

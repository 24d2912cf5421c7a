//! Recognising the client's firmware from its request, and the boot file each one gets.

use dhcproto::v4::{DhcpOption, Message, OptionCode};

/// What kind of boot client sent a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// iPXE itself (user class `iPXE` or its option 175): gets its script over HTTP.
    Ipxe,
    /// UEFI HTTP boot (vendor class `HTTPClient`): gets `ipxe.efi` over HTTP.
    UefiHttp,
    /// UEFI PXE (vendor class `PXEClient`, architecture 7 or 9): gets `ipxe.efi` over TFTP.
    UefiPxe,
    /// Legacy BIOS PXE (vendor class `PXEClient`, architecture 0): gets `undionly.kpxe`.
    BiosPxe,
    /// Any other client (an installed OS, the ramdisk's own DHCP): an address, no boot file.
    Plain,
}

/// The iPXE binary for legacy BIOS, over TFTP.
pub const BIOS_FILE: &str = "undionly.kpxe";
/// The iPXE binary for UEFI, over TFTP or HTTP.
pub const UEFI_FILE: &str = "ipxe.efi";

impl Client {
    /// Classifies a request.
    pub fn of(msg: &Message) -> Self {
        let opts = msg.opts();
        let user_class_ipxe = matches!(opts.get(OptionCode::UserClass),
            Some(DhcpOption::UserClass(c)) if contains(c, b"iPXE"));
        if user_class_ipxe || opts.get(OptionCode::Unknown(175)).is_some() {
            return Self::Ipxe;
        }
        let vendor = match opts.get(OptionCode::ClassIdentifier) {
            Some(DhcpOption::ClassIdentifier(v)) => v.as_slice(),
            _ => &[],
        };
        if vendor.starts_with(b"HTTPClient") {
            return Self::UefiHttp;
        }
        if vendor.starts_with(b"PXEClient") {
            let arch = match opts.get(OptionCode::ClientSystemArchitecture) {
                Some(DhcpOption::ClientSystemArchitecture(a)) => u16::from(*a),
                _ => 0,
            };
            return match arch {
                0 => Self::BiosPxe,
                _ => Self::UefiPxe,
            };
        }
        Self::Plain
    }

    /// Whether this is a network-boot client (proxyDHCP answers only these).
    pub fn boots(self) -> bool {
        self != Self::Plain
    }

    /// Metric / log label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ipxe => "ipxe",
            Self::UefiHttp => "uefi-http",
            Self::UefiPxe => "uefi-pxe",
            Self::BiosPxe => "bios-pxe",
            Self::Plain => "plain",
        }
    }
}

/// Where the boot files are served from, as seen by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootServer {
    /// Our address (next-server, server identifier, TFTP).
    pub address: std::net::Ipv4Addr,
    /// Base URL of the HTTP boot service, e.g. `http://10.10.0.1:8081`.
    pub http_base: String,
}

/// The boot file a client is told to load: a TFTP file name or an HTTP URL.
pub fn boot_file(client: Client, server: &BootServer, mac: &str) -> Option<String> {
    match client {
        Client::Ipxe => Some(format!("{}/boot/{mac}.ipxe", server.http_base)),
        Client::UefiHttp => Some(format!("{}/boot/{UEFI_FILE}", server.http_base)),
        Client::UefiPxe => Some(UEFI_FILE.to_string()),
        Client::BiosPxe => Some(BIOS_FILE.to_string()),
        Client::Plain => None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcproto::v4::{Architecture, DhcpOption};
    use std::net::Ipv4Addr;

    fn msg(opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::new(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &[0x52, 0x54, 0, 1, 2, 3],
        );
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    #[test]
    fn classifies_each_firmware() {
        let pxe = |arch: u16| {
            msg(vec![
                DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
                DhcpOption::ClientSystemArchitecture(Architecture::from(arch)),
            ])
        };
        assert_eq!(Client::of(&pxe(0)), Client::BiosPxe);
        assert_eq!(Client::of(&pxe(7)), Client::UefiPxe);
        assert_eq!(Client::of(&pxe(9)), Client::UefiPxe);
        let http = msg(vec![DhcpOption::ClassIdentifier(
            b"HTTPClient:Arch:00016:UNDI:003001".to_vec(),
        )]);
        assert_eq!(Client::of(&http), Client::UefiHttp);
        // iPXE also says PXEClient; its user class wins.
        let mut ipxe = pxe(0);
        ipxe.opts_mut()
            .insert(DhcpOption::UserClass(b"\x04iPXE".to_vec()));
        assert_eq!(Client::of(&ipxe), Client::Ipxe);
        assert_eq!(Client::of(&msg(vec![])), Client::Plain);
        assert!(!Client::Plain.boots());
    }

    #[test]
    fn boot_files_follow_the_client() {
        let s = BootServer {
            address: Ipv4Addr::new(10, 0, 0, 1),
            http_base: "http://10.0.0.1:8081".into(),
        };
        let mac = "52:54:00:01:02:03";
        assert_eq!(
            boot_file(Client::Ipxe, &s, mac).unwrap(),
            "http://10.0.0.1:8081/boot/52:54:00:01:02:03.ipxe"
        );
        assert_eq!(
            boot_file(Client::UefiHttp, &s, mac).unwrap(),
            "http://10.0.0.1:8081/boot/ipxe.efi"
        );
        assert_eq!(boot_file(Client::UefiPxe, &s, mac).unwrap(), "ipxe.efi");
        assert_eq!(
            boot_file(Client::BiosPxe, &s, mac).unwrap(),
            "undionly.kpxe"
        );
        assert_eq!(boot_file(Client::Plain, &s, mac), None);
    }
}

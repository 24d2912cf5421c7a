//! Names of the BIRD objects the renderer creates, derived from link names.
//!
//! Every object we create starts with `gw_`, so it never clashes with a BIRD
//! keyword or with objects an operator adds by hand.

use sha2::{Digest, Sha256};

use crate::model::Family;

/// Longest sanitized link name kept as is; longer ones are shortened with a hash.
const MAX_SANITIZED: usize = 40;

/// The BIRD-safe form of a link name: `[a-z0-9_]`, prefixed with `gw_`.
///
/// `isp-1` becomes `gw_isp_1`. Names longer than 40 characters are cut and
/// suffixed with 8 hex digits of their SHA-256, so the result stays well
/// within BIRD's 64-character symbol limit even with suffixes added.
pub fn sanitize(link_name: &str) -> String {
    let mapped: String = link_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    let body = if mapped.len() > MAX_SANITIZED {
        let digest = Sha256::digest(link_name.as_bytes());
        let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        format!("{}_{short}", &mapped[..MAX_SANITIZED - 9])
    } else {
        mapped
    };
    format!("gw_{body}")
}

/// The name of the BGP protocol of one family of a link: `gw_isp_1_v4`.
pub fn protocol(link_name: &str, family: Family) -> String {
    format!("{}_{}", sanitize(link_name), family.suffix())
}

/// The name of the `define` holding a link's password in the secrets file.
pub fn password_symbol(link_name: &str) -> String {
    format!("{}_password", sanitize(link_name)).to_ascii_uppercase()
}

/// Static protocol originating our own prefixes.
pub fn own_static(family: Family) -> String {
    format!("gw_own_{}", family.suffix())
}

/// Static protocol holding the blackhole routes.
pub fn blackhole_static(family: Family) -> String {
    format!("gw_rtbh_{}", family.suffix())
}

/// Static protocol holding the LoadBalancer Service routes (toward the nodes).
pub fn service_static(family: Family) -> String {
    format!("gw_svc_{}", family.suffix())
}

/// Kernel protocol installing the Service routes into the router's forwarding table.
pub fn kernel(family: Family) -> String {
    format!("gw_kernel_{}", family.suffix())
}

/// The BFD protocol.
pub const BFD_PROTOCOL: &str = "gw_bfd";
/// The device protocol.
pub const DEVICE_PROTOCOL: &str = "gw_device";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_dns_names() {
        assert_eq!(sanitize("isp-1"), "gw_isp_1");
        assert_eq!(protocol("isp-1", Family::V6), "gw_isp_1_v6");
        assert_eq!(password_symbol("isp-1"), "GW_ISP_1_PASSWORD");
    }

    #[test]
    fn shortens_long_names_deterministically() {
        let long = "a".repeat(63);
        let s = sanitize(&long);
        assert!(s.len() <= 3 + MAX_SANITIZED, "{s}");
        assert_eq!(s, sanitize(&long));
        assert_ne!(s, sanitize(&format!("{}b", "a".repeat(62))));
    }
}

//! The agent API, generated from `groundwork/agent/v1/agent.proto`.

/// `groundwork.agent.v1`: messages, the client the agent uses and the server the controller
/// implements.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod agent_v1 {
    tonic::include_proto!("groundwork.agent.v1");
}

use sha2::Digest as _;

/// How the ramdisk pins the agent API's CA (`groundwork.ca=` on its kernel command line):
/// `sha256:` and the lowercase hex SHA-256 of the CA certificate's DER.
pub fn ca_pin(ca_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(ca_der)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pins_are_sha256_of_the_der() {
        assert_eq!(
            super::ca_pin(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! What the kernel command line tells the agent (written by the controller's iPXE script).

/// The agent's boot parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootParams {
    /// Base URL of the controller's HTTP boot service (`groundwork.url`).
    pub url: String,
    /// URL of the agent API (`groundwork.agent`).
    pub agent: String,
    /// Pin of the agent API's CA, `sha256:<hex>` (`groundwork.ca`).
    pub ca: String,
    /// `namespace/name` of the Server (`groundwork.server`).
    pub server: String,
    /// One-time boot token (`groundwork.token`).
    pub token: String,
    /// `inspect`, `provision`, `clean` or `discover` (`groundwork.mode`).
    pub mode: String,
}

/// Parses `/proc/cmdline`; None when it carries no `groundwork.agent`.
pub fn parse(cmdline: &str) -> Option<BootParams> {
    let mut p = BootParams::default();
    for word in cmdline.split_whitespace() {
        let Some((key, value)) = word.split_once('=') else {
            continue;
        };
        let slot = match key {
            "groundwork.url" => &mut p.url,
            "groundwork.agent" => &mut p.agent,
            "groundwork.ca" => &mut p.ca,
            "groundwork.server" => &mut p.server,
            "groundwork.token" => &mut p.token,
            "groundwork.mode" => &mut p.mode,
            _ => continue,
        };
        *slot = value.to_string();
    }
    (!p.agent.is_empty()).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_groundwork_parameters() {
        let p = parse("vmlinuz initrd=initrd.img groundwork.url=http://10.0.0.2:8081 groundwork.agent=https://10.0.0.2:9443 groundwork.ca=sha256:ab12 groundwork.server=fra1/a01-u01 groundwork.mode=inspect groundwork.token=abc console=ttyS0,115200 quiet").unwrap();
        assert_eq!(p.agent, "https://10.0.0.2:9443");
        assert_eq!(p.ca, "sha256:ab12");
        assert_eq!(p.server, "fra1/a01-u01");
        assert_eq!((p.token.as_str(), p.mode.as_str()), ("abc", "inspect"));
        assert!(parse("console=ttyS0 groundwork.url=http://x").is_none());
    }
}

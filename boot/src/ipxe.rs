//! iPXE scripts. Kernel and initrd URLs carry the MAC so the HTTP service knows which machine
//! fetched them (a boot step); the command line carries the server's identity, where to call
//! back, the pin of the agent API's CA, and its one-time boot token.

/// Names of the ramdisk artifacts, as served under `/boot/<mac>/`.
pub const KERNEL: &str = "vmlinuz";
/// The initrd artifact.
pub const INITRD: &str = "initrd.img";

/// A ramdisk boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ramdisk<'a> {
    /// Base URL of the HTTP boot service, e.g. `http://10.10.0.1:8081`.
    pub base: &'a str,
    /// URL of the agent API, e.g. `https://10.10.0.1:9443`.
    pub agent: &'a str,
    /// Pin of the agent API's CA, `sha256:<hex of its DER>` (see `proto::ca_pin`).
    pub ca: &'a str,
    /// The machine's boot MAC.
    pub mac: &'a str,
    /// `namespace/name` of the Server (`-` while undeclared).
    pub server: &'a str,
    /// Boot token (empty for discovery).
    pub token: &'a str,
    /// What the ramdisk is for: `inspect`, `provision`, `clean`, `discover`.
    pub mode: &'a str,
    /// Extra kernel arguments (console and the like).
    pub kernel_args: &'a str,
}

/// Seconds between two fetches of the ramdisk when one fails.
pub const RETRY_SECONDS: u32 = 3;

/// The script that boots the ramdisk. A failed fetch (a boot service restarting, a dropped
/// connection) is retried in place: falling through to the next firmware boot device would
/// cost the whole attempt's timeout and a power cycle. The controller's attempt timeout still
/// bounds the loop.
pub fn ramdisk(r: &Ramdisk<'_>) -> String {
    let Ramdisk {
        base,
        agent,
        ca,
        mac,
        server,
        token,
        mode,
        kernel_args,
    } = r;
    let mut args = format!(
        "initrd={INITRD} groundwork.url={base} groundwork.agent={agent} groundwork.ca={ca} groundwork.server={server} groundwork.mode={mode}"
    );
    if !token.is_empty() {
        args.push_str(&format!(" groundwork.token={token}"));
    }
    if !kernel_args.is_empty() {
        args.push(' ');
        args.push_str(kernel_args);
    }
    format!(
        "#!ipxe\n\
         echo Groundwork: {mode} ramdisk for {server}\n\
         :fetch\n\
         kernel {base}/boot/{mac}/{KERNEL} {args} || goto retry\n\
         initrd {base}/boot/{mac}/{INITRD} || goto retry\n\
         boot || goto retry\n\
         :retry\n\
         echo Groundwork: fetching the ramdisk failed; retrying in {RETRY_SECONDS} s\n\
         imgfree ||\n\
         sleep {RETRY_SECONDS} ||\n\
         goto fetch\n"
    )
}

/// The script that sends a machine to its local disk: `exit` hands control back to the
/// firmware, which boots the next device in its order.
pub fn local_disk(server: &str, why: &str) -> String {
    format!("#!ipxe\necho Groundwork: {server} boots from its local disk ({why})\nexit\n")
}

/// The script for a machine nobody declared, with auto-enrolment off.
pub fn unknown(mac: &str) -> String {
    format!("#!ipxe\necho Groundwork: {mac} is not a declared Server; not booting it\nexit\n")
}

/// Whether `s` is safe to put on a kernel command line unquoted (no spaces or control
/// characters that would split or end it).
pub fn plain_arg(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramdisk_script_names_the_server_and_its_token() {
        let s = ramdisk(&Ramdisk {
            base: "http://10.0.0.1:8081",
            agent: "https://10.0.0.1:9443",
            ca: "sha256:00ff",
            mac: "52:54:00:00:00:01",
            server: "fra1/a01-u01",
            token: "abc",
            mode: "inspect",
            kernel_args: "console=ttyS0",
        });
        assert!(s.starts_with("#!ipxe\n"));
        assert!(s.contains("\n:fetch\nkernel http://10.0.0.1:8081/boot/52:54:00:00:00:01/vmlinuz initrd=initrd.img groundwork.url=http://10.0.0.1:8081 groundwork.agent=https://10.0.0.1:9443 groundwork.ca=sha256:00ff groundwork.server=fra1/a01-u01 groundwork.mode=inspect groundwork.token=abc console=ttyS0 || goto retry\n"));
        assert!(s.contains("\ninitrd http://10.0.0.1:8081/boot/52:54:00:00:00:01/initrd.img || goto retry\nboot || goto retry\n"));
        // A failed fetch waits and tries again instead of falling through to the disk.
        assert!(s.ends_with("imgfree ||\nsleep 3 ||\ngoto fetch\n"), "{s}");
    }

    #[test]
    fn disk_and_unknown_scripts_exit() {
        assert!(local_disk("fra1/x", "Provisioned").ends_with("exit\n"));
        assert!(unknown("52:54:00:00:00:01").ends_with("exit\n"));
        assert!(plain_arg("fra1/a01-u01"));
        assert!(!plain_arg("a b"));
        assert!(!plain_arg(""));
    }
}

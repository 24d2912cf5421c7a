//! The boot entry an installed image declares, for kexec (`docs/standby.md`, "How the agent
//! finds the kernel"): Boot Loader Specification type #1 entries (`/loader/entries/*.conf`)
//! first, then a syslinux / extlinux configuration. Pure: the caller reads the files from the
//! image's EFI System Partition and hands their text in.

/// Where syslinux and extlinux keep their configuration on the partition, in the order they
/// are looked for.
pub const SYSLINUX_PATHS: [&str; 4] = [
    "syslinux.cfg",
    "syslinux/syslinux.cfg",
    "extlinux.conf",
    "extlinux/extlinux.conf",
];

/// The directory of Boot Loader Specification type #1 entries.
pub const BLS_DIR: &str = "loader/entries";

/// A kernel to kexec: paths relative to the partition's root (no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    /// The kernel image.
    pub kernel: String,
    /// Initrds, loaded concatenated in this order.
    pub initrds: Vec<String>,
    /// The kernel command line.
    pub cmdline: String,
}

/// The entry to boot among BLS entries given as (file name, text): the one with the highest
/// `version` (compared as numbers where both have digits), ties broken by the greater file
/// name, as `kernel-install` names newer kernels; entries without `linux` (UKI `efi` entries)
/// are not for kexec.
pub fn from_bls<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<BootEntry> {
    entries
        .into_iter()
        .filter(|(name, _)| name.ends_with(".conf"))
        .filter_map(|(name, text)| bls_entry(text).map(|(version, e)| (version, name, e)))
        .max_by(|a, b| version_cmp(&a.0, &b.0).then_with(|| a.1.cmp(b.1)))
        .map(|(_, _, e)| e)
}

/// One BLS entry: its version and boot entry, if it has a `linux` line.
fn bls_entry(text: &str) -> Option<(String, BootEntry)> {
    let mut version = String::new();
    let mut kernel = None;
    let mut initrds = Vec::new();
    let mut options: Vec<&str> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(k, v)| (k, v.trim()));
        match key {
            "version" => version = value.to_string(),
            "linux" if !value.is_empty() => kernel = Some(relative(value)),
            "initrd" if !value.is_empty() => initrds.push(relative(value)),
            "options" if !value.is_empty() => options.push(value),
            _ => {}
        }
    }
    Some((
        version,
        BootEntry {
            kernel: kernel?,
            initrds,
            cmdline: options.join(" "),
        },
    ))
}

/// The entry a syslinux / extlinux configuration boots: the `DEFAULT` label (or, when no label
/// has that name, `DEFAULT`'s own "kernel arguments"), else the first label. `KERNEL` or
/// `LINUX`, `INITRD` (comma-separated) or `initrd=` in `APPEND`, and `APPEND` (a global one
/// applies to labels without their own). Keywords are case-insensitive.
pub fn from_syslinux(text: &str) -> Option<BootEntry> {
    let mut default: Option<&str> = None;
    let mut global_append: Option<&str> = None;
    let mut labels: Vec<Label<'_>> = Vec::new();
    for line in text.lines().map(str::trim) {
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(k, v)| (k, v.trim()));
        let key = key.to_ascii_lowercase();
        match (key.as_str(), labels.last_mut()) {
            ("default", _) => default = Some(value),
            ("label", _) => labels.push(Label {
                name: value,
                ..Label::default()
            }),
            ("kernel" | "linux", Some(l)) => l.kernel = Some(value),
            ("initrd", Some(l)) => l.initrd = Some(value),
            ("append", Some(l)) => l.append = Some(value),
            ("append", None) => global_append = Some(value),
            _ => {}
        }
    }
    let chosen = match default {
        Some(d) => match labels.iter().find(|l| l.name == d) {
            Some(l) => l.clone(),
            None => {
                // `DEFAULT kernel args`: a command line of its own.
                let (kernel, args) = d.split_once(char::is_whitespace).unwrap_or((d, ""));
                Label {
                    name: d,
                    kernel: Some(kernel),
                    initrd: None,
                    append: Some(args.trim())
                        .filter(|a| !a.is_empty())
                        .or(global_append),
                }
            }
        },
        None => labels.first()?.clone(),
    };
    let append = chosen.append.or(global_append).unwrap_or_default();
    let mut initrds: Vec<String> = chosen.initrd.map(list).unwrap_or_default();
    let mut args = Vec::new();
    for arg in append.split_whitespace() {
        match arg.strip_prefix("initrd=") {
            // The firmware-loader convention: the kernel never reads it, the loader does.
            Some(files) if chosen.initrd.is_none() => initrds.extend(list(files)),
            Some(_) => {}
            None => args.push(arg),
        }
    }
    Some(BootEntry {
        kernel: relative(chosen.kernel.filter(|k| !k.is_empty())?),
        initrds,
        cmdline: args.join(" "),
    })
}

#[derive(Clone, Default)]
struct Label<'a> {
    name: &'a str,
    kernel: Option<&'a str>,
    initrd: Option<&'a str>,
    append: Option<&'a str>,
}

/// `a,b` → [`a`, `b`], relative.
fn list(files: &str) -> Vec<String> {
    files
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(relative)
        .collect()
}

/// A path relative to the partition's root.
fn relative(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

/// Compares versions by runs: digit runs as numbers, other runs as text.
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let runs = |s: &str| -> Vec<(bool, String)> {
        let mut out: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let digit = c.is_ascii_digit();
            match out.last_mut() {
                Some((d, run)) if *d == digit => run.push(c),
                _ => out.push((digit, c.to_string())),
            }
        }
        out
    };
    let (ra, rb) = (runs(a), runs(b));
    for (x, y) in ra.iter().zip(rb.iter()) {
        let ord = match (x, y) {
            ((true, p), (true, q)) => {
                let (p, q) = (p.trim_start_matches('0'), q.trim_start_matches('0'));
                p.len().cmp(&q.len()).then_with(|| p.cmp(q))
            }
            ((_, p), (_, q)) => p.cmp(q),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ra.len().cmp(&rb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `hack/boot/test-os.sh` writes.
    const TEST_OS: &str = "DEFAULT os\nPROMPT 0\nTIMEOUT 0\nLABEL os\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND console=ttyS0,115200 groundwork.os=test\n";

    #[test]
    fn the_lab_test_os_is_kexecable_from_its_syslinux_cfg() {
        assert_eq!(
            from_syslinux(TEST_OS),
            Some(BootEntry {
                kernel: "vmlinuz".into(),
                initrds: vec!["initrd.img".into()],
                cmdline: "console=ttyS0,115200 groundwork.os=test".into(),
            })
        );
    }

    #[test]
    fn syslinux_default_label_global_append_and_initrd_in_append() {
        let cfg = "append quiet\nlabel rescue\n linux /rescue\nlabel main\n linux /boot/vmlinuz-6.1\n append root=LABEL=root initrd=/boot/ucode.img,/boot/initrd.img ro\ndefault main\n";
        assert_eq!(
            from_syslinux(cfg),
            Some(BootEntry {
                kernel: "boot/vmlinuz-6.1".into(),
                initrds: vec!["boot/ucode.img".into(), "boot/initrd.img".into()],
                cmdline: "root=LABEL=root ro".into(),
            })
        );
        // Without DEFAULT: the first label, with the global APPEND.
        let first = from_syslinux("APPEND quiet\nLABEL a\nKERNEL /k\n").unwrap();
        assert_eq!(
            (first.kernel.as_str(), first.cmdline.as_str()),
            ("k", "quiet")
        );
        // DEFAULT naming no label is a kernel and its arguments.
        let bare = from_syslinux("DEFAULT /vmlinuz console=ttyS0\n").unwrap();
        assert_eq!(
            (bare.kernel.as_str(), bare.cmdline.as_str()),
            ("vmlinuz", "console=ttyS0")
        );
        // Nothing to boot: no entry.
        assert_eq!(from_syslinux("PROMPT 1\nTIMEOUT 50\n"), None);
        assert_eq!(from_syslinux("DEFAULT x\nLABEL x\nAPPEND quiet\n"), None);
    }

    #[test]
    fn bls_takes_the_highest_version_with_linux_and_joins_options() {
        let old = "title Old\nversion 6.1.0-9\nlinux /vmlinuz-6.1.0-9\ninitrd /initrd-6.1.0-9\noptions root=UUID=x ro\n";
        let new = "# newest\ntitle New\nversion 6.1.0-10\nlinux /vmlinuz-6.1.0-10\ninitrd /ucode.img\ninitrd /initrd-6.1.0-10\noptions root=UUID=x\noptions ro quiet\n";
        let uki = "title UKI\nversion 9.9\nefi /EFI/Linux/os.efi\n";
        let chosen = from_bls([
            ("a.conf", old),
            ("b.conf", new),
            ("c.conf", uki),
            ("z.conf.bak", new),
        ])
        .unwrap();
        assert_eq!(
            chosen,
            BootEntry {
                kernel: "vmlinuz-6.1.0-10".into(),
                initrds: vec!["ucode.img".into(), "initrd-6.1.0-10".into()],
                cmdline: "root=UUID=x ro quiet".into(),
            }
        );
        assert_eq!(from_bls([("c.conf", uki)]), None);
        assert_eq!(from_bls(std::iter::empty()), None);
    }

    #[test]
    fn versions_compare_numerically() {
        use std::cmp::Ordering::*;
        assert_eq!(version_cmp("6.1.0-10", "6.1.0-9"), Greater);
        assert_eq!(version_cmp("6.10", "6.9"), Greater);
        assert_eq!(version_cmp("6.1", "6.1.0"), Less);
        assert_eq!(version_cmp("007", "7"), Equal);
        assert_eq!(version_cmp("", ""), Equal);
    }
}

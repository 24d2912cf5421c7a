//! The `groundwork-marker` file: which Server and image a disk was provisioned with.
//!
//! `key=value` lines: `server-uid=`, `server=` (`namespace/name`) and `checksum=`. Adoption
//! compares the server and the checksum only: the UID changes when the management cluster
//! is rebuilt from Git, the name and the image do not.

/// A parsed marker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marker {
    /// UID of the Server object that provisioned the disk (informational).
    pub server_uid: String,
    /// `namespace/name` of the Server.
    pub server: String,
    /// Checksum of the image written (`algo:hex`).
    pub checksum: String,
}

impl Marker {
    /// Parses marker text; `None` unless it names both a server and a checksum. Unknown keys,
    /// blank lines and `#` comments are ignored; the last value of a repeated key wins.
    pub fn parse(text: &str) -> Option<Self> {
        let mut m = Marker::default();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let slot = match key.trim() {
                "server-uid" => &mut m.server_uid,
                "server" => &mut m.server,
                "checksum" => &mut m.checksum,
                _ => continue,
            };
            *slot = value.trim().to_string();
        }
        (!m.server.is_empty() && !m.checksum.is_empty()).then_some(m)
    }

    /// Whether this marker (found on a disk) says the disk already holds `expected`: same
    /// server, same image checksum (hex compared case-insensitively).
    pub fn matches(&self, expected: &Marker) -> bool {
        self.server == expected.server && self.checksum.eq_ignore_ascii_case(&expected.checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON_DISK: &str = "server-uid=0b7c-old\nserver=fra1/a01-u01\nchecksum=sha256:ABCD\n";

    fn expected(uid: &str, server: &str, checksum: &str) -> Marker {
        Marker::parse(&format!(
            "server-uid={uid}\nserver={server}\nchecksum={checksum}\n"
        ))
        .unwrap()
    }

    #[test]
    fn parses_key_value_lines() {
        let m = Marker::parse(&format!(
            "# written by groundwork\n\n{ON_DISK}colour=blue\n"
        ))
        .unwrap();
        assert_eq!(m.server_uid, "0b7c-old");
        assert_eq!(m.server, "fra1/a01-u01");
        assert_eq!(m.checksum, "sha256:ABCD");
    }

    #[test]
    fn needs_server_and_checksum() {
        assert_eq!(Marker::parse(""), None);
        assert_eq!(Marker::parse("server=fra1/a\n"), None);
        assert_eq!(Marker::parse("checksum=sha256:ab\nserver=\n"), None);
        assert!(Marker::parse("checksum=sha256:ab\nserver=fra1/a").is_some());
    }

    #[test]
    fn adoption_ignores_the_uid() {
        let on_disk = Marker::parse(ON_DISK).unwrap();
        // Same server and image after the cluster was rebuilt (new UID): adopt.
        assert!(on_disk.matches(&expected("new-uid", "fra1/a01-u01", "sha256:abcd")));
        // Another server, or another image: do not.
        assert!(!on_disk.matches(&expected("0b7c-old", "fra1/a01-u02", "sha256:abcd")));
        assert!(!on_disk.matches(&expected("0b7c-old", "fra1/a01-u01", "sha256:abce")));
        assert!(!on_disk.matches(&expected("0b7c-old", "fra2/a01-u01", "sha512:abcd")));
    }
}

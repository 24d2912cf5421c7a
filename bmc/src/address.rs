//! Parsing of BMC address URLs such as `redfish+https://10.0.0.5/redfish/v1/Systems/1`
//! or `ipmi://10.0.0.5:623`.

use std::fmt;

use reqwest::Url;

use crate::BmcError;

/// Default IPMI-over-LAN (RMCP+) UDP port.
pub const IPMI_DEFAULT_PORT: u16 = 623;

/// HTTP scheme used by a Redfish address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpScheme {
    /// Plain HTTP (`redfish+http://`), for labs only.
    Http,
    /// HTTPS (`redfish://`, `redfish+https://`).
    Https,
}

impl HttpScheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpScheme::Http => "http",
            HttpScheme::Https => "https",
        }
    }
}

/// A parsed BMC address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BmcAddress {
    /// A Redfish service.
    Redfish {
        /// HTTP or HTTPS.
        scheme: HttpScheme,
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Explicit port, if any.
        port: Option<u16>,
        /// Path of the ComputerSystem resource, e.g. `/redfish/v1/Systems/1`, or
        /// `None` when the address names only the service: the driver then uses
        /// the single member of the Systems collection.
        system_path: Option<String>,
    },
    /// An IPMI-over-LAN BMC, driven through `ipmitool -I lanplus`.
    Ipmi {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// UDP port, 623 unless given.
        port: u16,
    },
}

fn invalid(msg: impl Into<String>) -> BmcError {
    BmcError::Protocol(format!("invalid BMC address: {}", msg.into()))
}

impl BmcAddress {
    /// Parse an address URL. Accepted forms:
    ///
    /// - `redfish://host[:port]/redfish/v1/Systems/ID` (HTTPS)
    /// - `redfish+https://host[:port]/redfish/v1/Systems/ID`
    /// - `redfish+http://host[:port]/redfish/v1/Systems/ID`
    /// - any of the above without a path (the service's only system is used)
    /// - `ipmi://host[:port]` (port 623 by default)
    ///
    /// User info (`user:pass@`), queries and fragments are rejected so that
    /// credentials never travel in addresses; the error does not echo them.
    pub fn parse(input: &str) -> Result<Self, BmcError> {
        let input = input.trim();
        let url = Url::parse(input).map_err(|e| invalid(format!("{e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not allowed; use a credentials secret",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("query strings and fragments are not allowed"));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_ascii_lowercase(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            _ => return Err(invalid(format!("missing host in {:?}", url.scheme()))),
        };
        let path = url.path().trim_end_matches('/');
        match url.scheme() {
            "redfish" | "redfish+https" | "redfish+http" => {
                let scheme = if url.scheme() == "redfish+http" {
                    HttpScheme::Http
                } else {
                    HttpScheme::Https
                };
                let system_path = match path {
                    "" | "/redfish/v1" => None,
                    p if p.starts_with("/redfish/v1/Systems/") && p.len() > 20 => {
                        Some(p.to_string())
                    }
                    p => {
                        return Err(invalid(format!(
                            "Redfish path must be /redfish/v1/Systems/<id>, got {p:?}"
                        )));
                    }
                };
                Ok(BmcAddress::Redfish {
                    scheme,
                    host,
                    port: url.port(),
                    system_path,
                })
            }
            "ipmi" => {
                if !path.is_empty() {
                    return Err(invalid(format!(
                        "IPMI addresses take no path, got {path:?}"
                    )));
                }
                Ok(BmcAddress::Ipmi {
                    host,
                    port: url.port().unwrap_or(IPMI_DEFAULT_PORT),
                })
            }
            other => Err(invalid(format!(
                "unknown scheme {other:?} (expected redfish, redfish+https, redfish+http or ipmi)"
            ))),
        }
    }

    /// `host` or `[v6]` plus `:port` when present, suitable for a URL authority.
    fn authority(host: &str, port: Option<u16>) -> String {
        let h = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match port {
            Some(p) => format!("{h}:{p}"),
            None => h,
        }
    }

    /// For Redfish: the base URL of the service, e.g. `https://10.0.0.5:8443`.
    pub fn base_url(&self) -> Option<String> {
        match self {
            BmcAddress::Redfish {
                scheme, host, port, ..
            } => Some(format!(
                "{}://{}",
                scheme.as_str(),
                Self::authority(host, *port)
            )),
            BmcAddress::Ipmi { .. } => None,
        }
    }

    /// A stable key naming this endpoint, used to serialize requests: the
    /// system URL for Redfish, `ipmi://host:port` for IPMI.
    pub fn endpoint_key(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for BmcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BmcAddress::Redfish {
                scheme,
                host,
                port,
                system_path,
            } => {
                let scheme = match scheme {
                    HttpScheme::Http => "redfish+http",
                    HttpScheme::Https => "redfish+https",
                };
                write!(
                    f,
                    "{scheme}://{}{}",
                    Self::authority(host, *port),
                    system_path.as_deref().unwrap_or("")
                )
            }
            BmcAddress::Ipmi { host, port } => {
                write!(f, "ipmi://{}", Self::authority(host, Some(*port)))
            }
        }
    }
}

impl std::str::FromStr for BmcAddress {
    type Err = BmcError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redfish(
        scheme: HttpScheme,
        host: &str,
        port: Option<u16>,
        path: Option<&str>,
    ) -> BmcAddress {
        BmcAddress::Redfish {
            scheme,
            host: host.into(),
            port,
            system_path: path.map(Into::into),
        }
    }

    #[test]
    fn parses_redfish_forms() {
        assert_eq!(
            BmcAddress::parse("redfish://bmc1.example.com/redfish/v1/Systems/1").ok(),
            Some(redfish(
                HttpScheme::Https,
                "bmc1.example.com",
                None,
                Some("/redfish/v1/Systems/1")
            ))
        );
        assert_eq!(
            BmcAddress::parse(
                "redfish+https://10.0.0.5:8443/redfish/v1/Systems/System.Embedded.1/"
            )
            .ok(),
            Some(redfish(
                HttpScheme::Https,
                "10.0.0.5",
                Some(8443),
                Some("/redfish/v1/Systems/System.Embedded.1")
            ))
        );
        assert_eq!(
            BmcAddress::parse("redfish+http://127.0.0.1:8000/redfish/v1/Systems/abc").ok(),
            Some(redfish(
                HttpScheme::Http,
                "127.0.0.1",
                Some(8000),
                Some("/redfish/v1/Systems/abc")
            ))
        );
        assert_eq!(
            BmcAddress::parse("redfish+http://[fd00::5]:8000").ok(),
            Some(redfish(HttpScheme::Http, "fd00::5", Some(8000), None))
        );
        assert_eq!(
            BmcAddress::parse("redfish://BMC.example.com/redfish/v1/").ok(),
            Some(redfish(HttpScheme::Https, "bmc.example.com", None, None))
        );
    }

    #[test]
    fn parses_ipmi_with_default_port() {
        assert_eq!(
            BmcAddress::parse("ipmi://10.1.2.3").ok(),
            Some(BmcAddress::Ipmi {
                host: "10.1.2.3".into(),
                port: 623
            })
        );
        assert_eq!(
            BmcAddress::parse("ipmi://10.1.2.3:6230").ok(),
            Some(BmcAddress::Ipmi {
                host: "10.1.2.3".into(),
                port: 6230
            })
        );
        assert_eq!(
            BmcAddress::parse("ipmi://[::1]:6230").ok(),
            Some(BmcAddress::Ipmi {
                host: "::1".into(),
                port: 6230
            })
        );
    }

    #[test]
    fn rejects_bad_addresses_without_echoing_secrets() {
        for bad in [
            "http://10.0.0.1/redfish/v1/Systems/1",
            "redfish://10.0.0.1/some/other/path",
            "redfish://10.0.0.1/redfish/v1/Systems/",
            "ipmi://10.0.0.1/path",
            "ipmi://",
            "redfish+https:///redfish/v1/Systems/1",
            "not a url",
            "redfish://10.0.0.1/redfish/v1/Systems/1?x=1",
        ] {
            let err = BmcAddress::parse(bad).err();
            assert!(matches!(err, Some(BmcError::Protocol(_))), "{bad}: {err:?}");
        }
        let err = BmcAddress::parse("redfish://root:hunter2@10.0.0.1/redfish/v1/Systems/1")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("credentials"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn display_roundtrips_and_keys() {
        for s in [
            "redfish+https://bmc:8443/redfish/v1/Systems/1",
            "redfish+http://127.0.0.1:8000/redfish/v1/Systems/x",
            "ipmi://[::1]:623",
        ] {
            let a = BmcAddress::parse(s).ok();
            assert_eq!(a.as_ref().map(|a| a.to_string()).as_deref(), Some(s));
        }
        let a = BmcAddress::parse("redfish://bmc/redfish/v1/Systems/1").ok();
        assert_eq!(
            a.as_ref().and_then(|a| a.base_url()).as_deref(),
            Some("https://bmc")
        );
        assert_eq!(
            a.map(|a| a.endpoint_key()).as_deref(),
            Some("redfish+https://bmc/redfish/v1/Systems/1")
        );
    }
}

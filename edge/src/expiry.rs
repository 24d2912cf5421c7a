//! Blackhole expiry: a BlackholeRoute past its `expiresAt` is left out of the configuration
//! (so the route is withdrawn) and reported `announced: false` with reason `Expired`. The
//! daemon never deletes the object: it stays as a record until a human removes it.

use crds::BlackholeRouteSpec;
use jiff::Timestamp;

/// True when `expiresAt` is set and not in the future.
pub fn is_expired(spec: &BlackholeRouteSpec, now: Timestamp) -> bool {
    spec.expires_at.as_ref().is_some_and(|t| t.0 <= now)
}

/// The earliest future expiry among `specs`, to wake up for (the daemon also polls every second).
pub fn next_expiry<'a>(
    specs: impl IntoIterator<Item = &'a BlackholeRouteSpec>,
    now: Timestamp,
) -> Option<Timestamp> {
    specs
        .into_iter()
        .filter_map(|s| s.expires_at.as_ref().map(|t| t.0))
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn spec(expires: Option<&str>) -> BlackholeRouteSpec {
        BlackholeRouteSpec {
            prefix: "203.0.113.66/32".into(),
            router_ref: "edge1".into(),
            links: vec![],
            expires_at: expires.map(|e| Time(e.parse().unwrap())),
            reason: String::new(),
        }
    }

    #[test]
    fn expiry_is_inclusive_and_optional() {
        let now: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        assert!(!is_expired(&spec(None), now));
        assert!(is_expired(&spec(Some("2026-06-01T12:00:00Z")), now));
        assert!(!is_expired(&spec(Some("2026-06-01T12:00:01Z")), now));
        let specs = [
            spec(Some("2026-06-01T11:00:00Z")),
            spec(Some("2026-06-01T13:00:00Z")),
            spec(None),
        ];
        assert_eq!(
            next_expiry(&specs, now),
            Some("2026-06-01T13:00:00Z".parse().unwrap())
        );
    }
}

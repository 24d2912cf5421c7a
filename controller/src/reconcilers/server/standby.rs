//! The warm pool's power rule (pure): which servers of a rack may wait powered on in the
//! ramdisk (state Standby) without the rack's power budget being exceeded
//! (`docs/standby.md`, "Power budget rule").
//!
//! Standby is the first power a rack gives up: the committed draw (servers on for a reason of
//! their own) is counted first, then standby seats go in order of `standbySince`, a newcomer
//! last. The same function admits a server and tells a seated one it must leave.

use crds::server::{ServerState, StandbyPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// `Standby` condition reason: the budget has no room for this server's draw.
pub const OVER_BUDGET: &str = crds::reasons::OVER_BUDGET;
/// `Standby` condition reason: the rack has a budget and the server declares no draw.
pub const POWER_NOT_DECLARED: &str = "PowerNotDeclared";
/// `Standby` condition reason: the rack's `spec.standby.maxServers` are seated.
pub const MAX_SERVERS_REACHED: &str = "MaxServersReached";

/// What the policy and the budget allow a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The policy says Off: standby is not wanted.
    Off,
    /// Wanted and within the rack's limits.
    Admit,
    /// Wanted but refused: the `Standby` condition's reason and message.
    Refuse(&'static str, String),
}

/// A rack's limits on its warm pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// `spec.power.budgetWatts` (0: no budget declared).
    pub budget_watts: u64,
    /// Σ `maxPowerWatts` of the rack's servers that are on for a reason other than standby.
    pub committed_watts: u64,
    /// `spec.standby.maxServers`.
    pub max_servers: Option<u32>,
}

/// One server holding or asking for a standby seat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seat<'a> {
    /// The Server's name (orders seats that arrived at the same instant).
    pub name: &'a str,
    /// `spec.maxPowerWatts`.
    pub watts: Option<u32>,
    /// `status.standbySince`; `None` for a server asking to enter (it comes last).
    pub since: Option<&'a Time>,
}

/// Whether a server in `state` draws power for a reason other than standby (so its declared
/// draw is committed before any standby seat is given).
pub fn committed(state: Option<ServerState>, online: bool) -> bool {
    online
        || matches!(
            state,
            Some(
                ServerState::Inspecting
                    | ServerState::Provisioning
                    | ServerState::Provisioned
                    | ServerState::Deprovisioning
            )
        )
}

/// Whether `candidate` may be (or stay) on standby, given the rack's `limits` and the `others`
/// of the rack on standby now (the candidate itself not among them).
pub fn gate(
    policy: StandbyPolicy,
    limits: Limits,
    others: &[Seat<'_>],
    candidate: Seat<'_>,
) -> Gate {
    if policy == StandbyPolicy::Off {
        return Gate::Off;
    }
    if limits.budget_watts > 0 && candidate.watts.is_none() {
        return Gate::Refuse(
            POWER_NOT_DECLARED,
            format!(
                "the rack has a power budget of {} W and spec.maxPowerWatts is not set",
                limits.budget_watts
            ),
        );
    }
    let mut queue: Vec<Seat<'_>> = others.to_vec();
    queue.push(candidate);
    // Earliest arrival first; a newcomer (no standbySince) after everyone seated.
    queue.sort_by(|a, b| {
        let key = |s: &Seat<'_>| (s.since.is_none(), s.since.map(|t| t.0), s.name.to_string());
        key(a).cmp(&key(b))
    });
    let mut drawn = limits.committed_watts;
    let mut seated = 0u32;
    for seat in queue {
        let watts = u64::from(seat.watts.unwrap_or(0));
        let fits_power = limits.budget_watts == 0
            || (seat.watts.is_some() && drawn.saturating_add(watts) <= limits.budget_watts);
        let fits_count = limits.max_servers.is_none_or(|max| seated < max);
        let me = seat.name == candidate.name;
        if fits_power && fits_count {
            if me {
                return Gate::Admit;
            }
            drawn = drawn.saturating_add(watts);
            seated += 1;
        } else if me {
            return if fits_count {
                Gate::Refuse(
                    OVER_BUDGET,
                    format!(
                        "{watts} W on standby would exceed the rack's budget: {drawn} W of {} W already drawn or seated",
                        limits.budget_watts
                    ),
                )
            } else {
                Gate::Refuse(
                    MAX_SERVERS_REACHED,
                    format!(
                        "the rack allows {} servers on standby and they are seated",
                        limits.max_servers.unwrap_or(0)
                    ),
                )
            };
        }
    }
    // The candidate is always in the queue; reaching here would be a bug in the walk.
    Gate::Refuse(OVER_BUDGET, "no standby seat found".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn seat<'a>(name: &'a str, watts: Option<u32>, since: Option<&'a Time>) -> Seat<'a> {
        Seat { name, watts, since }
    }

    const BUDGET: Limits = Limits {
        budget_watts: 1000,
        committed_watts: 400,
        max_servers: None,
    };

    #[test]
    fn the_server_policy_wins_over_the_rack_default() {
        use StandbyPolicy::{Off, Standby};
        assert_eq!(StandbyPolicy::effective(None, None), Off);
        assert_eq!(StandbyPolicy::effective(None, Some(Standby)), Standby);
        assert_eq!(StandbyPolicy::effective(Some(Off), Some(Standby)), Off);
        assert_eq!(StandbyPolicy::effective(Some(Standby), None), Standby);
    }

    #[test]
    fn committed_draw_is_every_reason_to_be_on_but_standby() {
        assert!(committed(Some(ServerState::Available), true));
        assert!(committed(Some(ServerState::Provisioned), false));
        assert!(committed(Some(ServerState::Inspecting), false));
        assert!(!committed(Some(ServerState::Standby), false));
        assert!(!committed(Some(ServerState::Available), false));
        assert!(!committed(None, false));
    }

    #[test]
    fn seats_fill_the_budget_left_after_committed_draw() {
        let t0 = t(0);
        let a = seat("a", Some(300), Some(&t0));
        // 400 committed + 300 seated + 300 = 1000: fits exactly.
        assert_eq!(
            gate(
                StandbyPolicy::Standby,
                BUDGET,
                &[a],
                seat("b", Some(300), None)
            ),
            Gate::Admit
        );
        // One watt more does not.
        let refused = gate(
            StandbyPolicy::Standby,
            BUDGET,
            &[a],
            seat("b", Some(301), None),
        );
        assert!(
            matches!(refused, Gate::Refuse(OVER_BUDGET, ref m) if m.contains("700 W of 1000 W")),
            "{refused:?}"
        );
        // The policy Off never asks.
        assert_eq!(
            gate(StandbyPolicy::Off, BUDGET, &[a], seat("b", Some(1), None)),
            Gate::Off
        );
    }

    #[test]
    fn the_latest_arrival_leaves_first_when_committed_draw_grows() {
        let (t0, t1) = (t(0), t(10));
        let first = seat("z-first", Some(300), Some(&t0));
        let second = seat("a-second", Some(300), Some(&t1));
        assert_eq!(
            gate(StandbyPolicy::Standby, BUDGET, &[first], second),
            Gate::Admit
        );
        // A cold provisioning commits 300 W more: the second arrival loses its seat, the first
        // keeps it (names do not matter, arrival does).
        let grown = Limits {
            committed_watts: 700,
            ..BUDGET
        };
        assert!(matches!(
            gate(StandbyPolicy::Standby, grown, &[first], second),
            Gate::Refuse(OVER_BUDGET, _)
        ));
        assert_eq!(
            gate(StandbyPolicy::Standby, grown, &[second], first),
            Gate::Admit
        );
        // Same instant: by name.
        let tie = seat("b", Some(300), Some(&t0));
        let grown_tie = Limits {
            committed_watts: 700,
            ..BUDGET
        };
        assert_eq!(
            gate(StandbyPolicy::Standby, grown_tie, &[first], tie),
            Gate::Admit
        );
        assert!(matches!(
            gate(StandbyPolicy::Standby, grown_tie, &[tie], first),
            Gate::Refuse(..)
        ));
    }

    #[test]
    fn an_undeclared_draw_gets_no_seat_under_a_budget_but_counts_nothing_without_one() {
        let refused = gate(StandbyPolicy::Standby, BUDGET, &[], seat("a", None, None));
        assert!(matches!(refused, Gate::Refuse(POWER_NOT_DECLARED, _)));
        let unbudgeted = Limits::default();
        assert_eq!(
            gate(
                StandbyPolicy::Standby,
                unbudgeted,
                &[],
                seat("a", None, None)
            ),
            Gate::Admit
        );
        // A seated server without a declared draw (the budget came later) is skipped, not
        // counted: it will be told to leave on its own reconcile.
        let t0 = t(0);
        let undeclared = seat("old", None, Some(&t0));
        assert_eq!(
            gate(
                StandbyPolicy::Standby,
                BUDGET,
                &[undeclared],
                seat("b", Some(600), None)
            ),
            Gate::Admit
        );
    }

    #[test]
    fn max_servers_caps_the_pool_in_arrival_order() {
        let (t0, t1) = (t(0), t(1));
        let limits = Limits {
            max_servers: Some(1),
            ..Limits::default()
        };
        let a = seat("a", Some(100), Some(&t0));
        let refused = gate(
            StandbyPolicy::Standby,
            limits,
            &[a],
            seat("b", Some(100), None),
        );
        assert!(
            matches!(refused, Gate::Refuse(MAX_SERVERS_REACHED, _)),
            "{refused:?}"
        );
        let b = seat("b", Some(100), Some(&t1));
        assert_eq!(gate(StandbyPolicy::Standby, limits, &[b], a), Gate::Admit);
        let none = Limits {
            max_servers: Some(0),
            ..Limits::default()
        };
        assert!(matches!(
            gate(StandbyPolicy::Standby, none, &[], a),
            Gate::Refuse(MAX_SERVERS_REACHED, _)
        ));
    }
}

//! Each rack's refresh slot for the warm pool's periodic refresh
//! (`reconcilers::server::refresh`): which servers refresh is decided from the caches, which
//! lag the writes by moments, so the slot is also held here, in the leader's memory, from the
//! claim until the cache shows the refresh. After a restart the cache alone shows the
//! refreshes under way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A claim holds its rack's slot this long even when the cache does not show its refresh yet
/// (the status write it leads to reaches the cache well within it).
pub const CLAIM_GRACE: Duration = Duration::from_secs(30);

/// Each rack's refresh slot: the server that claimed it and when.
#[derive(Debug, Default)]
pub struct Slots {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl Slots {
    /// Claims `rack`'s slot for server `me`, unless another server of the rack refreshes now
    /// (`refreshing`, from the cache) or claimed it less than [`CLAIM_GRACE`] ago. Returns the
    /// server that holds it on refusal.
    pub fn claim(
        &self,
        rack: &str,
        me: &str,
        refreshing: &[&str],
        now: Instant,
    ) -> Result<(), String> {
        if let Some(other) = refreshing.iter().find(|s| **s != me) {
            return Err((*other).to_string());
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((holder, at)) = held.get(rack)
            && holder != me
            && now.saturating_duration_since(*at) < CLAIM_GRACE
        {
            return Err(holder.clone());
        }
        held.insert(rack.to_string(), (me.to_string(), now));
        Ok(())
    }

    /// Gives `rack`'s slot back if `me` holds it (its refresh is done): the next server of the
    /// rack need not wait out the grace.
    pub fn release(&self, rack: &str, me: &str) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.get(rack).is_some_and(|(holder, _)| holder == me) {
            held.remove(rack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_server_per_rack_holds_the_slot() {
        let slots = Slots::default();
        let t0 = Instant::now();
        assert_eq!(slots.claim("ns/r1", "a", &[], t0), Ok(()));
        // b, the same moment: a's claim holds though the cache shows nothing yet.
        assert_eq!(slots.claim("ns/r1", "b", &[], t0), Err("a".into()));
        // Another rack is independent; a may claim again.
        assert_eq!(slots.claim("ns/r2", "b", &[], t0), Ok(()));
        assert_eq!(slots.claim("ns/r1", "a", &[], t0), Ok(()));
        // While the cache shows a refreshing, b waits, whatever the ledger says.
        let later = t0 + CLAIM_GRACE + Duration::from_secs(1);
        assert_eq!(slots.claim("ns/r1", "b", &["a"], later), Err("a".into()));
        // a is back on standby and its claim is old: b's turn.
        assert_eq!(slots.claim("ns/r1", "b", &[], later), Ok(()));
        assert_eq!(slots.claim("ns/r1", "a", &[], later), Err("b".into()));
        // b is done: its release frees the slot at once (a release by another is no release).
        slots.release("ns/r1", "a");
        assert_eq!(slots.claim("ns/r1", "a", &[], later), Err("b".into()));
        slots.release("ns/r1", "b");
        assert_eq!(slots.claim("ns/r1", "a", &[], later), Ok(()));
        // After a restart (an empty ledger) the cache alone keeps it to one.
        let fresh = Slots::default();
        assert_eq!(fresh.claim("ns/r1", "a", &["b"], t0), Err("b".into()));
    }
}

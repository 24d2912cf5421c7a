//! One-time boot tokens: an HMAC over the server and the boot attempt it was issued for. Any
//! replica holding the key verifies it without shared state; a token dies when the attempt
//! ends (the attempt id changes).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key tokens are signed with.
#[derive(Clone)]
pub struct TokenKey(HmacSha256);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    /// A key from its bytes (at least 32).
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < 32 {
            return None;
        }
        HmacSha256::new_from_slice(bytes).ok().map(Self)
    }

    fn mac(&self, server_uid: &str, attempt: &str) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(server_uid.as_bytes());
        mac.update(b"\0");
        mac.update(attempt.as_bytes());
        mac
    }

    /// The token for `server_uid`'s boot attempt `attempt` (hex).
    pub fn issue(&self, server_uid: &str, attempt: &str) -> String {
        hex::encode(self.mac(server_uid, attempt).finalize().into_bytes())
    }

    /// Whether `token` was issued for this server and attempt (constant-time compare).
    pub fn verify(&self, server_uid: &str, attempt: &str, token: &str) -> bool {
        match hex::decode(token) {
            Ok(bytes) => self.mac(server_uid, attempt).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7; 32]).unwrap()
    }

    #[test]
    fn token_verifies_only_for_its_server_and_attempt() {
        let t = key().issue("uid-a", "attempt-1");
        assert!(key().verify("uid-a", "attempt-1", &t));
        assert!(!key().verify("uid-b", "attempt-1", &t));
        assert!(!key().verify("uid-a", "attempt-2", &t));
        assert!(!key().verify("uid-a", "attempt-1", "zz"));
        let other = TokenKey::new(&[8; 32]).unwrap();
        assert!(!other.verify("uid-a", "attempt-1", &t));
    }

    #[test]
    fn short_keys_are_refused_and_debug_hides_the_key() {
        assert!(TokenKey::new(&[1; 16]).is_none());
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
    }
}

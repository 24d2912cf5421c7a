//! Image checksums: parsing `sha256:<hex>` / `sha512:<hex>`, streaming hashing of the
//! downloaded artifact, and a comparison whose time does not depend on where digests differ.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256, Sha512};

/// A hash algorithm an image checksum may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SHA-256 (32-byte digest).
    Sha256,
    /// SHA-512 (64-byte digest).
    Sha512,
}

impl Algorithm {
    /// The prefix used in the textual form (`sha256`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    /// A fresh streaming hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a checksum string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumParseError {
    /// No `algorithm:` prefix.
    #[error("checksum must look like sha256:<hex> or sha512:<hex>")]
    MissingAlgorithm,
    /// A prefix other than sha256/sha512.
    #[error("unsupported checksum algorithm {0:?} (use sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// The digest is not hexadecimal.
    #[error("checksum digest is not hexadecimal")]
    InvalidHex,
    /// The digest has the wrong length for its algorithm.
    #[error("{algorithm} digest must be {expected} hex characters, got {actual}")]
    WrongLength {
        /// The algorithm named by the prefix.
        algorithm: Algorithm,
        /// Expected number of hex characters.
        expected: usize,
        /// Number of hex characters given.
        actual: usize,
    },
}

/// An expected digest of the downloaded image artifact (the compressed file, as served).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    algorithm: Algorithm,
    digest: Vec<u8>,
}

impl Checksum {
    /// A checksum from an algorithm and raw digest bytes.
    pub fn new(algorithm: Algorithm, digest: Vec<u8>) -> Result<Self, ChecksumParseError> {
        if digest.len() != algorithm.digest_len() {
            return Err(ChecksumParseError::WrongLength {
                algorithm,
                expected: algorithm.digest_len() * 2,
                actual: digest.len() * 2,
            });
        }
        Ok(Self { algorithm, digest })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The expected digest bytes.
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// Whether `digest` equals the expected digest (constant time in the digest contents).
    pub fn matches(&self, digest: &[u8]) -> bool {
        constant_time_eq(&self.digest, digest)
    }
}

impl FromStr for Checksum {
    type Err = ChecksumParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (algo, hex_digest) = s
            .trim()
            .split_once(':')
            .ok_or(ChecksumParseError::MissingAlgorithm)?;
        let algorithm = match algo.to_ascii_lowercase().as_str() {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(ChecksumParseError::UnknownAlgorithm(algo.to_string())),
        };
        if hex_digest.len() != algorithm.digest_len() * 2 {
            return Err(ChecksumParseError::WrongLength {
                algorithm,
                expected: algorithm.digest_len() * 2,
                actual: hex_digest.len(),
            });
        }
        let digest = hex::decode(hex_digest).map_err(|_| ChecksumParseError::InvalidHex)?;
        Self::new(algorithm, digest)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, hex::encode(&self.digest))
    }
}

/// A streaming hasher over the downloaded bytes.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finalize(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// Compares two byte strings without an early exit on the first difference.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256_and_sha512() {
        let c: Checksum = format!("sha256:{EMPTY_SHA256}").parse().unwrap();
        assert_eq!(c.algorithm(), Algorithm::Sha256);
        assert_eq!(c.to_string(), format!("sha256:{EMPTY_SHA256}"));
        let upper: Checksum = format!("SHA256:{}", EMPTY_SHA256.to_uppercase())
            .parse()
            .unwrap();
        assert_eq!(upper, c);
        let c512: Checksum = format!("sha512:{}", "ab".repeat(64)).parse().unwrap();
        assert_eq!(c512.algorithm(), Algorithm::Sha512);
        assert_eq!(c512.digest().len(), 64);
    }

    #[test]
    fn rejects_malformed_checksums() {
        assert_eq!(
            EMPTY_SHA256.parse::<Checksum>(),
            Err(ChecksumParseError::MissingAlgorithm)
        );
        assert_eq!(
            format!("md5:{}", "00".repeat(16)).parse::<Checksum>(),
            Err(ChecksumParseError::UnknownAlgorithm("md5".into()))
        );
        assert_eq!(
            format!("sha256:{}", "zz".repeat(32)).parse::<Checksum>(),
            Err(ChecksumParseError::InvalidHex)
        );
        assert_eq!(
            "sha512:abcd".parse::<Checksum>(),
            Err(ChecksumParseError::WrongLength {
                algorithm: Algorithm::Sha512,
                expected: 128,
                actual: 4
            })
        );
    }

    #[test]
    fn streaming_hash_matches_one_shot() {
        let c: Checksum = format!("sha256:{EMPTY_SHA256}").parse().unwrap();
        assert!(c.matches(&Algorithm::Sha256.hasher().finalize()));

        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
        let mut h = Algorithm::Sha512.hasher();
        for part in data.chunks(977) {
            h.update(part);
        }
        assert_eq!(h.finalize(), Sha512::digest(&data).to_vec());
    }

    #[test]
    fn compare_checks_every_byte_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"xbc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}

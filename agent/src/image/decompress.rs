//! Image formats and on-the-fly decompression of the downloaded stream into raw disk bytes.

use std::fmt;
use std::io::{BufRead, Read};
use std::str::FromStr;

/// The format of an image artifact, as named in a Server's image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// A raw disk image, written as is.
    Raw,
    /// A raw disk image compressed with gzip (one or more members, as pigz writes).
    RawGzip,
    /// A raw disk image compressed with zstd (one or more frames).
    RawZstd,
    /// A qcow2 image (no backing file, not encrypted), converted to raw as it streams.
    Qcow2,
}

impl ImageFormat {
    /// The canonical name (`raw`, `raw+gzip`, `raw+zstd`, `qcow2`).
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::RawGzip => "raw+gzip",
            ImageFormat::RawZstd => "raw+zstd",
            ImageFormat::Qcow2 => "qcow2",
        }
    }

    /// Whether the artifact is compressed (its size says nothing about the disk size).
    pub fn is_compressed(self) -> bool {
        matches!(self, ImageFormat::RawGzip | ImageFormat::RawZstd)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not known at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image format {0:?} (expected raw, raw+gzip, raw+zstd or qcow2)")]
pub struct UnknownFormat(pub String);

impl FromStr for ImageFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "raw" => Ok(ImageFormat::Raw),
            "raw+gzip" | "raw+gz" => Ok(ImageFormat::RawGzip),
            "raw+zstd" | "raw+zst" => Ok(ImageFormat::RawZstd),
            "qcow2" => Ok(ImageFormat::Qcow2),
            _ => Err(UnknownFormat(s.to_string())),
        }
    }
}

/// Wraps the compressed input in a reader that yields raw disk bytes; qcow2 is no stream of
/// disk bytes and has its own reader ([`super::qcow2`]).
///
/// `input` should hand out large slices from `fill_buf` (the writer feeds it whole network
/// chunks), so the raw path copies each byte once and the decoders read without extra buffering.
pub fn decoder<'a, R>(format: ImageFormat, input: R) -> std::io::Result<Box<dyn Read + Send + 'a>>
where
    R: BufRead + Send + 'a,
{
    match format {
        ImageFormat::Raw => Ok(Box::new(input)),
        ImageFormat::RawGzip => Ok(Box::new(flate2::bufread::MultiGzDecoder::new(input))),
        ImageFormat::RawZstd => Ok(Box::new(zstd::stream::read::Decoder::with_buffer(input)?)),
        ImageFormat::Qcow2 => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "qcow2 is not a stream of disk bytes",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        let mut v = vec![0u8; 300_000];
        for (i, b) in v.iter_mut().enumerate().skip(100_000) {
            *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
        }
        v
    }

    fn decode_all(format: ImageFormat, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(format, data)?.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn parses_format_names() {
        assert_eq!("raw".parse::<ImageFormat>(), Ok(ImageFormat::Raw));
        assert_eq!("RAW+GZ".parse::<ImageFormat>(), Ok(ImageFormat::RawGzip));
        assert_eq!("raw+zstd".parse::<ImageFormat>(), Ok(ImageFormat::RawZstd));
        assert_eq!("qcow2".parse::<ImageFormat>(), Ok(ImageFormat::Qcow2));
        assert!("vmdk".parse::<ImageFormat>().is_err());
        assert!(decoder(ImageFormat::Qcow2, &b""[..]).is_err());
    }

    #[test]
    fn raw_passes_through() {
        let data = sample();
        assert_eq!(decode_all(ImageFormat::Raw, &data).unwrap(), data);
    }

    #[test]
    fn gzip_with_several_members_decodes_whole() {
        let data = sample();
        let (a, b) = data.split_at(123_457);
        let mut gz = Vec::new();
        for part in [a, b] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap();
            gz.extend(enc.finish().unwrap());
        }
        assert_eq!(decode_all(ImageFormat::RawGzip, &gz).unwrap(), data);
    }

    #[test]
    fn zstd_decodes_and_truncation_is_an_error() {
        let data = sample();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(decode_all(ImageFormat::RawZstd, &z).unwrap(), data);
        assert!(decode_all(ImageFormat::RawZstd, &z[..z.len() / 2]).is_err());
    }
}

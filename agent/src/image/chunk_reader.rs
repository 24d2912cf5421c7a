//! A blocking `BufRead` over the network chunks the download task sends through a channel.

use std::io::{self, BufRead, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc::Receiver;

/// Reads the chunks of a bounded channel in order; end of input when the sender is gone.
///
/// Must be used from a blocking thread (it calls `blocking_recv`).
pub struct ChunkReader {
    rx: Receiver<Bytes>,
    current: Bytes,
    done: bool,
}

impl ChunkReader {
    /// Wraps the receiving end of the download channel.
    pub fn new(rx: Receiver<Bytes>) -> Self {
        Self {
            rx,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() && !self.done {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => self.done = true,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount.min(self.current.len()));
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chunks_in_order_then_ends() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let t = std::thread::spawn(move || {
            for part in [&b"hello "[..], b"", b"chunked ", b"world"] {
                tx.blocking_send(Bytes::from_static(part)).unwrap();
            }
        });
        let mut out = String::new();
        ChunkReader::new(rx).read_to_string(&mut out).unwrap();
        t.join().unwrap();
        assert_eq!(out, "hello chunked world");
    }
}

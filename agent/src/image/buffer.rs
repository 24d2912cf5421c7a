//! Heap buffers whose start is aligned for direct I/O, without `unsafe`.

/// Alignment that satisfies O_DIRECT on 512-byte and 4 KiB logical-sector devices.
pub const DIRECT_IO_ALIGN: usize = 4096;

/// A fixed-capacity byte buffer whose first byte is aligned to [`DIRECT_IO_ALIGN`].
///
/// It over-allocates by one alignment unit and hands out the aligned window, so no custom
/// allocator is needed.
pub struct AlignedBuf {
    storage: Vec<u8>,
    start: usize,
    capacity: usize,
}

impl AlignedBuf {
    /// A zeroed buffer of `capacity` bytes (the pages are only touched when written).
    pub fn new(capacity: usize) -> Self {
        let storage = vec![0u8; capacity + DIRECT_IO_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_IO_ALIGN);
        // `align_offset` on a byte pointer always succeeds and is < DIRECT_IO_ALIGN.
        let start = start.min(DIRECT_IO_ALIGN);
        Self {
            storage,
            start,
            capacity,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The aligned window.
    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.capacity]
    }

    /// The aligned window, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.capacity]
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("capacity", &self.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_sized() {
        for cap in [0, 1, 4096, 1 << 20] {
            let mut b = AlignedBuf::new(cap);
            assert_eq!(b.as_slice().len(), cap);
            assert_eq!(b.as_mut_slice().as_ptr() as usize % DIRECT_IO_ALIGN, 0);
        }
    }
}

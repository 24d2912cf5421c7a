//! Bytes of the file that streamed past before anything known claimed them, kept in case a
//! table read later maps them.

use std::collections::BTreeMap;

/// Runs grow up to this size; a new run starts after it (so removing a range copies little).
const RUN: usize = 1 << 20;

/// What a run costs besides its bytes (map node, vector, allocation).
const RUN_OVERHEAD: usize = 64;

/// Non-overlapping runs of file bytes, by file offset.
#[derive(Debug, Default)]
pub struct Orphans {
    runs: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
}

impl Orphans {
    /// Memory held: the bytes, and an allowance per run for its bookkeeping.
    pub fn cost(&self) -> usize {
        self.bytes + self.runs.len() * RUN_OVERHEAD
    }

    /// Forgets the run with the lowest offset; returns where it ended.
    pub fn drop_first(&mut self) -> Option<u64> {
        let (at, run) = self.runs.pop_first()?;
        self.bytes -= run.len();
        Some(at + run.len() as u64)
    }

    /// Keeps `data`, which starts at file offset `at`, past everything kept so far.
    pub fn push(&mut self, at: u64, data: &[u8]) {
        self.bytes += data.len();
        if let Some((start, run)) = self.runs.iter_mut().next_back()
            && start + run.len() as u64 == at
            && run.len() < RUN
        {
            run.extend_from_slice(data);
            return;
        }
        self.runs.insert(at, data.to_vec());
    }

    /// A copy of the held bytes from `start` on, up to `len` of them: shorter when a byte of
    /// the range is not held.
    pub fn get(&self, start: u64, len: u64) -> Vec<u8> {
        let end = start + len;
        let mut out = Vec::new();
        let first = self
            .runs
            .range(..=start)
            .next_back()
            .map_or(start, |(at, _)| *at);
        let mut from = start;
        for (at, run) in self.runs.range(first..end) {
            let run_end = at + run.len() as u64;
            if run_end <= from {
                continue;
            }
            if *at > from {
                break;
            }
            let to = end.min(run_end);
            out.extend_from_slice(&run[(from - at) as usize..(to - at) as usize]);
            from = to;
        }
        out
    }

    /// Forgets the held bytes of `[start, start + len)`.
    pub fn remove(&mut self, start: u64, len: u64) {
        let end = start + len;
        let overlapping: Vec<u64> = self
            .runs
            .range(..end)
            .rev()
            .take_while(|(at, run)| *at + run.len() as u64 > start)
            .map(|(at, _)| *at)
            .collect();
        for at in overlapping {
            let Some(run) = self.runs.remove(&at) else {
                continue;
            };
            let run_end = at + run.len() as u64;
            let from = start.max(at);
            let to = end.min(run_end);
            self.bytes -= (to - from) as usize;
            if at < from {
                self.runs.insert(at, run[..(from - at) as usize].to_vec());
            }
            if to < run_end {
                self.runs.insert(to, run[(to - at) as usize..].to_vec());
            }
        }
    }

    /// Drops everything.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(from: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| from.wrapping_add(i as u8)).collect()
    }

    #[test]
    fn copies_and_removes_ranges_across_runs() {
        let mut o = Orphans::default();
        o.push(100, &bytes(0, 50));
        o.push(150, &bytes(50, 50));
        o.push(400, &bytes(200, 10));
        assert_eq!(o.bytes, 110);
        assert_eq!(o.get(120, 60), bytes(20, 60));
        o.remove(120, 60);
        assert_eq!(o.bytes, 50);
        assert_eq!(o.get(100, 20), bytes(0, 20));
        assert_eq!(o.get(180, 20), bytes(80, 20));
        assert_eq!(o.get(400, 10), bytes(200, 10));
        assert_eq!(o.cost(), 50 + 3 * RUN_OVERHEAD);
        assert_eq!(o.drop_first(), Some(120));
        o.remove(0, 1000);
        assert_eq!(o.bytes, 0);
        assert!(o.runs.is_empty());
    }

    #[test]
    fn a_copy_stops_at_the_first_missing_byte() {
        let mut o = Orphans::default();
        o.push(0, &bytes(0, 10));
        o.push(20, &bytes(20, 10));
        assert_eq!(o.get(5, 20), bytes(5, 5));
        assert!(o.get(40, 1).is_empty());
        assert!(o.get(15, 10).is_empty());
        assert_eq!(o.get(22, 100), bytes(22, 8));
        assert!(o.get(0, 0).is_empty());
    }

    #[test]
    fn long_streams_are_split_into_runs() {
        let mut o = Orphans::default();
        let chunk = vec![7u8; RUN / 2 + 1];
        for i in 0..4u64 {
            o.push(i * chunk.len() as u64, &chunk);
        }
        assert_eq!(o.runs.len(), 2);
        o.clear();
        assert_eq!(o.bytes, 0);
    }
}

//! The agents' recent log lines, per Server, in memory (the last [`KEEP`] lines each).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use proto::agent_v1::LogLine;

/// Lines kept per Server.
pub const KEEP: usize = 2000;

/// Recent log lines by Server (`namespace/name`).
#[derive(Default)]
pub struct Logs(Mutex<HashMap<String, VecDeque<LogLine>>>);

impl Logs {
    /// Appends lines, dropping the oldest beyond [`KEEP`].
    pub fn append(&self, server: &str, lines: Vec<LogLine>) {
        let Ok(mut all) = self.0.lock() else {
            return;
        };
        let kept = all.entry(server.to_string()).or_default();
        kept.extend(lines);
        while kept.len() > KEEP {
            kept.pop_front();
        }
    }

    /// The last `n` lines of `server`, oldest first, as text.
    pub fn tail(&self, server: &str, n: usize) -> Vec<String> {
        let Ok(all) = self.0.lock() else {
            return Vec::new();
        };
        all.get(server)
            .map(|l| {
                l.iter()
                    .skip(l.len().saturating_sub(n))
                    .map(|l| {
                        let at = jiff::Timestamp::from_millisecond(l.timestamp_ms)
                            .map_or_else(|_| l.timestamp_ms.to_string(), |t| t.to_string());
                        format!("{at} {} {}", l.level, l.text)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_per_server() {
        let logs = Logs::default();
        let line = |i: i64| LogLine {
            timestamp_ms: i,
            level: "info".into(),
            text: format!("line {i}"),
        };
        logs.append("ns/a", (0..(KEEP as i64 + 5)).map(line).collect());
        logs.append("ns/b", vec![line(1)]);
        let tail = logs.tail("ns/a", 2);
        assert_eq!(
            tail,
            vec![
                "1970-01-01T00:00:02.003Z info line 2003".to_string(),
                "1970-01-01T00:00:02.004Z info line 2004".to_string()
            ]
        );
        assert_eq!(logs.tail("ns/b", 10).len(), 1);
        assert!(logs.tail("ns/c", 10).is_empty());
    }
}

//! The agent's log lines, kept for the controller: a `tracing` layer copies every event into
//! a bounded buffer that the run loop ships with `SendLogs`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use proto::agent_v1::LogLine;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines kept when the controller cannot be reached (the oldest are dropped first).
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A bounded, shared buffer of log lines; clones share it.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    lines: VecDeque<LogLine>,
    capacity: usize,
    dropped: u64,
}

impl Default for LogBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl LogBuffer {
    /// A buffer holding at most `capacity` lines (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                lines: VecDeque::new(),
                capacity: capacity.max(1),
                dropped: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `tracing` layer that fills this buffer.
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            buffer: self.clone(),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, line: LogLine) {
        let mut inner = self.lock();
        if inner.lines.len() == inner.capacity {
            inner.lines.pop_front();
            inner.dropped += 1;
        }
        inner.lines.push_back(line);
    }

    /// Takes up to `max` of the oldest lines, preceded by a note when lines were dropped.
    pub fn drain(&self, max: usize) -> Vec<LogLine> {
        let mut inner = self.lock();
        let n = max.min(inner.lines.len());
        let mut out = Vec::with_capacity(n + 1);
        if inner.dropped > 0 {
            out.push(line(
                "WARN",
                format!("{} log lines dropped (buffer full)", inner.dropped),
            ));
            inner.dropped = 0;
        }
        out.extend(inner.lines.drain(..n));
        out
    }

    /// Puts lines that could not be sent back in front, keeping the newest when full.
    pub fn requeue(&self, lines: Vec<LogLine>) {
        let mut inner = self.lock();
        for l in lines.into_iter().rev() {
            if inner.lines.len() == inner.capacity {
                inner.dropped += 1;
            } else {
                inner.lines.push_front(l);
            }
        }
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether no line is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn line(level: &str, text: String) -> LogLine {
    let timestamp_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    LogLine {
        timestamp_ms,
        level: level.to_string(),
        text,
    }
}

/// Copies every event (message, then `key=value` fields) into a [`LogBuffer`].
#[derive(Debug, Clone)]
pub struct LogLayer {
    buffer: LogBuffer,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Text::default();
        event.record(&mut text);
        let mut rendered = text.message;
        if !text.fields.is_empty() {
            if !rendered.is_empty() {
                rendered.push(' ');
            }
            rendered.push_str(&text.fields);
        }
        self.buffer
            .push(line(event.metadata().level().as_str(), rendered));
    }
}

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value:?}", field.name());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_become_lines() {
        let buffer = LogBuffer::new(10);
        let subscriber = tracing_subscriber::registry().with(buffer.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(device = "/dev/sda", bytes = 42, "image written");
            tracing::warn!("plain");
        });
        let lines = buffer.drain(10);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].level, "INFO");
        assert_eq!(lines[0].text, "image written device=/dev/sda bytes=42");
        assert_eq!(
            (lines[1].level.as_str(), lines[1].text.as_str()),
            ("WARN", "plain")
        );
        assert!(lines[0].timestamp_ms > 1_600_000_000_000);
        assert!(buffer.is_empty());
    }

    #[test]
    fn bounded_with_a_note_about_dropped_lines() {
        let buffer = LogBuffer::new(3);
        for i in 0..5 {
            buffer.push(line("INFO", format!("l{i}")));
        }
        let lines = buffer.drain(2);
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["2 log lines dropped (buffer full)", "l2", "l3"]);
        // Unsent lines go back in front of newer ones.
        buffer.push(line("INFO", "l5".into()));
        buffer.requeue(lines[1..].to_vec());
        let texts: Vec<String> = buffer.drain(10).into_iter().map(|l| l.text).collect();
        assert_eq!(
            texts,
            ["1 log lines dropped (buffer full)", "l3", "l4", "l5"]
        );
    }
}

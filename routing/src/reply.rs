//! BIRD's control-socket reply format, parsed by numeric code (pure).
//!
//! Every line starts with a 4-digit code followed by `-` (more lines follow)
//! or a space (last line of the reply). Lines starting with a space continue
//! the previous code. Lines starting with `+` are asynchronous notices.

/// One logical reply line: its code and text (without code and separator).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyLine {
    /// The 4-digit code (continuation lines inherit the previous code).
    pub code: u16,
    /// The text after the code and separator.
    pub text: String,
}

/// A complete reply to one command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// All lines, the final one last.
    pub lines: Vec<ReplyLine>,
}

/// What one raw line means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RawLine {
    /// A coded line; `last` is true when the separator was a space.
    Coded {
        /// The code.
        code: u16,
        /// Whether this line ends the reply.
        last: bool,
        /// The text.
        text: String,
    },
    /// A continuation of the previous code.
    Continuation(String),
    /// An asynchronous notice (`+...`), not part of a reply.
    Async(String),
}

/// Classifies one raw line (without its newline); `None` for garbage.
pub fn parse_raw_line(line: &str) -> Option<RawLine> {
    if let Some(rest) = line.strip_prefix('+') {
        return Some(RawLine::Async(rest.to_string()));
    }
    if let Some(rest) = line.strip_prefix(' ') {
        return Some(RawLine::Continuation(rest.to_string()));
    }
    let b = line.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code: u16 = line[..4].parse().ok()?;
    let last = match b[4] {
        b' ' => true,
        b'-' => false,
        _ => return None,
    };
    Some(RawLine::Coded {
        code,
        last,
        text: line[5..].to_string(),
    })
}

impl Reply {
    /// Code of the final line (0 when empty).
    pub fn final_code(&self) -> u16 {
        self.lines.last().map_or(0, |l| l.code)
    }

    /// Text of the final line.
    pub fn final_text(&self) -> &str {
        self.lines.last().map_or("", |l| l.text.as_str())
    }

    /// Texts of all lines carrying `code`.
    pub fn texts(&self, code: u16) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .filter(move |l| l.code == code)
            .map(|l| l.text.as_str())
    }

    /// Whether any line is an error (8xxx runtime error, 9xxx syntax error).
    pub fn error(&self) -> Option<&ReplyLine> {
        self.lines.iter().find(|l| l.code >= 8000)
    }

    /// Parses a whole reply from raw text (used by tests and by the client).
    /// Returns the reply and whether it was complete.
    pub fn parse(text: &str) -> (Reply, bool) {
        let mut reply = Reply::default();
        for raw in text.lines() {
            if reply.push_raw(raw) {
                return (reply, true);
            }
        }
        (reply, false)
    }

    /// Adds one raw line; returns true when the reply is complete.
    pub fn push_raw(&mut self, raw: &str) -> bool {
        match parse_raw_line(raw) {
            Some(RawLine::Coded { code, last, text }) => {
                self.lines.push(ReplyLine { code, text });
                last
            }
            Some(RawLine::Continuation(text)) => {
                let code = self.lines.last().map_or(0, |l| l.code);
                self.lines.push(ReplyLine { code, text });
                false
            }
            Some(RawLine::Async(_)) | None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_codes_and_continuations() {
        let text = "2002-Name       Proto\n1002-gw_a BGP --- up 2024 Established\n1006-  BGP state: Established\n     Neighbor address: 192.0.2.2\n+async\n0000 \n";
        let (r, done) = Reply::parse(text);
        assert!(done);
        assert_eq!(r.final_code(), 0);
        assert_eq!(r.texts(1006).count(), 2);
        assert_eq!(
            r.texts(1006).nth(1),
            Some("    Neighbor address: 192.0.2.2")
        );
    }

    #[test]
    fn detects_errors_and_incomplete() {
        let (r, done) =
            Reply::parse("0002-Reading configuration from /x\n8002 /x:1:1 syntax error\n");
        assert!(done);
        assert_eq!(r.error().map(|l| l.code), Some(8002));
        let (_, done) = Reply::parse("1002-partial\n");
        assert!(!done);
        assert_eq!(parse_raw_line("12"), None);
        assert_eq!(parse_raw_line("abcd efg"), None);
    }
}

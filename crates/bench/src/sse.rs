//! An incremental Server-Sent Events parser (WHATWG "event stream
//! interpretation"), fed whatever bytes each read returns.
//!
//! It copies only what straddles a read boundary: a line that is whole in the
//! chunk is interpreted in place. Lines end with CR, LF or CRLF (a CRLF split
//! across two reads counts once); `data:` lines join with `\n`; comments are
//! counted and skipped; a blank line dispatches the event if it has data.

#[cfg(test)]
mod tests;

/// One dispatched event. Borrowed from the parser: copy what you keep.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SseEvent<'a> {
    /// The last event id seen on the stream (it persists across events).
    pub(crate) id: &'a [u8],
    /// The `event:` field, empty for the default type.
    pub(crate) kind: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub(crate) data: &'a [u8],
}

/// Parser state between reads.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// The unfinished line carried over from the previous chunk.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a leading LF of the next one is the
    /// second half of a CRLF, not an empty line.
    after_cr: bool,
    /// Data of the event being built (each line followed by `\n`).
    data: Vec<u8>,
    /// Whether a `data` field was seen since the last dispatch.
    has_data: bool,
    /// Type of the event being built.
    kind: Vec<u8>,
    /// Last event id buffer.
    id: Vec<u8>,
    /// Comment lines seen (`:` first).
    comments: u64,
}

impl SseParser {
    /// A parser at the start of a stream body.
    pub(crate) fn new() -> SseParser {
        SseParser::default()
    }

    /// Comment lines seen so far.
    #[cfg(test)]
    pub(crate) fn comments(&self) -> u64 {
        self.comments
    }

    /// Interprets `chunk`, calling `on_event` for every event it completes.
    pub(crate) fn feed(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(SseEvent<'_>)) {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let terminator = chunk[end];
            if self.line.is_empty() {
                self.interpret(&chunk[..end], &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&chunk[..end]);
                self.interpret(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
            chunk = &chunk[end + 1..];
            if terminator == b'\r' {
                match chunk.first() {
                    Some(b'\n') => chunk = &chunk[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    /// One complete line, without its terminator.
    fn interpret(&mut self, line: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
        if line.is_empty() {
            self.dispatch(on_event);
            return;
        }
        if line[0] == b':' {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
                self.has_data = true;
            }
            b"id" if !value.contains(&0) => {
                self.id.clear();
                self.id.extend_from_slice(value);
            }
            b"event" => {
                self.kind.clear();
                self.kind.extend_from_slice(value);
            }
            _ => {} // retry and unknown fields: nothing to measure
        }
    }

    /// A blank line: hands over the event if it has data, then starts afresh.
    fn dispatch(&mut self, on_event: &mut impl FnMut(SseEvent<'_>)) {
        if self.has_data {
            let data = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
            on_event(SseEvent {
                id: &self.id,
                kind: &self.kind,
                data,
            });
        }
        self.data.clear();
        self.kind.clear();
        self.has_data = false;
    }
}

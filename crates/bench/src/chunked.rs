//! A streaming decoder for `Transfer-Encoding: chunked` response bodies, for
//! servers (nginx with nchan, for one) that frame an endless SSE body so.
//! Herald sends its streams unframed and never needs it.

#[cfg(test)]
mod tests;

/// Where the decoder is within the chunked framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line (hex digits, maybe `;ext`, then CRLF).
    Size,
    /// Inside chunk data: this many bytes remain.
    Data(u64),
    /// After chunk data: skipping its CRLF.
    DataEnd,
    /// The last (zero-size) chunk was seen: the body is over.
    Done,
}

/// A chunked body was malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkedError;

/// Chunked-decoding state between reads.
#[derive(Debug)]
pub(crate) struct Dechunker {
    state: State,
    /// The chunk-size line read so far (bounded).
    size_line: Vec<u8>,
}

impl Default for Dechunker {
    fn default() -> Self {
        Dechunker {
            state: State::Size,
            size_line: Vec::new(),
        }
    }
}

impl Dechunker {
    /// Whether the terminating zero-size chunk was read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes `input`, handing each run of body bytes to `out`.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        mut out: impl FnMut(&[u8]),
    ) -> Result<(), ChunkedError> {
        while !input.is_empty() {
            match self.state {
                State::Size => {
                    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                        self.push_size(input)?;
                        return Ok(());
                    };
                    self.push_size(&input[..nl])?;
                    input = &input[nl + 1..];
                    let size = self.take_size()?;
                    self.state = if size == 0 {
                        State::Done
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let n = input.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out(&input[..n]);
                    input = &input[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match input[0] {
                    b'\r' => input = &input[1..],
                    b'\n' => {
                        input = &input[1..];
                        self.state = State::Size;
                    }
                    _ => return Err(ChunkedError),
                },
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }

    fn push_size(&mut self, part: &[u8]) -> Result<(), ChunkedError> {
        if self.size_line.len() + part.len() > 1024 {
            return Err(ChunkedError);
        }
        self.size_line.extend_from_slice(part);
        Ok(())
    }

    fn take_size(&mut self) -> Result<u64, ChunkedError> {
        let line = std::mem::take(&mut self.size_line);
        let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
        let hex = std::str::from_utf8(hex).map_err(|_| ChunkedError)?.trim();
        u64::from_str_radix(hex, 16).map_err(|_| ChunkedError)
    }
}

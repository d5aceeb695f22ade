//! Writing several frames with one `writev`, bounded in time.
//!
//! When a subscriber wakes and finds several frames pending, sending them in
//! one vectored write saves most of the per-delivery cost (the kernel's
//! per-write work dominates; see DESIGN.md "Coalesce writes").
//!
//! The fast path is one non-blocking `writev` with the slice array on the stack
//! (never held across an `.await`, so it does not grow the stream task). Only
//! when the socket buffer is full does the writer wait, in a boxed future that
//! exists only while waiting, for writability, the write timeout or shutdown.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Most frames written in one `writev`.
pub const MAX_COALESCE: usize = 64;

/// Why a write did not complete.
#[derive(Debug)]
pub enum WriteError {
    /// The socket failed (the peer is gone).
    Io(io::Error),
    /// The peer did not read for the whole write timeout (slow subscriber).
    Stalled,
    /// The server is shutting down.
    Shutdown,
}

/// Writes every byte of `frames`, in order, with as few syscalls as the kernel
/// allows. Gives up after `timeout` without progress, or when `shutdown` fires.
///
/// Not an `async fn` on purpose: the usual case completes at once and holds no
/// state across an `.await`; only a write that must wait boxes its future, so
/// an idle stream's task does not carry the write machinery.
pub fn write_all<'a>(
    stream: &'a TcpStream,
    frames: &'a [&'a [u8]],
    timeout: Duration,
    shutdown: &'a CancellationToken,
) -> Pending<'a> {
    match write_from(stream, frames, 0, 0) {
        Ok(None) => Pending::Done,
        Ok(Some((idx, offset))) => Pending::Waiting(Box::pin(write_rest(
            stream, frames, idx, offset, timeout, shutdown,
        ))),
        Err(e) => Pending::Failed(WriteError::Io(e)),
    }
}

/// A write that may have to wait; `.finish().await` it.
pub enum Pending<'a> {
    /// Everything was written.
    Done,
    /// The write failed.
    Failed(WriteError),
    /// The socket is full: the rest is written by this future.
    Waiting(Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>),
}

impl Pending<'_> {
    /// Waits for the write to complete.
    pub async fn finish(self) -> Result<(), WriteError> {
        match self {
            Pending::Done => Ok(()),
            Pending::Failed(e) => Err(e),
            Pending::Waiting(f) => f.await,
        }
    }
}

/// Writes what the socket takes now. `Ok(None)`: all written; `Ok(Some(pos))`:
/// it would block at `pos`.
fn write_from(
    stream: &TcpStream,
    frames: &[&[u8]],
    mut idx: usize,
    mut offset: usize,
) -> io::Result<Option<(usize, usize)>> {
    while idx < frames.len() {
        match try_write(stream, &frames[idx..], offset) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => (idx, offset) = advance(frames, idx, offset, n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some((idx, offset))),
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

async fn write_rest(
    stream: &TcpStream,
    frames: &[&[u8]],
    mut idx: usize,
    mut offset: usize,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), WriteError> {
    loop {
        wait_writable(stream, timeout, shutdown).await?;
        match write_from(stream, frames, idx, offset) {
            Ok(None) => return Ok(()),
            Ok(Some(pos)) => (idx, offset) = pos,
            Err(e) => return Err(WriteError::Io(e)),
        }
    }
}

/// One non-blocking `writev` of up to [`MAX_COALESCE`] frames, the first from `offset`.
fn try_write(stream: &TcpStream, frames: &[&[u8]], offset: usize) -> io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_COALESCE];
    let mut n = 0;
    for (i, f) in frames.iter().take(MAX_COALESCE).enumerate() {
        slices[i] = IoSlice::new(if i == 0 { &f[offset..] } else { f });
        n += 1;
    }
    stream.try_write_vectored(&slices[..n])
}

/// Moves the write position `wrote` bytes forward, skipping empty frames.
fn advance(frames: &[&[u8]], mut idx: usize, mut offset: usize, wrote: usize) -> (usize, usize) {
    let mut left = wrote;
    while idx < frames.len() {
        let rest = frames[idx].len() - offset;
        if left < rest {
            return (idx, offset + left);
        }
        left -= rest;
        idx += 1;
        offset = 0;
    }
    (idx, offset)
}

async fn wait_writable(
    stream: &TcpStream,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), WriteError> {
    tokio::select! {
        biased;
        _ = shutdown.cancelled() => Err(WriteError::Shutdown),
        r = tokio::time::timeout(timeout, stream.writable()) => match r {
            Err(_) => Err(WriteError::Stalled),
            Ok(Err(e)) => Err(WriteError::Io(e)),
            Ok(Ok(())) => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::advance;

    #[test]
    fn advance_walks_partial_and_whole_frames() {
        let frames: [&[u8]; 3] = [b"abc", b"", b"de"];
        assert_eq!(advance(&frames, 0, 0, 2), (0, 2));
        assert_eq!(advance(&frames, 0, 2, 1), (2, 0));
        assert_eq!(advance(&frames, 0, 0, 4), (2, 1));
        assert_eq!(advance(&frames, 2, 1, 1), (3, 0));
    }
}

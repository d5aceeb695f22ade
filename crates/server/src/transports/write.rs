//! Writing several frames with one `writev`, bounded in time.
//!
//! When a subscriber wakes and finds several frames pending, sending them in
//! one vectored write saves most of the per-delivery cost (the kernel's
//! per-write work dominates; see DESIGN.md "Coalesce writes").

use std::io::{self, IoSlice};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
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

/// Writes every byte of `frames`, in order, with as few syscalls as the kernel allows.
/// Gives up after `timeout` without progress, or when `shutdown` fires.
pub async fn write_all(
    stream: &mut TcpStream,
    frames: &[&[u8]],
    timeout: Duration,
    shutdown: &CancellationToken,
) -> Result<(), WriteError> {
    let mut idx = 0;
    let mut offset = 0;
    while idx < frames.len() {
        let mut slices: [IoSlice<'_>; MAX_COALESCE] = [IoSlice::new(&[]); MAX_COALESCE];
        let mut n = 0;
        for (i, f) in frames[idx..].iter().take(MAX_COALESCE).enumerate() {
            slices[i] = IoSlice::new(if i == 0 { &f[offset..] } else { f });
            n += 1;
        }
        let wrote = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Err(WriteError::Shutdown),
            r = tokio::time::timeout(timeout, stream.write_vectored(&slices[..n])) => match r {
                Err(_) => return Err(WriteError::Stalled),
                Ok(Err(e)) => return Err(WriteError::Io(e)),
                Ok(Ok(0)) => return Err(WriteError::Io(io::ErrorKind::WriteZero.into())),
                Ok(Ok(w)) => w,
            },
        };
        let mut left = wrote;
        while left > 0 && idx < frames.len() {
            let rest = frames[idx].len() - offset;
            if left >= rest {
                left -= rest;
                idx += 1;
                offset = 0;
            } else {
                offset += left;
                left = 0;
            }
        }
        while idx < frames.len() && frames[idx].len() == offset {
            idx += 1;
            offset = 0;
        }
    }
    Ok(())
}

//! A WebSocket that holds no read buffer while it is idle.
//!
//! tokio-websockets reads through a buffer of 8 KiB that cannot be made
//! smaller, allocated with its `WebSocketStream`. An idle socket does not need
//! it: [`Conn`] keeps only the raw socket (wrapped in a [`Gate`]) between
//! messages, waits for readability without a buffer, and builds the stream
//! (boxed) when a frame arrives or something is sent. Once every byte read has
//! been handed out as a message and nothing is left to flush, [`Conn::settle`]
//! takes the socket back and the buffer is freed.
//!
//! The [`Gate`] watches the bytes tokio-websockets reads and follows the frame
//! headers in them, so it knows when the library holds nothing: no partial
//! frame, no fragmented message being assembled, no complete message not yet
//! returned. Only then is the stream dropped; a fresh one over the same socket
//! starts in the same state the dropped one was in.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_websockets::{Error, Limits, Message, WebSocketStream};

use crate::prefixed::Prefixed;

/// A socket a WebSocket runs on.
pub trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// Whether an idle connection may drop its read buffer: only sockets that
    /// can say "readable" without being read from can.
    const RELEASES: bool = false;

    /// Ready once a read would find something (data, end of stream or an
    /// error). Only called when [`Socket::RELEASES`].
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Socket for TcpStream {
    const RELEASES: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl Socket for Prefixed<TcpStream> {
    const RELEASES: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.has_prefix() {
            return Poll::Ready(Ok(()));
        }
        self.get_ref().poll_read_ready(cx)
    }
}

/// hyper's upgraded connections (TLS, keep-alive upgrades) keep their stream.
impl Socket for TokioIo<hyper::upgrade::Upgraded> {}

/// A socket that follows the frame boundaries of what is read from it.
pub struct Gate<S> {
    io: S,
    /// The frame header being read (2 to 14 bytes).
    header: [u8; 14],
    /// How much of `header` has arrived.
    have: u8,
    /// The first header byte of the frame whose payload is being read.
    current: u8,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// Complete messages read that the stream has not handed out yet.
    pending: u32,
    /// A data frame without FIN arrived and its final continuation has not.
    fragmented: bool,
}

impl<S> Gate<S> {
    fn new(io: S) -> Self {
        Gate {
            io,
            header: [0; 14],
            have: 0,
            current: 0,
            left: 0,
            pending: 0,
            fragmented: false,
        }
    }

    /// Whether everything read has been handed out as whole messages.
    fn at_rest(&self) -> bool {
        self.have == 0 && self.left == 0 && !self.fragmented && self.pending == 0
    }

    /// Follows `bytes`, just read, through frame headers and payloads.
    fn observe(&mut self, mut bytes: &[u8]) {
        while let Some((&first, rest)) = bytes.split_first() {
            if self.left > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.left).unwrap_or(usize::MAX));
                self.left -= n as u64;
                bytes = &bytes[n..];
                if self.left == 0 {
                    self.frame_done();
                }
                continue;
            }
            self.header[usize::from(self.have)] = first;
            self.have += 1;
            bytes = rest;
            if let Some(payload) = self.header_complete() {
                self.current = self.header[0];
                self.have = 0;
                self.left = payload;
                if payload == 0 {
                    self.frame_done();
                }
            }
        }
    }

    /// The payload length once the whole header has arrived.
    fn header_complete(&self) -> Option<u64> {
        let h = &self.header[..usize::from(self.have)];
        let [_, second, ..] = h else { return None };
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        if h.len() < 2 + extended + mask {
            return None;
        }
        Some(match extended {
            2 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            8 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
            _ => u64::from(second & 0x7f),
        })
    }

    /// Counts the message a frame completes (invalid sequences are the
    /// library's to refuse; the connection ends with them).
    fn frame_done(&mut self) {
        let fin = self.current & 0x80 != 0;
        match self.current & 0x0f {
            // Control frames are whole messages, even inside a fragmented one.
            op if op >= 8 => self.pending += 1,
            0 if fin => {
                self.pending += 1;
                self.fragmented = false;
            }
            0 => {}
            _ if fin => self.pending += 1,
            _ => self.fragmented = true,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Gate<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.observe(&buf.filled()[before..]);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Gate<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The stream type every connection builds.
pub type Stream<S> = WebSocketStream<Gate<S>>;

/// A WebSocket connection, its stream built only while it is in use.
pub struct Conn<S> {
    state: State<S>,
    /// The message limit each stream is built with.
    limits: Limits,
    /// The peer's close arrived: the stream stays until the end.
    closed: bool,
}

enum State<S> {
    /// Between messages: the socket alone.
    Idle(Gate<S>),
    /// Reading or writing (boxed: its buffers are the point).
    Open(Box<Stream<S>>),
    /// Only while switching.
    Switching,
}

impl<S: Socket> Conn<S> {
    /// A connection over `io`, its messages limited by `limits`.
    pub fn new(io: S, limits: Limits) -> Self {
        let mut conn = Conn {
            state: State::Idle(Gate::new(io)),
            limits,
            closed: false,
        };
        if !S::RELEASES {
            conn.ws();
        }
        conn
    }

    /// The stream, built now if the connection was idle.
    pub fn ws(&mut self) -> &mut Stream<S> {
        if let State::Idle(_) = self.state
            && let State::Idle(gate) = std::mem::replace(&mut self.state, State::Switching)
        {
            let ws = super::builder(self.limits).serve(gate);
            self.state = State::Open(Box::new(ws));
        }
        match &mut self.state {
            State::Open(ws) => ws,
            State::Idle(_) | State::Switching => unreachable!("opened above"),
        }
    }

    /// Whether the read buffer is held now (tests).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// The next message; cancel-safe (an idle connection waits for
    /// readability without a buffer).
    pub async fn next(&mut self) -> Option<Result<Message, Error>> {
        if let State::Idle(gate) = &mut self.state {
            // A unique borrow: the future stays `Send` for sockets that are not `Sync`.
            let io = &mut gate.io;
            if let Err(e) = std::future::poll_fn(move |cx| io.poll_read_ready(cx)).await {
                return Some(Err(Error::Io(e)));
            }
        }
        let ws = self.ws();
        let next = ws.next().await;
        if let Some(Ok(m)) = &next {
            let gate = ws.get_mut();
            gate.pending = gate.pending.saturating_sub(1);
            self.closed |= m.is_close();
        }
        next
    }

    /// Drops the stream, and its buffers, if it holds nothing: every byte
    /// read handed out, everything queued written (tried once, without
    /// waiting: a pong the socket cannot take yet keeps the stream).
    pub async fn settle(&mut self) {
        if !S::RELEASES || self.closed {
            return;
        }
        let State::Open(ws) = &mut self.state else {
            return;
        };
        if !ws.get_ref().at_rest() {
            return;
        }
        let flushed =
            std::future::poll_fn(|cx| Poll::Ready(ws.poll_flush_unpin(cx).is_ready())).await;
        if !flushed {
            return;
        }
        if let State::Open(ws) = std::mem::replace(&mut self.state, State::Switching) {
            self.state = State::Idle(ws.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, opcode: u8, len: usize) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => f.push(0x80 | len as u8),
            126..=65535 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[1, 2, 3, 4]);
        f.extend(std::iter::repeat_n(b'x', len));
        f
    }

    /// Feeds `bytes` in chunks of `step` and returns the gate.
    fn gate(bytes: &[u8], step: usize) -> Gate<()> {
        let mut g = Gate::new(());
        for chunk in bytes.chunks(step) {
            g.observe(chunk);
        }
        g
    }

    #[test]
    fn follows_frames_however_they_are_split() {
        let mut bytes = frame(true, 1, 5);
        bytes.extend(frame(true, 9, 0));
        bytes.extend(frame(true, 2, 300));
        bytes.extend(frame(true, 1, 70_000));
        for step in [1, 2, 3, 7, 14, 100, 100_000] {
            let g = gate(&bytes, step);
            assert_eq!((g.pending, g.have, g.left, g.fragmented), (4, 0, 0, false));
            let partial = gate(&bytes[..bytes.len() - 1], step);
            assert_eq!((partial.pending, partial.left), (3, 1), "step {step}");
            let in_header = gate(&bytes[..bytes.len() - 70_000 - 5], step);
            assert_eq!((in_header.pending, in_header.have), (3, 9), "step {step}");
        }
    }

    async fn next(conn: &mut Conn<TcpStream>) -> Message {
        let fut = conn.next();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), fut).await;
        got.expect("a message within 5 s")
            .expect("not the end")
            .expect("valid")
    }

    async fn read(client: &mut TcpStream, buf: &mut [u8]) {
        use tokio::io::AsyncReadExt;
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), client.read_exact(buf));
        got.await.expect("bytes within 5 s").expect("read");
    }

    /// A real socket: the stream is held while a message is in flight or a
    /// pong is owed, and dropped once everything read was handed out.
    #[tokio::test]
    async fn the_buffer_is_held_only_between_frames() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut conn = Conn::new(server, Limits::default());
        assert!(!conn.is_open());
        let mut burst = frame(true, 1, 5);
        burst.extend(frame(true, 9, 0));
        burst.extend(frame(false, 2, 3));
        client.write_all(&burst).await.unwrap();
        assert_eq!(next(&mut conn).await.as_text(), Some("yz{|y"));
        conn.settle().await;
        assert!(conn.is_open(), "a ping is still in the buffer");
        assert!(next(&mut conn).await.is_ping());
        conn.settle().await;
        assert!(conn.is_open(), "half a fragmented message is buffered");
        client.write_all(&frame(true, 0, 2)).await.unwrap();
        // Reading on flushes the pong the library queued.
        let whole = next(&mut conn).await;
        let mut pong = [0u8; 2];
        read(&mut client, &mut pong).await;
        assert_eq!(pong, [0x8a, 0]);
        assert!(whole.is_binary());
        assert_eq!(whole.as_payload().len(), 5);
        conn.settle().await;
        assert!(!conn.is_open(), "nothing is left: the buffer goes");
        // A frame that arrives in two parts is read across the gap.
        let split = frame(true, 1, 200);
        client.write_all(&split[..3]).await.unwrap();
        let rest = split[3..].to_vec();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            client.write_all(&rest).await.unwrap();
            client
        });
        assert_eq!(next(&mut conn).await.as_payload().len(), 200);
        let mut client = writer.await.unwrap();
        conn.settle().await;
        assert!(!conn.is_open());
        // Sending from an idle connection opens it for as long as the write.
        conn.ws().send(Message::text("hi")).await.unwrap();
        conn.settle().await;
        assert!(!conn.is_open());
        let mut hi = [0u8; 4];
        read(&mut client, &mut hi).await;
        assert_eq!(&hi, b"\x81\x02hi");
        // The peer's close keeps the stream to the end.
        client.write_all(&frame(true, 8, 0)).await.unwrap();
        assert!(next(&mut conn).await.is_close());
        conn.settle().await;
        assert!(conn.is_open());
    }

    #[test]
    fn fragmented_messages_hold_the_stream() {
        let mut bytes = frame(false, 1, 3);
        bytes.extend(frame(true, 10, 2)); // a pong in between
        bytes.extend(frame(false, 0, 3));
        let mut g = gate(&bytes, 4);
        assert_eq!((g.pending, g.fragmented), (1, true));
        g.pending = 0;
        assert!(!g.at_rest());
        g.observe(&frame(true, 0, 1));
        assert_eq!((g.pending, g.fragmented), (1, false));
        g.pending = 0;
        assert!(g.at_rest());
    }
}

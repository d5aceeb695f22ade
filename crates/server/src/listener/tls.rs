//! TLS connections: the handshake (bounded by `header_timeout`), then hyper's
//! auto builder speaking the protocol ALPN chose: HTTP/2, where one connection
//! carries many streams, or HTTP/1.1 with upgrades (WebSocket).
//!
//! TLS connections skip the lean path: a stream is served as hyper's streaming
//! body (`stream::serve_hyper`), which costs more memory per stream than the
//! lean path (docs/ARCHITECTURE.md), in exchange for HTTP/2 multiplexing.

use std::future::Future;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use super::{ConnInfo, Shared};
use crate::routes;

/// Serves one TLS connection until it ends or shutdown drains it.
pub(super) async fn serve(stream: TcpStream, info: ConnInfo, shared: Arc<Shared>) {
    let peer = info.peer;
    let Some(tls) = &shared.opts.tls else { return };
    let handshake = tokio::time::timeout(shared.opts.header_timeout, tls.acceptor().accept(stream));
    let stream = tokio::select! {
        _ = shared.shutdown.cancelled() => return,
        r = handshake => match r {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
    };
    // RFC 9113 §3.2: HTTP/2 over TLS is chosen with ALPN, so there is nothing
    // to sniff; a client that offers no ALPN speaks HTTP/1.1.
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let opts = &shared.opts;
    let mut builder = auto::Builder::new(Tracked(shared.tracker.clone()));
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .max_buf_size(opts.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_bytes).unwrap_or(u32::MAX))
        // PING every heartbeat; a peer that does not answer within the write
        // timeout is gone and its connection is closed.
        .keep_alive_interval(opts.heartbeat)
        .keep_alive_timeout(opts.write_timeout);
    let builder = if h2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    let svc_shared = shared.clone();
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(info.clone());
        routes::handle(req, svc_shared.clone())
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
            }
        }
        _ = shared.shutdown.cancelled() => {
            // HTTP/2: GOAWAY, then the open streams finish (streams end at
            // shutdown); HTTP/1.1: the request in flight finishes.
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Runs HTTP/2 stream tasks on the server's tracker, so shutdown waits for them.
#[derive(Clone)]
struct Tracked(TaskTracker);

impl<F> hyper::rt::Executor<F> for Tracked
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        self.0.spawn(fut);
    }
}

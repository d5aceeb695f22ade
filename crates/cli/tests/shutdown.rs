//! Graceful shutdown: SIGTERM ends every stream after a complete block, flushes
//! the store and exits 0; a client resumes afterwards without loss.

mod common;

use common::*;

#[test]
fn sigterm_ends_streams_cleanly_and_exits_zero() {
    let mut hub = Hub::start(&[]);
    let mut streams: Vec<Sse> = (0..3)
        .map(|_| Sse::open(hub.addr, "/sse?topic=s", &[]))
        .collect();
    for s in &mut streams {
        s.read_until("retry: ");
    }
    let id = publish_id(hub.addr, "s", "before");
    for s in &mut streams {
        s.read_until("data: before\n\n");
    }
    let status = hub.terminate();
    assert!(status.success(), "exit status {status:?}");
    for s in &mut streams {
        let text = s.read_to_close();
        assert!(
            text.ends_with("\n\n"),
            "ends after a complete block: {text:?}"
        );
        assert!(text.contains(": herald is shutting down"), "{text:?}");
    }
    // Restart on the same dir: resuming from `before` loses nothing.
    let listen = hub.addr.to_string();
    let hub2 = Hub::start_in(&hub.dir, &listen, &["--dev"]);
    let after = publish_id(hub2.addr, "s", "after");
    let mut s = Sse::open(hub2.addr, "/sse?topic=s", &[("Last-Event-ID", &id)]);
    s.read_until("data: after\n\n");
    assert_eq!(s.ids(), vec![after]);
}

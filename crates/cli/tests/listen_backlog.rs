//! The listening socket's accept queue follows `listen_backlog` (tokio's own
//! bind would fix it at 1,024), read back from the kernel with iproute2's `ss`
//! (installed by `scripts/test setup`): for a listening socket its Send-Q
//! column is the backlog.

mod common;

use std::process::Command;

use common::Hub;

/// The backlog of the socket listening on `port`, as the kernel reports it.
fn backlog(port: u16) -> u32 {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (iproute2) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no listener on {port}: {text:?}"));
    // State Recv-Q Send-Q Local Peer
    let cols: Vec<&str> = line.split_whitespace().collect();
    cols[2].parse().unwrap_or_else(|_| panic!("{line}"))
}

fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_accept_queue_is_the_configured_backlog() {
    let hub = Hub::start(&["--listen-backlog", "77"]);
    assert_eq!(backlog(hub.addr.port()), 77);
    let hub = Hub::start(&[]);
    assert_eq!(backlog(hub.addr.port()), 4096.min(somaxconn()));
}

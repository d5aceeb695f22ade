//! The command line of `herald bench`, and its validation into a [`Plan`].

use std::time::Duration;

use crate::target::UrlTemplate;

/// Arguments of `herald bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Subscribers to open (subscriber i takes topic i % topics).
    #[arg(long, default_value_t = 1000)]
    pub(crate) subscribers: u64,
    /// How subscribers subscribe: `sse` (an event stream), `ws` (a WebSocket
    /// to the --sub-url, taking Herald's JSON event objects or raw text
    /// messages, as nchan sends), or `poll` (Herald's long-polling: a
    /// keep-alive connection asking `since=` the last id).
    #[arg(long, value_enum, default_value_t = Transport::Sse)]
    pub(crate) transport: Transport,
    /// Topics the subscribers and events are spread over.
    #[arg(long, default_value_t = 1)]
    pub(crate) topics: u64,
    /// Events to publish, round-robin over the topics (0: connect, measure idle, exit).
    #[arg(long, default_value_t = 100)]
    pub(crate) events: u64,
    /// Events per second (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub(crate) rate: f64,
    /// Keep-alive publishing connections; each topic (or each lane of a topic,
    /// with --in-flight) is always published by the same connection, one event
    /// at a time, so its order is kept.
    #[arg(long, default_value_t = 16)]
    pub(crate) publishers: u64,
    /// Publish requests in flight per topic: a topic's events are dealt in
    /// turn to this many lanes, each published by its own connection (when
    /// --publishers allows), so events can pile up at the server as in a real
    /// burst; order is then checked per lane (1: the topic's order).
    #[arg(long, default_value_t = 1)]
    pub(crate) in_flight: u64,
    /// Size of each event's data in bytes (sequence number and send time, padded).
    #[arg(long, default_value_t = 100)]
    pub(crate) size: usize,
    /// Subscribe URL template (default: Herald's route for --transport:
    /// /sse, /ws or /poll on 127.0.0.1:8080).
    #[arg(long)]
    pub(crate) sub_url: Option<String>,
    /// Publish URL template (the event data is POSTed as the raw body, or
    /// as GRIP JSON with --pub-format grip, where `{topic}` may be left out).
    #[arg(long, default_value = "http://127.0.0.1:8080/publish?topic={topic}")]
    pub(crate) pub_url: String,
    /// What a publish request carries: `raw` (the event data as the body:
    /// Herald, nchan) or `grip` (a GRIP JSON item for the topic's channel
    /// with an `http-stream` format holding the SSE frame: Pushpin's
    /// control API, `POST /publish/`).
    #[arg(long, value_enum, default_value_t = PubFormat::Raw)]
    pub(crate) pub_format: PubFormat,
    /// Send up to this many waiting events per request: with --pub-format raw
    /// as one Herald JSON batch to --batch-url (one commit; lets events pile
    /// up as a burst), with grip as one GRIP request of that many items to
    /// --pub-url (Pushpin).
    #[arg(long, default_value_t = 1)]
    pub(crate) batch: usize,
    /// Where JSON batches go (with --batch above 1).
    #[arg(long, default_value = "http://127.0.0.1:8080/publish")]
    pub(crate) batch_url: String,
    /// Prefix of the topic names (a random suffix keeps runs apart).
    #[arg(long, default_value = "bench")]
    pub(crate) topic_prefix: String,
    /// Subscribers connecting at the same time.
    #[arg(long, default_value_t = 64)]
    pub(crate) connect_concurrency: usize,
    /// Seconds one subscriber may take to connect and get its response head.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) connect_timeout: f64,
    /// Subscribers allowed to fail to connect before the run is abandoned (exit 1).
    #[arg(long, default_value_t = 0)]
    pub(crate) max_connect_failures: u64,
    /// Seconds to hold every connection idle before publishing (idle RSS is read at the end).
    #[arg(long, default_value_t = 1.0)]
    pub(crate) idle_secs: f64,
    /// Seconds from the first publish until the run ends, delivered or not
    /// (what has not arrived by then is lost).
    #[arg(long, default_value_t = 60.0)]
    pub(crate) timeout: f64,
    /// The server's process id: sample its CPU, RSS and write syscalls from
    /// /proc. A server made of several processes (nginx's master and
    /// workers, Pushpin's condure, proxy, handler…) takes them all, comma
    /// separated or the flag repeated; their figures are added up.
    #[arg(long, value_delimiter = ',')]
    pub(crate) server_pid: Vec<u32>,
    /// Name of the scenario in the report.
    #[arg(long)]
    pub(crate) label: Option<String>,
    /// Do not bind subscribers to 127.0.0.2..=127.0.0.254 (done by default
    /// when the server is on loopback, to use more than one address's ports).
    #[arg(long)]
    pub(crate) no_spread: bool,
    /// Worker processes holding the subscribers (0: as many as needed for
    /// 18,000 subscribers each, since one process may open at most 20,000
    /// files; 1 or less subscribers: all in this process).
    #[arg(long, default_value_t = 0)]
    pub(crate) workers: u32,
    /// Reconnect storm (SSE only, one process): once the --events are
    /// delivered, drop every subscriber at once (close the sockets), publish
    /// --storm-events more while they are away, then reconnect them all with
    /// `Last-Event-ID` (the last id each saw) and time until each has every
    /// event, checking nothing is lost, duplicated or out of order.
    #[arg(long)]
    pub(crate) storm: bool,
    /// Events published while the storm's subscribers are away.
    #[arg(long, default_value_t = 1000)]
    pub(crate) storm_events: u64,
    /// Subscribers reconnecting at the same time in a storm (bounds the
    /// burst of SYNs the server's listen backlog must hold).
    #[arg(long, default_value_t = 1000)]
    pub(crate) reconnect_concurrency: usize,
    /// Draw the latency distribution (percentile curve) and deliveries per
    /// second over time into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub(crate) plot: Option<std::path::PathBuf>,
    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(long)]
    pub(crate) quiet: bool,
    /// Internal: this process is worker INDEX of --workers.
    #[arg(long, hide = true)]
    pub(crate) worker_index: Option<u32>,
    /// Internal: the run's topic suffix, chosen by the parent.
    #[arg(long, hide = true)]
    pub(crate) run_id: Option<u16>,
    /// Internal: the run's clock, µs since the Unix epoch at its start.
    #[arg(long, hide = true)]
    pub(crate) clock_base_us: Option<u64>,
}

/// Which part of a run this process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Everything in one process.
    Alone,
    /// Publishes and adds up; `workers` processes hold the subscribers.
    Parent { workers: u32 },
    /// Holds subscribers `i` with `i % workers == index`.
    Worker { index: u32, workers: u32 },
}

/// How subscribers subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Transport {
    /// Server-Sent Events.
    Sse,
    /// WebSocket.
    Ws,
    /// Long-polling (Herald's `/poll`).
    Poll,
}

impl Transport {
    /// Name in labels and reports.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
            Transport::Poll => "poll",
        }
    }

    /// Herald's subscribe URL template for this transport.
    fn default_url(self) -> &'static str {
        match self {
            Transport::Sse => "http://127.0.0.1:8080/sse?topic={topic}",
            Transport::Ws => "http://127.0.0.1:8080/ws?topic={topic}",
            Transport::Poll => "http://127.0.0.1:8080/poll?topic={topic}",
        }
    }
}

/// The body of a publish request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PubFormat {
    /// The event data as the raw body (Herald, nchan).
    Raw,
    /// `{"items":[{"channel":TOPIC,"formats":{"http-stream":{"content":"data: DATA\n\n"}}}]}`
    /// (Pushpin's control API).
    Grip,
}

/// Validated settings of one run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) subscribers: u64,
    pub(crate) transport: Transport,
    pub(crate) topics: u64,
    pub(crate) events: u64,
    /// `None`: as fast as possible.
    pub(crate) period: Option<Duration>,
    pub(crate) rate: f64,
    pub(crate) publishers: u64,
    /// Publish lanes per topic (`--in-flight`).
    pub(crate) lanes: u64,
    pub(crate) size: usize,
    pub(crate) sub_url: UrlTemplate,
    pub(crate) pub_url: UrlTemplate,
    pub(crate) pub_format: PubFormat,
    pub(crate) batch: usize,
    pub(crate) topic_prefix: String,
    pub(crate) connect_concurrency: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_connect_failures: u64,
    pub(crate) idle: Duration,
    pub(crate) timeout: Duration,
    /// Empty: no server figures.
    pub(crate) server_pids: Vec<u32>,
    pub(crate) label: String,
    pub(crate) spread: bool,
    pub(crate) role: Role,
    /// The topics' suffix (workers take the parent's).
    pub(crate) run_id: u16,
    /// The run's clock base (µs since the Unix epoch), shared by workers.
    pub(crate) clock_base_us: Option<u64>,
    /// `--storm`: what happens after the first events are delivered.
    pub(crate) storm: Option<Storm>,
    /// `--plot FILE.svg`.
    pub(crate) plot: Option<std::path::PathBuf>,
    /// `--quiet`: no progress bars.
    pub(crate) quiet: bool,
}

/// Settings of a reconnect storm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Storm {
    /// Events published while the subscribers are away.
    pub(crate) away_events: u64,
    /// Subscribers reconnecting at once.
    pub(crate) reconnect_concurrency: usize,
}

/// Largest `--size` accepted.
const MAX_SIZE: usize = 1 << 20;

/// Seconds flag → duration, refusing negatives, NaN and absurd values.
fn secs(flag: &str, v: f64) -> Result<Duration, String> {
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!(
            "{flag} must be between 0 and 86400 seconds, not {v}"
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

impl Args {
    /// Checks every setting once; the error names the flag.
    pub(crate) fn plan(&self) -> Result<Plan, String> {
        if self.subscribers == 0 {
            return Err("--subscribers must be at least 1".into());
        }
        if self.topics == 0 || self.topics > 1_000_000 {
            return Err("--topics must be between 1 and 1000000".into());
        }
        if self.publishers == 0 || self.publishers > 10_000 {
            return Err("--publishers must be between 1 and 10000".into());
        }
        if self.in_flight == 0 || self.in_flight > 1_000 {
            return Err("--in-flight must be between 1 and 1000".into());
        }
        if self.connect_concurrency == 0 {
            return Err("--connect-concurrency must be at least 1".into());
        }
        if self.size > MAX_SIZE {
            return Err(format!("--size must be at most {MAX_SIZE} bytes"));
        }
        if !(0.0..=10_000_000.0).contains(&self.rate) {
            return Err(format!(
                "--rate must be between 0 and 10000000, not {}",
                self.rate
            ));
        }
        let prefix_ok = !self.topic_prefix.is_empty()
            && self
                .topic_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !prefix_ok {
            return Err("--topic-prefix must be letters, digits, '-', '_' or '.'".into());
        }
        if self.batch == 0 || self.batch > 10_000 {
            return Err("--batch must be between 1 and 10000".into());
        }
        if self.server_pid.contains(&0) {
            return Err("--server-pid must be a process id, not 0".into());
        }
        let pub_url = if self.batch > 1 && self.pub_format == PubFormat::Raw {
            UrlTemplate::parse_plain("--batch-url", &self.batch_url)?
        } else if self.pub_format == PubFormat::Grip {
            UrlTemplate::parse_plain("--pub-url", &self.pub_url)?
        } else {
            UrlTemplate::parse("--pub-url", &self.pub_url)?
        };
        let mut server_pids = self.server_pid.clone();
        server_pids.sort_unstable();
        server_pids.dedup();
        let period = (self.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / self.rate));
        let suffix: u16 = self.run_id.unwrap_or_else(rand::random);
        let role = match (self.worker_index, self.workers) {
            (Some(index), workers) if index < workers => Role::Worker { index, workers },
            (Some(_), _) => return Err("--worker-index must be below --workers".into()),
            (None, 0) if self.subscribers > crate::workers::PER_PROCESS => Role::Parent {
                workers: self.subscribers.div_ceil(crate::workers::PER_PROCESS) as u32,
            },
            (None, 0 | 1) => Role::Alone,
            (None, w) if u64::from(w) > self.subscribers => {
                return Err("--workers must not exceed --subscribers".into());
            }
            (None, w) => Role::Parent { workers: w },
        };
        let sub_url = self
            .sub_url
            .as_deref()
            .unwrap_or(self.transport.default_url());
        let sub_url = UrlTemplate::parse("--sub-url", sub_url)?;
        if self.transport == Transport::Poll && !sub_url.target("t").contains('?') {
            return Err("--sub-url: long-polling appends &since=ID to the URL, so it needs a query (…/poll?topic={topic})".into());
        }
        let storm = if self.storm {
            if self.transport != Transport::Sse {
                return Err(
                    "--storm resumes SSE streams with Last-Event-ID: use --transport sse".into(),
                );
            }
            if role != Role::Alone {
                return Err(format!(
                    "--storm runs in one process: at most {} subscribers, no --workers",
                    crate::workers::PER_PROCESS
                ));
            }
            if self.events == 0 {
                return Err("--storm needs --events above 0 (the last id each subscriber saw is where it resumes)".into());
            }
            if self.reconnect_concurrency == 0 {
                return Err("--reconnect-concurrency must be at least 1".into());
            }
            Some(Storm {
                away_events: self.storm_events,
                reconnect_concurrency: self.reconnect_concurrency,
            })
        } else {
            None
        };
        if self.plot.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err("--plot needs a file name".into());
        }
        Ok(Plan {
            subscribers: self.subscribers,
            transport: self.transport,
            topics: self.topics,
            events: self.events,
            period,
            rate: self.rate,
            publishers: self.publishers.min(self.topics * self.in_flight),
            lanes: self.in_flight,
            size: self.size,
            sub_url,
            pub_url,
            pub_format: self.pub_format,
            batch: self.batch,
            topic_prefix: format!("{}-{suffix:04x}", self.topic_prefix),
            connect_concurrency: self.connect_concurrency,
            connect_timeout: secs("--connect-timeout", self.connect_timeout)?,
            max_connect_failures: self.max_connect_failures,
            idle: secs("--idle-secs", self.idle_secs)?,
            timeout: secs("--timeout", self.timeout)?,
            server_pids,
            label: self.label.clone().unwrap_or_else(|| self.default_label()),
            spread: !self.no_spread,
            role,
            run_id: suffix,
            clock_base_us: self.clock_base_us,
            storm,
            plot: self.plot.clone(),
            quiet: self.quiet,
        })
    }

    fn default_label(&self) -> String {
        let rate = if self.rate > 0.0 {
            format!("{}/s", self.rate)
        } else {
            "burst".into()
        };
        format!(
            "{} {} subs x {} topics, {} events {rate}",
            self.transport.as_str(),
            self.subscribers,
            self.topics,
            self.events
        )
    }
}

impl Plan {
    /// Name of topic `t`.
    pub(crate) fn topic(&self, t: u64) -> String {
        format!("{}-{t}", self.topic_prefix)
    }

    /// The publishing connection of event `seq`: event `seq` is index
    /// `k = seq / topics` on topic `seq % topics`, in lane `k % lanes`; every
    /// lane always goes through the same connection, one request at a time,
    /// so a lane's order is the order its subscribers must see.
    pub(crate) fn publisher_of(&self, seq: u64) -> usize {
        let (t, k) = (seq % self.topics, seq / self.topics);
        ((t * self.lanes + k % self.lanes) % self.publishers) as usize
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn plan(argv: &[&str]) -> Result<Plan, String> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.plan()
    }

    #[test]
    fn server_pids_come_comma_separated_or_repeated() {
        assert!(plan(&[]).unwrap().server_pids.is_empty());
        assert_eq!(plan(&["--server-pid", "7"]).unwrap().server_pids, [7]);
        let p = plan(&[
            "--server-pid",
            "9,7",
            "--server-pid",
            "8",
            "--server-pid",
            "7",
        ])
        .unwrap();
        assert_eq!(p.server_pids, [7, 8, 9]);
        assert!(plan(&["--server-pid", "0"]).is_err());
        assert!(plan(&["--server-pid", "7,x"]).is_err());
    }

    #[test]
    fn grip_publishing_needs_no_topic_in_the_url() {
        let p = plan(&[
            "--pub-format",
            "grip",
            "--pub-url",
            "http://127.0.0.1:5561/publish/",
        ])
        .unwrap();
        assert_eq!(p.pub_format, PubFormat::Grip);
        assert_eq!(p.pub_url.target("t"), "/publish/");
        assert!(plan(&["--pub-url", "http://127.0.0.1:5561/publish/"]).is_err());
        let p = plan(&[
            "--pub-format",
            "grip",
            "--batch",
            "10",
            "--pub-url",
            "http://127.0.0.1:5561/publish/",
        ])
        .unwrap();
        assert_eq!(p.batch, 10);
        assert_eq!(p.pub_url.target("t"), "/publish/");
    }

    #[test]
    fn storms_are_sse_only_and_in_one_process() {
        let p = plan(&["--storm", "--storm-events", "5"]).unwrap();
        assert_eq!(p.storm.unwrap().away_events, 5);
        for bad in [
            &["--storm", "--transport", "ws"][..],
            &["--storm", "--workers", "2"],
            &["--storm", "--subscribers", "20000"],
            &["--storm", "--events", "0"],
            &["--storm", "--reconnect-concurrency", "0"],
        ] {
            let e = plan(bad).unwrap_err();
            assert!(e.contains("-"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn each_lane_keeps_one_connection() {
        // One topic, four lanes, enough publishers: four connections in turn.
        let p = plan(&["--topics", "1", "--in-flight", "4", "--publishers", "16"]).unwrap();
        assert_eq!(p.publishers, 4);
        let conns: Vec<usize> = (0..8).map(|s| p.publisher_of(s)).collect();
        assert_eq!(conns, [0, 1, 2, 3, 0, 1, 2, 3]);
        // Without --in-flight a topic has one connection (the old rule t % publishers).
        let p = plan(&["--topics", "3", "--publishers", "2"]).unwrap();
        let conns: Vec<usize> = (0..6).map(|s| p.publisher_of(s)).collect();
        assert_eq!(conns, [0, 1, 0, 0, 1, 0]);
        // Fewer publishers than lanes: lanes share connections, each lane still one.
        let p = plan(&["--topics", "2", "--in-flight", "3", "--publishers", "4"]).unwrap();
        for seq in 0..60 {
            let (t, k) = (seq % 2, seq / 2);
            let same_lane = seq + 2 * 3; // the lane's next event
            assert_eq!(
                p.publisher_of(seq),
                p.publisher_of(same_lane),
                "t {t} k {k}"
            );
        }
        assert!(plan(&["--in-flight", "0"]).is_err());
    }
}

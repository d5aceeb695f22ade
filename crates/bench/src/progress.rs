//! Progress bars on stderr (indicatif): one bar per phase (connect,
//! publish, deliver, and a storm's drop, reconnect and catch-up), each with
//! its count, total and rate.
//!
//! Bars are drawn only when stderr is a terminal and `--quiet` is not given,
//! and never by a worker (its stdout carries JSON lines to the parent, which
//! draws from the counts the workers report). A bar follows a counter: a
//! task reads it every [`TICK`] until the phase ends, so the hot paths only
//! bump atomics.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio_util::sync::CancellationToken;

/// How often a bar reads its counter.
const TICK: Duration = Duration::from_millis(100);

/// The bars of one run (all hidden when not drawn).
pub(crate) struct Progress {
    multi: Option<MultiProgress>,
}

/// One phase's bar, following its counter until [`Phase::done`] (or drop).
pub(crate) struct Phase {
    bar: ProgressBar,
    stop: CancellationToken,
    read: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl Progress {
    /// Bars on stderr if it is a terminal and `quiet` is false; otherwise
    /// every phase is hidden.
    pub(crate) fn new(quiet: bool) -> Progress {
        let drawn = !quiet && std::io::stderr().is_terminal();
        Progress {
            multi: drawn.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr())),
        }
    }

    /// Starts a bar named `name` counting to `total`, reading `read`.
    pub(crate) fn phase(
        &self,
        name: &'static str,
        total: u64,
        read: impl Fn() -> u64 + Send + Sync + 'static,
    ) -> Phase {
        let read: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::new(read);
        let stop = CancellationToken::new();
        let Some(multi) = &self.multi else {
            return Phase {
                bar: ProgressBar::hidden(),
                stop,
                read,
            };
        };
        let style = ProgressStyle::with_template(
            "{prefix:>9} [{bar:32.cyan/blue}] {human_pos:>9}/{human_len:9} {per_sec:0} {elapsed:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bar = multi.add(ProgressBar::new(total).with_style(style).with_prefix(name));
        let (b, r, s) = (bar.clone(), read.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            loop {
                tokio::select! {
                    () = s.cancelled() => break,
                    _ = tick.tick() => b.set_position(r()),
                }
            }
        });
        Phase { bar, stop, read }
    }

    /// Prints a line above the bars (or on stderr when none are drawn).
    pub(crate) fn println(&self, line: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

impl Phase {
    /// Ends the phase, leaving the bar at its final count with `note`.
    pub(crate) fn done(self, note: &str) {
        self.stop.cancel();
        self.bar.set_position((self.read)());
        self.bar.abandon_with_message(note.to_string());
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        self.stop.cancel();
        if !self.bar.is_finished() {
            self.bar.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_progress_draws_nothing_and_phases_still_end() {
        let p = Progress::new(true);
        assert!(p.multi.is_none());
        let phase = p.phase("connect", 10, || 7);
        assert!(phase.bar.is_hidden());
        phase.done("ok");
    }
}

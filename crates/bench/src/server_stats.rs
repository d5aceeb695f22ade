//! The server's cost, read from /proc/PID: CPU time (`stat`), resident
//! memory (`status` VmRSS) and write system calls (`io` syscw).
//!
//! A server may be several processes (nginx's master and workers; Pushpin's
//! runner, condure, zurl, proxy and handler): their figures are added up.
//! Pages shared between them (nginx's shared memory zone) then count once
//! per process that has touched them, so the summed RSS is an upper bound.

/// One reading of the server process.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcSample {
    /// User plus system CPU time, µs.
    pub(crate) cpu_us: u64,
    /// Resident set size, KiB.
    pub(crate) rss_kib: u64,
    /// Write-family system calls so far (None when /proc/PID/io is unreadable).
    pub(crate) syscw: Option<u64>,
}

impl ProcSample {
    /// The figures of two processes together; write syscalls are known only
    /// if they are known for both.
    fn plus(self, other: ProcSample) -> ProcSample {
        ProcSample {
            cpu_us: self.cpu_us + other.cpu_us,
            rss_kib: self.rss_kib + other.rss_kib,
            syscw: self.syscw.zip(other.syscw).map(|(a, b)| a + b),
        }
    }
}

/// Reads /proc for the server's processes.
pub(crate) struct ProcReader {
    /// At least one.
    pids: Vec<u32>,
    /// Clock ticks per second of `stat`'s times.
    ticks_per_sec: u64,
}

impl ProcReader {
    /// A reader for `pids` (at least one); fails if one cannot be read.
    pub(crate) fn new(pids: &[u32]) -> Result<ProcReader, String> {
        if pids.is_empty() {
            return Err("no server process to read".into());
        }
        let reader = ProcReader {
            pids: pids.to_vec(),
            ticks_per_sec: clock_ticks(),
        };
        reader.sample()?;
        Ok(reader)
    }

    /// Reads all three figures now, added up over the processes.
    pub(crate) fn sample(&self) -> Result<ProcSample, String> {
        let mut total: Option<ProcSample> = None;
        for &pid in &self.pids {
            let one = self.sample_one(pid)?;
            total = Some(total.map_or(one, |t| t.plus(one)));
        }
        total.ok_or_else(|| "no server process to read".into())
    }

    fn sample_one(&self, pid: u32) -> Result<ProcSample, String> {
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|e| format!("cannot read /proc/{pid}/{file}: {e}"))
        };
        let ticks = parse_stat_ticks(&read("stat")?)
            .ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))?;
        let rss_kib = parse_status_rss(&read("status")?)
            .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status"))?;
        let syscw = read("io").ok().and_then(|io| parse_io_syscw(&io));
        Ok(ProcSample {
            cpu_us: ticks * 1_000_000 / self.ticks_per_sec,
            rss_kib,
            syscw,
        })
    }
}

/// `getconf CLK_TCK`, or 100 (Linux's USER_HZ) when it cannot be run.
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// utime + stime (fields 14 and 15) of a `stat` line; the command name may
/// hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace().skip(11); // field 3 is the first here
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_io_syscw(io: &str) -> Option<u64> {
    let line = io.lines().find(|l| l.starts_with("syscw:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat =
            "4242 (her ald) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(325));
        assert_eq!(
            parse_status_rss("Name:\therald\nVmRSS:\t   12345 kB\n"),
            Some(12345)
        );
        assert_eq!(parse_io_syscw("rchar: 1\nsyscr: 2\nsyscw: 77\n"), Some(77));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = ProcReader::new(&[std::process::id()])
            .unwrap()
            .sample()
            .unwrap();
        assert!(s.rss_kib > 0);
    }

    #[test]
    fn several_processes_add_up() {
        let a = ProcSample {
            cpu_us: 10,
            rss_kib: 100,
            syscw: Some(3),
        };
        let b = ProcSample {
            cpu_us: 5,
            rss_kib: 50,
            syscw: Some(4),
        };
        let sum = a.plus(b);
        assert_eq!((sum.cpu_us, sum.rss_kib, sum.syscw), (15, 150, Some(7)));
        let unknown = a.plus(ProcSample { syscw: None, ..b });
        assert_eq!(unknown.syscw, None);
    }

    #[test]
    fn reads_several_processes_or_refuses() {
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let both = ProcReader::new(&[me, parent]).unwrap().sample().unwrap();
        assert!(both.rss_kib > 0);
        assert!(ProcReader::new(&[]).is_err());
        // Beyond any pid_max Linux allows (2^22).
        assert!(ProcReader::new(&[me, 1 << 23]).is_err());
    }
}

//! Progress display: one bar per torrent (bytes, rates, peers, ETA) when
//! stderr is a terminal, else a plain line every few seconds, and a summary
//! at the end.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static BARS: OnceLock<MultiProgress> = OnceLock::new();

/// Prints a line on stderr without tearing the progress bars.
pub fn print_line(line: &str) {
    match BARS.get() {
        Some(bars) => bars.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// A snapshot of one torrent, as the progress display shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Verified bytes on disk.
    pub have_bytes: u64,
    /// Size of the torrent.
    pub total_bytes: u64,
    /// Payload bytes received per second.
    pub down_rate: f64,
    /// Payload bytes sent per second.
    pub up_rate: f64,
    /// Payload bytes sent in total.
    pub uploaded: u64,
    /// Connected peers.
    pub peers: usize,
    /// The DHT node's routing-table size and the peers it found (over all
    /// torrents), when the DHT is on.
    pub dht: Option<(usize, u64)>,
}

/// ` dht 40 nodes/12 peers`, or nothing without a DHT.
fn dht_part(snap: &Snapshot) -> String {
    snap.dht
        .map(|(nodes, peers)| format!(" dht {nodes} nodes/{peers} peers"))
        .unwrap_or_default()
}

/// How one torrent's progress is shown.
pub struct TorrentProgress {
    name: String,
    bar: Option<ProgressBar>,
    plain_every: Duration,
    last_plain: Option<Instant>,
}

/// Whether bars are drawn (stderr is a terminal) or plain lines printed.
pub fn use_bars() -> bool {
    std::io::stderr().is_terminal()
}

impl TorrentProgress {
    /// A display for the torrent `name`; bars when `bars` is true.
    pub fn new(name: &str, total: u64, bars: bool) -> TorrentProgress {
        let name = &*crate::text::shown(name);
        let bar = bars.then(|| {
            let multi =
                BARS.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
            let bar = multi.add(ProgressBar::new(total));
            let style = ProgressStyle::with_template(
                "{prefix:20!} [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(name.to_string());
            bar
        });
        TorrentProgress {
            name: name.to_string(),
            bar,
            plain_every: Duration::from_secs(2),
            last_plain: None,
        }
    }

    /// Shows `snap`; plain lines are rate-limited to one per two seconds.
    pub fn update(&mut self, snap: &Snapshot, now: Instant) {
        if let Some(bar) = &self.bar {
            bar.set_position(snap.have_bytes);
            bar.set_message(format!(
                "down {}/s up {}/s peers {}{}",
                human_bytes(snap.down_rate as u64),
                human_bytes(snap.up_rate as u64),
                snap.peers,
                dht_part(snap)
            ));
            return;
        }
        if self
            .last_plain
            .is_some_and(|t| now.duration_since(t) < self.plain_every)
        {
            return;
        }
        self.last_plain = Some(now);
        eprintln!("{}", plain_line(&self.name, snap));
    }

    /// Stops the bar for a torrent whose data was all on disk already.
    pub fn finish_verified(&mut self, snap: &Snapshot) {
        if let Some(bar) = self.bar.take() {
            bar.set_position(snap.have_bytes);
            bar.finish();
        }
        print_line(&format!(
            "{}: all {} verified on disk",
            self.name,
            human_bytes(snap.total_bytes)
        ));
    }

    /// Stops the bar (leaving it drawn) and prints the summary line.
    pub fn finish(&mut self, snap: &Snapshot, elapsed: Duration) {
        if let Some(bar) = self.bar.take() {
            bar.set_position(snap.have_bytes);
            bar.finish();
        }
        print_line(&summary_line(&self.name, snap, elapsed));
    }
}

/// `name: 45.0% 12.0 MiB/26.7 MiB down 3.0 MiB/s up 0 B/s peers 3`
pub fn plain_line(name: &str, snap: &Snapshot) -> String {
    let percent = if snap.total_bytes == 0 {
        100.0
    } else {
        snap.have_bytes as f64 * 100.0 / snap.total_bytes as f64
    };
    format!(
        "{name}: {percent:.1}% {}/{} down {}/s up {}/s peers {}{}",
        human_bytes(snap.have_bytes),
        human_bytes(snap.total_bytes),
        human_bytes(snap.down_rate as u64),
        human_bytes(snap.up_rate as u64),
        snap.peers,
        dht_part(snap)
    )
}

/// The end-of-run line for one torrent.
pub fn summary_line(name: &str, snap: &Snapshot, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-6);
    let complete = snap.have_bytes == snap.total_bytes;
    format!(
        "{name}: {} {}/{} in {:.1} s ({}/s), uploaded {}",
        if complete { "complete," } else { "incomplete," },
        human_bytes(snap.have_bytes),
        human_bytes(snap.total_bytes),
        secs,
        human_bytes((snap.have_bytes as f64 / secs) as u64),
        human_bytes(snap.uploaded)
    )
}

/// Bytes in binary units with one decimal: `1.5 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn plain_and_summary_lines_carry_the_numbers() {
        let snap = Snapshot {
            have_bytes: 512,
            total_bytes: 1024,
            down_rate: 2048.0,
            up_rate: 0.0,
            uploaded: 0,
            peers: 3,
            dht: None,
        };
        assert_eq!(
            plain_line("t", &snap),
            "t: 50.0% 512 B/1.0 KiB down 2.0 KiB/s up 0 B/s peers 3"
        );
        let with_dht = Snapshot {
            dht: Some((40, 7)),
            ..snap
        };
        assert!(plain_line("t", &with_dht).ends_with("peers 3 dht 40 nodes/7 peers"));
        let s = summary_line("t", &snap, Duration::from_secs(2));
        assert!(
            s.starts_with("t: incomplete, 512 B/1.0 KiB in 2.0 s"),
            "{s}"
        );
    }
}

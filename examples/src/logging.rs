//! A small `log` backend: every record at `info` or above goes to a log
//! file (one line per completed piece, one per peer connecting or leaving,
//! with the reason); stderr shows warnings, or more with `-v`/`-vv`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    file: Option<Mutex<File>>,
    file_level: Level,
    stderr_level: Level,
    start: Instant,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        let level = metadata.level();
        // Our own crates only: dependencies' chatter stays out of the log.
        metadata.target().starts_with("rustico")
            && (level <= self.stderr_level || (self.file.is_some() && level <= self.file_level))
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let elapsed = self.start.elapsed().as_secs_f64();
        // One record, one line: whatever a torrent, tracker or peer put in
        // the message (names, client strings, failure reasons) is escaped.
        let message = record.args().to_string();
        let line = format!(
            "{elapsed:10.3} {:5} {}\n",
            record.level(),
            crate::text::shown(&message)
        );
        if let Some(file) = &self.file {
            if record.level() <= self.file_level {
                if let Ok(mut f) = file.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
        if record.level() <= self.stderr_level {
            crate::progress::print_line(line.trim_end());
        }
    }

    fn flush(&self) {
        if let Some(file) = &self.file {
            if let Ok(mut f) = file.lock() {
                let _ = f.flush();
            }
        }
    }
}

/// The stderr level for a count of `-v` flags.
pub fn stderr_level(verbose: u8) -> Level {
    match verbose {
        0 => Level::Warn,
        1 => Level::Info,
        2 => Level::Debug,
        _ => Level::Trace,
    }
}

/// Installs the logger. `log_dir`, when given, receives `rustico.log`
/// (appended); failing to open it is reported on stderr and is not fatal.
/// Returns the log file's path when one is written.
pub fn init(verbose: u8, log_dir: Option<&Path>) -> Option<PathBuf> {
    let mut path = None;
    let file = log_dir.and_then(|dir| {
        let p = dir.join("rustico.log");
        let opened = std::fs::create_dir_all(dir)
            .and_then(|_| OpenOptions::new().create(true).append(true).open(&p));
        match opened {
            Ok(f) => {
                path = Some(p);
                Some(Mutex::new(f))
            }
            Err(e) => {
                eprintln!("rustico: cannot open log file {}: {e}", p.display());
                None
            }
        }
    });
    let stderr_level = stderr_level(verbose);
    let file_level = match verbose {
        0 | 1 => Level::Info,
        2 => Level::Debug,
        _ => Level::Trace,
    };
    let max = if file.is_some() {
        stderr_level.max(file_level)
    } else {
        stderr_level
    };
    let logger = Logger {
        file,
        file_level,
        stderr_level,
        start: Instant::now(),
    };
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(max.to_level_filter());
    } else {
        log::set_max_level(LevelFilter::Off.max(log::max_level()));
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_raises_the_stderr_level() {
        assert_eq!(stderr_level(0), Level::Warn);
        assert_eq!(stderr_level(1), Level::Info);
        assert_eq!(stderr_level(2), Level::Debug);
        assert_eq!(stderr_level(9), Level::Trace);
    }
}

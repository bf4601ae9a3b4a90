//! File I/O and hashing for every torrent, on a fixed pool of threads.
//!
//! Torrents hand the pool jobs: check what is on disk when they start,
//! verify and write a piece, save resume data. The queue is bounded, so a
//! torrent that hands pieces faster than the disks take them waits (and
//! so do its peers, through their own bounded channels) instead of
//! piling pieces up in memory.

use crossbeam_channel::{bounded, Sender};

/// One job: runs on a disk thread, reports through whatever it captured.
type Job = Box<dyn FnOnce() + Send>;

/// The disk threads and their bounded queue.
#[derive(Debug, Clone)]
pub struct DiskPool {
    jobs: Sender<Job>,
}

/// Jobs waiting at most: with pieces of up to 4 MiB about 256 MiB, the
/// same bound one torrent had with its own savers.
const QUEUE: usize = 64;

impl DiskPool {
    /// Starts `threads` disk threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<DiskPool> {
        let (jobs, rx) = bounded::<Job>(QUEUE);
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            super::spawn("disk", move || {
                for job in rx {
                    job();
                }
            })?;
        }
        Ok(DiskPool { jobs })
    }

    /// Queues a job, waiting while the queue is full. Returns false once
    /// the pool is gone (the job is dropped).
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.jobs.send(Box::new(job)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    #[test]
    fn every_job_runs_on_the_pools_threads() {
        let pool = DiskPool::new(2).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        for _ in 0..500 {
            let (done, names) = (Arc::clone(&done), Arc::clone(&names));
            assert!(pool.run(move || {
                let name = std::thread::current().name().map(str::to_string);
                names.lock().unwrap().insert(name);
                done.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let start = Instant::now();
        while done.load(Ordering::SeqCst) < 500 {
            assert!(start.elapsed() < Duration::from_secs(10));
            std::thread::sleep(Duration::from_millis(1));
        }
        let names = names.lock().unwrap();
        assert!(names.len() <= 2, "{names:?}");
        assert!(names.iter().all(|n| n.as_deref() == Some("disk")));
    }
}

//! Drift repair latency: break one file with a plain truncate-and-write, then wait, on
//! inotify rather than by spinning, until it holds its declared content again.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::workload;

/// How often a file is re-read when no event arrives.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// An inotify descriptor watching one directory for files being completed or replaced.
pub struct DirWatch {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl DirWatch {
    pub fn new(dir: &Path) -> io::Result<DirWatch> {
        // SAFETY: plain syscall; returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut cpath = dir.as_os_str().as_bytes().to_vec();
        cpath.push(0);
        let mask = libc::IN_MOVED_TO | libc::IN_CLOSE_WRITE | libc::IN_CREATE;
        // SAFETY: `cpath` is NUL-terminated and outlives the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), cpath.as_ptr().cast(), mask) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(DirWatch {
            fd,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Read every queued event and return the names they carry (entries of the
    /// directory created, closed after writing or moved in).
    pub fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: `buf` is valid for its length.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return names;
            }
            let header = std::mem::size_of::<libc::inotify_event>();
            let mut at = 0;
            while at + header <= n as usize {
                // SAFETY: the kernel writes whole events; `read_unaligned` copes with the
                // byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let raw = &buf[at + header..at + header + ev.len as usize];
                let raw = &raw[..raw.iter().position(|b| *b == 0).unwrap_or(raw.len())];
                if ev.mask & (libc::IN_MOVED_TO | libc::IN_CREATE) != 0 {
                    names.push(String::from_utf8_lossy(raw).into_owned());
                }
                at += header + ev.len as usize;
            }
        }
    }

    /// Read and discard every queued event; returns whether there was any.
    pub fn drain(&mut self) -> io::Result<bool> {
        let mut any = false;
        loop {
            // SAFETY: `buf` is valid for its length.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                )
            };
            if n > 0 {
                any = true;
                continue;
            }
            if n == 0 {
                return Ok(any);
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(any),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
    }

    /// Block until an event is queued or `timeout` passes.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// One drift: overwrite file `i` in `dir` with `wrong` (open O_TRUNC, write, close) and
/// return the time from just before the write until the file holds its declared content
/// again, or None if that did not happen within `deadline`.
pub fn one(
    watch: &mut DirWatch,
    dir: &Path,
    i: usize,
    wrong: &[u8],
    deadline: Duration,
) -> io::Result<Option<Duration>> {
    let path = workload::path(dir, i);
    watch.drain()?;
    let started = Instant::now();
    {
        let mut file = OpenOptions::new().write(true).truncate(true).open(&path)?;
        file.write_all(wrong)?;
    }
    loop {
        if workload::has_content(dir, i)? {
            return Ok(Some(started.elapsed()));
        }
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(None);
        }
        watch.wait(left.min(POLL_INTERVAL))?;
        watch.drain()?;
    }
}

/// Nearest-rank percentile `p` (0..=100) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(100));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(198));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
    }

    #[test]
    fn sees_a_repair_by_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = workload::path(dir.path(), 7);
        std::fs::write(&path, workload::content(7)).expect("write");
        let mut watch = DirWatch::new(dir.path()).expect("inotify");
        let repairer = {
            let dir = dir.path().to_path_buf();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                let tmp = dir.join(".tmp");
                std::fs::write(&tmp, workload::content(7)).expect("write tmp");
                std::fs::rename(&tmp, workload::path(&dir, 7)).expect("rename");
            })
        };
        let took = one(
            &mut watch,
            dir.path(),
            7,
            b"wrong\n",
            Duration::from_secs(5),
        )
        .expect("drift");
        repairer.join().expect("repairer");
        assert!(took.is_some(), "the repair was not seen");
        assert!(workload::has_content(dir.path(), 7).expect("read"));
    }

    #[test]
    fn gives_up_at_the_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(workload::path(dir.path(), 0), workload::content(0)).expect("write");
        let mut watch = DirWatch::new(dir.path()).expect("inotify");
        let took = one(
            &mut watch,
            dir.path(),
            0,
            b"wrong\n",
            Duration::from_millis(250),
        )
        .expect("drift");
        assert_eq!(took, None);
    }
}

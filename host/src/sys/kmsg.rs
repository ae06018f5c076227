//! The kernel log as an event source: the host reads `/dev/kmsg` itself and keeps the
//! newest records in a ring buffer; resources that watch `kmsg` are woken on every new
//! record and read the records after the last sequence number they saw through the
//! `kmsg` host interface. Parsing and filtering stay in the plugin (`plugins/kmsg`).
//!
//! Reading follows the kernel's `/dev/kmsg` contract (Documentation/ABI/testing/
//! dev-kmsg): the file is opened non-blocking and watched with tokio's `AsyncFd`, so no
//! thread ever sits in a blocking read; each `read(2)` returns exactly one record
//! (`PRIO,SEQ,TIMESTAMP_US,FLAGS;MESSAGE\n` plus continuation lines ` KEY=VALUE\n`);
//! `EPIPE` means records were overwritten in the kernel's ring before we read them, and
//! the next read returns the oldest one still there — the hub counts the gap and moves
//! on. A gap also shows up to a reader as a jump in sequence numbers, which the `kmsg`
//! interface reports as `missed`.
//!
//! One reader per host ([`KmsgSource`], handed to whoever needs it), opened on first use;
//! tests open their own with [`Kmsg::open`] or a [`KmsgSource`] on a device of their own.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sys::waker::Waker;

/// Records kept for readers that fall behind (the kernel's own ring holds a few
/// thousand typical records).
pub const CAPACITY: usize = 8192;

/// Largest record the kernel returns (`CONSOLE_EXT_LOG_MAX`).
const MAX_RECORD: usize = 8192;

/// One record, raw, with its sequence number parsed out for ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub text: Arc<str>,
}

/// What a reader gets: the records after its cursor, and how many it missed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Records between the cursor and the first returned one that are gone (overwritten
    /// in the kernel before the host read them, or dropped from the host's buffer).
    pub missed: u64,
}

#[derive(Default)]
struct Buffer {
    records: VecDeque<Record>,
    subscribers: Vec<(u64, Waker)>,
    /// Why reading stopped, if it did.
    failed: Option<String>,
}

struct Inner {
    buffer: Mutex<Buffer>,
    /// Sequence number of the newest record present when reading started.
    start_seq: Option<u64>,
    next_id: AtomicU64,
    /// Records the kernel overwrote before they were read (EPIPE), for diagnostics.
    overwritten: AtomicU64,
}

/// A reader of a kmsg device, shared by every resource that watches it.
#[derive(Clone)]
pub struct Kmsg {
    inner: Arc<Inner>,
}

/// Keeps a waker registered; dropping it unregisters.
pub struct KmsgSubscription {
    inner: Arc<Inner>,
    id: u64,
}

impl Drop for KmsgSubscription {
    fn drop(&mut self) {
        let mut b = self.inner.buffer.lock().expect("kmsg lock");
        b.subscribers.retain(|(id, _)| *id != self.id);
    }
}

/// `PRIO,SEQ,...;` → SEQ.
fn seq_of(text: &str) -> Option<u64> {
    let header = text.split(';').next()?;
    header.split(',').nth(1)?.parse().ok()
}

fn open_nonblocking(path: &Path) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)
}

enum Read {
    Record(String),
    Empty,
    Overwritten,
}

fn read_one(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Read> {
    match rustix::io::read(fd, &mut *buf) {
        Ok(0) => Ok(Read::Empty),
        Ok(n) => Ok(Read::Record(
            String::from_utf8_lossy(&buf[..n]).into_owned(),
        )),
        Err(rustix::io::Errno::AGAIN) => Ok(Read::Empty),
        Err(rustix::io::Errno::PIPE) => Ok(Read::Overwritten),
        Err(rustix::io::Errno::INTR) => read_one(fd, buf),
        Err(e) => Err(e.into()),
    }
}

impl Kmsg {
    /// Open `path` (a kmsg device), read the records already in the kernel's buffer and
    /// start a task reading new ones. Must be called inside a tokio runtime.
    pub fn open(path: &Path) -> io::Result<Kmsg> {
        let fd = open_nonblocking(path)?;
        let mut buf = vec![0u8; MAX_RECORD];
        let mut backlog = Buffer::default();
        let mut overwritten = 0;
        loop {
            match read_one(&fd, &mut buf)? {
                Read::Record(text) => push(&mut backlog.records, text),
                Read::Overwritten => overwritten += 1,
                Read::Empty => break,
            }
        }
        let inner = Arc::new(Inner {
            start_seq: backlog.records.back().map(|r| r.seq),
            buffer: Mutex::new(backlog),
            next_id: AtomicU64::new(0),
            overwritten: AtomicU64::new(overwritten),
        });
        // SAFETY: `fd` is an open descriptor owned by the `AsyncFd` from here on, so it
        // stays open and refers to the same file until the `AsyncFd` is dropped.
        let async_fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| io::Error::other(e.to_string()))?;
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_RECORD];
            let error = loop {
                let mut ready = match async_fd.readable().await {
                    Ok(r) => r,
                    Err(e) => break e.to_string(),
                };
                let Some(inner) = weak.upgrade() else { return };
                let mut fresh = Vec::new();
                let failed = loop {
                    match read_one(async_fd.get_ref(), &mut buf) {
                        Ok(Read::Record(text)) => fresh.push(text),
                        Ok(Read::Overwritten) => {
                            inner.overwritten.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                "kmsg: kernel log records were overwritten before they could \
                                 be read; skipping ahead"
                            );
                        }
                        Ok(Read::Empty) => {
                            ready.clear_ready();
                            break None;
                        }
                        Err(e) => break Some(e.to_string()),
                    }
                };
                let wakers: Vec<Waker> = {
                    let mut b = inner.buffer.lock().expect("kmsg lock");
                    for text in fresh {
                        push(&mut b.records, text);
                    }
                    b.subscribers.iter().map(|(_, w)| w.clone()).collect()
                };
                wakers.iter().for_each(|w| w());
                if let Some(e) = failed {
                    break e;
                }
            };
            tracing::error!(
                "kmsg: reading {} stopped: {error}",
                async_fd.get_ref().as_raw_fd()
            );
            if let Some(inner) = weak.upgrade() {
                inner.buffer.lock().expect("kmsg lock").failed = Some(error);
            }
        });
        Ok(Kmsg { inner })
    }

    /// Call `waker` after each batch of new records, until the subscription is dropped.
    pub fn subscribe(&self, waker: Waker) -> KmsgSubscription {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut b = self.inner.buffer.lock().expect("kmsg lock");
        b.subscribers.push((id, waker));
        KmsgSubscription {
            inner: self.inner.clone(),
            id,
        }
    }

    /// The newest record present when reading started (`None` on an empty log).
    pub fn start_seq(&self) -> Option<u64> {
        self.inner.start_seq
    }

    /// Records with a sequence number above `after` (every buffered record for `None`),
    /// oldest first. Fails once reading has stopped.
    pub fn read(&self, after: Option<u64>) -> Result<Batch, KmsgError> {
        let b = self.inner.buffer.lock().expect("kmsg lock");
        if let Some(e) = &b.failed {
            return Err(KmsgError::Stopped(e.clone()));
        }
        let start = match after {
            None => 0,
            Some(seq) => b.records.partition_point(|r| r.seq <= seq),
        };
        let records: Vec<Record> = b.records.range(start..).cloned().collect();
        let missed = match (after, records.first()) {
            (Some(seq), Some(first)) => first.seq.saturating_sub(seq + 1),
            _ => 0,
        };
        Ok(Batch { records, missed })
    }

    /// Records the kernel overwrote before the host read them.
    pub fn overwritten(&self) -> u64 {
        self.inner.overwritten.load(Ordering::Relaxed)
    }
}

fn push(records: &mut VecDeque<Record>, text: String) {
    let Some(seq) = seq_of(&text) else {
        tracing::debug!("kmsg: ignoring a record without a sequence number: {text:?}");
        return;
    };
    if records.len() == CAPACITY {
        records.pop_front();
    }
    records.push_back(Record {
        seq,
        text: text.into(),
    });
}

/// Why the kernel log cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsgError {
    /// The device could not be opened (not there, or not readable by this user).
    #[error("cannot read {}: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// Reading stopped after it had started.
    #[error("reading the kernel log failed: {0}")]
    Stopped(String),
}

/// The host's reader of a kmsg device (`/dev/kmsg` unless told otherwise), opened on first
/// use: a host that runs no `kmsg` resource never opens it. Cheap to clone; the clones
/// share one reader. The host makes one and hands it to the runtime (the `kmsg` host
/// interface) and the engine (kmsg watches); tests hand in their own device.
#[derive(Clone)]
pub struct KmsgSource {
    path: Arc<Path>,
    reader: Arc<OnceLock<Result<Kmsg, KmsgError>>>,
}

impl Default for KmsgSource {
    fn default() -> Self {
        KmsgSource::new(Path::new("/dev/kmsg"))
    }
}

impl std::fmt::Debug for KmsgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsgSource")
            .field("path", &self.path)
            .field("opened", &self.reader.get().is_some())
            .finish()
    }
}

impl KmsgSource {
    /// A source reading `path` once something asks for it.
    pub fn new(path: &Path) -> KmsgSource {
        KmsgSource {
            path: path.into(),
            reader: Arc::default(),
        }
    }

    /// The reader, opened now if this is the first call (inside a tokio runtime).
    pub fn get(&self) -> Result<Kmsg, KmsgError> {
        self.reader
            .get_or_init(|| {
                Kmsg::open(&self.path).map_err(|e| KmsgError::Open {
                    path: self.path.to_path_buf(),
                    message: e.to_string(),
                })
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write_record(message: &str) {
        std::fs::write("/dev/kmsg", format!("<4>{message}\n")).expect("write /dev/kmsg");
    }

    #[test]
    fn sequence_numbers_come_from_the_header() {
        assert_eq!(seq_of("6,338,1380826,-;EXT4-fs (vda): mounted"), Some(338));
        assert_eq!(seq_of("6,339,1,c;msg\n SUBSYSTEM=pci\n"), Some(339));
        assert_eq!(seq_of("garbage"), None);
    }

    #[tokio::test]
    async fn reads_new_records_and_wakes_subscribers() {
        if !Path::new("/dev/kmsg").exists() {
            eprintln!("skipped: no /dev/kmsg on this machine");
            return;
        }
        let k = Kmsg::open(Path::new("/dev/kmsg")).expect("open /dev/kmsg");
        let start = k.start_seq();
        let woken = Arc::new(tokio::sync::Notify::new());
        let w = woken.clone();
        let _sub = k.subscribe(Arc::new(move || w.notify_one()));
        let marker = format!("homeostat-kmsg-unit-{}", std::process::id());
        write_record(&marker);
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                woken.notified().await;
                let batch = k.read(start).unwrap();
                if batch.records.iter().any(|r| r.text.contains(&marker)) {
                    break;
                }
            }
        })
        .await
        .expect("the new record was read");
        let after_marker = k.read(start).unwrap();
        assert_eq!(after_marker.missed, 0);
        let last = after_marker.records.last().unwrap().seq;
        assert!(k.read(Some(last)).unwrap().records.is_empty());
    }

    #[test]
    fn a_cursor_behind_the_buffer_reports_missed_records() {
        let inner = Arc::new(Inner {
            buffer: Mutex::new(Buffer::default()),
            start_seq: None,
            next_id: AtomicU64::new(0),
            overwritten: AtomicU64::new(0),
        });
        {
            let mut b = inner.buffer.lock().unwrap();
            for seq in [10, 11, 15] {
                push(&mut b.records, format!("6,{seq},0,-;m{seq}\n"));
            }
        }
        let k = Kmsg { inner };
        let b = k.read(Some(5)).unwrap();
        assert_eq!((b.records.len(), b.missed), (3, 4));
        let b = k.read(Some(11)).unwrap();
        assert_eq!(b.records[0].seq, 15);
        assert_eq!(b.missed, 3);
    }
}

//! The native floor: the least work any tool must do for the workload, run as a child
//! process of the benchmark (`homeostat-bench floor-create|floor-check DIR N`) so that
//! process start is counted as it is for homeostat. Each prints its in-process time on
//! one line when its work is done, and the benchmark times that line, as it times
//! homeostat's summary line.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Instant;

use crate::sysinfo;
use crate::workload::{self, CONTENT_LEN, MODE};

/// How `floor-create` makes its files durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flush {
    /// Not at all: the bare syscall cost.
    None,
    /// `fsync` each temporary file before its rename (`--durable`): what durability costs
    /// without group commit.
    EachFile,
    /// Write every temporary file, one `syncfs`, rename them all, one `fsync` of the
    /// directory (`--grouped`): the least any tool can do to have every file's data on disk
    /// before its rename and every name on disk at the end.
    Grouped,
    /// homeostat's own syscalls for the work, natively, with nothing else around them
    /// (`--pipelined`): see [`create_pipelined`]. Not a floor of the workload but of
    /// homeostat's design: what its way of writing durably costs without the engine, the
    /// sandbox or the graph.
    Pipelined,
}

impl Flush {
    /// The `floor-create` flag that selects it.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Flush::None => None,
            Flush::EachFile => Some("--durable"),
            Flush::Grouped => Some("--grouped"),
            Flush::Pipelined => Some("--pipelined"),
        }
    }
}

/// `floor-create DIR N [--durable|--grouped]` and `floor-check DIR N`: do the work, print
/// the in-process time in nanoseconds on stdout, exit 0; or print an error, exit 1.
pub fn main(cmd: &str, args: &[String]) -> ExitCode {
    let (dir, n, flush) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!(
                "homeostat-bench {cmd}: {e}\nusage: homeostat-bench {cmd} DIR N [--durable|--grouped|--pipelined]"
            );
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let result = match cmd {
        "floor-create" if flush == Flush::Pipelined => create_pipelined(dir, n).map(Some),
        "floor-create" => create(dir, n, flush).map(|()| None),
        _ => check(dir, n).map(|()| None),
    };
    let elapsed = started.elapsed();
    match result {
        Ok(watch) => {
            // The benchmark times this line: the work's end, as homeostat's summary line
            // is its end.
            println!("{}", elapsed.as_nanos());
            let _ = io::stdout().flush();
            // After the line, as homeostat's inotify teardown comes after its summary.
            drop(watch);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("homeostat-bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(&Path, usize, Flush), String> {
    let mut positional = Vec::new();
    let mut flush = Flush::None;
    for arg in args {
        match arg.as_str() {
            "--durable" => flush = Flush::EachFile,
            "--grouped" => flush = Flush::Grouped,
            "--pipelined" => flush = Flush::Pipelined,
            _ => positional.push(arg),
        }
    }
    let [dir, n] = positional[..] else {
        return Err("expected DIR and N".into());
    };
    let n = n
        .parse()
        .map_err(|_| format!("N must be a number, not {n:?}"))?;
    Ok((Path::new(dir), n, flush))
}

/// For each file: create a temporary file beside it, write the content, fchmod, (fsync
/// with [`Flush::EachFile`]), close, rename over the final name. This is the atomic
/// replacement a careful tool does for a wrong file; a tool that knows the file is missing
/// could skip the rename, but only after a check this floor does not pay for either. With
/// [`Flush::Grouped`] the renames wait for one `syncfs` after all the writes, and one
/// `fsync` of the directory makes the names durable.
fn create(dir: &Path, n: usize, flush: Flush) -> io::Result<()> {
    let mut staged = Vec::new();
    for i in 0..n {
        let name = workload::name(i);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(workload::content(i).as_bytes())?;
        file.set_permissions(fs::Permissions::from_mode(MODE))?;
        if flush == Flush::EachFile {
            file.sync_all()?;
        }
        drop(file);
        if flush == Flush::Grouped {
            staged.push((tmp, name));
        } else {
            fs::rename(&tmp, dir.join(&name))?;
        }
    }
    if flush == Flush::Grouped {
        sysinfo::syncfs(dir)?;
        for (tmp, name) in staged {
            fs::rename(&tmp, dir.join(&name))?;
        }
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `floor-create --pipelined`: the syscalls homeostat makes for the cold workload, in its
/// threads, natively and with nothing else: no graph, no engine, no sandbox, no log.
///
/// - one writer thread per CPU (homeostat's runtime workers), each taking every k-th file:
///   `lstat` the path (the resource's check: missing), open the directory, `fstatat` the
///   name in it (the host's look at what it replaces), an unnamed temporary file
///   (`O_TMPFILE`) in the directory, write the content, `fchmod`; then hand the file to
///   the commit thread;
/// - one commit thread doing homeostat's group commit in rounds: `fstat` each new file's
///   directory, one flush (`fsync` of the file when it is alone, else `syncfs`) covering
///   the new files' data and the previous round's names, `linkat` each new file to its
///   name; a round with nothing new is an `fsync` of the directory;
/// - an inotify watch on the directory (homeostat's mask) read by a thread of its own
///   that lets a burst queue up for 0.5 ms between reads, as homeostat's does.
///
/// The difference between this and homeostat's cold run is what homeostat adds around
/// these syscalls; the difference between this and the durable floor is what its design
/// (unnamed files, linking, a watch, writers and committer on different threads) costs
/// against the least work.
///
/// Returns the inotify watch, to be dropped once the time is reported: closing an inotify
/// instance waits for an SRCU grace period (0–16 ms here), which homeostat pays after its
/// summary line, outside the time measured.
fn create_pipelined(dir: &Path, n: usize) -> io::Result<Watch> {
    /// `Ok(fd)` or the OS error of a call returning a descriptor.
    fn fd(ret: libc::c_int) -> io::Result<OwnedFd> {
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a descriptor just returned by the kernel and owned by nobody else.
        Ok(unsafe { OwnedFd::from_raw_fd(ret) })
    }
    /// `Ok(())` or the OS error of a call returning 0 on success.
    fn ok(ret: libc::c_int) -> io::Result<()> {
        if ret != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    /// Whether a failed lookup said "no such file", as it must for a missing file.
    fn missing(ret: libc::c_int) -> io::Result<()> {
        match ret {
            0 => Err(io::Error::other("a file to create already exists")),
            _ => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::NotFound => Ok(()),
                e => Err(e),
            },
        }
    }
    let cstr = |s: &str| CString::new(s).map_err(io::Error::other);

    let c_dir = cstr(&dir.to_string_lossy())?;
    let mask = libc::IN_CREATE
        | libc::IN_DELETE
        | libc::IN_MODIFY
        | libc::IN_ATTRIB
        | libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_FROM
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF
        | libc::IN_MOVE_SELF
        | libc::IN_ONLYDIR;
    // SAFETY: plain syscalls on a valid path and descriptor.
    let inotify = fd(unsafe { libc::inotify_init1(libc::IN_CLOEXEC) })?;
    // SAFETY: a valid inotify descriptor and a NUL-terminated path.
    let watch = unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), c_dir.as_ptr(), mask) };
    if watch < 0 {
        return Err(io::Error::last_os_error());
    }
    let reader = Some(std::thread::spawn({
        let inotify = inotify.try_clone()?;
        move || {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                // SAFETY: reads into a buffer of the length given.
                let got =
                    unsafe { libc::read(inotify.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                let Ok(got) = usize::try_from(got) else {
                    return;
                };
                // The watch's removal at the end queues IN_IGNORED, the last event.
                let mut at = 0;
                while at + 16 <= got {
                    let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().expect("4 bytes"));
                    if mask & libc::IN_IGNORED != 0 {
                        return;
                    }
                    let len =
                        u32::from_ne_bytes(buf[at + 12..at + 16].try_into().expect("4 bytes"));
                    at += 16 + len as usize;
                }
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
        }
    }));
    let watch = Watch {
        inotify,
        watch,
        reader,
    };

    /// A temporary file on its way to its name: the directory, the file, the name.
    type Staged = (OwnedFd, OwnedFd, CString);
    let (tx, rx) = mpsc::channel::<Staged>();
    let committer = std::thread::spawn(move || -> io::Result<()> {
        let mut linked: Vec<Staged> = Vec::new();
        loop {
            let mut fresh = Vec::new();
            if linked.is_empty() {
                match rx.recv() {
                    Ok(first) => fresh.push(first),
                    Err(_) => return Ok(()),
                }
            }
            fresh.extend(rx.try_iter());
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            for (dir, _, _) in &fresh {
                // SAFETY: a valid descriptor and room for a stat.
                ok(unsafe { libc::fstat(dir.as_raw_fd(), st.as_mut_ptr()) })?;
            }
            // SAFETY (the three flushes): valid descriptors.
            match (fresh.as_slice(), linked.last()) {
                // SAFETY: a valid descriptor.
                ([one], None) => ok(unsafe { libc::fsync(one.1.as_raw_fd()) })?,
                // SAFETY: a valid descriptor.
                ([], Some(last)) => ok(unsafe { libc::fsync(last.0.as_raw_fd()) })?,
                // SAFETY: a valid descriptor.
                ([first, ..], _) => ok(unsafe { libc::syncfs(first.1.as_raw_fd()) })?,
                ([], None) => {}
            }
            // The previous round's names are durable now: their writers would be answered.
            linked.clear();
            for (dir, file, name) in &fresh {
                // SAFETY: valid descriptors and NUL-terminated names.
                ok(unsafe {
                    libc::linkat(
                        file.as_raw_fd(),
                        c"".as_ptr(),
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                })?;
            }
            linked = fresh;
        }
    });

    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    let writers: Vec<_> = (0..threads)
        .map(|first| {
            let tx = tx.clone();
            let dir = dir.to_path_buf();
            let c_dir = c_dir.clone();
            std::thread::spawn(move || -> io::Result<()> {
                let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
                for i in (first..n).step_by(threads) {
                    let name = workload::name(i);
                    let path = cstr(&dir.join(&name).to_string_lossy())?;
                    let name = cstr(&name)?;
                    let content = workload::content(i);
                    // SAFETY: a NUL-terminated path and room for a stat.
                    missing(unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) })?;
                    // SAFETY: a NUL-terminated path.
                    let dir_fd = fd(unsafe {
                        libc::open(
                            c_dir.as_ptr(),
                            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                        )
                    })?;
                    // SAFETY: a valid directory descriptor, a NUL-terminated name, room for a stat.
                    missing(unsafe {
                        libc::fstatat(
                            dir_fd.as_raw_fd(),
                            name.as_ptr(),
                            st.as_mut_ptr(),
                            libc::AT_SYMLINK_NOFOLLOW,
                        )
                    })?;
                    // SAFETY: a valid directory descriptor and a NUL-terminated name.
                    let file = fd(unsafe {
                        libc::openat(
                            dir_fd.as_raw_fd(),
                            c".".as_ptr(),
                            libc::O_TMPFILE | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o600,
                        )
                    })?;
                    // SAFETY: a valid descriptor and a buffer of the length given.
                    let wrote = unsafe {
                        libc::write(file.as_raw_fd(), content.as_ptr().cast(), content.len())
                    };
                    if wrote != content.len() as isize {
                        return Err(io::Error::other(format!("short write: {wrote}")));
                    }
                    // SAFETY: a valid descriptor.
                    ok(unsafe { libc::fchmod(file.as_raw_fd(), MODE) })?;
                    tx.send((dir_fd, file, name))
                        .map_err(|_| io::Error::other("the commit thread failed"))?;
                }
                Ok(())
            })
        })
        .collect();
    drop(tx);
    let mut result = Ok(());
    for writer in writers {
        let done = writer
            .join()
            .map_err(|_| io::Error::other("a writer panicked"))?;
        result = result.and(done);
    }
    let committed = committer
        .join()
        .map_err(|_| io::Error::other("the commit thread panicked"))?;
    // A failed commit is the cause of the writers' "the commit thread failed".
    committed.and(result).map(|()| watch)
}

/// The inotify watch of [`create_pipelined`] and the thread reading it; dropping it removes
/// the watch, ends the thread and closes the instance.
#[derive(Debug)]
struct Watch {
    inotify: OwnedFd,
    watch: libc::c_int,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: a valid descriptor and watch. The removal queues IN_IGNORED, on which
        // the reader returns.
        unsafe { libc::inotify_rm_watch(self.inotify.as_raw_fd(), self.watch) };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// For each file: lstat (type, mode, size), open, read, compare, close. Fails on the
/// first file that is not in its declared state: the floor also checks homeostat's work.
fn check(dir: &Path, n: usize) -> io::Result<()> {
    let mut buf = [0u8; CONTENT_LEN + 1];
    for i in 0..n {
        if !workload::is_correct(dir, i, &mut buf)? {
            return Err(io::Error::other(format!(
                "{} is not in its declared state",
                workload::path(dir, i).display()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every way of creating the files leaves all of them in their declared state, and
    /// refuses to run over files that already exist.
    #[test]
    fn every_flush_creates_every_file() {
        for flush in [
            Flush::None,
            Flush::EachFile,
            Flush::Grouped,
            Flush::Pipelined,
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let create = |dir| match flush {
                Flush::Pipelined => create_pipelined(dir, 257).map(drop),
                _ => create(dir, 257, flush),
            };
            create(dir.path()).unwrap_or_else(|e| panic!("{flush:?}: {e}"));
            assert_eq!(
                workload::verify(dir.path(), 257).expect("verify"),
                None,
                "{flush:?}"
            );
            let entries = fs::read_dir(dir.path()).expect("read_dir").count();
            assert_eq!(entries, 257, "{flush:?}: no temporary file is left behind");
            if flush == Flush::Pipelined {
                // The watch outlives the work (its teardown comes after the reported time)
                // until dropped.
                let dir = tempfile::tempdir().expect("tempdir");
                let watch = create_pipelined(dir.path(), 3).expect("creates");
                let reader = watch.reader.as_ref().expect("a reader thread");
                assert!(!reader.is_finished(), "the watch is still read");
                drop(watch);
                let again = create_pipelined(dir.path(), 3).expect_err("files exist");
                assert!(again.to_string().contains("already exists"), "{again}");
            }
        }
    }
}

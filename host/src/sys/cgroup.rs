//! A cgroup of its own for each command a resource runs (cgroup v2, the unified
//! hierarchy), so that what a command leaves behind is found and stopped with it.
//!
//! A process group is not enough: a child that calls `setsid` (a daemon's double fork)
//! leaves it, and would keep running after its resource left the graph or homeostat
//! exited. A cgroup cannot be left by an unprivileged process, and `cgroup.kill` (Linux
//! 5.14) kills everything in it at once; on older kernels every process listed in
//! `cgroup.procs` is killed, until none is left.
//!
//! Each command's cgroup is made below homeostat's own cgroup of the unified hierarchy
//! (found through `/proc/self/cgroup` and the `cgroup2` mount in `/proc/self/mountinfo`,
//! whether the unified hierarchy is at `/sys/fs/cgroup` or at `/sys/fs/cgroup/unified`
//! beside v1 controllers); the child moves itself into it between `fork` and `exec`, so
//! nothing it starts can be outside. Where no cgroup can be made (no cgroup2, not root, a
//! delegated subtree refusing it) commands run in their process group alone, as before,
//! and the first failure is logged once.
//!
//! Under systemd the service wants `Delegate=yes` (docs/security.md); a transient scope
//! per command would cost a D-Bus round trip with the child held stopped, for the same
//! guarantee this gives whether systemd runs or not.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where command cgroups are made, when they can be.
#[derive(Debug)]
pub(crate) struct Cgroups {
    /// homeostat's own cgroup directory in the unified hierarchy.
    base: Option<PathBuf>,
    /// Whether a failure to make one was logged.
    warned: AtomicBool,
    next: AtomicU64,
}

impl Cgroups {
    /// Below homeostat's own cgroup, read from `/proc`. The cgroups an earlier homeostat
    /// left there when it was killed (named after a pid that is gone) are emptied and
    /// removed: what its commands left running stops now.
    pub(crate) fn detect() -> Cgroups {
        let base = own_cgroup();
        if let Some(base) = &base {
            remove_orphans(base);
        }
        Cgroups {
            base,
            warned: AtomicBool::new(false),
            next: AtomicU64::new(0),
        }
    }
}

/// Empties and removes `homeostat-PID-N` cgroups in `base` whose homeostat is gone.
fn remove_orphans(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("homeostat-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = entry.path();
        let Ok(procs) = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()) else {
            continue;
        };
        let orphan = Cgroup { dir, procs };
        if orphan.populated() {
            tracing::info!(
                "stopping what a killed homeostat left running in {}",
                orphan.dir.display()
            );
        }
        let _ = orphan.kill_and_remove(Duration::from_secs(1));
    }
}

/// `MOUNT/PATH` for the `0::PATH` line of `/proc/self/cgroup` and the `cgroup2` mount.
fn own_cgroup() -> Option<PathBuf> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mounts.lines().find_map(|l| {
        let (before, after) = l.split_once(" - ")?;
        after
            .starts_with("cgroup2 ")
            .then(|| before.split(' ').nth(4))
            .flatten()
    })?;
    let base = Path::new(mount).join(path.trim_start_matches('/'));
    base.join("cgroup.procs").exists().then_some(base)
}

impl Cgroups {
    /// A new, empty cgroup for one command; `None` when cgroups cannot be made here.
    pub(crate) fn create(&self) -> Option<Cgroup> {
        let base = self.base.as_ref()?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("homeostat-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).ok()?;
                Some(Cgroup { dir, procs })
            }
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        "commands run in their process group only: cannot make a cgroup in {}: \
                         {e} (a child that calls setsid may outlive its resource)",
                        base.display()
                    );
                }
                None
            }
        }
    }
}

/// One command's cgroup. Dropping it does not remove it: see [`Cgroup::kill_and_remove`].
#[derive(Debug)]
pub(crate) struct Cgroup {
    dir: PathBuf,
    /// `DIR/cgroup.procs`, ready for the child to write itself into after `fork`.
    procs: CString,
}

impl Cgroup {
    /// `cgroup.procs`, for [`join`] in the child.
    pub(crate) fn procs(&self) -> &CString {
        &self.procs
    }

    /// Whether a process is still in it.
    pub(crate) fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|e| e.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }

    /// SIGKILL everything in it.
    pub(crate) fn kill(&self) {
        if std::fs::write(self.dir.join("cgroup.kill"), "1").is_ok() {
            return;
        }
        // Before Linux 5.14: every listed process, until the list stays empty (a process
        // may fork while the list is read).
        for _ in 0..100 {
            let Ok(list) = std::fs::read_to_string(self.dir.join("cgroup.procs")) else {
                return;
            };
            let pids: Vec<i32> = list.lines().filter_map(|l| l.trim().parse().ok()).collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids.into_iter().filter(|&p| p > 1) {
                // SAFETY: kill(2) has no memory-safety preconditions; a gone pid is ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// Kills what is left in it and removes it, waiting up to `patience` for the killed
    /// processes to be gone (a cgroup with processes cannot be removed). Returns it back
    /// when it could not be removed in that time.
    pub(crate) fn kill_and_remove(self, patience: Duration) -> Result<(), Cgroup> {
        let deadline = Instant::now() + patience;
        loop {
            if self.populated() {
                self.kill();
            }
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return Err(self),
            }
        }
    }

    /// Removes it if no process is left in it; gives it back otherwise.
    pub(crate) fn remove_if_empty(self) -> Result<(), Cgroup> {
        if self.populated() {
            return Err(self);
        }
        match std::fs::remove_dir(&self.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self),
            _ => Ok(()),
        }
    }
}

/// In the child, between `fork` and `exec`: moves the calling process into the cgroup
/// whose `cgroup.procs` is `procs`. Only async-signal-safe calls (`open`, `write`,
/// `close`); a failure leaves the process where it was (its process group still holds it).
pub(crate) fn join(procs: &CString) {
    // SAFETY: `procs` is a NUL-terminated path that outlives the calls; the buffer written
    // is a static byte string of the length given; the descriptor is closed once.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orphan_of_a_killed_homeostat_is_removed() {
        let Some(base) = own_cgroup() else {
            eprintln!("skipped: no cgroup2 here");
            return;
        };
        // A pid that cannot be running: above the kernel's pid_max limit.
        let orphan = base.join("homeostat-4194305-0");
        if std::fs::create_dir(&orphan).is_err() {
            eprintln!("skipped: cannot make a cgroup in {}", base.display());
            return;
        }
        let mine = base.join(format!("homeostat-{}-999999", std::process::id()));
        std::fs::create_dir(&mine).expect("mkdir");
        remove_orphans(&base);
        assert!(!orphan.exists(), "the orphan is removed");
        assert!(mine.exists(), "this process's own cgroups stay");
        std::fs::remove_dir(&mine).expect("rmdir");
    }

    #[test]
    fn a_cgroup_holds_a_setsid_child_and_kills_it() {
        let Some(cg) = Cgroups::detect().create() else {
            eprintln!("skipped: no cgroup can be made here");
            return;
        };
        let procs = cg.procs().clone();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "setsid sleep 600 >/dev/null 2>&1 & echo $!"]);
        cmd.stdout(std::process::Stdio::piped());
        // SAFETY: `join` only makes async-signal-safe calls.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
                join(&procs);
                Ok(())
            });
        }
        let out = cmd.output().expect("run sh");
        let pid: i32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
        // The shell is gone; its setsid child is still in the cgroup.
        assert!(cg.populated());
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        cg.kill_and_remove(Duration::from_secs(5))
            .expect("removed once empty");
        // Reaped by init, eventually; it is no longer running.
        let gone = (0..500).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let done = state.is_empty() || state.split(' ').nth(2) == Some("Z");
            if !done {
                std::thread::sleep(Duration::from_millis(10));
            }
            done
        });
        assert!(gone, "the setsid child was killed");
    }
}

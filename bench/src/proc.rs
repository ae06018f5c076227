//! Child processes measured from spawn to exit: wall time, exit status and the kernel's
//! resource usage (`wait4`), with a deadline enforced through a pidfd so a hung child
//! cannot hang the benchmark and waiting never spins.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child being measured. Its pid stays valid (a zombie at worst) until `wait` reaps it.
pub struct Running {
    pub child: Child,
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    started: Instant,
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// From just before spawn to just after the child was reaped.
    pub wall: Duration,
    /// Raw `wait` status.
    status: libc::c_int,
    /// Peak resident set size, MiB (`ru_maxrss`).
    pub maxrss_mib: f64,
    /// User + system CPU time.
    pub cpu: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    /// "exit code 1", "signal 9".
    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        }
    }
}

/// Spawn `cmd`, starting the clock just before.
pub fn spawn(cmd: &mut Command) -> io::Result<Running> {
    let started = Instant::now();
    let child = cmd.spawn()?;
    let pid = libc::pid_t::try_from(child.id()).expect("pids fit in pid_t");
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = (fd >= 0).then(|| {
        // SAFETY: the kernel just returned this descriptor and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
    });
    Ok(Running {
        child,
        pid,
        pidfd,
        started,
    })
}

impl Running {
    /// When the clock started: just before spawn.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Send `sig` to the child (still unreaped, so the pid cannot have been reused).
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: plain kill(2) on our own unreaped child.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Whether the child has exited (without reaping it).
    pub fn has_exited(&self) -> bool {
        // SAFETY: `siginfo_t` is plain data, for which all zeroes is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with WNOWAIT only inspects; `info` is a valid out-pointer.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid for SIGCHLD-style siginfo filled by waitid.
        rc == 0 && unsafe { info.si_pid() } == self.pid
    }

    /// User + system CPU time used so far, from /proc (all threads; clock-tick
    /// resolution). None once the process is gone.
    pub fn cpu_so_far(&self) -> Option<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the command name, which may itself contain spaces or parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Some(Duration::from_nanos(ticks * 1_000_000_000 / hz))
    }

    /// Wait for the child to exit, at most `deadline`; past it, kill it and report.
    pub fn wait(self, deadline: Duration) -> Result<Finished, String> {
        if let Some(pidfd) = &self.pidfd {
            let limit = Instant::now() + deadline;
            loop {
                let left = limit.saturating_duration_since(Instant::now());
                let mut pfd = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.as_millis().min(i32::MAX as u128) as libc::c_int;
                // SAFETY: one valid pollfd.
                let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
                if rc > 0 {
                    break;
                }
                if rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if rc == 0 || left.is_zero() {
                    self.signal(libc::SIGKILL);
                    let _ = self.reap();
                    return Err(format!(
                        "did not exit within {:.0} s; killed it",
                        deadline.as_secs_f64()
                    ));
                }
                return Err(format!(
                    "poll on a pidfd failed: {}",
                    io::Error::last_os_error()
                ));
            }
        }
        self.reap().map_err(|e| format!("wait4 failed: {e}"))
    }

    /// Blocking wait4: reap the child and read its usage.
    fn reap(&self) -> io::Result<Finished> {
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid value to be overwritten.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: valid out-pointers; pid is our child.
            let rc = unsafe { libc::wait4(self.pid, &mut status, 0, &mut usage) };
            if rc == self.pid {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        let wall = self.started.elapsed();
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        Ok(Finished {
            wall,
            status,
            maxrss_mib: usage.ru_maxrss as f64 / 1024.0,
            cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        })
    }
}

/// Peak RSS of this process's address space so far (`VmHWM`), MiB. The kernel may count
/// it into a child's `ru_maxrss`: a child is a copy of (or, with vfork, shares) this
/// address space until it execs, and exec folds the old address space's high-water mark
/// into the child's. (Not `getrusage`: that includes what this process inherited the
/// same way from whatever started it, e.g. cargo.)
pub fn own_hwm_mib() -> Option<f64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

//! Processes as resources run them (the `process` host interface, and watch commands):
//! the command lines a resource declared, and nothing else.
//!
//! **Confinement.** [`check_argv`] allows a call only when its argv is, element by element,
//! one of the footprint's `commands` (before any `PATH` lookup). The environment, working
//! directory and user are the resource's own choice: they come from its params like the
//! argv, and a command that may run as root can do anything those could.
//!
//! **Processes.** Every process starts in a new process group (`setpgid(0, 0)`) with an
//! empty environment (only the variables the call passes), stdin from `/dev/null` (or the
//! bytes given), and stdout/stderr captured up to [`OUTPUT_MAX`] each. [`GroupGuard`] owns
//! the group while it runs: on timeout, when the call's future is dropped (the plugin call
//! timed out, the engine is stopping) or when homeostat exits through
//! [`Processes::kill_all`], the whole group gets SIGKILL, so a shell's children die with
//! it. The direct child is always waited for (tokio reaps it even when its future is
//! dropped), so no zombie is left.
//!
//! **Output.** A command may print without bound, and what matters for the log is usually
//! at its end (the error after pages of progress). Each stream is read to its end, whatever
//! its length; when it is longer than [`OUTPUT_MAX`], the first [`OUTPUT_HEAD`] bytes and
//! the last bytes are kept, joined by one line `[homeostat: N bytes of output dropped
//! here]`, at most [`OUTPUT_MAX`] in all, and `truncated` is set. Memory stays bounded
//! ([`TailBuffer`] is a ring), and reading never stops early, so a chatty command is
//! never blocked on a full pipe.
//!
//! **Lookups.** A program without `/` is searched in `PATH` from the call's environment, or
//! in [`DEFAULT_PATH`]; a missing program, a missing `cwd`, an unknown user or group
//! ([`crate::sys::ids`]) are reported as errors naming what is wrong before anything is
//! spawned.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::sys::cgroup::{self, Cgroup, Cgroups};
use crate::sys::footprint::Footprint;
use crate::sys::ids::{self, IdError, IdKind};

/// Bytes of stdout (and of stderr) kept per process; the rest is read and dropped.
pub const OUTPUT_MAX: usize = 4 << 20;

/// Of a stream longer than [`OUTPUT_MAX`], the bytes kept from its beginning; the rest of
/// what is kept is its end.
pub const OUTPUT_HEAD: usize = 64 << 10;

/// Room left for the line that marks where bytes were dropped.
const MARKER_ROOM: usize = 96;

/// The last bytes written to it, at most a fixed number, in a ring: memory stays bounded
/// however much goes through (a command's output, a watch command's stderr).
#[derive(Debug, Clone)]
pub struct TailBuffer {
    buf: Vec<u8>,
    cap: usize,
    /// Once `buf` is full: where its oldest byte is (and the next one goes).
    next: usize,
    dropped: u64,
}

impl TailBuffer {
    /// A buffer that keeps the last `cap` bytes.
    pub fn new(cap: usize) -> TailBuffer {
        TailBuffer {
            buf: Vec::new(),
            cap,
            next: 0,
            dropped: 0,
        }
    }

    /// Append `data`, dropping the oldest bytes beyond the capacity.
    pub fn push(&mut self, mut data: &[u8]) {
        let cap = self.cap;
        if data.len() >= cap {
            self.dropped += (self.buf.len() + data.len() - cap) as u64;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - cap..]);
            self.next = 0;
            return;
        }
        if self.buf.len() < cap {
            let n = (cap - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if data.is_empty() {
                return;
            }
        }
        // Full: overwrite the oldest bytes.
        self.dropped += data.len() as u64;
        let first = (cap - self.next).min(data.len());
        self.buf[self.next..self.next + first].copy_from_slice(&data[..first]);
        let rest = &data[first..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.next = (self.next + data.len()) % cap;
    }

    /// How many bytes went through and were dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The bytes kept, oldest first.
    pub fn into_vec(mut self) -> Vec<u8> {
        self.buf.rotate_left(self.next);
        self.buf
    }
}

/// Where programs are looked up when the command's environment has no `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command line to run (WIT `command`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommandSpec {
    pub argv: Vec<String>,
    /// The whole environment of the process.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// User name or uid.
    pub user: Option<String>,
    /// Group name or gid.
    pub group: Option<String>,
}

impl CommandSpec {
    /// The argv as one line for messages (`sh -c 'echo hi'`-like, without quoting rules).
    pub fn display(&self) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a.is_empty() || a.contains(char::is_whitespace) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What went wrong, for the guest to branch on (WIT `process.error-code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotAllowed,
    NotFound,
    PermissionDenied,
    UnknownId,
    TimedOut,
    Other,
}

/// A `process` call's failure. The message names the program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProcessError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProcessError {
            code,
            message: message.into(),
        }
    }
}

/// How a process ended (WIT `process.output`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Exit status, or `128 + signal`.
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub truncated: bool,
}

/// Whether `argv` is a prefix shared by some of `declared` (each that prefix plus one
/// last argument) followed by two or more of their last arguments.
fn merges_declared(declared: &[Vec<String>], argv: &[String]) -> bool {
    declared.iter().any(|c| {
        let Some((_, prefix)) = c.split_last() else {
            return false;
        };
        let rest = &argv[prefix.len().min(argv.len())..];
        argv.starts_with(prefix)
            && rest.len() >= 2
            && rest.iter().all(|arg| {
                !arg.starts_with('-')
                    && declared
                        .iter()
                        .any(|d| d.split_last() == Some((arg, prefix)))
            })
    })
}

/// Allow `argv` only when the footprint lists exactly it, or, in a group call
/// ([`Footprint::merge_commands`]), when it merges declared lines: lines that differ only
/// in their last argument run as one with all those last arguments (`apt-get install -y
/// a` and `... b` as `apt-get install -y a b`), none of which may start with `-`.
pub fn check_argv(footprint: &Footprint, argv: &[String]) -> Result<(), ProcessError> {
    if argv.is_empty() {
        return Err(ProcessError::new(
            ErrorCode::NotAllowed,
            "cannot run an empty command line",
        ));
    }
    if footprint.commands.iter().any(|c| c.as_slice() == argv)
        || (footprint.merge_commands && merges_declared(&footprint.commands, argv))
    {
        Ok(())
    } else {
        Err(ProcessError::new(
            ErrorCode::NotAllowed,
            format!(
                "command `{}` is not among the command lines this resource declared",
                CommandSpec {
                    argv: argv.to_vec(),
                    ..Default::default()
                }
                .display()
            ),
        ))
    }
}

/// The process groups started through this module that are still running, so that
/// [`Processes::kill_all`] can end them when homeostat exits without unwinding (a second
/// signal); otherwise each group's [`GroupGuard`] does. Cheap to clone: every clone shares
/// one set. The host makes one and hands it to the runtime and the engine.
#[derive(Clone, Default)]
pub struct Processes {
    groups: Arc<Mutex<HashSet<i32>>>,
    /// Where commands' cgroups are made (found on first use).
    cgroups: Arc<OnceLock<Cgroups>>,
    /// Every command cgroup not removed yet: those of running commands, and those a
    /// finished command left processes in (a daemon), kept until their resource stops.
    held: Arc<Mutex<Vec<Held>>>,
}

/// A command cgroup not removed yet.
struct Held {
    /// Distinguishes entries for [`GroupGuard`]'s drop.
    id: u64,
    /// The resource whose command it is.
    owner: Option<Arc<str>>,
    cgroup: Arc<Cgroup>,
}

impl std::fmt::Debug for Processes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Processes")
            .field("running", &self.lock().len())
            .finish()
    }
}

impl Processes {
    /// An empty set.
    pub fn new() -> Processes {
        Processes::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<i32>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// SIGKILL every process group started through this set that is still running, and
    /// everything in the commands' cgroups (what a command left running included).
    pub fn kill_all(&self) {
        for &pgid in self.lock().iter() {
            kill_group(pgid);
        }
        for held in self.held().iter() {
            held.cgroup.kill();
        }
    }

    /// The resource `owner` stopped (it left the graph, or homeostat is stopping): kill
    /// what its commands left running (a child that called `setsid`, a daemon) and remove
    /// their cgroups. Blocks up to a second per cgroup while the killed processes go.
    pub fn stop_owner(&self, owner: &str) {
        let mine: Vec<Arc<Cgroup>> = {
            let mut held = self.held();
            let (mine, rest) = std::mem::take(&mut *held)
                .into_iter()
                .partition(|h| h.owner.as_deref() == Some(owner));
            *held = rest;
            mine.into_iter().map(|h| h.cgroup).collect()
        };
        for cgroup in mine {
            reap(cgroup, owner);
        }
    }

    /// Every resource stopped (homeostat is stopping): [`Processes::stop_owner`] for all.
    pub fn stop_all(&self) {
        let all = std::mem::take(&mut *self.held());
        for held in all {
            reap(held.cgroup, held.owner.as_deref().unwrap_or("a command"));
        }
    }

    /// A guard for the new group `pgid` (and its cgroup), counted in this set until it is
    /// dropped.
    fn guard(&self, pgid: i32, cgroup: Option<Cgroup>, owner: Option<Arc<str>>) -> GroupGuard {
        self.lock().insert(pgid);
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let held = cgroup.map(|cg| {
            let cgroup = Arc::new(cg);
            let id = NEXT.fetch_add(1, Ordering::Relaxed);
            self.held().push(Held {
                id,
                owner,
                cgroup: Arc::clone(&cgroup),
            });
            (id, cgroup)
        });
        GroupGuard {
            pgid,
            armed: true,
            groups: self.clone(),
            held,
        }
    }
}

/// Kills everything in `cgroup` and removes it, waiting up to a second for the killed
/// processes to go; a cgroup a running command's guard still holds is removed by it.
fn reap(cgroup: Arc<Cgroup>, who: &str) {
    cgroup.kill();
    if let Ok(cgroup) = Arc::try_unwrap(cgroup)
        && let Err(cgroup) = cgroup.kill_and_remove(Duration::from_secs(1))
    {
        tracing::warn!("{who}: a command's cgroup {cgroup:?} could not be removed");
    }
}

/// SIGKILL process group `pgid`. Never for a pgid ≤ 1: `kill(0)` would hit homeostat's own
/// group and `kill(-1)` every process.
fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) has no memory-safety preconditions; a stale pgid gives ESRCH.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

/// Owns a running process group: kills it when dropped unless disarmed.
pub struct GroupGuard {
    pgid: i32,
    armed: bool,
    /// The set it is counted in.
    groups: Processes,
    /// Its cgroup (and its entry in the set), when one could be made.
    held: Option<(u64, Arc<Cgroup>)>,
}

impl GroupGuard {
    /// SIGKILL the whole group (the leader may already have exited; the rest may not),
    /// and everything in its cgroup (children that left the group with `setsid`).
    pub fn kill(&self) {
        kill_group(self.pgid);
        if let Some((_, cgroup)) = &self.held {
            cgroup.kill();
        }
    }

    /// The process group id (= the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// The group finished on its own; do not kill it.
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
        self.groups.lock().remove(&self.pgid);
        // An empty cgroup goes now; one the command left processes in (or whose killed
        // processes are not gone yet) stays held until its resource stops.
        if let Some((id, cgroup)) = self.held.take()
            && !cgroup.populated()
        {
            let mut held = self.groups.held();
            held.retain(|h| h.id != id);
            drop(held);
            if let Ok(cgroup) = Arc::try_unwrap(cgroup) {
                let _ = cgroup.remove_if_empty();
            }
        }
    }
}

/// A spawned process with its group guard. Dropping it kills the group.
pub struct Spawned {
    pub child: tokio::process::Child,
    pub guard: GroupGuard,
}

impl Processes {
    /// Resolve everything (program, cwd, user, group) and spawn `spec` in its own process group,
    /// with stdout and stderr piped and stdin piped when `stdin` is true.
    ///
    /// The command runs in a cgroup of its own (see `cgroup`) held for `owner`, the
    /// resource running it, so that what it leaves running stops with that resource.
    pub async fn spawn(
        &self,
        spec: &CommandSpec,
        stdin: bool,
        owner: Option<&Arc<str>>,
    ) -> Result<Spawned, ProcessError> {
        let what = spec.display();
        let path_var = spec
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or(DEFAULT_PATH);
        let cwd = spec.cwd.as_deref().unwrap_or("/");
        let program =
            resolve_program(&spec.argv[0], path_var, Path::new(cwd)).ok_or_else(|| {
                ProcessError::new(
                    ErrorCode::NotFound,
                    if spec.argv[0].contains('/') {
                        format!("cannot run `{what}`: `{}` does not exist", spec.argv[0])
                    } else {
                        format!(
                            "cannot run `{what}`: program `{}` not found in PATH ({path_var})",
                            spec.argv[0]
                        )
                    },
                )
            })?;
        if !Path::new(cwd).is_dir() {
            return Err(ProcessError::new(
                ErrorCode::NotFound,
                format!("cannot run `{what}`: working directory `{cwd}` does not exist"),
            ));
        }
        let (uid, gid) = ids(spec).await?;

        let mut cmd = tokio::process::Command::new(&program);
        cmd.arg0(&spec.argv[0])
            .args(&spec.argv[1..])
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .current_dir(cwd)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(gid) = gid {
            cmd.gid(gid);
        }
        if let Some(uid) = uid {
            cmd.uid(uid);
        }
        let cgroup = self.cgroups.get_or_init(Cgroups::detect).create();
        if let Some(procs) = cgroup.as_ref().map(|c| c.procs().clone()) {
            // SAFETY: `join` makes only async-signal-safe calls, on a path prepared before
            // the fork.
            unsafe {
                cmd.pre_exec(move || {
                    cgroup::join(&procs);
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().map_err(|e| {
            let code = match e.kind() {
                io::ErrorKind::NotFound => ErrorCode::NotFound,
                io::ErrorKind::PermissionDenied => ErrorCode::PermissionDenied,
                _ => ErrorCode::Other,
            };
            let hint = if code == ErrorCode::PermissionDenied && (uid.is_some() || gid.is_some()) {
                " (running as another user or group needs homeostat to run as root)"
            } else {
                ""
            };
            ProcessError::new(code, format!("cannot run `{what}`: {e}{hint}"))
        })?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        Ok(Spawned {
            child,
            guard: self.guard(pid, cgroup, owner.cloned()),
        })
    }

    /// Run `spec` to completion, capturing its output; kill its group after `timeout`.
    pub async fn run(
        &self,
        spec: &CommandSpec,
        stdin: Option<Vec<u8>>,
        timeout: Option<Duration>,
        owner: Option<&Arc<str>>,
    ) -> Result<Output, ProcessError> {
        let what = spec.display();
        let mut spawned = self.spawn(spec, stdin.is_some(), owner).await?;
        let mut child_stdin = spawned.child.stdin.take();
        let stdout = spawned.child.stdout.take().expect("stdout is piped");
        let stderr = spawned.child.stderr.take().expect("stderr is piped");
        let feed = async move {
            if let (Some(pipe), Some(data)) = (child_stdin.as_mut(), stdin) {
                // A process that does not read its stdin closes the pipe: not an error.
                let _ = pipe.write_all(&data).await;
            }
            drop(child_stdin);
        };
        let work = async {
            let ((out, out_cut), (err, err_cut), status, ()) =
                tokio::join!(capture(stdout), capture(stderr), spawned.child.wait(), feed);
            (out, err, out_cut || err_cut, status)
        };
        let (stdout, stderr, truncated, status) = match timeout {
            Some(t) => match tokio::time::timeout(t, work).await {
                Ok(r) => r,
                Err(_) => {
                    spawned.guard.kill();
                    // Reap the leader now that it is dead.
                    let _ = spawned.child.wait().await;
                    return Err(ProcessError::new(
                        ErrorCode::TimedOut,
                        format!(
                            "`{what}` did not finish within {}ms; its process group was killed",
                            t.as_millis()
                        ),
                    ));
                }
            },
            None => work.await,
        };
        let status = status.map_err(|e| {
            ProcessError::new(ErrorCode::Other, format!("cannot wait for `{what}`: {e}"))
        })?;
        // Finished on its own (and its pipes are closed): anything it deliberately left running
        // in the background keeps running, as in a shell.
        spawned.guard.disarm();
        let exit_code = status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(-1);
        Ok(Output {
            exit_code,
            stdout,
            stderr,
            truncated,
        })
    }
}

/// Read a pipe to its end, keeping at most [`OUTPUT_MAX`] bytes: all of it when it fits,
/// else its first [`OUTPUT_HEAD`] and last bytes around a marker line (see the module's
/// "Output"). Returns whether bytes were dropped.
async fn capture(mut pipe: impl AsyncRead + Unpin) -> (Vec<u8>, bool) {
    let mut head = Vec::new();
    let mut tail = TailBuffer::new(OUTPUT_MAX - OUTPUT_HEAD - MARKER_ROOM);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut data = &buf[..n];
                if head.len() < OUTPUT_HEAD {
                    let take = (OUTPUT_HEAD - head.len()).min(data.len());
                    head.extend_from_slice(&data[..take]);
                    data = &data[take..];
                }
                tail.push(data);
            }
        }
    }
    join_output(head, tail)
}

/// The bytes kept of a stream: `head` then `tail`, with a line saying how many bytes were
/// dropped between them when some were.
fn join_output(mut head: Vec<u8>, tail: TailBuffer) -> (Vec<u8>, bool) {
    let dropped = tail.dropped();
    if dropped > 0 {
        head.extend_from_slice(
            format!("\n[homeostat: {dropped} bytes of output dropped here]\n").as_bytes(),
        );
    }
    head.extend_from_slice(&tail.into_vec());
    (head, dropped > 0)
}

/// `program` itself when it contains `/` (relative to `cwd`, where the command runs), else
/// the first executable file named so in `path`.
fn resolve_program(program: &str, path: &str, cwd: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    if program.contains('/') {
        let p = cwd.join(program);
        return p.exists().then_some(p);
    }
    if program.is_empty() {
        return None;
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// uid and gid to switch to: `user`'s uid and primary gid, `group` overriding the gid.
async fn ids(spec: &CommandSpec) -> Result<(Option<u32>, Option<u32>), ProcessError> {
    let unknown = |e: IdError| {
        ProcessError::new(
            ErrorCode::UnknownId,
            format!("cannot run `{}`: {e}", spec.display()),
        )
    };
    let mut uid = None;
    let mut gid = None;
    if let Some(user) = &spec.user {
        let ids = ids::user(user).await.map_err(unknown)?;
        uid = Some(ids.uid);
        gid = Some(ids.gid);
    }
    if let Some(group) = &spec.group {
        gid = Some(ids::resolve(group, IdKind::Group).await.map_err(unknown)?);
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(argv: &[&str]) -> CommandSpec {
        CommandSpec {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_group_call_merges_lines_that_differ_in_their_last_argument_only() {
        let line = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut fp = Footprint {
            commands: vec![
                line(&["apt-get", "install", "-y", "a"]),
                line(&["apt-get", "install", "-y", "b=1.0"]),
                line(&["apt-get", "remove", "-y", "c"]),
                line(&["umount", "-l"]),
                line(&["umount", "/x"]),
            ],
            ..Default::default()
        };
        let merged = line(&["apt-get", "install", "-y", "a", "b=1.0"]);
        assert!(
            check_argv(&fp, &merged).is_err(),
            "merged outside a group call"
        );
        fp.merge_commands = true;
        assert!(check_argv(&fp, &merged).is_ok());
        assert!(check_argv(&fp, &line(&["apt-get", "install", "-y", "b=1.0", "a"])).is_ok());
        for refused in [
            // Another verb's argument, an undeclared one, a flag, a shorter prefix.
            line(&["apt-get", "install", "-y", "a", "c"]),
            line(&["apt-get", "install", "-y", "a", "d"]),
            line(&["umount", "/x", "-l"]),
            line(&["apt-get", "install", "a", "b=1.0"]),
        ] {
            assert!(check_argv(&fp, &refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn only_declared_command_lines_are_allowed() {
        let fp = Footprint {
            commands: vec![vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]],
            ..Default::default()
        };
        assert!(check_argv(&fp, &spec(&["/bin/sh", "-c", "echo hi"]).argv).is_ok());
        let e = check_argv(&fp, &spec(&["/bin/sh", "-c", "rm -rf /"]).argv).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotAllowed);
        assert!(e.message.contains("'rm -rf /'"), "{}", e.message);
        assert!(check_argv(&Footprint::default(), &spec(&["true"]).argv).is_err());
        assert!(check_argv(&fp, &[]).is_err());
    }

    #[tokio::test]
    async fn runs_with_an_empty_environment_and_captures_output() {
        let mut s = spec(&["sh", "-c", "echo out; echo err >&2; env | wc -l; exit 3"]);
        s.cwd = Some("/tmp".into());
        let out = Processes::new().run(&s, None, None, None).await.unwrap();
        assert_eq!(out.exit_code, 3);
        // sh itself sets PWD (and maybe SHLVL, _); nothing from homeostat's environment.
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let n: usize = text.lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(n <= 3, "{text}");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_tail_buffer_keeps_the_last_bytes() {
        let mut t = TailBuffer::new(4);
        t.push(b"ab");
        assert_eq!(t.clone().into_vec(), b"ab");
        t.push(b"cde");
        assert_eq!(t.clone().into_vec(), b"bcde");
        assert_eq!(t.dropped(), 1);
        t.push(b"f");
        t.push(b"gh");
        assert_eq!(t.clone().into_vec(), b"efgh");
        t.push(b"0123456789");
        assert_eq!(t.clone().into_vec(), b"6789");
        assert_eq!(t.dropped(), 18 - 4);
        // Byte by byte, around the ring many times.
        let mut t = TailBuffer::new(3);
        for b in b"abcdefghij" {
            t.push(&[*b]);
        }
        assert_eq!(t.into_vec(), b"hij");
    }

    #[tokio::test]
    async fn long_output_keeps_its_beginning_and_its_end() {
        // 10 MiB of numbered lines, then the line that matters.
        let script = "i=0; while [ $i -lt 163840 ]; do \
            echo \"line $i ..................................................\"; \
            i=$((i+1)); done; echo 'the last words' >&2; echo 'the very end'";
        let s = spec(&["sh", "-c", script]);
        let out = Processes::new().run(&s, None, None, None).await.unwrap();
        assert!(out.truncated);
        assert!(out.stdout.len() <= OUTPUT_MAX, "{}", out.stdout.len());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("line 0 ...."), "{}", &text[..100]);
        assert!(text.ends_with(
            "line 163839 ..................................................\nthe very end\n"
        ));
        assert!(
            text.contains("bytes of output dropped here]\n"),
            "the cut is marked"
        );
        // The stream that fits is whole.
        assert_eq!(out.stderr, b"the last words\n");
    }

    #[tokio::test]
    async fn stdin_is_fed() {
        let out = Processes::new()
            .run(&spec(&["cat"]), Some(b"abc".to_vec()), None, None)
            .await
            .unwrap();
        assert_eq!(out.stdout, b"abc");
    }

    #[tokio::test]
    async fn missing_program_user_and_cwd_are_named() {
        let e = Processes::new()
            .run(&spec(&["no-such-program-xyz"]), None, None, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert!(
            e.message
                .contains("`no-such-program-xyz` not found in PATH"),
            "{}",
            e.message
        );
        let e = Processes::new()
            .run(&spec(&["/nonexistent/prog"]), None, None, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        let mut s = spec(&["true"]);
        s.user = Some("no-such-user-xyz".into());
        let e = Processes::new()
            .run(&s, None, None, None)
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownId);
        assert!(
            e.message.contains("user `no-such-user-xyz` does not exist"),
            "{}",
            e.message
        );
        let mut s = spec(&["true"]);
        s.cwd = Some("/nonexistent-dir".into());
        assert_eq!(
            Processes::new()
                .run(&s, None, None, None)
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    }

    #[tokio::test]
    async fn a_relative_program_is_found_in_cwd() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hello.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi from $PWD\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut s = spec(&["./hello.sh"]);
        s.cwd = Some(dir.path().to_str().unwrap().to_string());
        let out = Processes::new().run(&s, None, None, None).await.unwrap();
        assert_eq!(out.exit_code, 0);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("hi from {}\n", dir.path().display())
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let e = Processes::new()
            .run(
                &spec(&["sh", "-c", &script]),
                None,
                Some(Duration::from_millis(300)),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TimedOut);
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild is dead (gone, or a zombie waiting for init to reap it).
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
        };
        for _ in 0..100 {
            if !alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("sleep {pid} survived the timeout");
    }
}

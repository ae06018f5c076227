//! Watch commands: a long-running command (an `exec` resource's `watchcmd`) whose every
//! line on stdout is an event for its resource.
//!
//! The command runs exactly like a `process.run` call (own process group, empty environment
//! unless given, user/group switch; see [`crate::sys::process`]) and must be one of
//! the resource's declared command lines. When it exits, its exit status and the last lines
//! of its stderr become the error that [`super::supervise`] logs before restarting it per
//! the resource's `retry` and `delay`. Stopping the watch (the task is aborted: the resource
//! left the graph or the engine stops) kills the command's whole process group.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};

use super::supervise::{Restarts, supervise};
use crate::sys::footprint::Footprint;
use crate::sys::process::{CommandSpec, Processes, check_argv};
use crate::sys::waker::Waker;

/// Bytes of a watch command's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Run `spec` (one of `footprint`'s command lines) in `processes` as the watch of
/// `restarts.who` until the task is aborted or the retries are spent.
pub async fn watch(
    spec: CommandSpec,
    footprint: Arc<Footprint>,
    processes: Processes,
    restarts: Restarts,
) {
    if let Err(e) = check_argv(&footprint, &spec.argv) {
        tracing::error!("{}: cannot start the watch command: {e}", restarts.who);
        return;
    }
    let w = restarts.wake.clone();
    let owner = footprint.owner.clone();
    supervise(restarts, move || {
        run_once(spec.clone(), processes.clone(), owner.clone(), w.clone())
    })
    .await
}

/// One run: wake for every stdout line; when the command ends, say how.
async fn run_once(
    spec: CommandSpec,
    processes: Processes,
    owner: Option<Arc<str>>,
    wake: Waker,
) -> Result<(), String> {
    let what = spec.display();
    let mut spawned = processes
        .spawn(&spec, false, owner.as_ref())
        .await
        .map_err(|e| format!("watch command failed: {e}"))?;
    let stdout = spawned.child.stdout.take().expect("stdout is piped");
    let stderr = spawned.child.stderr.take().expect("stderr is piped");
    let lines = async {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(_)) = lines.next_line().await {
            wake();
        }
    };
    let ((), tail, status) = tokio::join!(lines, tail(stderr), spawned.child.wait());
    let how = match status {
        Ok(s) => match s.code() {
            Some(c) => format!("exited with status {c}"),
            None => format!("was killed ({s})"),
        },
        Err(e) => format!("could not be waited for: {e}"),
    };
    let tail = String::from_utf8_lossy(&tail);
    let tail = tail.trim();
    if tail.is_empty() {
        Err(format!("watch command `{what}` {how}"))
    } else {
        Err(format!(
            "watch command `{what}` {how}; its stderr ended with: {tail}"
        ))
    }
}

/// The last [`STDERR_TAIL`] bytes of a pipe.
async fn tail(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    kept
}

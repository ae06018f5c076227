//! Watch commands: a long-running command (an `exec` resource's `watchcmd`) whose every
//! line on stdout is an event for its resource.
//!
//! The command runs exactly like a `process.run` call (own process group, empty environment
//! unless given, user/group switch; see [`crate::sys::process`]) and must be one of
//! the resource's declared command lines. When it exits, its exit status and the last lines
//! of its stderr become the error that [`super::supervise`] logs before restarting it per
//! the resource's `retry` and `delay`. Stopping the watch (the task is aborted: the resource
//! left the graph or the engine stops) kills the command's whole process group.
//!
//! Both pipes are read in chunks, never a line at a time: a command that prints a
//! gigabyte without a newline costs one buffer, not a gigabyte. Only the last 2 KiB of
//! stderr are kept (`STDERR_TAIL`), and their last lines reach the log escaped
//! ([`crate::sys::text`]), so a command cannot forge log lines or send escape sequences
//! to the operator's terminal.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::supervise::{Restarts, supervise};
use crate::sys::footprint::Footprint;
use crate::sys::process::{CommandSpec, Processes, TailBuffer, check_argv};
use crate::sys::text;
use crate::sys::waker::Waker;

/// Bytes of a watch command's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// Lines of that tail shown in the error message.
const TAIL_LINES: usize = 5;

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
    let lines = events(stdout, &wake);
    let ((), tail, status) = tokio::join!(lines, tail(stderr), spawned.child.wait());
    let how = match status {
        Ok(s) => match s.code() {
            Some(c) => format!("exited with status {c}"),
            None => format!("was killed ({s})"),
        },
        Err(e) => format!("could not be waited for: {e}"),
    };
    let tail = last_lines(&tail);
    if tail.is_empty() {
        Err(format!("watch command `{what}` {how}"))
    } else {
        Err(format!(
            "watch command `{what}` {how}; its stderr ended with: {tail}"
        ))
    }
}

/// Wake the resource for every chunk of `stdout` that ends at least one line.
async fn events(mut stdout: impl AsyncRead + Unpin, wake: &Waker) {
    let mut buf = [0u8; 8192];
    while let Ok(n) = stdout.read(&mut buf).await {
        if n == 0 {
            break;
        }
        // Lines read together are one event: the resource looks again once either way.
        if buf[..n].contains(&b'\n') {
            wake();
        }
    }
}

/// The last [`STDERR_TAIL`] bytes of a pipe.
async fn tail(mut pipe: impl AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = TailBuffer::new(STDERR_TAIL);
    let mut buf = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.push(&buf[..n]);
    }
    kept.into_vec()
}

/// The last [`TAIL_LINES`] non-empty lines of `tail`, escaped, joined by ` | `.
fn last_lines(tail: &[u8]) -> String {
    let text = String::from_utf8_lossy(tail);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| text::escape(l.trim_end()))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stderr_tail_is_escaped_lines() {
        let tail = b"early\n\nfailed: \x1b[31mred\x1b[0m\r\nINFO forged\n";
        assert_eq!(
            last_lines(tail),
            "early | failed: \\x1b[31mred\\x1b[0m | INFO forged"
        );
        let many: String = (0..10).map(|i| format!("l{i}\n")).collect();
        assert_eq!(last_lines(many.as_bytes()), "l5 | l6 | l7 | l8 | l9");
    }

    #[tokio::test]
    async fn a_line_without_end_costs_no_memory_and_lines_wake() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let wake: Waker = Arc::new(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        // 32 MiB without a newline, then one line.
        let mut data = vec![b'x'; 32 << 20];
        data.extend_from_slice(b"\nend\n");
        events(&data[..], &wake).await;
        assert!(woken.load(Ordering::SeqCst) >= 1);
        let quiet: &[u8] = b"no newline";
        let before = woken.load(Ordering::SeqCst);
        events(quiet, &wake).await;
        assert_eq!(woken.load(Ordering::SeqCst), before);
    }
}

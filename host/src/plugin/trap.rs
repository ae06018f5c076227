//! What a plugin printed and why it trapped, in words a user can act on: which limit it
//! hit, or where it panicked (from its captured stderr). Shared by every call and by the
//! long-running serve call.
//!
//! Both quote the plugin's own output, so both cut and escape it
//! ([`crate::sys::text`]): a trap's description is at most
//! [`MAX_ERROR_MESSAGE`] bytes, each printed line at most [`MAX_LOG_MESSAGE`], and neither
//! can break a log line or carry an escape sequence.

use std::time::Duration;

use crate::plugin::pool::{Instance, PoolShared};
use crate::plugin::types::{MAX_ERROR_MESSAGE, MAX_LOG_MESSAGE};
use crate::sys::text;

/// A trap message a user can act on: which limit, or where and why the plugin
/// panicked. The wasm backtrace goes to the debug log.
pub(crate) fn describe_trap(
    shared: &PoolShared,
    err: &wasmtime::Error,
    inst: &Instance,
    cpu: Duration,
    memory_bytes: usize,
) -> String {
    text::one_line(
        describe(shared, err, inst, cpu, memory_bytes),
        MAX_ERROR_MESSAGE,
    )
}

/// [`describe_trap`] before it is cut and escaped.
fn describe(
    shared: &PoolShared,
    err: &wasmtime::Error,
    inst: &Instance,
    cpu: Duration,
    memory_bytes: usize,
) -> String {
    tracing::debug!(target: "homeostat::plugin", "{} trapped: {err:?}", shared.label);
    let trap = err.downcast_ref::<wasmtime::Trap>();
    if let Some(wasmtime::Trap::Interrupt) = trap {
        return format!(
            "it used more than its CPU budget of {}ms in one call (an endless loop? see --plugin-cpu and the `cpu` metaparam)",
            cpu.as_millis()
        );
    }
    let out = inst.stderr.contents();
    let output = String::from_utf8_lossy(&out[inst.stderr_seen.min(out.len())..]).into_owned();
    if output.contains("memory allocation") || trap == Some(&wasmtime::Trap::AllocationTooLarge) {
        return format!(
            "it ran out of memory (capped at {} MiB per instance; see --plugin-memory and \
             the `memory` metaparam)",
            memory_bytes >> 20
        );
    }
    if let Some(panic) = panic_message(&output) {
        return format!("it panicked at {panic}");
    }
    let base = match trap {
        Some(t) => t.to_string(),
        None => err
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let tail: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    if tail.is_empty() {
        base
    } else {
        format!(
            "{base}; plugin output: {}",
            tail[tail.len().saturating_sub(5)..].join(" | ")
        )
    }
}

/// `FILE:LINE:COL: MESSAGE` from Rust's panic output
/// (`thread '<unnamed>' panicked at FILE:LINE:COL:` followed by the message lines).
fn panic_message(output: &str) -> Option<String> {
    let mut lines = output.lines().skip_while(|l| !l.contains(" panicked at "));
    let head = lines.next()?;
    let at = head.split(" panicked at ").nth(1)?.trim_end_matches(':');
    let message: Vec<&str> = lines.take_while(|l| !l.starts_with("note: ")).collect();
    Some(format!("{at}: {}", message.join(" ").trim()))
}

/// Forward what the guest printed since the last call to the log.
pub(crate) fn drain_stderr(shared: &PoolShared, inst: &mut Instance) {
    let out = inst.stderr.contents();
    if out.len() > inst.stderr_seen {
        let printed = String::from_utf8_lossy(&out[inst.stderr_seen..]);
        for line in printed.lines().filter(|l| !l.trim().is_empty()) {
            let line = text::one_line(line.to_string(), MAX_LOG_MESSAGE);
            tracing::warn!(target: "homeostat::plugin", "{} printed: {line}", shared.label);
        }
        inst.stderr_seen = out.len();
    }
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_output_becomes_one_line() {
        let out = "thread '<unnamed>' (1) panicked at src/lib.rs:46:28:\nboom: it broke\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(out).as_deref(),
            Some("src/lib.rs:46:28: boom: it broke")
        );
        assert_eq!(panic_message("just output\n"), None);
    }
}

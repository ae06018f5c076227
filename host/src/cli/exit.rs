//! Exit codes (docs/exit-codes.md). Two schemes for a run's result, the usage and
//! interruption codes shared:
//!
//! | code | plain (default) | `--detailed-exitcodes` (Puppet's) |
//! |---|---|---|
//! | 0 | ran, no resource failed (changes made or not) | nothing changed, nothing pending, nothing failed |
//! | 1 | resources failed or were blocked; or the graph, a plugin or the setup is invalid | the graph, a plugin or the setup is invalid (nothing ran) |
//! | 2 | `--noop`: changes pending, nothing failed | changes made, or pending under `--noop` |
//! | 4 | | resources failed or were blocked |
//! | 6 | | both: changes and failures |
//! | 64 | the command line is wrong (an unknown flag, a value out of range) | same |
//! | 130, 143 | stopped by SIGINT, SIGTERM (128 + the signal) before the run settled | same |
//!
//! A stop asked for while every resource had been checked since its last event (a daemon
//! stopped by its service manager, idle) is not an interruption: the run's result is
//! reported as usual.

use std::process::ExitCode;

/// The command line is wrong (BSD's `EX_USAGE`): never a code a run can end with.
pub const USAGE: u8 = 64;

/// How a run's result maps to an exit code (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// 0 ok, 1 failures, 2 changes pending under `--noop`.
    Plain,
    /// Puppet's `--detailed-exitcodes`: 2 changes, 4 failures, 6 both.
    Detailed,
}

/// What a run came to, as far as its exit code is concerned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Something changed (and the run was not a dry run).
    pub changed: bool,
    /// Something would change (`--noop`, or `meta: {noop: true}`).
    pub pending: bool,
    /// Some resource failed or was blocked (here or on a remote host).
    pub failed: bool,
    /// Stopped by this signal before it settled.
    pub interrupted: Option<i32>,
}

impl Scheme {
    /// The exit code of `r`.
    pub fn code(self, r: RunResult, noop: bool) -> u8 {
        if let Some(signal) = r.interrupted {
            return 128 + signal.clamp(1, 127) as u8;
        }
        match self {
            Scheme::Plain if r.failed => 1,
            Scheme::Plain if noop && r.pending => 2,
            Scheme::Plain => 0,
            Scheme::Detailed => {
                let changes = r.changed || r.pending;
                (if changes { 2 } else { 0 }) | (if r.failed { 4 } else { 0 })
            }
        }
    }

    /// [`Scheme::code`] as an [`ExitCode`].
    pub fn exit(self, r: RunResult, noop: bool) -> ExitCode {
        ExitCode::from(self.code(r, noop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_schemes() {
        let r = |changed, pending, failed| RunResult {
            changed,
            pending,
            failed,
            interrupted: None,
        };
        // (result, noop) -> (plain, detailed)
        for ((changed, pending, failed), noop, plain, detailed) in [
            ((false, false, false), false, 0, 0),
            ((true, false, false), false, 0, 2),
            ((false, false, true), false, 1, 4),
            ((true, false, true), false, 1, 6),
            ((false, true, false), true, 2, 2),
            ((false, true, true), true, 1, 6),
            ((false, false, false), true, 0, 0),
            // `meta: {noop: true}` in a real run: pending, not a failure.
            ((true, true, false), false, 0, 2),
        ] {
            let result = r(changed, pending, failed);
            assert_eq!(Scheme::Plain.code(result, noop), plain, "{result:?} {noop}");
            assert_eq!(
                Scheme::Detailed.code(result, noop),
                detailed,
                "{result:?} {noop}"
            );
        }
    }

    #[test]
    fn an_interrupted_run_never_looks_like_success() {
        for scheme in [Scheme::Plain, Scheme::Detailed] {
            let r = RunResult {
                interrupted: Some(libc::SIGTERM),
                ..RunResult::default()
            };
            assert_eq!(scheme.code(r, false), 143);
            let r = RunResult {
                interrupted: Some(libc::SIGINT),
                changed: true,
                ..RunResult::default()
            };
            assert_eq!(scheme.code(r, false), 130);
        }
    }
}

//! The bundled `exec` resource: runs a command when its guards say so, and publishes what
//! it printed for send/recv.
//!
//! It owns the meaning of the `exec` params (`schema/exec.json`, `docs/resources/exec.md`):
//! [`params`] turns them into ready-to-run command lines, which `validate` declares as the
//! resource's footprint; check-apply runs only those, through the host's `process`
//! interface (own process group, empty environment unless `env` is set, killed on
//! `timeout`). `creates` is checked through `fs` and watched; `watchcmd` is a host-driven
//! watch whose output lines are events.
//!
//! Check-apply: skip unless refreshed when `refreshonly`, when `creates` exists, when
//! `ifcmd` exits non-zero, when `nifcmd` exits zero; otherwise run `cmd` (a change), fail
//! when it exits non-zero, then run `donecmd`. Without guards, `cmd` runs on every
//! check-apply (start, watch event, refresh), like mgmt's exec. Sends `stdout`, `stderr` (text) and `exitcode` (integer).

pub mod params;

use homeostat_sdk::process::{self, Command, Output};
use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs, log};

use params::{Params, Spec, display};

/// The `exec` kind.
pub struct Exec;

/// Run `c`; a non-zero exit is returned, not an error.
fn run(c: &Command, timeout_ms: Option<u32>) -> Result<Output> {
    Ok(process::run(c, None, timeout_ms)?)
}

/// Bytes kept of the end of each stderr line quoted in an error message.
const TAIL_LINE: usize = 512;

/// The last lines of a process's stderr, for an error message: at most 3, each cut to
/// its last [`TAIL_LINE`] bytes (a long line's end is where its error is).
fn stderr_tail(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let last: Vec<String> = lines[lines.len().saturating_sub(3)..]
            .iter()
            .map(|l| line_end(l))
            .collect();
        format!("; stderr: {}", last.join(" | "))
    }
}

/// `line`, or `…` and its last [`TAIL_LINE`] bytes.
fn line_end(line: &str) -> String {
    if line.len() <= TAIL_LINE {
        return line.to_string();
    }
    let start = line.ceil_char_boundary(line.len() - TAIL_LINE);
    format!("…{}", &line[start..])
}

impl Resource for Exec {
    /// Nothing to release: the host skips `cleanup` calls.
    const CLEANUP: bool = false;
    const KIND: &'static str = "exec";
    const SCHEMA: &'static str = include_str!("../schema/exec.json");
    const SENDS: &'static [(&'static str, &'static str)] = &[
        ("stdout", "string"),
        ("stderr", "string"),
        ("exitcode", "integer"),
    ];
    type Params = Params;

    fn validate(id: &ResourceId, p: &Params) -> Result<Info> {
        Ok(Spec::from_params(&id.name, p)?.declare())
    }

    fn check_apply(id: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let spec = Spec::from_params(&id.name, p)?;
        let mut out = Outcome::new();
        if spec.refreshonly && !ctx.refresh {
            log::debug("refreshonly and not notified: not running");
            return Ok(out);
        }
        if let Some(path) = &spec.creates
            && fs::stat(path)?.is_some()
        {
            log::debug(&format!("`{path}` exists (creates): not running"));
            return Ok(out);
        }
        if let Some(c) = &spec.ifcmd {
            let o = run(c, spec.timeout_ms)?;
            if o.exit_code != 0 {
                log::debug(&format!(
                    "ifcmd `{}` exited with {}: not running",
                    display(c),
                    o.exit_code
                ));
                return Ok(out);
            }
        }
        if let Some(c) = &spec.nifcmd {
            let o = run(c, spec.timeout_ms)?;
            if o.exit_code == 0 {
                log::debug(&format!(
                    "nifcmd `{}` exited with 0: not running",
                    display(c)
                ));
                return Ok(out);
            }
        }
        let what = display(&spec.cmd);
        out.change(format!("ran `{what}`"));
        if !ctx.apply {
            return Ok(out);
        }
        let o = run(&spec.cmd, spec.timeout_ms)?;
        if o.exit_code != 0 {
            return Err(Error::new(format!(
                "`{what}` exited with status {}{}",
                o.exit_code,
                stderr_tail(&o)
            )));
        }
        if o.truncated {
            log::warn(&format!(
                "`{what}` printed more than 4 MiB on a stream: only its first 64 KiB and \
                 its last bytes were kept"
            ));
        }
        out.send("stdout", String::from_utf8_lossy(&o.stdout));
        out.send("stderr", String::from_utf8_lossy(&o.stderr));
        out.send("exitcode", o.exit_code);
        if let Some(c) = &spec.donecmd {
            let d = run(c, spec.timeout_ms)?;
            if d.exit_code != 0 {
                return Err(Error::new(format!(
                    "donecmd `{}` exited with status {}{}",
                    display(c),
                    d.exit_code,
                    stderr_tail(&d)
                )));
            }
            out.change(format!("ran donecmd `{}`", display(c)));
        }
        Ok(out)
    }
}

homeostat_sdk::export_resource!(Exec; capabilities = ["fs", "process"]);

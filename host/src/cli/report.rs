//! The run report of `run --report FILE` (docs/report.md, schema
//! `docs/report.schema.json`): every resource's outcome, timings, the graph's name and
//! digest, this binary's version and the plugins' digests, as JSON.
//!
//! A one-shot run writes it once, at the end. A long run also writes one each time the
//! graph settles after activity (a *period*: what happened since the last report), and
//! keeps the previous [`KEPT`] as `FILE.1` (the newest) to `FILE.5`. Each write is
//! atomic: a temporary file in the same directory, renamed over `FILE`, so a reader
//! never sees half a report. `--report -` writes the final report to standard output
//! (no periods).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::engine::{Outcome, ResourceOutcome, Settled, Stopped, Summary};
use crate::graph::ResId;
use crate::plugin::registry::Registry;

/// The report format's version: bumped when a field changes meaning or goes away (new
/// fields may appear without a bump).
pub const REPORT_VERSION: u32 = 1;

/// Earlier period reports kept beside the newest (`FILE.1` .. `FILE.5`).
pub const KEPT: usize = 5;

/// Where the report goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// Standard output, once at the end.
    Stdout,
    /// A file, replaced atomically, with periods rotated.
    File(PathBuf),
}

impl Target {
    /// `-` is standard output.
    pub fn parse(text: &str) -> Result<Target, String> {
        match text {
            "" => Err("expected a file name, or - for standard output".into()),
            "-" => Ok(Target::Stdout),
            path => Ok(Target::File(PathBuf::from(path))),
        }
    }
}

/// What a report says besides the summary: fixed for the run.
pub struct Context {
    pub host: String,
    pub graph_name: String,
    pub graph_path: PathBuf,
    pub graph_sha256: String,
    pub noop: bool,
    pub plugins: Vec<PluginRecord>,
    pub started: SystemTime,
}

#[derive(Serialize, Clone)]
pub struct PluginRecord {
    name: String,
    version: String,
    /// `bundled`, or the file it was loaded from.
    origin: String,
    sha256: String,
    kinds: Vec<String>,
}

impl Context {
    /// The plugins of `registry`, by name.
    pub fn plugins_of(registry: &Registry) -> Vec<PluginRecord> {
        let mut plugins: Vec<PluginRecord> = registry
            .plugins()
            .iter()
            .map(|p| PluginRecord {
                name: p.manifest.name.clone(),
                version: p.manifest.version.clone(),
                origin: p.origin.clone(),
                sha256: p.sha256.clone(),
                kinds: p.manifest.kinds.keys().cloned().collect(),
            })
            .collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        plugins
    }
}

#[derive(Serialize)]
struct Report<'a> {
    report_version: u32,
    homeostat: Version,
    host: &'a str,
    graph: Graph<'a>,
    run: Run,
    counts: Counts,
    /// The process's exit code; absent in a period's report (the run goes on).
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<u8>,
    plugins: &'a [PluginRecord],
    resources: Vec<Resource<'a>>,
}

#[derive(Serialize)]
struct Version {
    version: &'static str,
    commit: &'static str,
    wit: &'static [&'static str],
}

#[derive(Serialize)]
struct Graph<'a> {
    name: &'a str,
    path: String,
    /// Of the graph file as read at start.
    sha256: &'a str,
    /// Graph swaps applied while running (a swapped-in graph has its own digest).
    swaps: usize,
}

#[derive(Serialize)]
struct Run {
    noop: bool,
    /// `converged`, `settled_with_failures`, `stopped`, `interrupted`, `cancelled` or
    /// `period`.
    ended: &'static str,
    /// Seconds since the Unix epoch.
    started_at: f64,
    /// Seconds from the start of the run (of the period, for a period) to this report.
    elapsed_secs: f64,
    /// The period's number (1, 2, ...); absent in the final report.
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<usize>,
}

#[derive(Serialize, Default)]
struct Counts {
    resources: usize,
    unchanged: usize,
    changed: usize,
    would_change: usize,
    failed: usize,
    blocked: usize,
    skipped: usize,
    unfinished: usize,
    not_targeted: usize,
    /// Check-applies that changed something.
    changes: usize,
    /// Check-applies that would have.
    changes_pending: usize,
}

#[derive(Serialize)]
struct Resource<'a> {
    id: String,
    kind: &'a str,
    name: &'a str,
    outcome: Outcome,
    changes: usize,
    would_change: usize,
    /// One line per change made (or pending).
    what: &'a [String],
    /// Change lines left out of `what`.
    more: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_by: Option<String>,
    checks: usize,
    busy_secs: f64,
}

/// How the run ended, as the report says it.
fn ended(s: &Summary, interrupted: bool) -> &'static str {
    match s.stopped {
        Stopped::Period => "period",
        Stopped::Cancelled => "cancelled",
        _ if interrupted => "interrupted",
        Stopped::Shutdown => "stopped",
        Stopped::Settled(Settled::Converged) => "converged",
        Stopped::Settled(Settled::WithFailures) => "settled_with_failures",
    }
}

/// The report of `s` as JSON text.
pub fn render(
    ctx: &Context,
    s: &Summary,
    exit_code: Option<u8>,
    period: Option<usize>,
    since: Duration,
) -> String {
    let mut counts = Counts {
        resources: s.resources(),
        changes: s.changes,
        changes_pending: s.would_change,
        ..Counts::default()
    };
    for r in &s.each {
        *match r.outcome {
            Outcome::Unchanged => &mut counts.unchanged,
            Outcome::Changed => &mut counts.changed,
            Outcome::WouldChange => &mut counts.would_change,
            Outcome::Failed => &mut counts.failed,
            Outcome::Blocked => &mut counts.blocked,
            Outcome::Skipped => &mut counts.skipped,
            Outcome::Unfinished => &mut counts.unfinished,
            Outcome::NotTargeted => &mut counts.not_targeted,
        } += 1;
    }
    let report = Report {
        report_version: REPORT_VERSION,
        homeostat: Version {
            version: env!("CARGO_PKG_VERSION"),
            commit: super::COMMIT,
            wit: crate::plugin::manifest::SUPPORTED_APIS,
        },
        host: &ctx.host,
        graph: Graph {
            name: &ctx.graph_name,
            path: ctx.graph_path.display().to_string(),
            sha256: &ctx.graph_sha256,
            swaps: s.swaps,
        },
        run: Run {
            noop: ctx.noop,
            ended: ended(s, exit_code.is_some_and(|c| c >= 128)),
            started_at: ctx
                .started
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64(),
            elapsed_secs: since.as_secs_f64(),
            period,
        },
        counts,
        exit_code,
        plugins: &ctx.plugins,
        resources: s
            .each
            .iter()
            .map(|r| Resource {
                id: r.id.to_string(),
                kind: &r.id.kind,
                name: &r.id.name,
                outcome: r.outcome,
                changes: r.changes,
                would_change: r.would_change,
                what: &r.what,
                more: r.more,
                error: r.error.as_deref(),
                blocked_by: r.blocked_by.as_ref().map(ResId::to_string),
                checks: r.checks,
                busy_secs: r.busy.as_secs_f64(),
            })
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).expect("a report serializes");
    text.push('\n');
    text
}

/// Write `text` to `target`: atomically for a file, rotating the earlier ones first
/// when `rotate`.
pub fn write(target: &Target, text: &str, rotate: bool) -> std::io::Result<()> {
    match target {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()
        }
        Target::File(path) => crate::sys::fs::cache_file::write_whole(
            path,
            ".homeostat-report.",
            text.as_bytes(),
            || {
                if rotate {
                    rotate_out(path);
                }
            },
        ),
    }
}

/// `FILE.4` → `FILE.5`, ..., `FILE` → `FILE.1` (the oldest falls off).
fn rotate_out(path: &Path) {
    let numbered = |n: usize| {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{n}"));
        PathBuf::from(p)
    };
    for n in (1..KEPT).rev() {
        let _ = std::fs::rename(numbered(n), numbered(n + 1));
    }
    let _ = std::fs::rename(path, numbered(1));
}

/// Turns the cumulative snapshots of a long run into periods: what each resource did
/// since the previous snapshot.
#[derive(Default)]
pub struct Periods {
    count: usize,
    last: HashMap<ResId, ResourceOutcome>,
    last_changes: (usize, usize),
    last_elapsed: Duration,
}

impl Periods {
    /// The period ending with the cumulative snapshot `s`: its number, its summary (the
    /// counts since the last one; outcomes as they are now, `unchanged` for a resource
    /// that did nothing in the period) and its length.
    pub fn next(&mut self, s: &Summary) -> (usize, Summary, Duration) {
        self.count += 1;
        let mut period = s.clone();
        for r in &mut period.each {
            if let Some(before) = self.last.get(&r.id) {
                r.changes -= before.changes.min(r.changes);
                r.would_change -= before.would_change.min(r.would_change);
                r.checks -= before.checks.min(r.checks);
                r.busy = r.busy.saturating_sub(before.busy);
                let seen = before.what.len().min(r.what.len());
                r.what.drain(..seen);
                r.more -= before.more.min(r.more);
                if r.outcome == Outcome::Changed && r.changes == 0 {
                    r.outcome = Outcome::Unchanged;
                }
            }
        }
        period.changes -= self.last_changes.0.min(s.changes);
        period.would_change -= self.last_changes.1.min(s.would_change);
        let length = s.elapsed.saturating_sub(self.last_elapsed);
        self.last = s.each.iter().map(|r| (r.id.clone(), r.clone())).collect();
        self.last_changes = (s.changes, s.would_change);
        self.last_elapsed = s.elapsed;
        (self.count, period, length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(kind: &str, name: &str, outcome: Outcome, changes: usize) -> ResourceOutcome {
        ResourceOutcome {
            id: ResId::new(kind, name),
            outcome,
            changes,
            would_change: 0,
            what: (0..changes).map(|i| format!("change {i}")).collect(),
            more: 0,
            error: (outcome == Outcome::Failed).then(|| "boom".into()),
            blocked_by: (outcome == Outcome::Blocked).then(|| ResId::new("exec", "a")),
            checks: changes.max(1),
            busy: Duration::from_millis(3),
        }
    }

    fn summary(each: Vec<ResourceOutcome>, stopped: Stopped) -> Summary {
        Summary {
            stopped,
            idle_at_stop: true,
            changes: each.iter().map(|r| r.changes).sum(),
            would_change: 0,
            elapsed: Duration::from_secs(2),
            each,
            swaps: 0,
        }
    }

    fn ctx() -> Context {
        Context {
            host: "h".into(),
            graph_name: "g".into(),
            graph_path: "/g.yaml".into(),
            graph_sha256: "ab".into(),
            noop: false,
            plugins: Vec::new(),
            started: UNIX_EPOCH + Duration::from_secs(10),
        }
    }

    #[test]
    fn a_report_counts_every_outcome_and_names_the_blocker() {
        let s = summary(
            vec![
                resource("exec", "a", Outcome::Failed, 0),
                resource("file", "b", Outcome::Blocked, 0),
                resource("file", "c", Outcome::Changed, 2),
                resource("file", "d", Outcome::Unchanged, 0),
            ],
            Stopped::Settled(Settled::WithFailures),
        );
        let text = render(&ctx(), &s, Some(6), None, s.elapsed);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["report_version"], 1);
        assert_eq!(v["exit_code"], 6);
        assert_eq!(v["run"]["ended"], "settled_with_failures");
        assert_eq!(v["run"]["started_at"], 10.0);
        assert_eq!(v["counts"]["failed"], 1);
        assert_eq!(v["counts"]["blocked"], 1);
        assert_eq!(v["counts"]["changed"], 1);
        assert_eq!(v["counts"]["unchanged"], 1);
        assert_eq!(v["counts"]["changes"], 2);
        let r = &v["resources"];
        assert_eq!(r[0]["error"], "boom");
        assert_eq!(r[1]["blocked_by"], "exec[a]");
        assert_eq!(r[2]["what"], serde_json::json!(["change 0", "change 1"]));
        assert!(r[3].get("error").is_none());
    }

    #[test]
    fn periods_count_what_happened_since_the_last_one() {
        let mut periods = Periods::default();
        let first = summary(
            vec![resource("file", "c", Outcome::Changed, 1)],
            Stopped::Period,
        );
        let (n, p, _) = periods.next(&first);
        assert_eq!((n, p.changes, p.each[0].outcome), (1, 1, Outcome::Changed));
        // Nothing happened to it since: unchanged in the second period.
        let (n, p, _) = periods.next(&first);
        assert_eq!(
            (n, p.changes, p.each[0].outcome),
            (2, 0, Outcome::Unchanged)
        );
        assert!(p.each[0].what.is_empty());
        // It drifted and was repaired again.
        let third = summary(
            vec![resource("file", "c", Outcome::Changed, 2)],
            Stopped::Period,
        );
        let (_, p, _) = periods.next(&third);
        assert_eq!(p.each[0].changes, 1);
        assert_eq!(p.each[0].what, vec!["change 1".to_string()]);
    }

    #[test]
    fn a_file_report_is_replaced_whole_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let target = Target::File(path.clone());
        for i in 0..(KEPT + 3) {
            write(&target, &format!("{i}\n"), true).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&path), format!("{}\n", KEPT + 2));
        assert_eq!(
            read(&dir.path().join("r.json.1")),
            format!("{}\n", KEPT + 1)
        );
        assert!(dir.path().join(format!("r.json.{KEPT}")).exists());
        assert!(!dir.path().join(format!("r.json.{}", KEPT + 1)).exists());
        // Nothing else (no temporary file) is left beside it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), KEPT + 1);
        assert!(Target::parse("").is_err());
        assert!(matches!(Target::parse("-"), Ok(Target::Stdout)));
    }
}

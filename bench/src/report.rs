//! The printed result: one markdown table of homeostat against the floor and targets,
//! a machine line, a table of details, and notes for anything that failed.

use std::fmt::Write as _;
use std::time::Duration;

use crate::drift::percentile;
use crate::{FloorStats, RunStats, SizeResult};

/// What the numbers were measured on.
pub struct Machine {
    pub nproc: usize,
    pub cpu: Option<String>,
    pub mem_gib: Option<f64>,
    pub kernel: String,
    pub fs: String,
    /// The work directory, when --keep keeps it.
    pub kept: Option<String>,
    pub revision: Option<String>,
    pub runs: usize,
    pub samples: usize,
    pub bench_rss_mib: Option<f64>,
    pub warmup: Duration,
    /// 1-minute load average before and after.
    pub load: (Option<f64>, Option<f64>),
}

/// Cold converge against the durable floor, at [`COLD_TARGET_AT`] files.
const COLD_TARGET: f64 = 2.0;
const COLD_TARGET_AT: usize = 10_000;
const IDEMPOTENT_TARGET: f64 = 3.0;
const DRIFT_P99_TARGET: Duration = Duration::from_millis(5);
const RSS_TARGET_MIB: f64 = 256.0;
const RSS_TARGET_AT: usize = 10_000;

/// A duration in the unit that reads best.
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

fn load(l: Option<f64>) -> String {
    l.map(|l| format!("{l:.2}")).unwrap_or_else(|| "?".into())
}

fn mib(m: f64) -> String {
    format!("{m:.1} MiB")
}

fn ratio(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.0}×")
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**not met**" }
}

/// `1 000`, `10 000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// One row of the main table.
struct Row {
    n: usize,
    what: &'static str,
    homeostat: String,
    floor: String,
    durable: String,
    ratio_floor: String,
    ratio_durable: String,
    target: String,
    met: String,
}

impl Row {
    fn new(n: usize, what: &'static str) -> Row {
        let dash = || "-".to_string();
        Row {
            n,
            what,
            homeostat: dash(),
            floor: dash(),
            durable: dash(),
            ratio_floor: dash(),
            ratio_durable: dash(),
            target: dash(),
            met: dash(),
        }
    }
}

pub fn render(machine: &Machine, results: &[SizeResult]) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for r in results {
        size_rows(r, &mut rows, &mut notes);
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "| N | measurement | homeostat | floor | durable floor | ÷ floor | ÷ durable floor | target | |\n\
         |--:|---|--:|--:|--:|--:|--:|---|---|"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(row.n),
            row.what,
            row.homeostat,
            row.floor,
            row.durable,
            row.ratio_floor,
            row.ratio_durable,
            row.target,
            row.met
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Machine: {} CPU{}{}{}, {}, load average {} before and {} after; work directory on {}; homeostat {}; median of {} run{} (cold, idempotent, \
         floors), {} drift samples; plugin cache warm (warm-up compile: {}).",
        machine.nproc,
        if machine.nproc == 1 { "" } else { "s" },
        machine
            .cpu
            .as_deref()
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        machine
            .mem_gib
            .map(|g| format!(", {g:.1} GiB RAM"))
            .unwrap_or_default(),
        machine.kernel,
        load(machine.load.0),
        load(machine.load.1),
        machine.fs,
        machine
            .revision
            .as_deref()
            .map(|r| format!("git {r}"))
            .unwrap_or_else(|| "(git revision unknown)".into()),
        machine.runs,
        if machine.runs == 1 { "" } else { "s" },
        machine.samples,
        ms(machine.warmup),
    );

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| N | run | to converged | to exit | homeostat's own summary | CPU (user+sys) | floor in-process | floor wall |\n\
         |--:|---|--:|--:|---|--:|--:|--:|"
    );
    for r in results {
        detail_rows(r, &mut out);
    }

    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "RSS is `ru_maxrss`; it includes what the kernel carries over from the pre-exec child, at most this \
         program's own peak of {}.",
        machine
            .bench_rss_mib
            .map(mib)
            .unwrap_or_else(|| "(unknown)".into())
    );
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    if let Some(kept) = &machine.kept {
        let _ = writeln!(out, "\n(graphs and logs kept in {kept})");
    }
    out
}

fn size_rows(r: &SizeResult, rows: &mut Vec<Row>, notes: &mut Vec<String>) {
    let n = r.n;
    let mut fail = |what: &str, e: &String| {
        notes.push(format!("N = {}, {what}: {e}", thousands(n)));
        "failed".to_string()
    };

    // Cold converge.
    let mut row = Row::new(n, "cold converge");
    // The target compares homeostat, which writes durably, with the durable floor (the
    // same files written with the fewest flushes possible), at 10 000 files; smaller
    // sizes report the time to the first write instead (below). The plain floor is
    // printed for context, and the fsync-per-file floor in the details.
    if n == COLD_TARGET_AT {
        row.target = format!("≤ {COLD_TARGET}× durable floor");
    }
    let floor = r.floor_create.as_ref().map_err(|e| fail("cold floor", e));
    let durable = r
        .floor_durable
        .as_ref()
        .map_err(|e| fail("durable floor", e));
    let cold = r.cold.as_ref().map_err(|e| fail("cold converge", e));
    fill_time(&mut row, &cold, &floor, Some(&durable));
    // The details' floors are context, but a failure of theirs is still reported.
    for (what, context) in [
        ("fsync-per-file floor", &r.floor_each),
        ("homeostat's syscalls alone", &r.floor_pipelined),
    ] {
        if let Err(e) = context {
            fail(what, e);
        }
    }
    if let (Ok(c), Ok(d), true) = (&cold, &durable, n == COLD_TARGET_AT) {
        row.met = met(c.converged.as_secs_f64() <= COLD_TARGET * d.wall.as_secs_f64()).into();
    }
    rows.push(row);
    let mut first = Row::new(n, "cold: first write");
    first.homeostat = match &cold {
        Ok(c) => c.first_change.map_or_else(|| "-".into(), ms),
        Err(_) => "failed".into(),
    };
    first.target = "reported".into();
    rows.push(first);

    // Idempotent pass.
    let mut row = Row::new(n, "idempotent pass");
    row.target = format!("≤ {IDEMPOTENT_TARGET}× floor");
    let check = r
        .floor_check
        .as_ref()
        .map_err(|e| fail("idempotent floor", e));
    let idem = r
        .idempotent
        .as_ref()
        .map_err(|e| fail("idempotent pass", e));
    fill_time(&mut row, &idem, &check, None);
    if let (Ok(i), Ok(f)) = (&idem, &check) {
        row.met = met(i.converged.as_secs_f64() <= IDEMPOTENT_TARGET * f.wall.as_secs_f64()).into();
    }
    rows.push(row);

    // Drift.
    let mut p50 = Row::new(n, "drift repair p50");
    let mut p99 = Row::new(n, "drift repair p99");
    p99.target = format!("< {} ms", DRIFT_P99_TARGET.as_millis());
    let drift = r.drift.as_ref().map_err(|e| fail("drift repair", e));
    match &drift {
        Ok(d) => {
            if let Some((file, sample)) = &d.unrepaired {
                notes.push(format!(
                    "N = {}, drift repair: sample {sample}: {file} was not repaired within 10 s; stopped sampling \
                     after {} repairs.",
                    thousands(n),
                    d.samples.len()
                ));
            }
            if !d.quiet {
                notes.push(format!(
                    "N = {}, long run: homeostat never went quiet (it kept using more than 20 ms of CPU per 500 ms \
                     with nothing to do) within 60 s; drift was measured anyway.",
                    thousands(n)
                ));
            }
            if d.samples.is_empty() {
                p50.homeostat = "no repair".into();
                p99.homeostat = "no repair".into();
                p99.met = met(false).into();
            } else {
                let mut sorted = d.samples.clone();
                sorted.sort();
                let p99v = percentile(&sorted, 99.0);
                p50.homeostat = ms(percentile(&sorted, 50.0));
                p99.homeostat = ms(p99v);
                p99.met = met(d.unrepaired.is_none() && p99v < DRIFT_P99_TARGET).into();
            }
        }
        Err(e) => {
            p50.homeostat = e.clone();
            p99.homeostat = e.clone();
        }
    }
    rows.push(p50);
    rows.push(p99);

    // RSS.
    let rss_target = n == RSS_TARGET_AT;
    let rss_row = |what, homeostat: Option<Result<f64, ()>>, floor: Option<Result<f64, ()>>| {
        let mut row = Row::new(n, what);
        match homeostat {
            Some(Ok(h)) => {
                row.homeostat = mib(h);
                if let Some(Ok(f)) = floor {
                    row.ratio_floor = ratio(h / f);
                }
                if rss_target {
                    row.met = met(h < RSS_TARGET_MIB).into();
                }
            }
            Some(Err(())) => row.homeostat = "failed".into(),
            None => {}
        }
        match floor {
            Some(Ok(f)) => row.floor = mib(f),
            Some(Err(())) => row.floor = "failed".into(),
            None => {}
        }
        if rss_target {
            row.target = format!("< {RSS_TARGET_MIB:.0} MiB");
        }
        row
    };
    let rss = |s: &Result<&RunStats, String>| s.as_ref().map(|s| s.maxrss_mib).map_err(|_| ());
    let floor_rss =
        |s: &Result<&FloorStats, String>| s.as_ref().map(|s| s.maxrss_mib).map_err(|_| ());
    rows.push(rss_row(
        "peak RSS, cold",
        Some(rss(&cold)),
        Some(floor_rss(&floor)),
    ));
    rows.push(rss_row(
        "peak RSS, idempotent",
        Some(rss(&idem)),
        Some(floor_rss(&check)),
    ));
    rows.push(rss_row(
        "peak RSS, long run",
        Some(drift.as_ref().map(|d| d.maxrss_mib).map_err(|_| ())),
        None,
    ));
}

/// Fill the time columns of a row from homeostat's run and its floor(s).
fn fill_time(
    row: &mut Row,
    homeostat: &Result<&RunStats, String>,
    floor: &Result<&FloorStats, String>,
    durable: Option<&Result<&FloorStats, String>>,
) {
    if let Ok(f) = floor {
        row.floor = ms(f.wall);
    } else {
        row.floor = "failed".into();
    }
    if let Some(d) = durable {
        row.durable = d
            .as_ref()
            .map(|d| ms(d.wall))
            .unwrap_or_else(|_| "failed".into());
    }
    let Ok(h) = homeostat else {
        row.homeostat = "failed".into();
        return;
    };
    row.homeostat = ms(h.converged);
    if let Ok(f) = floor {
        row.ratio_floor = ratio(h.converged.as_secs_f64() / f.wall.as_secs_f64());
    }
    if let Some(Ok(d)) = durable {
        row.ratio_durable = ratio(h.converged.as_secs_f64() / d.wall.as_secs_f64());
    }
}

fn detail_rows(r: &SizeResult, out: &mut String) {
    let n = thousands(r.n);
    let floor_cols = |f: &Result<FloorStats, String>| match f {
        Ok(f) => format!("{} | {}", ms(f.inner), ms(f.wall)),
        Err(_) => "failed | failed".into(),
    };
    let run_cols = |s: &Result<RunStats, String>| match s {
        Ok(s) => {
            let summary = s
                .summary
                .as_ref()
                .map(|x| {
                    format!(
                        "{} after {:.2} s, {} changes, {} failed",
                        x.how,
                        x.engine.as_secs_f64(),
                        x.changes,
                        x.failed
                    )
                })
                .unwrap_or_else(|| "(no summary line)".into());
            format!(
                "{} | {} | {summary} | {}",
                ms(s.converged),
                ms(s.exit),
                ms(s.cpu)
            )
        }
        Err(_) => "failed | | | ".into(),
    };
    let _ = writeln!(
        out,
        "| {n} | cold converge | {} | {} |",
        run_cols(&r.cold),
        floor_cols(&r.floor_create)
    );
    let _ = writeln!(
        out,
        "| {n} | durable floor (one `syncfs`, renames, one directory `fsync`) | | | | | {} |",
        floor_cols(&r.floor_durable)
    );
    let _ = writeln!(
        out,
        "| {n} | fsync-per-file floor | | | | | {} |",
        floor_cols(&r.floor_each)
    );
    // How much of the cold run is the design's syscalls, and how much is around them.
    let share = match (&r.cold, &r.floor_pipelined) {
        (Ok(c), Ok(p)) => format!(
            "the cold run is {} this",
            ratio(c.converged.as_secs_f64() / p.wall.as_secs_f64())
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "| {n} | homeostat's own syscalls alone (`O_TMPFILE` writers, commit thread, inotify) | | | {share} | | {} |",
        floor_cols(&r.floor_pipelined)
    );
    let _ = writeln!(
        out,
        "| {n} | idempotent pass | {} | {} |",
        run_cols(&r.idempotent),
        floor_cols(&r.floor_check)
    );
    if let Ok(d) = &r.drift {
        let max = d
            .samples
            .iter()
            .max()
            .map(|m| ms(*m))
            .unwrap_or_else(|| "-".into());
        let cpu = d.cpu_per_repair.map(ms).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {n} | long run | settled {} after start | | {} drift repairs, max {max}; SIGTERM → {} after {} | \
             {cpu} per repair | | |",
            ms(d.settle),
            d.samples.len(),
            d.exit,
            ms(d.exit_wall_after_term),
        );
    }
}

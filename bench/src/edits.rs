//! `homeostat-bench edits` (`cargo xtask bench edits`): N `line` resources editing one
//! file, beside N `file` resources on N files (issue 24's benchmark).
//!
//! 1. **Cold converge**: `homeostat run G --converged-timeout 0` from spawn to exit, with
//!    nothing there yet: for lines, one `file` resource (attributes only) and N `line`
//!    resources on its file; for files, N `file` resources with their content, as in the
//!    main benchmark. The number of times the edited file was put in place (renames and
//!    links onto its name, seen by inotify) is printed: the lines' edits are written
//!    together, so it stays far below N.
//! 2. **Drift repair**: a long `homeostat run G`, settled; `--samples` times one managed
//!    line is deleted from the file (or one file overwritten) with a plain truncate and
//!    write, timed until it is back (waiting on inotify, never spinning).
//!
//! `--runs R` (default 3) repeats the cold runs (the median is printed), each in a fresh
//! directory; `--lines N` (default 100), `--samples K` (default 100), `--dir DIR` (a real
//! disk: default the current directory). The numbers are printed, nothing is asserted.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::drift::{DirWatch, percentile};
use crate::{proc, workload};

/// How long one run may take before the bench gives up on it.
const LIMIT: Duration = Duration::from_secs(120);

struct Options {
    homeostat: PathBuf,
    lines: usize,
    runs: usize,
    samples: usize,
    dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        homeostat: crate::default_homeostat(),
        lines: 100,
        runs: 3,
        samples: 100,
        dir: PathBuf::from("."),
    };
    crate::each_flag(
        args,
        "homeostat-bench edits [--lines N] [--runs R] [--samples K] [--dir DIR] [--homeostat PATH]",
        |flag, value| {
            match flag {
                "--homeostat" => o.homeostat = PathBuf::from(value),
                "--lines" => o.lines = crate::positive(flag, &value)?,
                "--runs" => o.runs = crate::positive(flag, &value)?,
                "--samples" => o.samples = crate::positive(flag, &value)?,
                "--dir" => o.dir = PathBuf::from(value),
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(o)
}

/// The line resource `i` puts in the file.
fn line(i: usize) -> String {
    format!("setting{i:05} = value of setting {i}")
}

/// One `file` resource (attributes only) and `n` `line` resources on `file`.
fn lines_graph(file: &Path, n: usize) -> String {
    let mut g = format!(
        "graph: bench-lines\nresources:\n  file:\n  - name: conf\n    path: {}\n    mode: \"0644\"\n  line:\n",
        file.display()
    );
    for i in 0..n {
        g.push_str(&format!(
            "  - name: l{i:05}\n    path: {}\n    line: \"{}\"\n",
            file.display(),
            line(i)
        ));
    }
    g
}

fn homeostat(o: &Options, graph: &Path, cache: &Path, log: &Path) -> Result<Command, String> {
    let out = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let mut c = Command::new(&o.homeostat);
    c.arg("run")
        .arg(graph)
        .arg("--cache-dir")
        .arg(cache)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(out);
    Ok(c)
}

/// A cold `--converged-timeout 0` run of `graph` (which must succeed): spawn to exit.
fn cold(o: &Options, graph: &Path, cache: &Path, log: &Path) -> Result<Duration, String> {
    let mut c = homeostat(o, graph, cache, log)?;
    c.args(["--converged-timeout", "0"]);
    let done = proc::spawn(&mut c)
        .map_err(|e| format!("cannot run {}: {e}", o.homeostat.display()))?
        .wait(LIMIT)?;
    if !done.success() {
        return Err(format!(
            "homeostat ended with {}; see {}",
            done.describe(),
            log.display()
        ));
    }
    Ok(done.wall)
}

/// Renames and links onto `name` queued on a watch of its directory.
fn writes_of(fd: &DirWatch, name: &str) -> usize {
    fd.names().iter().filter(|n| n.as_str() == name).count()
}

/// Wait (on `watch`, re-checking after each event or every 100 ms) until `done`.
fn until(
    watch: &mut DirWatch,
    deadline: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Some(started.elapsed());
        }
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return None;
        }
        let _ = watch.wait(left.min(Duration::from_millis(100)));
        let _ = watch.drain();
    }
}

/// What a drift run breaks and checks, in the directory `dir` it watches.
struct Drift<'a> {
    dir: &'a Path,
    /// Everything is in place (the run has settled).
    ready: &'a dyn Fn() -> bool,
    /// Break something for sample `s`; returns what to wait for.
    drift: &'a dyn Fn(usize) -> usize,
    /// Whether that is back.
    repaired: &'a dyn Fn(usize) -> bool,
}

/// Drift repair latencies of a long run of `graph` (see [`Drift`]).
fn drift_run(
    o: &Options,
    graph: &Path,
    cache: &Path,
    log: &Path,
    d: &Drift<'_>,
) -> Result<Vec<Duration>, String> {
    let Drift {
        dir,
        ready,
        drift,
        repaired,
    } = d;
    let mut c = homeostat(o, graph, cache, log)?;
    let running = proc::spawn(&mut c).map_err(|e| format!("cannot run homeostat: {e}"))?;
    let result = (|| {
        let mut watch = DirWatch::new(dir).map_err(|e| format!("inotify: {e}"))?;
        until(&mut watch, LIMIT, ready).ok_or("never converged")?;
        std::thread::sleep(Duration::from_secs(1));
        let mut samples = Vec::with_capacity(o.samples);
        for s in 0..o.samples {
            watch.drain().map_err(|e| format!("inotify: {e}"))?;
            let started = Instant::now();
            let which = drift(s);
            if until(&mut watch, Duration::from_secs(10), || repaired(which)).is_none() {
                return Err(format!("drift sample {s} was not repaired within 10 s"));
            }
            samples.push(started.elapsed());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(samples)
    })();
    running.signal(libc::SIGTERM);
    running.wait(LIMIT)?;
    result
}

fn overwrite(path: &Path, data: &[u8]) {
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open a managed file");
    f.write_all(data).expect("write a managed file");
}

fn row(what: &str, mut cold: Vec<Duration>, writes: &str, mut drift: Vec<Duration>) -> String {
    cold.sort();
    drift.sort();
    format!(
        "| {what} | {} | {writes} | {} | {} |\n",
        crate::report::ms(cold[cold.len() / 2]),
        crate::report::ms(percentile(&drift, 50.0)),
        crate::report::ms(percentile(&drift, 99.0)),
    )
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut o = parse(args)?;
    o.dir = fs::canonicalize(&o.dir).map_err(|e| format!("{}: {e}", o.dir.display()))?;
    let n = o.lines;
    let work = tempfile::Builder::new()
        .prefix("homeostat-bench-edits.")
        .tempdir_in(&o.dir)
        .map_err(|e| format!("cannot create a work directory in {}: {e}", o.dir.display()))?;
    let w = work.path();
    let cache = w.join("cache");
    fs::create_dir(&cache).map_err(|e| e.to_string())?;
    // Warm-up: compile the plugins into the cache.
    let warm = w.join("warm");
    fs::create_dir(&warm).map_err(|e| e.to_string())?;
    fs::write(warm.join("g.yaml"), lines_graph(&warm.join("x.conf"), 1))
        .map_err(|e| e.to_string())?;
    cold(&o, &warm.join("g.yaml"), &cache, &warm.join("log"))?;

    let (mut cold_lines, mut cold_files, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..o.runs {
        let d = w.join(format!("lines{r}"));
        fs::create_dir(&d).map_err(|e| e.to_string())?;
        let file = d.join("app.conf");
        fs::write(d.join("g.yaml"), lines_graph(&file, n)).map_err(|e| e.to_string())?;
        let watch = DirWatch::new(&d).map_err(|e| format!("inotify: {e}"))?;
        cold_lines.push(cold(&o, &d.join("g.yaml"), &cache, &d.join("log"))?);
        writes.push(writes_of(&watch, "app.conf"));
        let d = w.join(format!("files{r}"));
        fs::create_dir(&d).map_err(|e| e.to_string())?;
        fs::write(
            w.join(format!("files{r}.yaml")),
            workload::graph_yaml(&d, n),
        )
        .map_err(|e| e.to_string())?;
        cold_files.push(cold(
            &o,
            &w.join(format!("files{r}.yaml")),
            &cache,
            &w.join(format!("files{r}.log")),
        )?);
    }

    // Drift, on what the last cold runs left.
    let d = w.join(format!("lines{}", o.runs - 1));
    let file = d.join("app.conf");
    let all = |text: &str| (0..n).all(|i| text.lines().any(|l| l == line(i)));
    let lines_drift = drift_run(
        &o,
        &d.join("g.yaml"),
        &cache,
        &d.join("drift.log"),
        &Drift {
            dir: &d,
            ready: &|| fs::read_to_string(&file).is_ok_and(|t| all(&t)),
            drift: &|s| {
                let i = (workload::splitmix64(0xed17 ^ s as u64) % n as u64) as usize;
                let text: String = (0..n).filter(|&k| k != i).map(|k| line(k) + "\n").collect();
                overwrite(&file, text.as_bytes());
                i
            },
            repaired: &|i| fs::read_to_string(&file).is_ok_and(|t| t.lines().any(|l| l == line(i))),
        },
    )?;
    let files = w.join(format!("files{}", o.runs - 1));
    let files_drift = drift_run(
        &o,
        &w.join(format!("files{}.yaml", o.runs - 1)),
        &cache,
        &w.join("files-drift.log"),
        &Drift {
            dir: &files,
            ready: &|| matches!(workload::verify(&files, n), Ok(None)),
            drift: &|s| {
                let i = (workload::splitmix64(0xf11e ^ s as u64) % n as u64) as usize;
                overwrite(&workload::path(&files, i), b"drifted\n");
                i
            },
            repaired: &|i| workload::has_content(&files, i).unwrap_or(false),
        },
    )?;

    writes.sort();
    println!(
        "{n} `line` resources on one file beside {n} `file` resources on {n} files \
         ({} cold runs, median; {} drift samples)\n",
        o.runs, o.samples
    );
    println!("| graph | cold converge | writes of the shared file | drift p50 | drift p99 |");
    println!("|---|---|---|---|---|");
    print!(
        "{}",
        row(
            &format!("1 `file` + {n} `line` on one file"),
            cold_lines,
            &format!(
                "{} (median; one is the `file` resource's)",
                writes[writes.len() / 2]
            ),
            lines_drift
        )
    );
    print!(
        "{}",
        row(
            &format!("{n} `file` on {n} files"),
            cold_files,
            "-",
            files_drift
        )
    );
    Ok(())
}

//! The benchmark of docs/performance.md: homeostat managing N `file` resources, beside a
//! native *floor* measured in the same run on the same filesystem.
//!
//! `cargo xtask bench [--sizes 100,1000,10000] [--samples 200] [--runs 3] [--dir DIR]`
//! builds the plugins and `target/release/homeostat`, then runs this program, which
//! prints a markdown table ready to paste into docs/performance.md.
//!
//! # What is measured, for each N
//!
//! The workload is N files `DIR/f00000`.. with 64 bytes of content unique to each and
//! mode 0644, declared in one graph. Every homeostat run uses a warm compiled-plugin
//! cache (a warm-up run compiles the plugins first and is not counted).
//!
//! 1. **Cold converge**: `homeostat run G --converged-timeout 0`, none of the files
//!    existing (their directory does): wall time from spawn until homeostat prints its
//!    closing summary line (`converged after …`), the moment the run is known to have
//!    converged; spawn to exit is reported beside it.
//! 2. **Idempotent pass**: the same command with every file already correct.
//! 3. **Drift repair latency**: a long `homeostat run G` on the files the idempotent
//!    pass left correct; once every file checks out, one more second has passed and the
//!    process has gone quiet (≤ 20 ms of CPU in 500 ms: its start-up is over), K times
//!    break one pseudo-randomly chosen file with a plain `open(O_TRUNC)` + `write` and
//!    time from just before the write until the file holds its content again, waiting
//!    on inotify (re-reading after each event, or every 100 ms), never spinning.
//! 4. **Peak RSS** of each homeostat process: `ru_maxrss` from `wait4`.
//!
//! # Why the floor is what it is
//!
//! The floor is the work that no tool can avoid, done by native code with nothing
//! around it, and run as a child process (`homeostat-bench floor-create|floor-check`)
//! so that process start and exit are paid as homeostat pays them:
//!
//! - **cold floor**: per file, write the content to a temporary file in the same
//!   directory, fchmod, rename over the final name: the atomic replacement a careful
//!   tool must do for a wrong file. No fsync, so it is the bare syscall cost.
//! - **durable floor**: the same, durably, with the fewest flushes possible: every
//!   temporary file written, one `syncfs`, every rename, one `fsync` of the directory.
//!   homeostat writes durably (data flushed before the rename, names flushed before it
//!   reports the write done, group-committed across resources), so this is the least
//!   its durable writes could cost; no tool that writes one file at a time can reach it.
//! - **fsync-per-file floor**: the same with an fsync of each file before its rename
//!   (and none of the directory): what durability costs without group commit.
//! - **homeostat's own syscalls alone** (`floor-create --pipelined`): not a floor of the
//!   work but of homeostat's design, natively, with no graph, engine or sandbox: writer
//!   threads making unnamed temporary files (`O_TMPFILE`, write, fchmod) after the same
//!   lookups homeostat makes, one commit thread linking them in group-committed rounds,
//!   an inotify watch on the directory. The cold run against it is what homeostat adds
//!   around its syscalls; it against the durable floor is what the design itself costs.
//! - **idempotent floor**: per file, lstat (type, mode, size) and open + read + compare:
//!   what it takes to know a file is correct. It also checks homeostat's result.
//! - **drift** has no floor (the latency is event delivery plus one repair); the long
//!   run's RSS has none either.
//!
//! Cold and idempotent runs are repeated `--runs` times (default 3), each floor run
//! right before the homeostat run it is compared with, so that changing load on the
//! machine hits both alike; the table shows the median wall time and the highest RSS.
//! Before each timed run the filesystem's dirty data is flushed (`syncfs`), so
//! writeback from one run does not land in the next; no cache is dropped.
//!
//! **Fresh directories.** Every repetition writes into directories of its own, and
//! nothing is deleted until the whole benchmark is done (at 10 000 files that is about
//! 0.5 GiB of 4 KiB blocks, freed at the end). Deleting and re-creating thousands of
//! files is not neutral: ext4 without a journal skips inodes freed in the last minute
//! when it allocates, so creating files right after a mass delete costs several times
//! more, and would penalise whichever side happened to run after a delete. For the
//! same reason, wait a minute or two after one benchmark (or any `rm -rf` of many
//! files) before starting the next: its clean-up slows the next one's floors.
//!
//! The work directory defaults to a temporary directory under /var/tmp, which is on a
//! real disk where /tmp may be tmpfs; its filesystem type is printed (with a warning if
//! it is in memory), and so is the load average: other work on the machine skews every
//! number, so run it on an otherwise idle machine.
//!
//! **Converged, then exit.** What the targets time is "process start to converged": the
//! summary line is printed once the graph has converged and every vertex has stopped
//! and been cleaned up. The process exits right after, but the kernel then tears down its
//! inotify instance, which waits for an SRCU grace period: 0–16 ms here, whatever the
//! number of watches, and the parent sees the exit only after it. A floor's end is
//! likewise the line on which it prints its time: the floor of homeostat's own syscalls
//! watches with inotify too and tears that down after the line; the others exit at once.
//!
//! Targets (restated 2026-12): cold ≤ 2× the durable floor at 10 000 files, with the time
//! to the first write reported (spawn to the first change logged, which is durable and in
//! place by then) at every size; idempotent ≤ 3× floor; drift p99 < 5 ms while the disk
//! flushes steadily; and at 10 000 resources every RSS < 256 MiB.

mod cluster;
mod drift;
mod edits;
mod floor;
mod membership;
mod peers;
mod proc;
mod remote;
mod report;
mod sysinfo;
mod workload;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use floor::Flush;
use proc::Finished;

const USAGE: &str =
    "usage: homeostat-bench [--sizes 100,1000,10000] [--samples K] [--runs R] [--dir DIR] \
                     [--homeostat PATH] [--keep]

  --sizes N,N..    numbers of file resources to measure (default 100,1000,10000)
  --samples K      drift repairs measured per size (default 200)
  --runs R         repetitions of each cold and idempotent run and floor (default 3)
  --dir DIR        where to create the work directory (default /var/tmp; use a real disk)
  --homeostat PATH the binary to measure (default: `homeostat` beside this program)
  --keep           keep the work directory (graphs, logs) instead of removing it

Other benchmarks, each with its own flags (see its module docs): `cluster`, `membership`,
`remote`, `edits` (lines of one shared file against files), `peers` (pkg and user beside
Puppet and Ansible).";

/// The command-line options.
pub struct Options {
    sizes: Vec<usize>,
    samples: usize,
    runs: usize,
    dir: PathBuf,
    homeostat: PathBuf,
    keep: bool,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(cmd @ ("floor-create" | "floor-check")) = args.first().map(String::as_str) {
        return floor::main(cmd, &args[1..]);
    }
    type Sub = fn(&[String]) -> Result<(), String>;
    let sub: Option<(&str, Sub)> = match args.first().map(String::as_str) {
        Some("cluster") => Some(("cluster", cluster::run)),
        Some("membership") => Some(("membership", membership::run)),
        Some("remote") => Some(("remote", remote::run)),
        Some("edits") => Some(("edits", edits::run)),
        Some("peers") => Some(("peers", peers::run)),
        _ => None,
    };
    if let Some((name, run)) = sub {
        return match run(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("homeostat-bench {name}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse_args(&args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("homeostat-bench: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("homeostat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(args: &[String]) -> Result<Option<Options>, String> {
    let mut options = Options {
        sizes: vec![100, 1_000, 10_000],
        samples: 200,
        runs: 3,
        dir: PathBuf::from("/var/tmp"),
        homeostat: default_homeostat(),
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "-h" | "--help" => return Ok(None),
            // `cargo xtask bench -- --sizes 1000` passes the separator through.
            "--" => {}
            "--sizes" => {
                options.sizes = value()?
                    .split(',')
                    .map(|s| {
                        let s = s.trim().replace('_', "");
                        s.parse::<usize>().ok().filter(|&n| (1..=99_999).contains(&n)).ok_or_else(|| {
                            format!("--sizes takes numbers from 1 to 99999 separated by commas, not {s:?}")
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--samples" => options.samples = positive(flag, &value()?)?,
            "--runs" => options.runs = positive(flag, &value()?)?,
            "--dir" => options.dir = PathBuf::from(value()?),
            "--homeostat" => options.homeostat = PathBuf::from(value()?),
            "--keep" => options.keep = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Some(options))
}

/// Walks a subcommand's `--flag value` pairs (a `--` is skipped), handing each to `set`,
/// which says whether it knows the flag; an unknown flag is an error showing `usage`.
fn each_flag(
    args: &[String],
    usage: &str,
    mut set: impl FnMut(&str, String) -> Result<bool, String>,
) -> Result<(), String> {
    let mut it = args.iter().filter(|a| *a != "--");
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .cloned()
            .ok_or_else(|| format!("{flag} takes a value"))?;
        if !set(flag, value)? {
            return Err(format!("unknown argument {flag:?} (usage: {usage})"));
        }
    }
    Ok(())
}

fn positive(flag: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("{flag} takes a positive number, not {value:?}"))
}

/// `homeostat` beside this program (both are in target/release under `cargo xtask
/// bench`), else the workspace's target/release.
fn default_homeostat() -> PathBuf {
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("homeostat")))
        && beside.is_file()
    {
        return beside;
    }
    repo_root().join("target/release/homeostat")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_path_buf()
}

/// Everything measured for one N; each part is an error message when it failed.
pub struct SizeResult {
    pub n: usize,
    pub floor_create: Result<FloorStats, String>,
    pub floor_durable: Result<FloorStats, String>,
    pub floor_each: Result<FloorStats, String>,
    pub floor_pipelined: Result<FloorStats, String>,
    pub floor_check: Result<FloorStats, String>,
    pub cold: Result<RunStats, String>,
    pub idempotent: Result<RunStats, String>,
    pub drift: Result<DriftStats, String>,
}

/// Floor child runs: median wall (spawn to the line with its time), median in-process
/// time, highest RSS.
pub struct FloorStats {
    pub wall: Duration,
    pub inner: Duration,
    pub maxrss_mib: f64,
}

/// homeostat runs: the median run's times, highest RSS, median CPU, and what homeostat
/// said.
pub struct RunStats {
    /// Spawn to the closing summary line (`converged after …`): the measured time.
    pub converged: Duration,
    /// Spawn to the first change logged (durable and in place), in the same run.
    pub first_change: Option<Duration>,
    /// Spawn to exit (reaped).
    pub exit: Duration,
    pub maxrss_mib: f64,
    pub cpu: Duration,
    pub summary: Option<Summary>,
}

/// homeostat's closing line: `converged after 0.31s: 3 resources, 3 changes, 0 failed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub how: String,
    pub engine: Duration,
    pub changes: u64,
    pub failed: u64,
}

pub struct DriftStats {
    pub samples: Vec<Duration>,
    /// The sample that was never repaired, if any: (file, sample number).
    pub unrepaired: Option<(String, usize)>,
    pub maxrss_mib: f64,
    /// From spawn until the files were correct and the process had gone quiet.
    pub settle: Duration,
    /// Whether it went quiet at all before the benchmark gave up waiting.
    pub quiet: bool,
    /// CPU the process used during the drift samples, divided by their number.
    pub cpu_per_repair: Option<Duration>,
    /// How the process ended after SIGTERM.
    pub exit: String,
    pub exit_wall_after_term: Duration,
}

/// Paths shared by every run.
struct Env<'a> {
    options: &'a Options,
    work: PathBuf,
    cache: PathBuf,
    bench: PathBuf,
}

fn run(options: &Options) -> Result<bool, String> {
    if !options.homeostat.is_file() {
        return Err(format!(
            "no homeostat binary at {}: build it with `cargo xtask build-plugins && cargo build --release --bin \
             homeostat`, or pass --homeostat PATH (`cargo xtask bench` does both)",
            options.homeostat.display()
        ));
    }
    let tempdir = tempfile::Builder::new()
        .prefix("homeostat-bench.")
        .tempdir_in(&options.dir)
        .map_err(|e| {
            format!(
                "cannot create a work directory in {}: {e}",
                options.dir.display()
            )
        })?;
    let fs_info = sysinfo::fs_info(tempdir.path())
        .map_err(|e| format!("statfs {}: {e}", tempdir.path().display()))?;
    if fs_info.in_memory() {
        eprintln!(
            "homeostat-bench: warning: {} is on {} (in memory): writes and fsync cost nothing there; pass --dir \
             on a real disk",
            tempdir.path().display(),
            fs_info.name
        );
    }
    let env = Env {
        options,
        work: tempdir.path().to_path_buf(),
        cache: tempdir.path().join("cache"),
        bench: std::env::current_exe()
            .map_err(|e| format!("cannot find this program's path: {e}"))?,
    };
    fs::create_dir(&env.cache).map_err(|e| format!("mkdir {}: {e}", env.cache.display()))?;
    eprintln!(
        "homeostat-bench: measuring {} in {}",
        options.homeostat.display(),
        env.work.display()
    );

    let load_before = sysinfo::loadavg();
    let warmup = warm_up(&env)?;
    eprintln!(
        "homeostat-bench: warm-up run (compiles the plugins into the cache): {}",
        report::ms(warmup)
    );

    let mut results = Vec::new();
    for &n in &options.sizes {
        results.push(measure_size(&env, n)?);
    }

    let machine = report::Machine {
        nproc: sysinfo::nproc(),
        cpu: sysinfo::cpu_model(),
        mem_gib: sysinfo::mem_total_gib(),
        kernel: sysinfo::kernel(),
        fs: format!("{} (statfs magic {:#x})", fs_info.name, fs_info.magic),
        kept: options.keep.then(|| env.work.display().to_string()),
        revision: sysinfo::git_revision(&repo_root()),
        runs: options.runs,
        samples: options.samples,
        bench_rss_mib: proc::own_hwm_mib(),
        warmup,
        load: (load_before, sysinfo::loadavg()),
    };
    print!("{}", report::render(&machine, &results));

    if options.keep {
        let _ = tempdir.keep();
    }
    Ok(results.iter().all(SizeResult::complete))
}

impl SizeResult {
    fn complete(&self) -> bool {
        self.floor_create.is_ok()
            && self.floor_durable.is_ok()
            && self.floor_each.is_ok()
            && self.floor_pipelined.is_ok()
            && self.floor_check.is_ok()
            && self.cold.is_ok()
            && self.idempotent.is_ok()
            && self.drift.as_ref().is_ok_and(|d| d.unrepaired.is_none())
    }
}

/// Run homeostat once on a one-file graph so the plugins are compiled into the cache.
fn warm_up(env: &Env) -> Result<Duration, String> {
    let dir = env.work.join("warm-up");
    let files = dir.join("files");
    fs::create_dir_all(&files).map_err(|e| format!("mkdir {}: {e}", files.display()))?;
    let graph = dir.join("graph.yaml");
    fs::write(&graph, workload::graph_yaml(&files, 1))
        .map_err(|e| format!("write {}: {e}", graph.display()))?;
    let done = run_homeostat(
        env,
        &graph,
        &dir.join("homeostat.log"),
        Duration::from_secs(600),
    )
    .map_err(|e| format!("warm-up run: {e}"))?;
    Ok(done.0.wall)
}

fn measure_size(env: &Env, n: usize) -> Result<SizeResult, String> {
    let runs = env.options.runs;
    let root = env.work.join(format!("n{n}"));
    // Generous deadlines: they only stop a hung process from hanging the benchmark.
    let deadline = Duration::from_secs(300) + Duration::from_millis(50) * n as u32;
    // Each repetition gets fresh directories: nothing is deleted until this N is done
    // (see "Fresh directories" at the top).
    let mkdir = |name: String| -> Result<PathBuf, String> {
        let dir = root.join(name);
        fs::create_dir_all(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(dir)
    };
    let mut floor_create = FloorSeries::default();
    let mut floor_durable = FloorSeries::default();
    let mut floor_each = FloorSeries::default();
    let mut floor_pipelined = FloorSeries::default();
    let mut floor_check = FloorSeries::default();
    let mut cold = RunSeries::default();
    let mut idempotent = RunSeries::default();
    let mut last = None;

    for r in 0..runs {
        eprintln!(
            "homeostat-bench: N = {n}: cold converge and its floors, run {}/{runs}",
            r + 1
        );
        let floor_dir = mkdir(format!("floor-{r}"))?;
        floor_create.add(floor_once(env, "floor-create", &floor_dir, n, Flush::None));
        floor_durable.add(floor_once(
            env,
            "floor-create",
            &mkdir(format!("floor-durable-{r}"))?,
            n,
            Flush::Grouped,
        ));
        floor_each.add(floor_once(
            env,
            "floor-create",
            &mkdir(format!("floor-each-{r}"))?,
            n,
            Flush::EachFile,
        ));
        floor_pipelined.add(floor_once(
            env,
            "floor-create",
            &mkdir(format!("floor-pipelined-{r}"))?,
            n,
            Flush::Pipelined,
        ));
        let files = mkdir(format!("files-{r}"))?;
        let graph = root.join(format!("graph-{r}.yaml"));
        fs::write(&graph, workload::graph_yaml(&files, n))
            .map_err(|e| format!("write {}: {e}", graph.display()))?;
        let log = root.join(format!("cold-{r}.log"));
        cold.add(
            run_homeostat(env, &graph, &log, deadline).and_then(|(done, timing)| {
                check_files(&files, n, "the cold run").map(|()| Run {
                    done,
                    timing,
                    summary: last_summary(&log),
                })
            }),
        );
        last = Some((floor_dir, files, graph));
    }
    let (floor_dir, files, graph) = last.expect("--runs is at least 1");

    for r in 0..runs {
        eprintln!(
            "homeostat-bench: N = {n}: idempotent pass and its floor, run {}/{runs}",
            r + 1
        );
        if floor_create.error.is_none() {
            floor_check.add(floor_once(env, "floor-check", &floor_dir, n, Flush::None));
        }
        if cold.error.is_none() {
            let log = root.join(format!("idempotent-{r}.log"));
            idempotent.add(run_homeostat(env, &graph, &log, deadline).and_then(
                |(done, timing)| {
                    check_files(&files, n, "the idempotent run").map(|()| Run {
                        done,
                        timing,
                        summary: last_summary(&log),
                    })
                },
            ));
        }
    }
    let floor_check = floor_check.finish("needs the cold floor's files");
    let idempotent = idempotent.finish("needs the cold run's files");

    eprintln!(
        "homeostat-bench: N = {n}: drift repair ({} samples)",
        env.options.samples
    );
    let drift = match &idempotent {
        Ok(_) => drift_run(env, &graph, &files, n, &root.join("long-run.log"), deadline),
        Err(_) => Err("needs the files in their declared state".into()),
    };

    // `root` is removed with the work directory at the end (see "Fresh directories").
    Ok(SizeResult {
        n,
        floor_create: floor_create.finish("no run"),
        floor_durable: floor_durable.finish("no run"),
        floor_each: floor_each.finish("no run"),
        floor_pipelined: floor_pipelined.finish("no run"),
        floor_check,
        cold: cold.finish("no run"),
        idempotent,
        drift,
    })
}

/// Fail with what is wrong unless every file is in its declared state.
fn check_files(dir: &Path, n: usize, after: &str) -> Result<(), String> {
    match workload::verify(dir, n) {
        Ok(None) => Ok(()),
        Ok(Some((wrong, first))) => Err(format!(
            "after {after}, {wrong} of {n} files are not in their declared state, e.g. {first}"
        )),
        Err(e) => Err(format!("checking the files after {after}: {e}")),
    }
}

/// Repetitions of one floor: the first error ends the series.
#[derive(Default)]
struct FloorSeries {
    walls: Vec<Duration>,
    inners: Vec<Duration>,
    maxrss_mib: f64,
    error: Option<String>,
}

impl FloorSeries {
    fn add(&mut self, run: Result<FloorRun, String>) {
        match run {
            _ if self.error.is_some() => {}
            Ok(run) => {
                self.walls.push(run.end);
                self.inners.push(run.inner);
                self.maxrss_mib = self.maxrss_mib.max(run.maxrss_mib);
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Median times and highest RSS, or the error (`none` when nothing ran).
    fn finish(mut self, none: &str) -> Result<FloorStats, String> {
        match self.error {
            Some(e) => Err(e),
            None if self.walls.is_empty() => Err(none.to_string()),
            None => Ok(FloorStats {
                wall: median(&mut self.walls),
                inner: median(&mut self.inners),
                maxrss_mib: self.maxrss_mib,
            }),
        }
    }
}

/// One homeostat run: how it ended, when its summary line arrived, what it said.
struct Run {
    done: Finished,
    timing: Timing,
    summary: Option<Summary>,
}

impl Run {
    /// Spawn to the summary line; to exit if there was none.
    fn converged(&self) -> Duration {
        self.timing.converged.unwrap_or(self.done.wall)
    }
}

/// Repetitions of one homeostat measurement: the first error ends the series.
#[derive(Default)]
struct RunSeries {
    runs: Vec<Run>,
    error: Option<String>,
}

impl RunSeries {
    fn add(&mut self, run: Result<Run, String>) {
        match run {
            _ if self.error.is_some() => {}
            Ok(run) => self.runs.push(run),
            Err(e) => self.error = Some(e),
        }
    }

    /// The median run (by time to converged): its times and summary; median CPU,
    /// highest RSS.
    fn finish(mut self, none: &str) -> Result<RunStats, String> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.runs.is_empty() {
            return Err(none.to_string());
        }
        let mut cpus: Vec<Duration> = self.runs.iter().map(|r| r.done.cpu).collect();
        let maxrss_mib = self
            .runs
            .iter()
            .map(|r| r.done.maxrss_mib)
            .fold(0.0, f64::max);
        self.runs.sort_by_key(Run::converged);
        let run = self.runs.swap_remove(self.runs.len() / 2);
        Ok(RunStats {
            converged: run.converged(),
            first_change: run.timing.first_change,
            exit: run.done.wall,
            maxrss_mib,
            cpu: median(&mut cpus),
            summary: run.summary,
        })
    }
}

/// One floor child run: its measurement and the in-process time it reported.
fn floor_once(
    env: &Env,
    cmd: &str,
    dir: &Path,
    n: usize,
    flush: Flush,
) -> Result<FloorRun, String> {
    let what = match flush.flag() {
        Some(flag) => format!("{cmd} {flag}"),
        None => cmd.to_string(),
    };
    sysinfo::syncfs(&env.work).map_err(|e| format!("syncfs: {e}"))?;
    let mut command = Command::new(&env.bench);
    command.arg(cmd).arg(dir).arg(n.to_string());
    command.args(flush.flag());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut running = proc::spawn(&mut command).map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = running.child.stdout.take().expect("stdout is piped");
    let mut stderr = running.child.stderr.take().expect("stderr is piped");
    // The floor's end is its line on stdout (its time), as homeostat's is its summary
    // line: what a process does after it (exit, and for the floor that watches with
    // inotify, that instance's teardown) is not the work.
    let started = running.started();
    let line = std::thread::spawn(move || {
        let mut out = String::new();
        let mut lines = BufReader::new(stdout);
        let arrived = match lines.read_line(&mut out) {
            Ok(n) if n > 0 => Some(started.elapsed()),
            _ => None,
        };
        (out, arrived)
    });
    // The child writes one short line to each: it cannot block on a full pipe.
    let done = running
        .wait(Duration::from_secs(3600))
        .map_err(|e| format!("{what}: {e}"))?;
    let (out, arrived) = line
        .join()
        .map_err(|_| format!("{what}: reading its output panicked"))?;
    let mut err = String::new();
    let _ = stderr.read_to_string(&mut err);
    if !done.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            done.describe(),
            err.trim()
        ));
    }
    let inner: u64 = out
        .trim()
        .parse()
        .map_err(|_| format!("{what} printed {out:?}, not a time"))?;
    Ok(FloorRun {
        end: arrived.unwrap_or(done.wall),
        inner: Duration::from_nanos(inner),
        maxrss_mib: done.maxrss_mib,
    })
}

/// One floor child run.
struct FloorRun {
    /// Spawn to the line with its time.
    end: Duration,
    /// The time it printed: its work alone, without process start.
    inner: Duration,
    maxrss_mib: f64,
}

/// The homeostat command with the bench's common flags and a clean environment: no
/// `RUST_LOG` (default logging) and no user plugin directory.
fn homeostat_command(env: &Env, graph: &Path, log: &Path) -> Result<Command, String> {
    let out = fs::File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("dup {}: {e}", log.display()))?;
    let mut command = Command::new(&env.options.homeostat);
    command
        .arg("run")
        .arg(graph)
        .arg("--cache-dir")
        .arg(&env.cache)
        .env_remove("RUST_LOG")
        .env("XDG_DATA_HOME", env.work.join("no-user-plugins"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    Ok(command)
}

/// One `homeostat run GRAPH --converged-timeout 0`, which must exit 0. Returns how it
/// ended and when its closing summary line (`converged after …`) arrived, from spawn: the
/// moment the run is known to have converged. The process exits a little later (the
/// kernel tears down its inotify instance; see "Converged, then exit" above).
fn run_homeostat(
    env: &Env,
    graph: &Path,
    log: &Path,
    deadline: Duration,
) -> Result<(Finished, Timing), String> {
    sysinfo::syncfs(&env.work).map_err(|e| format!("syncfs: {e}"))?;
    let mut command = homeostat_command(env, graph, log)?;
    command
        .args(["--converged-timeout", "0"])
        .stderr(Stdio::piped());
    let mut running = proc::spawn(&mut command)
        .map_err(|e| format!("cannot run {}: {e}", env.options.homeostat.display()))?;
    let stderr = running.child.stderr.take().expect("stderr is piped");
    let copy = copy_until_summary(stderr, log, running.started())?;
    let done = running.wait(deadline);
    // The child is gone (or killed): its end of the pipe is closed, so the copy ends.
    let timing = copy.join().unwrap_or_default();
    let done = done.map_err(|e| format!("homeostat {e}{}", log_tail(log)))?;
    if !done.success() {
        return Err(format!(
            "homeostat ended with {}{}",
            done.describe(),
            log_tail(log)
        ));
    }
    Ok((done, timing))
}

/// When, from spawn, a run's first change and its summary line were logged.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    converged: Option<Duration>,
    first_change: Option<Duration>,
}

/// Copy a child's stderr into its log (appending: stdout goes there directly) on a thread,
/// noting when the summary line and the first change arrived (since `started`).
fn copy_until_summary(
    stderr: std::process::ChildStderr,
    log: &Path,
    started: Instant,
) -> Result<std::thread::JoinHandle<Timing>, String> {
    use std::io::{BufRead, Write};
    let mut out = fs::OpenOptions::new()
        .append(true)
        .open(log)
        .map_err(|e| format!("open {}: {e}", log.display()))?;
    Ok(std::thread::spawn(move || {
        let mut converged = None;
        let mut first_change = None;
        let mut lines = std::io::BufReader::new(stderr);
        let mut line = String::new();
        while matches!(lines.read_line(&mut line), Ok(n) if n > 0) {
            if converged.is_none() && parse_summary(line.trim_end()).is_some() {
                converged = Some(started.elapsed());
            }
            // A change line (`INFO file[f00000]: create file (64 bytes)`) is logged once
            // the write is durable and in place; lines are written at most 2 ms late.
            if first_change.is_none() && line.contains(" INFO file[") {
                first_change = Some(started.elapsed());
            }
            let _ = out.write_all(line.as_bytes());
            line.clear();
        }
        Timing {
            converged,
            first_change,
        }
    }))
}

/// The long run: start homeostat without a timeout, wait until it has settled, measure
/// `samples` drift repairs, stop it with SIGTERM.
fn drift_run(
    env: &Env,
    graph: &Path,
    files: &Path,
    n: usize,
    log: &Path,
    deadline: Duration,
) -> Result<DriftStats, String> {
    let mut command = homeostat_command(env, graph, log)?;
    let running = proc::spawn(&mut command)
        .map_err(|e| format!("cannot run {}: {e}", env.options.homeostat.display()))?;
    let started = Instant::now();
    let result = drift_samples(env, &running, files, n, log, deadline, started);
    running.signal(libc::SIGTERM);
    let termed = Instant::now();
    let waited = running.wait(Duration::from_secs(60));
    let exit_wall_after_term = termed.elapsed();
    let (samples, unrepaired, settle, quiet, cpu_per_repair) = result?;
    let done = waited.map_err(|e| format!("after SIGTERM, homeostat {e}{}", log_tail(log)))?;
    Ok(DriftStats {
        samples,
        unrepaired,
        maxrss_mib: done.maxrss_mib,
        settle,
        quiet,
        cpu_per_repair,
        exit: done.describe(),
        exit_wall_after_term,
    })
}

type Samples = (
    Vec<Duration>,
    Option<(String, usize)>,
    Duration,
    bool,
    Option<Duration>,
);

fn drift_samples(
    env: &Env,
    running: &proc::Running,
    files: &Path,
    n: usize,
    log: &Path,
    deadline: Duration,
    started: Instant,
) -> Result<Samples, String> {
    // 1. Every file correct (it is already, from the idempotent run; this also catches
    //    a run that breaks them).
    let mut buf = [0u8; workload::CONTENT_LEN + 1];
    let mut next = 0;
    while next < n {
        if running.has_exited() {
            return Err(format!(
                "homeostat exited before converging{}",
                log_tail(log)
            ));
        }
        if started.elapsed() > deadline {
            return Err(format!(
                "files not all correct {} s after start",
                deadline.as_secs()
            ));
        }
        match workload::is_correct(files, next, &mut buf) {
            Ok(true) => next += 1,
            Ok(false) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => {
                return Err(format!(
                    "reading {}: {e}",
                    workload::path(files, next).display()
                ));
            }
        }
    }
    // 2. One more second, then until homeostat stops using CPU: the files were already
    //    correct, so their being correct does not show its start-up is over.
    std::thread::sleep(Duration::from_secs(1));
    let window = Duration::from_millis(500);
    let quiet_cpu = Duration::from_millis(20);
    let mut quiet = false;
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut before = running.cpu_so_far();
    while Instant::now() < give_up {
        std::thread::sleep(window);
        let now = running.cpu_so_far();
        match (before, now) {
            (Some(b), Some(a)) if a.saturating_sub(b) <= quiet_cpu => {
                quiet = true;
                break;
            }
            (_, None) => return Err(format!("homeostat exited while settling{}", log_tail(log))),
            _ => before = now,
        }
    }
    let settle = started.elapsed();
    if running.has_exited() {
        return Err(format!("homeostat exited while settling{}", log_tail(log)));
    }

    // 3. The samples.
    let mut watch =
        drift::DirWatch::new(files).map_err(|e| format!("inotify on {}: {e}", files.display()))?;
    let cpu_before = running.cpu_so_far();
    let mut samples = Vec::with_capacity(env.options.samples);
    let mut unrepaired = None;
    let seed = workload::splitmix64(0x5eed ^ n as u64);
    for s in 0..env.options.samples {
        let i = (workload::splitmix64(seed ^ s as u64) % n as u64) as usize;
        let wrong = format!("drifted by homeostat-bench, sample {s}\n");
        match drift::one(
            &mut watch,
            files,
            i,
            wrong.as_bytes(),
            Duration::from_secs(10),
        ) {
            Ok(Some(took)) => samples.push(took),
            Ok(None) => {
                unrepaired = Some((workload::name(i), s));
                break;
            }
            Err(e) => {
                return Err(format!(
                    "drift sample {s} on {}: {e}",
                    workload::path(files, i).display()
                ));
            }
        }
        // Let the repair's own events pass before the next drift.
        std::thread::sleep(Duration::from_millis(20));
    }
    let cpu_per_repair = match (cpu_before, running.cpu_so_far()) {
        (Some(b), Some(a)) if !samples.is_empty() => {
            Some(a.saturating_sub(b) / samples.len() as u32)
        }
        _ => None,
    };
    Ok((samples, unrepaired, settle, quiet, cpu_per_repair))
}

/// The last lines of a log, for error messages.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n    ");
    if tail.is_empty() {
        format!(" (its log {} is empty)", log.display())
    } else {
        format!("; last lines of {}:\n    {tail}", log.display())
    }
}

/// The closing summary line of a homeostat log.
fn last_summary(log: &Path) -> Option<Summary> {
    let text = fs::read_to_string(log).ok()?;
    text.lines().rev().find_map(parse_summary)
}

/// `converged after 0.31s: 3 resources, 3 changes, 0 failed`
fn parse_summary(line: &str) -> Option<Summary> {
    let (how, rest) = line.split_once(" after ")?;
    let (secs, rest) = rest.split_once("s: ")?;
    let engine = Duration::try_from_secs_f64(secs.parse().ok()?).ok()?;
    let mut changes = None;
    let mut failed = None;
    for part in rest.split(", ") {
        let (count, word) = part.split_once(' ')?;
        let count: u64 = count.parse().ok()?;
        if word.starts_with("change") {
            changes = Some(count);
        } else if word == "failed" {
            failed = Some(count);
        }
    }
    Some(Summary {
        how: how.trim().to_string(),
        engine,
        changes: changes?,
        failed: failed?,
    })
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        let s = parse_summary("converged after 0.31s: 3 resources, 3 changes, 0 failed")
            .expect("parses");
        assert_eq!(s.how, "converged");
        assert_eq!(s.engine, Duration::from_millis(310));
        assert_eq!((s.changes, s.failed), (3, 0));
        let s =
            parse_summary("settled with failures after 1.00s: 2 resources, 0 changes, 1 failed")
                .expect("parses");
        assert_eq!((s.how.as_str(), s.failed), ("settled with failures", 1));
        assert_eq!(
            parse_summary("INFO file[f1]: content: 0 bytes -> 64 bytes"),
            None
        );
    }

    #[test]
    fn args() {
        let args: Vec<String> = ["--sizes", "100,1_000", "--samples=5", "--dir", "/x"]
            .map(String::from)
            .into();
        let o = parse_args(&args).expect("valid").expect("not help");
        assert_eq!(
            (o.sizes, o.samples, o.runs, o.dir),
            (vec![100, 1000], 5, 3, PathBuf::from("/x"))
        );
        assert!(parse_args(&["--sizes".into(), "0".into()]).is_err());
        assert!(parse_args(&["--bogus".into()]).is_err());
    }
}

//! `homeostat-bench membership` (`cargo xtask bench membership`): elastic etcd
//! membership, every host a `homeostat run` process on this machine with its own loopback
//! ports and state directory, the etcd servers Debian's.
//!
//! 1. **Formation** of 3 and of 5 voters: the first host starts with
//!    `--ideal-cluster-size N`; once it serves, the N-1 others start at once with
//!    `--seeds`. Timed from the first host's start, and from the joiners' start, until
//!    `etcdctl member list` shows N started voters.
//! 2. **Replacement** in a formed 3-voter cluster with one spare volunteer: a member's
//!    homeostat and its etcd are killed with SIGKILL; timed until the voters are three
//!    again without it, for `--lease-ttl` 2 and 10 (the default). The lease's TTL bounds
//!    it from below: the chooser removes a member only once its host's lease has expired.
//! 3. **Live size change** 3 → 5 and 5 → 3 with `homeostat cluster set ideal-size`,
//!    timed from the command until the member list matches.
//!
//! `--runs R` (default 3) repeats each; the numbers are printed, nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster::{Host, etcd_of, free_port};

/// How long any one step may take before the bench gives up on it.
const LIMIT: Duration = Duration::from_secs(120);

struct Options {
    homeostat: PathBuf,
    runs: usize,
}

/// A host's flags, so it can be started again.
struct Spec {
    name: String,
    client: u16,
    args: Vec<String>,
    graph: PathBuf,
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

fn spec(dir: &Path, name: &str, seeds: Option<&str>, ideal: usize, ttl: u64) -> Spec {
    let (client, peer) = (free_port(), free_port());
    let graph = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &graph,
        format!(
            "graph: {name}\nresources:\n  file:\n  - name: \"@@motd-{name}\"\n    path: /srv/motd\n    content: \"{name}\"\n"
        ),
    )
    .expect("write a graph");
    let mut args: Vec<String> = [
        "--hostname",
        name,
        "--client-urls",
        &url(client),
        "--server-urls",
        &url(peer),
        "--prefix",
        &dir.join(format!("state-{name}")).display().to_string(),
        "--lease-ttl",
        &ttl.to_string(),
    ]
    .map(String::from)
    .to_vec();
    match seeds {
        Some(s) => args.extend(["--seeds".to_owned(), s.to_owned()]),
        None => args.extend(["--ideal-cluster-size".to_owned(), ideal.to_string()]),
    }
    Spec {
        name: name.into(),
        client,
        args,
        graph,
    }
}

/// The names of the started voters, when every member is one.
fn voters(endpoints: &str) -> Option<Vec<String>> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoints,
            "--command-timeout=2s",
            "member",
            "list",
            "-w",
            "json",
        ])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let mut names = Vec::new();
    for m in v["members"].as_array()? {
        let name = m["name"].as_str().unwrap_or("");
        if name.is_empty() || m["isLearner"].as_bool().unwrap_or(false) {
            return None;
        }
        names.push(name.to_owned());
    }
    names.sort();
    Some(names)
}

/// Wait until the voters' names satisfy `done`; when that happened, and the names.
fn wait_voters(
    endpoints: &str,
    what: &str,
    done: impl Fn(&[String]) -> bool,
) -> Result<(Instant, Vec<String>), String> {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        if let Some(v) = voters(endpoints).filter(|v| done(v)) {
            return Ok((Instant::now(), v));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("never {what} (etcd says {:?})", voters(endpoints)))
}

struct Cluster {
    hosts: Vec<(Spec, Host)>,
    endpoints: String,
    /// The voters' names once formed.
    voters: Vec<String>,
}

impl Cluster {
    /// `n` hosts (the first bootstraps with `ideal`), started as the module doc says;
    /// returns the cluster and the two formation times (from the first start, from the
    /// joiners' start) once `ideal` voters are up.
    fn form(
        o: &Options,
        dir: &Path,
        n: usize,
        ideal: usize,
        ttl: u64,
    ) -> Result<(Cluster, Duration, Duration), String> {
        let cache = dir.join("cache");
        let first = spec(dir, "h1", None, ideal, ttl);
        let seeds = url(first.client);
        let t0 = Instant::now();
        let h1 = Host::start(&o.homeostat, &first.graph, &first.args, &cache);
        h1.wait_line("world: etcd at", LIMIT)
            .ok_or_else(|| format!("h1 did not start:\n{}", h1.tail(20)))?;
        let mut hosts = vec![(first, h1)];
        let t1 = Instant::now();
        for i in 2..=n {
            let s = spec(dir, &format!("h{i}"), Some(&seeds), ideal, ttl);
            let h = Host::start(&o.homeostat, &s.graph, &s.args, &cache);
            hosts.push((s, h));
        }
        let endpoints = hosts
            .iter()
            .map(|(s, _)| url(s.client))
            .collect::<Vec<_>>()
            .join(",");
        // Which volunteers are nominated depends on which volunteered first.
        let (done, voters) =
            wait_voters(&endpoints, &format!("{ideal} voters"), |v| v.len() == ideal).map_err(
                |e| {
                    // What each host said last, to see why.
                    let tails: Vec<String> = hosts
                        .iter()
                        .map(|(s, h)| format!("--- {}:\n{}", s.name, h.tail(15)))
                        .collect();
                    format!("{e}\n{}", tails.join("\n"))
                },
            )?;
        Ok((
            Cluster {
                hosts,
                endpoints,
                voters,
            },
            done - t0,
            done - t1,
        ))
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn line(what: &str, v: &mut [Duration]) {
    let all: Vec<String> = v
        .iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect();
    println!("| {what} | {} | {} s |", secs(median(v)), all.join(" / "));
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        homeostat: super::default_homeostat(),
        runs: 3,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--homeostat" => o.homeostat = PathBuf::from(value()?),
            "--runs" => o.runs = value()?.parse().map_err(|_| "--runs: a number")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Run it with its arguments (after `membership`).
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    println!(
        "## Elastic membership (homeostat {}, etcd on loopback, {} runs)\n",
        o.homeostat.display(),
        o.runs
    );
    println!("| what | median | each run |\n|---|---|---|");
    let fresh = || {
        tempfile::Builder::new()
            .prefix("homeostat-bench-membership.")
            .tempdir_in("/var/tmp")
            .map_err(|e| e.to_string())
    };
    for n in [3, 5] {
        let (mut total, mut joining) = (Vec::new(), Vec::new());
        for _ in 0..o.runs {
            let dir = fresh()?;
            let (_c, t, j) = Cluster::form(&o, dir.path(), n, n, 2)?;
            total.push(t);
            joining.push(j);
        }
        line(
            &format!("formation of {n} voters, from the first start"),
            &mut total,
        );
        line(
            &format!("formation of {n} voters, from the joiners' start"),
            &mut joining,
        );
    }
    for ttl in [2u64, 10] {
        let mut replace = Vec::new();
        for _ in 0..o.runs {
            let dir = fresh()?;
            let (mut c, _, _) = Cluster::form(&o, dir.path(), 4, 3, ttl)?;
            // Kill a member that is not the chooser (h1), and its etcd.
            let v = c
                .hosts
                .iter()
                .position(|(s, _)| s.name != "h1" && c.voters.contains(&s.name))
                .ok_or("no member but h1")?;
            let name = c.hosts[v].0.name.clone();
            let victim = &mut c.hosts[v].1;
            let etcd = etcd_of(victim.pid());
            let t0 = Instant::now();
            let _ = victim.child.kill();
            if let Some(pid) = etcd {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            let _ = victim.child.wait();
            let live: String = c
                .hosts
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != v)
                .map(|(_, (s, _))| url(s.client))
                .collect::<Vec<_>>()
                .join(",");
            let (done, _) = wait_voters(&live, &format!("3 voters without {name}"), |v| {
                v.len() == 3 && !v.contains(&name)
            })?;
            replace.push(done - t0);
        }
        line(
            &format!("replace a killed member, --lease-ttl {ttl}"),
            &mut replace,
        );
    }
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for _ in 0..o.runs {
        let dir = fresh()?;
        let (c, _, _) = Cluster::form(&o, dir.path(), 5, 3, 2)?;
        let set = |n: &str| {
            Command::new(&o.homeostat)
                .args(["cluster", "set", "ideal-size", n, "--seeds", &c.endpoints])
                .output()
                .map_err(|e| e.to_string())
        };
        let t0 = Instant::now();
        set("5")?;
        up.push(wait_voters(&c.endpoints, "5 voters", |v| v.len() == 5)?.0 - t0);
        let t0 = Instant::now();
        set("3")?;
        wait_voters(&c.endpoints, "3 voters again", |v| v.len() == 3)?;
        down.push(t0.elapsed());
    }
    line("ideal size 3 -> 5, live", &mut up);
    line("ideal size 5 -> 3, live", &mut down);
    Ok(())
}

//! Fault tests of a cluster under a randomized schedule (docs/clustering.md, "Faults"),
//! in the shape of etcd's robustness tests and Nomad's autopilot tests, checking
//! homeostat's own promises. Not part of the default run: `cargo xtask test --faults
//! [SECS]` runs it for SECS seconds (default 120; `HOMEOSTAT_FAULT_SECS`), with the seed
//! in `HOMEOSTAT_FAULT_SEED` (printed, to replay a run).
//!
//! **The cluster.** Six hosts, each a `homeostat run` in a network namespace of its own
//! on one bridge (so that a host's link can be cut): `m1` (bootstraps, ideal size 3),
//! `m2`..`m4` (volunteers: three serve, one waits) and `c1`, `c2` (clients). Every host
//! exports one file (`@@motd-<host>`) and collects every export into a directory of its
//! own with `purge: true`, so a collector's directory is exactly what it applied.
//!
//! **The faults**, one at a time, each undone before the next: `kill -9` of the etcd
//! leader's host, of a follower's, of a client; a host paused (`SIGSTOP`, for longer
//! than the lease); a member's link cut (`ip link set down`: its client and peer
//! traffic); a member replaced (stopped, its state directory wiped, started again); a
//! whole-cluster restart.
//!
//! **The checks**, counted: while one member of three is down, a write through the
//! others succeeds (quorum kept); a dead or paused host's export leaves every collector
//! once its lease is over; after each fault is undone, every collector applies exactly
//! the live hosts' exports and etcd has three voters again; at the end, nothing is left
//! running in the namespaces. A violation is printed when found and counted; the test
//! fails if there was any.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homeostat_tests::{binary, process_running, write_graph};

/// Each host's lease: short, so that faults and their checks are quick.
const TTL: u64 = 2;
/// How long a settled state may take to come back after a fault (an etcd restart, a
/// member replaced, a lease expiry).
const HEAL: Duration = Duration::from_secs(90);
const MEMBERS: [&str; 4] = ["m1", "m2", "m3", "m4"];
const CLIENTS: [&str; 2] = ["c1", "c2"];

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) };
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge in the root namespace and a namespace per host, each with a veth to the
/// bridge; removed (with every process in them) when dropped.
struct Net {
    tag: String,
    subnet: u8,
    hosts: usize,
}

impl Net {
    fn new(hosts: usize) -> Net {
        Net::remove_leftovers();
        let pid = std::process::id();
        let net = Net {
            tag: format!("hf{pid}"),
            subnet: (pid % 200) as u8 + 20,
            hosts,
        };
        let bridge = net.bridge();
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&[
            "addr",
            "add",
            &format!("10.214.{}.254/24", net.subnet),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 0..hosts {
            let (ns, veth) = (net.ns(i), net.veth(i));
            ip(&["netns", "add", &ns]);
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ]);
            ip(&["link", "set", &veth, "master", &bridge]);
            ip(&["link", "set", &veth, "up"]);
            let addr = format!("{}/24", net.ip(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    /// Remove the namespaces (with their processes) and bridges of fault runs whose
    /// process is gone (killed before `Drop` ran): their names carry its pid.
    fn remove_leftovers() {
        let stale = |name: &str, end: char| {
            name.strip_prefix("hf")
                .and_then(|rest| rest.split_once(end))
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
                .is_some_and(|pid| pid == std::process::id() as i32 || !process_running(pid))
        };
        let listed = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        };
        for line in listed(&["netns", "list"]).lines() {
            let Some(ns) = line.split_whitespace().next() else {
                continue;
            };
            if stale(ns, '-') {
                eprintln!("faults: removing namespace {ns} left by a dead run");
                for pid in listed(&["netns", "pids", ns]).split_whitespace() {
                    if let Ok(pid) = pid.parse() {
                        kill(pid, libc::SIGCONT);
                        kill(pid, libc::SIGKILL);
                    }
                }
                let _ = sh(&["ip", "netns", "del", ns]);
            }
        }
        // `ip -o link show type bridge`: "7: hf1234b: <BROADCAST,...> ..."
        for line in listed(&["-o", "link", "show", "type", "bridge"]).lines() {
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            if name.ends_with('b') && stale(name, 'b') {
                eprintln!("faults: removing bridge {name} left by a dead run");
                let _ = sh(&["ip", "link", "del", name]);
            }
        }
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 214, self.subnet, i as u8 + 1)
    }

    fn set_link(&self, i: usize, up: bool) {
        ip(&["link", "set", &self.veth(i), if up { "up" } else { "down" }]);
    }

    fn pids(&self, i: usize) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns(i)])
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..self.hosts {
            for pid in self.pids(i) {
                kill(pid as i32, libc::SIGCONT);
                kill(pid as i32, libc::SIGKILL);
            }
            let _ = sh(&["ip", "netns", "del", &self.ns(i)]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge()]);
    }
}

/// One host: started (again) with the same flags, in its namespace.
struct Host {
    name: String,
    index: usize,
    args: Vec<String>,
    graph: PathBuf,
    state: PathBuf,
    collected: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Host {
    fn start(&mut self, net: &Net) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &net.ns(self.index)])
            .arg(binary())
            .arg("run")
            .arg(&self.graph)
            .args(&self.args)
            .env(
                "RUST_LOG",
                "info,homeostat::world=debug,homeostat::cluster=debug",
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start homeostat in its namespace");
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut log = log;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
            }
        });
        self.child = Some(child);
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// homeostat and its etcd, if it serves one.
    fn pids(&self) -> Vec<i32> {
        let Some(pid) = self.pid() else {
            return Vec::new();
        };
        let mut out = vec![pid];
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            out.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
        out
    }

    fn signal(&self, sig: i32) {
        for pid in self.pids() {
            kill(pid, sig);
        }
    }

    fn kill_9(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            kill(pid, libc::SIGTERM);
        }
        if let Some(mut c) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The exports it has applied: `motd-<host>` files in its directory.
    fn applied(&self) -> BTreeSet<String> {
        std::fs::read_dir(&self.collected)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .strip_prefix("motd-")
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A small deterministic generator (xorshift): the schedule is replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Cluster {
    net: Net,
    hosts: Vec<Host>,
    /// Hosts that are down, paused or cut off.
    out: BTreeSet<String>,
    checks: u64,
    violations: Vec<String>,
}

impl Cluster {
    /// `etcdctl ARGS` against the members that are not out.
    fn etcdctl(&self, args: &[&str]) -> Option<String> {
        let endpoints: Vec<String> = self
            .hosts
            .iter()
            .take(MEMBERS.len())
            .filter(|h| !self.out.contains(&h.name))
            .map(|h| format!("http://{}:2379", self.net.ip(h.index)))
            .collect();
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &endpoints.join(","), "--dial-timeout=2s"])
            .args(["--command-timeout=4s"])
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            let v = what();
            eprintln!("VIOLATION: {v}");
            self.violations.push(v);
        }
    }

    fn live(&self) -> BTreeSet<String> {
        self.hosts
            .iter()
            .map(|h| h.name.clone())
            .filter(|n| !self.out.contains(n))
            .collect()
    }

    /// Wait up to `within` for `f`.
    fn wait(within: Duration, mut f: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < within {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        false
    }

    /// Quorum: a write through the members still in succeeds.
    fn check_quorum(&mut self, during: &str) {
        let ok = Cluster::wait(Duration::from_secs(15), || {
            self.etcdctl(&["put", "/faults/probe", during]).is_some()
        });
        self.check(ok, || {
            format!("{during}: no quorum among the other members")
        });
    }

    /// The export of `gone` (dead, paused or cut off) leaves every collector that is
    /// in once its lease is over.
    fn check_gone(&mut self, gone: &str, during: &str) {
        let within = Duration::from_secs(TTL * 3 + 15);
        let live: Vec<usize> = self
            .hosts
            .iter()
            .filter(|h| !self.out.contains(&h.name))
            .map(|h| h.index)
            .collect();
        let hosts = &self.hosts;
        let ok = Cluster::wait(within, || {
            live.iter().all(|&i| !hosts[i].applied().contains(gone))
        });
        let still: Vec<String> = live
            .iter()
            .filter(|&&i| hosts[i].applied().contains(gone))
            .map(|&i| hosts[i].name.clone())
            .collect();
        self.check(ok, || {
            format!("{during}: {still:?} still apply {gone}'s export {within:?} after it left")
        });
    }

    /// Settled again: three voters, every live host's export in etcd, every live
    /// collector applying exactly the live hosts' exports.
    fn check_healed(&mut self, after: &str) {
        let want = self.live();
        let voters = Cluster::wait(HEAL, || {
            self.etcdctl(&["member", "list", "-w", "json"])
                .is_some_and(|json| {
                    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
                    v["members"].as_array().is_some_and(|m| {
                        m.len() == 3
                            && m.iter().all(|m| {
                                m["isLearner"].as_bool() != Some(true)
                                    && m["name"].as_str().is_some_and(|n| !n.is_empty())
                            })
                    })
                })
        });
        self.check(voters, || {
            format!("after {after}: etcd never had three voters again")
        });
        let exported = Cluster::wait(HEAL, || {
            self.etcdctl(&["get", "--prefix", "/homeostat/exported/*/", "--keys-only"])
                .is_some_and(|keys| {
                    want.iter()
                        .all(|h| keys.contains(&format!("/homeostat/exported/*/{h}/")))
                })
        });
        self.check(exported, || {
            format!("after {after}: a live host's export is missing in etcd")
        });
        let hosts = &self.hosts;
        let applied = Cluster::wait(HEAL, || {
            hosts
                .iter()
                .filter(|h| want.contains(&h.name))
                .all(|h| h.applied() == want)
        });
        let seen: Vec<(String, BTreeSet<String>)> = hosts
            .iter()
            .filter(|h| want.contains(&h.name))
            .map(|h| (h.name.clone(), h.applied()))
            .collect();
        self.check(applied, || {
            format!("after {after}: collectors apply {seen:?}, want {want:?} each")
        });
    }

    /// The member that leads etcd, as the first member that answers says (asked one by
    /// one: `endpoint status` fails as a whole when any endpoint it is given is down).
    fn leader(&self) -> Option<usize> {
        let leader = self.voters().into_iter().find_map(|i| {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &format!("http://{}:2379", self.net.ip(i))])
                .args(["--dial-timeout=2s", "--command-timeout=4s"])
                .args(["endpoint", "status", "-w", "json"])
                .output()
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            v.as_array()?.first()?["Status"]["leader"].as_u64()
        })?;
        let members = self.etcdctl(&["member", "list", "-w", "json"])?;
        let m: serde_json::Value = serde_json::from_str(&members).ok()?;
        let name = m["members"]
            .as_array()?
            .iter()
            .find(|m| m["ID"].as_u64() == Some(leader))?["name"]
            .as_str()?
            .to_owned();
        self.hosts.iter().position(|h| h.name == name)
    }

    /// The members serving etcd now.
    fn voters(&self) -> Vec<usize> {
        let Some(json) = self.etcdctl(&["member", "list", "-w", "json"]) else {
            return Vec::new();
        };
        let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        v["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|m| {
                        let name = m["name"].as_str()?;
                        self.hosts.iter().position(|h| h.name == name)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Start host `i` (again) in its namespace.
    fn start(&mut self, i: usize) {
        let net = &self.net;
        self.hosts[i].start(net);
    }

    /// One of the members serving etcd now, at random.
    fn random_voter(&self, rng: &mut Rng) -> Option<usize> {
        let voters = self.voters();
        (!voters.is_empty()).then(|| voters[rng.below(voters.len())])
    }

    /// A host is out for `hold`, as `fault` made it; then `undo` brings it back.
    fn out_for(&mut self, i: usize, what: &str, hold: Duration, undo: impl FnOnce(&mut Cluster)) {
        let name = self.hosts[i].name.clone();
        self.out.insert(name.clone());
        let member = self.voters().contains(&i);
        if member {
            self.check_quorum(what);
        }
        self.check_gone(&name, what);
        std::thread::sleep(hold);
        undo(self);
        self.out.remove(&name);
        self.check_healed(what);
    }
}

#[test]
#[ignore = "a fault schedule of minutes: run it with `cargo xtask test --faults`"]
fn a_cluster_keeps_its_promises_under_a_random_fault_schedule() {
    let secs: u64 = std::env::var("HOMEOSTAT_FAULT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let seed: u64 = std::env::var("HOMEOSTAT_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 | 1)
                .unwrap_or(1)
        });
    eprintln!("fault schedule: {secs} s, HOMEOSTAT_FAULT_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let names: Vec<&str> = MEMBERS.iter().chain(&CLIENTS).copied().collect();
    let net = Net::new(names.len());
    let seeds: Vec<String> = (0..MEMBERS.len())
        .map(|i| format!("http://{}:2379", net.ip(i)))
        .collect();
    let mut hosts = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let collected = root.join(format!("collected-{name}"));
        let graph = write_graph(
            root,
            &format!("{name}.yaml"),
            &format!(
                "graph: {name}\nresources:\n  file:\n  - name: collected\n    path: {d}/\n  \
                 - name: \"@@motd-{name}\"\n    path: /srv/motd-{name}\n    content: \"from {name}\\n\"\n\
                 collect:\n- kind: file\n  pattern: {d}/\n  purge: true\n",
                d = collected.display()
            ),
        );
        let state = root.join(format!("state-{name}"));
        let mut args: Vec<String> = vec![
            "--hostname".into(),
            name.to_string(),
            "--prefix".into(),
            state.display().to_string(),
            "--lease-ttl".into(),
            TTL.to_string(),
            "--insecure".into(),
        ];
        if MEMBERS.contains(name) {
            let ip = net.ip(index);
            args.extend([
                "--client-urls".into(),
                format!("http://{ip}:2379"),
                "--server-urls".into(),
                format!("http://{ip}:2380"),
            ]);
            if *name == "m1" {
                args.extend(["--ideal-cluster-size".into(), "3".into()]);
            } else {
                args.extend(["--seeds".into(), seeds[0].clone()]);
            }
        } else {
            args.extend(["--no-server".into(), "--seeds".into(), seeds.join(",")]);
        }
        hosts.push(Host {
            name: name.to_string(),
            index,
            args,
            graph,
            state,
            collected,
            child: None,
            log: root.join(format!("{name}.log")),
        });
    }
    let mut c = Cluster {
        net,
        hosts,
        out: BTreeSet::new(),
        checks: 0,
        violations: Vec::new(),
    };
    c.start(0);
    std::thread::sleep(Duration::from_secs(2));
    for i in 1..c.hosts.len() {
        c.start(i);
    }
    c.check_healed("the start");
    // From now on the first host, too, finds its cluster through the others when its
    // data is gone (as an operator would run it once the cluster exists).
    c.hosts[0].args.extend(["--seeds".into(), seeds.join(",")]);

    let mut rng = Rng(seed | 1);
    let mut faults: Vec<(String, u64)> = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let hold = Duration::from_millis(TTL * 1000 * 2 + 500 + rng.below(2000) as u64);
        let kind = rng.below(7);
        let fault = match kind {
            0 | 1 => {
                // kill -9 of the leader's host (0) or a follower's (1).
                let voters = c.voters();
                let leader = c.leader();
                let pick = if kind == 0 {
                    leader
                } else {
                    let followers: Vec<usize> = voters
                        .iter()
                        .copied()
                        .filter(|v| Some(*v) != leader)
                        .collect();
                    (!followers.is_empty()).then(|| followers[rng.below(followers.len())])
                };
                let Some(i) = pick else { continue };
                let what = format!(
                    "kill -9 of {} ({})",
                    c.hosts[i].name,
                    if kind == 0 { "leader" } else { "follower" }
                );
                let label = if kind == 0 {
                    "kill -9 of the etcd leader's host"
                } else {
                    "kill -9 of a follower's host"
                };
                c.hosts[i].kill_9();
                c.out_for(i, &what, hold, |c| c.start(i));
                (label, what)
            }
            2 => {
                let i = MEMBERS.len() + rng.below(CLIENTS.len());
                let what = format!("kill -9 of client {}", c.hosts[i].name);
                c.hosts[i].kill_9();
                c.out_for(i, &what, hold, |c| c.start(i));
                ("kill -9 of a client", what)
            }
            3 => {
                let i = rng.below(c.hosts.len());
                let what = format!("SIGSTOP of {} for {hold:.1?}", c.hosts[i].name);
                c.hosts[i].signal(libc::SIGSTOP);
                c.out_for(i, &what, hold, |c| c.hosts[i].signal(libc::SIGCONT));
                ("a host paused (SIGSTOP) past its lease", what)
            }
            4 => {
                let Some(i) = c.random_voter(&mut rng) else {
                    continue;
                };
                let what = format!("link of member {} cut for {hold:.1?}", c.hosts[i].name);
                c.net.set_link(i, false);
                c.out_for(i, &what, hold, |c| c.net.set_link(i, true));
                ("a member's link cut", what)
            }
            5 => {
                let Some(i) = c.random_voter(&mut rng) else {
                    continue;
                };
                let what = format!("member {} replaced (stopped, data wiped)", c.hosts[i].name);
                c.hosts[i].stop();
                let state = c.hosts[i].state.clone();
                let _ = std::fs::remove_dir_all(&state);
                c.out_for(i, &what, hold, |c| c.start(i));
                ("a member replaced (data wiped)", what)
            }
            _ => {
                let what = "whole-cluster restart".to_owned();
                for h in &mut c.hosts {
                    h.stop();
                }
                let net = &c.net;
                for h in &mut c.hosts {
                    h.start(net);
                }
                c.check_healed(&what);
                ("whole-cluster restart", what)
            }
        };
        let (label, fault) = fault;
        match faults.iter_mut().find(|(k, _)| k == label) {
            Some((_, n)) => *n += 1,
            None => faults.push((label.to_owned(), 1)),
        }
        eprintln!(
            "[{:>5.1} s] {fault}: {} checks, {} violations so far",
            started.elapsed().as_secs_f64(),
            c.checks,
            c.violations.len()
        );
    }

    // The end: every host stops, and nothing is left running.
    for h in &mut c.hosts {
        h.stop();
    }
    for i in 0..c.hosts.len() {
        let left = c.net.pids(i);
        let ok = left.iter().all(|&p| !process_running(p as i32));
        let name = c.hosts[i].name.clone();
        c.check(ok, || {
            format!("processes left in {name}'s namespace: {left:?}")
        });
    }
    let injected: u64 = faults.iter().map(|(_, n)| n).sum();
    println!(
        "fault schedule (seed {seed}, {:.0} s): {injected} faults injected, {} checks run, {} violations",
        started.elapsed().as_secs_f64(),
        c.checks,
        c.violations.len()
    );
    for (kind, n) in &faults {
        println!("  {n:>3} × {kind}");
    }
    for v in &c.violations {
        println!("  violation: {v}");
    }
    if !c.violations.is_empty() {
        let kept = dir.keep();
        panic!(
            "{} violations (each host's log is in {}; seed {seed})",
            c.violations.len(),
            kept.display()
        );
    }
}

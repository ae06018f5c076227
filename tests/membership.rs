//! Elastic etcd membership with real processes: every host is a `homeostat run` with its
//! own state directory, hostname and loopback ports; the etcd servers are Debian's, started
//! and stopped by the hosts themselves (and by the kernel's parent-death signal when a
//! test kills a host). `etcdctl` checks what etcd itself says. Leases of 2 s keep the
//! failure tests short.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use homeostat_tests::{
    Running, free_port, homeostat_command, loopback_url as url, stderr, write_graph,
};

/// One cluster at a time: four etcd servers and their hosts are plenty for two cores, and
/// the quorum checks should measure the cluster, not a neighbour test.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long a membership change may take here (a lease expiry, an etcd start, a
/// promotion; two cores shared with other suites).
const LONG: Duration = Duration::from_secs(90);

/// A host of a test cluster: its name, ports and state directory, so it can be started
/// again with the same flags.
struct Host {
    name: String,
    client: u16,
    peer: u16,
    state: PathBuf,
    graph: PathBuf,
    extra: Vec<String>,
}

impl Host {
    fn new(dir: &Path, name: &str, extra: &[&str]) -> Host {
        let graph = write_graph(
            dir,
            &format!("{name}.yaml"),
            &format!(
                "graph: {name}\nresources:\n  file:\n  - name: \"@@motd-{name}\"\n    path: /srv/motd-{name}\n    content: \"from {name}\"\n"
            ),
        );
        Host {
            name: name.into(),
            client: free_port(),
            peer: free_port(),
            state: dir.join(format!("state-{name}")),
            graph,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn client_url(&self) -> String {
        url(self.client)
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--hostname",
            &self.name,
            "--client-urls",
            &url(self.client),
            "--server-urls",
            &url(self.peer),
            "--prefix",
            &self.state.display().to_string(),
            "--lease-ttl",
            "2",
        ]
        .map(String::from)
        .to_vec();
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Start it, without waiting.
    fn spawn(&self) -> Running {
        let args = self.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Running::start(&self.graph, &args)
    }

    /// Start it and wait until it has joined its World.
    fn start(&self) -> Running {
        let running = self.spawn();
        running.wait_log(&["world: etcd at", &self.name]);
        running
    }
}

/// The seed's four hosts: `h1` with `--ideal-cluster-size 3`, and `h2`, `h3`, `h4` with
/// `--seeds` pointing at it and their own etcd URLs.
fn the_seed_example(dir: &Path) -> (Host, Vec<Host>) {
    let h1 = Host::new(dir, "h1", &["--ideal-cluster-size", "3"]);
    let seeds = h1.client_url();
    let others = ["h2", "h3", "h4"]
        .iter()
        .map(|n| Host::new(dir, n, &["--seeds", &seeds]))
        .collect();
    (h1, others)
}

/// One member as `etcdctl member list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Member {
    name: String,
    id: u64,
    learner: bool,
}

fn etcdctl(endpoints: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoints, "--command-timeout=5s"])
        .args(args)
        .output()
        .expect("etcdctl (Debian's etcd-client) runs");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn members(endpoints: &str) -> Option<Vec<Member>> {
    let json = etcdctl(endpoints, &["member", "list", "-w", "json"])?;
    let v: serde_json::Value = serde_json::from_str(&json).ok()?;
    let mut list: Vec<Member> = v["members"]
        .as_array()?
        .iter()
        .map(|m| Member {
            name: m["name"].as_str().unwrap_or("").to_owned(),
            id: m["ID"].as_u64().unwrap_or(0),
            learner: m["isLearner"].as_bool().unwrap_or(false),
        })
        .collect();
    list.sort();
    Some(list)
}

/// Wait (up to [`LONG`]) until every member is a started voter and their names satisfy
/// `done`; returns the members.
fn wait_members(
    endpoints: &str,
    what: &str,
    done: impl Fn(&BTreeSet<String>) -> bool,
) -> Vec<Member> {
    let start = Instant::now();
    loop {
        let list = members(endpoints);
        if let Some(list) = &list
            && list.iter().all(|m| !m.learner && !m.name.is_empty())
            && done(&list.iter().map(|m| m.name.clone()).collect())
        {
            return list.clone();
        }
        assert!(
            start.elapsed() < LONG,
            "{what} never happened; etcd says {list:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Wait until the voting members are exactly `names`.
fn wait_voters(endpoints: &str, names: &[&str]) -> Vec<Member> {
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    wait_members(endpoints, &format!("voters {want:?}"), |v| *v == want)
}

/// Wait until there are `n` voting members. Which volunteers were nominated depends on
/// which volunteered first.
fn wait_voter_count(endpoints: &str, n: usize) -> Vec<Member> {
    wait_members(endpoints, &format!("{n} voters"), |v| v.len() == n)
}

/// The hosts of `hosts` that are (not) among `members`.
fn split<'a>(hosts: &'a [Host], members: &[Member]) -> (Vec<&'a Host>, Vec<&'a Host>) {
    hosts
        .iter()
        .partition(|h| members.iter().any(|m| m.name == h.name))
}

/// Wait (up to [`LONG`]) until `f` holds.
fn wait_long(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < LONG, "{what} never happened");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `homeostat cluster ARGS...`.
fn cluster(args: &[&str]) -> std::process::Output {
    homeostat_tests::command()
        .arg("cluster")
        .args(args)
        .output()
        .expect("homeostat runs")
}

fn status_json(endpoints: &str) -> serde_json::Value {
    let out = cluster(&["status", "--seeds", endpoints, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("status JSON")
}

fn set_ideal(endpoints: &str, n: &str) {
    let out = cluster(&["set", "ideal-size", n, "--seeds", endpoints]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Whether something listens on a loopback port.
fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The `etcd` child of a homeostat process.
fn etcd_child(pid: u32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|c| c.parse::<i32>().ok())
        .find(|c| {
            std::fs::read_to_string(format!("/proc/{c}/comm")).is_ok_and(|n| n.trim() == "etcd")
        })
}

/// `kill -9` a host's homeostat and its etcd.
fn kill_9(host: &mut Running) {
    let etcd = etcd_child(host.pid());
    host.signal(libc::SIGKILL);
    if let Some(pid) = etcd {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    host.wait_exit();
}

/// The exporting hosts whose exports etcd holds.
fn exporters(endpoints: &str) -> BTreeSet<String> {
    etcdctl(
        endpoints,
        &["get", "--prefix", "--keys-only", "/homeostat/exported/"],
    )
    .unwrap_or_default()
    .lines()
    .filter_map(|k| k.strip_prefix("/homeostat/exported/"))
    .filter_map(|k| k.split('/').nth(1).map(str::to_owned))
    .collect()
}

/// A writer that puts a key every 250 ms through the endpoints it is given, as a client
/// of the cluster would: a put that fails (etcdctl tried an endpoint that just died, or
/// the raft leader was being re-elected) is tried again, and a write counts as lost only
/// when no attempt succeeds for [`QUORUM_LOST`], which only a cluster without a quorum
/// does.
struct Writer {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How long a cluster with a quorum may take to accept a write, at worst: an election
/// (about a second) and a client's failover, with room for two busy cores.
const QUORUM_LOST: Duration = Duration::from_secs(15);

impl Writer {
    fn start(endpoints: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, f, d, e) = (stop.clone(), failed.clone(), done.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let mut i = 0;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let v = i.to_string();
                let start = Instant::now();
                loop {
                    let out = Command::new("etcdctl")
                        .env("ETCDCTL_API", "3")
                        .args(["--endpoints", &endpoints, "--command-timeout=5s"])
                        .args(["put", "/test/quorum", &v])
                        .output()
                        .expect("etcdctl runs");
                    if out.status.success() {
                        d.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    e.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
                    if start.elapsed() > QUORUM_LOST {
                        f.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Writer {
            stop,
            failed,
            done,
            errors,
            thread: Some(thread),
        }
    }

    /// Stop, and check that no write was lost.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let (done, failed) = (
            self.done.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        let errors = self.errors.lock().unwrap();
        assert!(done > 0, "no write went through");
        assert_eq!(
            failed,
            0,
            "{failed} of {} writes found no quorum for {QUORUM_LOST:?}; errors: {errors:?}",
            done + failed
        );
        eprintln!(
            "{done} writes, {} attempts retried: {errors:?}",
            errors.len()
        );
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn the_seed_example_forms_three_voters_and_resizes_live_on_the_same_ports() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (h1, others) = the_seed_example(dir.path());
    let seeds = h1.client_url();
    let r1 = h1.start();
    // The seed chooses: started alone first, it takes the chooser's lease before any
    // other host can (they would race it otherwise, and this test follows h1).
    r1.wait_log(&["this host now chooses the etcd members"]);
    let running: Vec<Running> = others.iter().map(Host::start).collect();

    // Three voting members, h1 and two of the others; the fourth host a client; etcd
    // agrees.
    let list = wait_voter_count(&seeds, 3);
    assert!(list.iter().any(|m| m.name == "h1"), "{list:?}");
    let (nominated, clients) = split(&others, &list);
    assert_eq!((nominated.len(), clients.len()), (2, 1), "{list:?}");
    assert!(
        !listening(clients[0].client),
        "the fourth host serves no etcd"
    );
    let status = status_json(&seeds);
    assert_eq!(status["ideal_size"], 3);
    assert_eq!(status["chooser"], "h1");
    assert_eq!(
        status["volunteers"].as_object().unwrap().len(),
        4,
        "{status}"
    );
    let nominees: BTreeSet<&String> = status["nominees"].as_object().unwrap().keys().collect();
    let names: BTreeSet<&String> = nominated.iter().map(|h| &h.name).collect();
    assert_eq!(nominees, names, "{status}");
    assert_eq!(status["hosts"].as_object().unwrap().len(), 4, "{status}");
    let text = cluster(&["status", "--seeds", &seeds]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("ideal size: 3 (3 voting now); chosen by: h1"),
        "{text}"
    );
    // One chooser: the host that won the election, and no other, ever chose.
    let choosers = std::iter::once(&r1)
        .chain(&running)
        .filter(|r| r.count_log(&["this host now chooses the etcd members"]) > 0)
        .count();
    assert_eq!(choosers, 1);

    // Shrink to one live: the chooser keeps its own host; the others stop etcd and clear
    // their data, staying clients.
    set_ideal(&seeds, "1");
    wait_voters(&seeds, &["h1"]);
    for h in &nominated {
        wait_long("the unnominated host stops etcd", || !listening(h.client));
        wait_long("its data directory is cleared", || {
            !h.state.join("etcd/member").exists()
        });
    }
    // And grow back to four, on the same ports.
    set_ideal(&seeds, "4");
    wait_voters(&seeds, &["h1", "h2", "h3", "h4"]);
    // The documented key does the same as `cluster set ideal-size`.
    assert!(etcdctl(&seeds, &["put", "/homeostat/cluster/ideal-size", "3"]).is_some());
    let list = wait_voter_count(&seeds, 3);
    assert!(list.iter().any(|m| m.name == "h1"), "{list:?}");
    assert_eq!(status_json(&seeds)["ideal_size"], 3);
}

#[test]
fn killed_members_and_the_chooser_are_replaced_without_losing_quorum_or_exports() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (h1, hosts) = the_seed_example(dir.path());
    let seeds = h1.client_url();
    let mut r1 = h1.start();
    // The seed chooses (see the test above): it takes the lease before the others start.
    r1.wait_log(&["this host now chooses the etcd members"]);
    let mut running: Vec<Running> = hosts.iter().map(Host::start).collect();
    // A client that never serves, given only h1 as its seed: it must follow the members
    // to outlive h1 (its export lives as long as its lease is kept alive).
    let client_graph = write_graph(
        dir.path(),
        "c.yaml",
        "graph: c\nresources:\n  file:\n  - name: \"@@motd-c\"\n    path: /srv/motd-c\n    content: \"from c\"\n",
    );
    let client_state = dir.path().join("state-c");
    let client_state = client_state.to_str().unwrap();
    let _client = Running::start(
        &client_graph,
        &[
            "--hostname",
            "c",
            "--seeds",
            &seeds,
            "--no-server",
            "--lease-ttl",
            "2",
            "--prefix",
            client_state,
        ],
    );
    let formed = wait_voter_count(&seeds, 3);
    let all: String = std::iter::once(&h1)
        .chain(&hosts)
        .map(Host::client_url)
        .collect::<Vec<_>>()
        .join(",");
    wait_long("every host's export", || exporters(&all).len() == 5);
    // The victim: a member that is not the chooser (h1); the spare: the volunteer that
    // was not nominated.
    let (nominated, spare) = split(&hosts, &formed);
    let (victim, other, spare) = (nominated[0], nominated[1], spare[0]);
    let v = hosts.iter().position(|h| h.name == victim.name).unwrap();
    // The hosts' names, and the client's.
    let names = |hs: [&Host; 3]| -> BTreeSet<String> {
        hs.iter()
            .map(|h| h.name.clone())
            .chain(["c".to_owned()])
            .collect()
    };

    // kill -9 a member that is not the chooser: it is removed, then the spare takes its
    // place.
    let writer = Writer::start(all.clone());
    kill_9(&mut running[v]);
    wait_voters(
        &all,
        &[&h1.name, &other.name, &spare.name].map(String::as_str),
    );
    let removed = format!("removed member `{}`", victim.name);
    let nominated_spare = format!("nominated host `{}`", spare.name);
    r1.wait_log(&[&removed, "its host is gone"]);
    // The dead member went before its replacement came.
    r1.wait_log(&[&nominated_spare]);
    let log = r1.log();
    let at = |needle: &str| log.iter().position(|l| l.contains(needle));
    assert!(
        at(&removed) < at(&nominated_spare),
        "the spare was nominated before the dead member was removed:\n{}",
        log.join("\n")
    );
    writer.finish();
    assert_eq!(
        exporters(&all),
        names([&h1, other, spare]),
        "live hosts keep their exports, the dead one's went with its lease"
    );

    // The victim comes back with the data of a removed member: it clears it and
    // volunteers.
    running[v] = hosts[v].start();
    running[v].wait_log(&["unnominated", "left the cluster"]);

    // kill -9 the chooser (the host that bootstrapped the cluster): another host takes
    // over the choosing, removes it and nominates the victim's host again.
    let writer = Writer::start(all.clone());
    kill_9(&mut r1);
    wait_voters(&all, &["h2", "h3", "h4"]);
    writer.finish();
    let status = status_json(&all);
    assert_ne!(status["chooser"], "h1", "{status}");
    assert_eq!(exporters(&all), names([victim, other, spare]));
    // The client, whose only seed was h1, still writes to the cluster: an edit of its
    // export reaches etcd.
    homeostat_tests::write_atomic(
        &client_graph,
        "graph: c\nresources:\n  file:\n  - name: \"@@motd-c\"\n    path: /srv/motd-c\n    content: \"from c, again\"\n",
    );
    wait_long("the client's edited export in etcd", || {
        etcdctl(&all, &["get", "--prefix", "/homeostat/exported/"])
            .is_some_and(|out| out.contains("from c, again"))
    });
}

#[test]
fn a_whole_cluster_restart_comes_back_and_a_wiped_member_is_replaced() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let h1 = Host::new(dir.path(), "h1", &["--ideal-cluster-size", "3"]);
    let seeds = h1.client_url();
    let hosts: Vec<Host> = std::iter::once(h1)
        .chain(
            ["h2", "h3"]
                .iter()
                .map(|n| Host::new(dir.path(), n, &["--seeds", &seeds])),
        )
        .collect();
    let all: String = hosts
        .iter()
        .map(Host::client_url)
        .collect::<Vec<_>>()
        .join(",");
    let mut running: Vec<Running> = hosts.iter().map(Host::start).collect();
    let before = wait_voters(&seeds, &["h1", "h2", "h3"]);
    wait_long("every host's export", || exporters(&all).len() == 3);

    // Stop every host, start them all again with the same flags: the same members come
    // back from their data directories, none bootstraps or is added twice.
    for r in &mut running {
        r.stop();
    }
    assert!(hosts.iter().all(|h| !listening(h.client)));
    // All at once: a member's World needs a quorum of the members' etcd servers.
    let mut running: Vec<Running> = hosts.iter().map(Host::spawn).collect();
    let after = wait_voters(&all, &["h1", "h2", "h3"]);
    assert_eq!(before, after, "the same three members, by id");
    wait_long("the exports are back", || exporters(&all).len() == 3);
    for r in &running {
        assert_eq!(r.count_log(&["nominated host"]), 0, "nobody was added");
    }

    // h3's data directory is wiped while it is down: its old member is removed and it
    // joins again as a new one.
    running[2].stop();
    std::fs::remove_dir_all(hosts[2].state.join("etcd")).unwrap();
    running[2] = hosts[2].start();
    let old = before.iter().find(|m| m.name == "h3").unwrap().id;
    let mut replaced = Vec::new();
    wait_long("h3 serving again as a new member", || {
        replaced = wait_voters(&all, &["h1", "h2", "h3"]);
        replaced.iter().any(|m| m.name == "h3" && m.id != old)
    });
    assert_eq!(replaced.len(), 3, "{replaced:?}");
    // Whichever host chooses now (the election was open again after the restart). Why
    // depends on what the chooser saw first: h3 back without its data, or, when it looked
    // before the new h3 had announced itself, a dead host whose member does not answer.
    wait_long("the chooser logs why", || {
        running.iter().any(|r| {
            r.count_log(&["removed member `h3`", "came back without its data"]) > 0
                || r.count_log(&["removed member `h3`", "its host is gone"]) > 0
        })
    });
}

#[test]
fn bad_sizes_and_a_seed_that_is_not_a_homeostat_cluster_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write_graph(dir.path(), "g.yaml", "graph: g\nresources: {}\n");
    let g = graph.to_str().unwrap();
    let run = |extra: &[&str]| {
        let args = [&["run", g, "--converged-timeout", "0"][..], extra].concat();
        homeostat_command(dir.path(), &args)
            .output()
            .expect("homeostat runs")
    };
    let c = url(free_port());
    let p = url(free_port());
    let urls = ["--client-urls", &c, "--server-urls", &p];
    for (size, says) in [
        ("0", "would leave no etcd member"),
        ("8", "more than etcd's recommended 7"),
    ] {
        let out = run(&[&["--ideal-cluster-size", size][..], &urls].concat());
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
    }
    let out = run(&["--no-server", "--seeds", &c, "--ideal-cluster-size", "3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--no-server never serves"),
        "{}",
        stderr(&out)
    );
    let out = cluster(&["set", "ideal-size", "0", "--seeds", &c]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("would leave no etcd member"),
        "{}",
        stderr(&out)
    );

    // An even size runs, with a warning that says what it costs.
    let state = dir.path().join("even");
    let out = run(&[
        &[
            "--ideal-cluster-size",
            "4",
            "--prefix",
            state.to_str().unwrap(),
        ][..],
        &urls,
    ]
    .concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is even: it tolerates as many failed members as 3 (1)"),
        "{}",
        stderr(&out)
    );
    // Its own etcd stopping under its World's watches, after the World closed, is no news.
    assert!(!stderr(&out).contains("broke"), "{}", stderr(&out));

    // A plain etcd, not formed by homeostat: a host will not volunteer to serve in it.
    let ec = free_port();
    let ep = free_port();
    let data = dir.path().join("plain-etcd");
    let mut plain = Command::new("etcd")
        .args([
            "--name=plain",
            &format!("--data-dir={}", data.display()),
            &format!("--listen-client-urls={}", url(ec)),
            &format!("--advertise-client-urls={}", url(ec)),
            &format!("--listen-peer-urls={}", url(ep)),
            &format!("--initial-advertise-peer-urls={}", url(ep)),
            &format!("--initial-cluster=plain={}", url(ep)),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd runs");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _plain = Kill(&mut plain);
    wait_long("the plain etcd answers", || listening(ec));
    let c2 = url(free_port());
    let p2 = url(free_port());
    let out = run(&[
        "--seeds",
        &url(ec),
        "--client-urls",
        &c2,
        "--server-urls",
        &p2,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a cluster homeostat formed"),
        "{}",
        stderr(&out)
    );
    // As a client it may use that etcd (an operator's own cluster).
    let out = run(&["--seeds", &url(ec), "--no-server"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

//! Remote execution end to end (docs/remote.md): the real binary as initiator, real
//! OpenSSH servers as remote hosts, each in namespaces of its own ([`homeostat_tests::ssh`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use homeostat_tests::ssh::{Agent, ClientKeys, KeyKind, SshHost, skip_reason};
use homeostat_tests::{
    Running, free_port, granted_dir, homeostat, line_wasm, loopback_url, stderr, wait_for,
    write_graph,
};

/// The binary shipped to the hosts: the test build without its debug information
/// (a tenth of the size; `strip` comes with the linker's binutils).
fn shipped_binary() -> &'static Path {
    static STRIPPED: OnceLock<PathBuf> = OnceLock::new();
    STRIPPED.get_or_init(|| {
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("homeostat-stripped");
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let status = std::process::Command::new("strip")
            .arg("-o")
            .arg(&tmp)
            .arg(homeostat_tests::binary())
            .status()
            .expect("strip (binutils) runs");
        assert!(status.success(), "strip failed");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// One test's initiator side: keys, known hosts, the etcd URLs it serves.
struct Initiator {
    dir: tempfile::TempDir,
    keys: ClientKeys,
    client_url: String,
    server_url: String,
}

impl Initiator {
    fn new() -> Initiator {
        let dir = tempfile::tempdir().unwrap();
        let keys = ClientKeys::new(dir.path());
        Initiator {
            keys,
            client_url: loopback_url(free_port()),
            server_url: loopback_url(free_port()),
            dir,
        }
    }

    fn host(&self, name: &str) -> SshHost {
        let host = SshHost::start(name, &[self.keys.pub_line(KeyKind::Ed25519)]);
        self.keys.add_known_host(&host);
        host
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("HOME".into(), self.keys.home().display().to_string()),
            ("SSH_AUTH_SOCK".into(), String::new()),
        ]
    }

    /// A graph for `url` that writes `content` to `/tmp/f` there.
    fn file_graph(&self, name: &str, url: &str, content: &str) -> PathBuf {
        write_graph(
            self.dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "graph: {name}\nremote: {url}\nresources:\n  file:\n  - name: f\n    path: /tmp/f\n    content: \"{content}\\n\"\n"
            ),
        )
    }

    /// `homeostat run LOCAL --remote G... ARGS` with this initiator's etcd and keys.
    fn run(&self, remotes: &[&Path], extra: &[&str]) -> Running {
        let local = write_graph(self.dir.path(), "local.yaml", "graph: initiator\n");
        let mut args: Vec<String> = Vec::new();
        for r in remotes {
            args.push("--remote".into());
            args.push(r.display().to_string());
        }
        for a in [
            "--client-urls",
            &self.client_url,
            "--server-urls",
            &self.server_url,
            "--lease-ttl",
            "2",
        ] {
            args.push(a.to_string());
        }
        if !extra.contains(&"--remote-binary") {
            args.push("--remote-binary".into());
            args.push(shipped_binary().display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Running::start_env(&local, &args, &self.env())
    }
}

/// The seed's remote2a/remote2b graph for `host`: its own file, one export, and every
/// export collected into `/tmp/collected/`.
fn seed_graph(dir: &Path, host: &SshHost, name: &str) -> PathBuf {
    write_graph(
        dir,
        &format!("{name}.yaml"),
        &format!(
            "graph: {name}\nremote: ssh://root@{ip}:22\nresources:\n  file:\n  \
             - name: own\n    path: /tmp/{name}\n    content: \"i am {name}\\n\"\n  \
             - name: collected\n    path: /tmp/collected/\n  \
             - name: \"@@{name}\"\n    path: /srv/{name}\n    content: \"exported by {name}\\n\"\n\
             collect:\n- kind: file\n  pattern: /tmp/collected/\n",
            ip = host.ip()
        ),
    )
}

fn read_in(host: &SshHost, path: &str) -> Option<String> {
    std::fs::read_to_string(host.path(Path::new(path))).ok()
}

fn wait_in(host: &SshHost, path: &str, want: &str) {
    wait_for(|| (read_in(host, path).as_deref() == Some(want)).then_some(())).unwrap_or_else(
        || {
            panic!(
                "{} on {}: {:?}, want {want:?}",
                path,
                host.name(),
                read_in(host, path)
            )
        },
    );
}

macro_rules! skip_unless_ready {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// The seed's example: two hosts, each writes its own file, exports one and collects
/// every export; the initiator exits 0 once the whole fleet has converged, and nothing
/// of homeostat is left running on either host.
#[test]
fn two_hosts_export_and_collect_through_the_tunnel_and_exit_converged() {
    skip_unless_ready!();
    let init = Initiator::new();
    let a = init.host("remote2a");
    let b = init.host("remote2b");
    let ga = seed_graph(init.dir.path(), &a, "remote2a");
    let gb = seed_graph(init.dir.path(), &b, "remote2b");
    let mut run = init.run(&[&ga, &gb], &["--converged-timeout", "1"]);
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(status.success(), "{log}");
    for h in [&a, &b] {
        let own = if h.name() == "remote2a" {
            "remote2a"
        } else {
            "remote2b"
        };
        assert_eq!(
            read_in(h, &format!("/tmp/{own}")).as_deref(),
            Some(format!("i am {own}\n").as_str())
        );
        for from in ["remote2a", "remote2b"] {
            assert_eq!(
                read_in(h, &format!("/tmp/collected/{from}")).as_deref(),
                Some(format!("exported by {from}\n").as_str()),
                "{} collected {from}\n{log}",
                h.name()
            );
        }
        assert!(
            h.pids().is_empty(),
            "left running on {}: {:?}",
            h.name(),
            h.pids()
        );
    }
    assert!(log.contains("remote hosts: 2, 0 failed"), "{log}");
    assert!(
        log.contains(&format!("{} | ", a.ip())),
        "log lines come prefixed: {log}"
    );
}

/// A second run finds the binary in the cache (no binary bytes sent); `--no-caching`
/// copies into a temporary directory and removes it.
#[test]
fn the_cache_skips_the_binary_and_no_caching_leaves_nothing() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("cachehost");
    let g = init.file_graph("g", &format!("ssh://root@{}", h.ip()), "x");
    let sent = |run: &Running| -> String {
        run.log()
            .into_iter()
            .find(|l| l.contains("bytes sent, set up in"))
            .expect("a set-up line")
    };
    let mut first = init.run(&[&g], &["--converged-timeout", "0.5"]);
    assert!(first.wait_exit().success(), "{}", first.log().join("\n"));
    let first_sent = sent(&first);
    let mut second = init.run(&[&g], &["--converged-timeout", "0.5"]);
    assert!(second.wait_exit().success(), "{}", second.log().join("\n"));
    let second_sent = sent(&second);
    let bytes = |line: &str| -> u64 {
        let at = line.find(" bytes sent").unwrap();
        line[..at].rsplit('(').next().unwrap().parse().unwrap()
    };
    let size = std::fs::metadata(shipped_binary()).unwrap().len();
    assert!(bytes(&first_sent) >= size, "{first_sent}");
    assert!(
        bytes(&second_sent) < 4096,
        "cache hit sends only the graph: {second_sent}"
    );
    let cache = h.exec("ls /var/lib/homeostat/remote/cache | wc -l");
    assert_eq!(String::from_utf8_lossy(&cache.stdout).trim(), "1");

    let mut fresh = init.run(&[&g], &["--converged-timeout", "0.5", "--no-caching"]);
    assert!(fresh.wait_exit().success(), "{}", fresh.log().join("\n"));
    assert!(bytes(&sent(&fresh)) >= size);
    let left = h.exec("ls -d /tmp/homeostat.* 2>/dev/null | wc -l");
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "0",
        "temp dir removed"
    );
}

/// Saving a remote graph on the initiator changes the remote: the file is copied over
/// atomically and the remote's live swap applies only the difference.
#[test]
fn a_saved_graph_is_pushed_live_and_only_the_difference_applies() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("pushhost");
    let text = |b: &str| {
        format!(
            "graph: g\nremote: ssh://root@{}\nresources:\n  file:\n  - name: a\n    path: /tmp/a\n    content: \"a\\n\"\n  - name: b\n    path: /tmp/b\n    content: \"{b}\\n\"\n",
            h.ip()
        )
    };
    let g = write_graph(init.dir.path(), "g.yaml", &text("one"));
    let mut run = init.run(&[&g], &[]);
    wait_in(&h, "/tmp/b", "one\n");
    let a_before = h.exec("stat -c %i /tmp/a").stdout;
    homeostat_tests::write_atomic(&g, &text("two"));
    run.wait_log(&["copied over new graph definition"]);
    wait_in(&h, "/tmp/b", "two\n");
    assert_eq!(h.exec("stat -c %i /tmp/a").stdout, a_before, "a untouched");
    // ^C stops the remote homeostat too (its input closes), which says so.
    run.signal(libc::SIGINT);
    run.wait_exit();
    let log = run.log().join("\n");
    assert!(
        log.contains(&format!("{} | stopped after", h.ip())),
        "{log}"
    );
    assert!(log.contains("remote hosts: 1, 0 failed"), "{log}");
    wait_for(|| h.pids().is_empty().then_some(()))
        .unwrap_or_else(|| panic!("left running: {:?}", h.pids()));
}

/// Host keys: an unknown one is refused with its fingerprint and the fix, a changed one
/// is refused even with --ssh-accept-new, and --ssh-accept-new records a new one.
#[test]
fn host_keys_are_verified() {
    skip_unless_ready!();
    let init = Initiator::new();
    let mut h = SshHost::start("keyhost", &[init.keys.pub_line(KeyKind::Ed25519)]);
    let g = write_graph(
        init.dir.path(),
        "g.yaml",
        &format!("graph: g\nremote: ssh://root@{}\n", h.ip()),
    );
    let mut unknown = init.run(&[&g], &["--converged-timeout", "0.5"]);
    assert!(!unknown.wait_exit().success());
    let log = unknown.log().join("\n");
    assert!(
        log.contains("is not known: ssh-ed25519 key SHA256:"),
        "{log}"
    );
    assert!(log.contains("--ssh-accept-new"), "{log}");

    let mut accepted = init.run(&[&g], &["--converged-timeout", "0.5", "--ssh-accept-new"]);
    assert!(
        accepted.wait_exit().success(),
        "{}",
        accepted.log().join("\n")
    );
    let known = std::fs::read_to_string(init.keys.known_hosts()).unwrap();
    assert!(known.contains(&h.host_key_line()), "{known}");

    h.rotate_host_key();
    let mut changed = init.run(&[&g], &["--converged-timeout", "0.5", "--ssh-accept-new"]);
    assert!(!changed.wait_exit().success());
    let log = changed.log().join("\n");
    assert!(log.contains("has CHANGED"), "{log}");
}

/// No key the server takes: permission denied, with what was tried; an unreachable host
/// among reachable ones is reported within --ssh-timeout and does not hold up the other.
#[test]
fn bad_auth_and_unreachable_hosts_fail_alone() {
    skip_unless_ready!();
    let init = Initiator::new();
    let good = init.host("goodhost");
    let strict = SshHost::start("strict", &[]);
    init.keys.add_known_host(&strict);
    let graph = |name: &str, url: String| init.file_graph(name, &url, name);
    let g_good = graph("good", format!("ssh://root@{}", good.ip()));
    let g_denied = graph("denied", format!("ssh://root@{}", strict.ip()));
    // A port nobody listens on (refused at once), and a host that takes the connection
    // but never speaks SSH (a hung machine): it fails after --ssh-timeout.
    let g_gone = graph(
        "gone",
        format!("ssh://root@{}:{}", good.gateway(), free_port()),
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let g_hung = graph(
        "hung",
        format!(
            "ssh://root@127.0.0.1:{}",
            silent.local_addr().unwrap().port()
        ),
    );
    let started = std::time::Instant::now();
    let mut run = init.run(
        &[&g_good, &g_denied, &g_gone, &g_hung],
        &["--converged-timeout", "0.5", "--ssh-timeout", "3"],
    );
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(!status.success(), "{log}");
    wait_in(&good, "/tmp/f", "good\n");
    assert!(log.contains("permission denied for user `root`"), "{log}");
    assert!(
        log.contains("id_ed25519"),
        "what was tried is listed: {log}"
    );
    assert!(log.contains("remote hosts: 4, 3 failed"), "{log}");
    assert!(log.contains("cannot connect"), "{log}");
    assert!(
        log.contains("no SSH session within 3s (--ssh-timeout)"),
        "{log}"
    );
    drop(silent);
    assert!(started.elapsed() < Duration::from_secs(30), "{log}");
}

/// A binary built for another machine is refused before anything is copied.
#[test]
fn an_architecture_mismatch_is_refused() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("archhost");
    let fake = init.dir.path().join("homeostat-aarch64");
    let mut head = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0".to_vec();
    head.resize(4096, 0);
    std::fs::write(&fake, head).unwrap();
    let g = write_graph(
        init.dir.path(),
        "g.yaml",
        &format!("graph: g\nremote: ssh://root@{}\n", h.ip()),
    );
    let mut run = init.run(
        &[&g],
        &[
            "--converged-timeout",
            "0.5",
            "--remote-binary",
            &fake.display().to_string(),
        ],
    );
    assert!(!run.wait_exit().success());
    let log = run.log().join("\n");
    assert!(
        log.contains("the remote is x86_64 but the binary to ship is built for aarch64"),
        "{log}"
    );
    let cache = h.exec("ls /var/lib/homeostat/remote/cache 2>/dev/null | wc -l");
    assert_eq!(String::from_utf8_lossy(&cache.stdout).trim(), "0");
}

/// Two graphs for one host, or a graph without `remote:`, are refused before any
/// connection.
#[test]
fn duplicate_targets_are_refused() {
    let init = Initiator::new();
    let a = write_graph(
        init.dir.path(),
        "a.yaml",
        "graph: a\nremote: ssh://root@10.0.0.9\n",
    );
    let b = write_graph(
        init.dir.path(),
        "b.yaml",
        "graph: b\nremote: ssh://admin@10.0.0.9:2222\n",
    );
    let none = write_graph(init.dir.path(), "c.yaml", "graph: c\n");
    let out = homeostat_tests::homeostat_within_deadline(&[
        "run",
        "--remote",
        &a.display().to_string(),
        "--remote",
        &b.display().to_string(),
        "--remote",
        &none.display().to_string(),
    ]);
    let err = homeostat_tests::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("host `10.0.0.9` is already the target of"),
        "{err}"
    );
    assert!(
        err.contains("c.yaml: a --remote graph needs `remote:"),
        "{err}"
    );

    // Deeper than --max-depth: refused with where, before any connection.
    write_graph(
        init.dir.path(),
        "leaf.yaml",
        "graph: leaf\nremote: ssh://root@10.0.0.2\n",
    );
    let mid = write_graph(
        init.dir.path(),
        "mid.yaml",
        "graph: mid\nremote: ssh://root@10.0.0.1\nremotes: [leaf.yaml]\n",
    );
    let out = homeostat_tests::homeostat_within_deadline(&[
        "run",
        "--remote",
        &mid.display().to_string(),
        "--max-depth",
        "1",
    ]);
    let err = homeostat_tests::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mid.yaml: lists `remotes:` but runs at depth 1, and --max-depth is 1"),
        "{err}"
    );
}

/// Hierarchical remote execution, two levels: the initiator runs two hosts, each of
/// which runs two more from its graph's `remotes:` (reached over links the initiator
/// has no route to), logging in with the initiator's agent and checking host keys
/// against the lines the initiator shipped. Every host exports to and collects from
/// the root's World through the chained tunnels; an edit of a leaf's graph at the root
/// reaches the leaf; ^C at the root stops the whole tree.
#[test]
fn a_two_level_tree_shares_the_world_takes_live_pushes_and_stops_from_the_root() {
    skip_unless_ready!();
    let init = Initiator::new();
    let agent = Agent::start(&init.keys, init.dir.path());
    let key = init.keys.pub_line(KeyKind::Ed25519);
    let mids = [init.host("mid1"), init.host("mid2")];
    let mut leaves = Vec::new();
    let dir = init.dir.path();
    let graph_of = |name: &str, url: String, remotes: &[String]| -> String {
        let remotes = if remotes.is_empty() {
            String::new()
        } else {
            format!("remotes: [{}]\n", remotes.join(", "))
        };
        format!(
            "graph: {name}\nremote: {url}\n{remotes}resources:\n  file:\n  \
             - name: own\n    path: /tmp/own\n    content: \"{name}\\n\"\n  \
             - name: collected\n    path: /tmp/collected/\n  \
             - name: \"@@{name}\"\n    path: /srv/{name}\n    content: \"from {name}\\n\"\n\
             collect:\n- kind: file\n  pattern: /tmp/collected/\n"
        )
    };
    let mut mid_graphs = Vec::new();
    for (i, mid) in mids.iter().enumerate() {
        let mut children = Vec::new();
        for j in 0..2 {
            let name = format!("leaf{i}{j}");
            let leaf = SshHost::start(&name, std::slice::from_ref(&key));
            let addr = mid.link(&leaf);
            init.keys
                .add_known_hosts_line(&format!("{addr} {}", leaf.host_key_line()));
            std::fs::create_dir_all(dir.join("leaves")).unwrap();
            write_graph(
                &dir.join("leaves"),
                &format!("{name}.yaml"),
                &graph_of(&name, format!("ssh://root@{addr}"), &[]),
            );
            children.push(format!("leaves/{name}.yaml"));
            leaves.push((name, leaf));
        }
        let name = format!("mid{}", i + 1);
        mid_graphs.push(write_graph(
            dir,
            &format!("{name}.yaml"),
            &graph_of(&name, format!("ssh://root@{}", mid.ip()), &children),
        ));
    }
    let mut env = init.env();
    env.retain(|(k, _)| k != "SSH_AUTH_SOCK");
    env.push(("SSH_AUTH_SOCK".into(), agent.socket().display().to_string()));
    let local = write_graph(dir, "local.yaml", "graph: root\n");
    let mut args: Vec<String> = Vec::new();
    for g in &mid_graphs {
        args.extend(["--remote".into(), g.display().to_string()]);
    }
    args.extend(
        [
            "--client-urls",
            &init.client_url,
            "--server-urls",
            &init.server_url,
            "--lease-ttl",
            "2",
            "--remote-binary",
            &shipped_binary().display().to_string(),
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Running::start_env(&local, &args, &env);
    let names: Vec<String> = ["mid1", "mid2"]
        .into_iter()
        .map(String::from)
        .chain(leaves.iter().map(|(n, _)| n.clone()))
        .collect();
    let all: Vec<(&str, &SshHost)> = [("mid1", &mids[0]), ("mid2", &mids[1])]
        .into_iter()
        .chain(leaves.iter().map(|(n, h)| (n.as_str(), h)))
        .collect();
    for (name, host) in &all {
        wait_in(host, "/tmp/own", &format!("{name}\n"));
        for from in &names {
            wait_in(
                host,
                &format!("/tmp/collected/{from}"),
                &format!("from {from}\n"),
            );
        }
    }
    // The binary crossed each link once: the root copied it to its two hosts only, and
    // each leaf got the very same file from its mid.
    let log = run.log();
    let root_copies = log
        .iter()
        .filter(|l| l.contains("bytes sent, set up in") && !l.contains(" | "))
        .count();
    assert_eq!(root_copies, 2, "{}", log.join("\n"));
    let digest = homeostat_tests::sha256_file(shipped_binary());
    for (name, leaf) in &leaves {
        let cached = leaf.exec("ls /var/lib/homeostat/remote/cache");
        assert!(
            String::from_utf8_lossy(&cached.stdout).contains(&digest),
            "{name} runs the binary the root shipped"
        );
    }

    // A leaf's graph edited at the root.
    let leaf_graph = dir.join("leaves/leaf10.yaml");
    let text = std::fs::read_to_string(&leaf_graph).unwrap();
    homeostat_tests::write_atomic(
        &leaf_graph,
        &text.replace("content: \"leaf10\\n\"", "content: \"edited\\n\""),
    );
    wait_in(&leaves[2].1, "/tmp/own", "edited\n");

    run.signal(libc::SIGINT);
    run.wait_exit();
    for (name, host) in &all {
        wait_for(|| host.pids().is_empty().then_some(()))
            .unwrap_or_else(|| panic!("left running on {name}: {:?}", host.pids()));
    }
}

/// ECDSA and RSA keys (given with --ssh-identity, or found in ~/.ssh), and a password in
/// the URL, which works and is warned about.
#[test]
fn key_kinds_and_a_url_password_log_in() {
    skip_unless_ready!();
    let init = Initiator::new();
    let ecdsa = SshHost::start("ecdsahost", &[init.keys.pub_line(KeyKind::Ecdsa)]);
    let rsa = SshHost::start("rsahost", &[init.keys.pub_line(KeyKind::Rsa)]);
    let pw = SshHost::builder("pwhost").password("s3cret pw").start();
    for h in [&ecdsa, &rsa, &pw] {
        init.keys.add_known_host(h);
    }
    let graph = |name: &str, url: String| init.file_graph(name, &url, name);
    let ge = graph("e", format!("ssh://root@{}", ecdsa.ip()));
    let gr = graph("r", format!("ssh://root@{}", rsa.ip()));
    let gp = graph("p", format!("ssh://root:s3cret%20pw@{}", pw.ip()));
    // The standard files: ed25519, then ECDSA, then RSA (which the RSA host takes).
    // (Compressed, which OpenSSH's sshd agrees to.)
    let mut run = init.run(
        &[&ge, &gr, &gp],
        &["--converged-timeout", "0.5", "--ssh-compression"],
    );
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(status.success(), "{log}");
    wait_in(&ecdsa, "/tmp/f", "e\n");
    wait_in(&rsa, "/tmp/f", "r\n");
    wait_in(&pw, "/tmp/f", "p\n");
    assert!(
        log.contains("logging in with the password written in the graph"),
        "{log}"
    );
    assert!(
        !log.contains("s3cret"),
        "the password is never logged: {log}"
    );

    // Only the identity given is tried.
    let ecdsa_key = init.keys.key(KeyKind::Ecdsa).display().to_string();
    let mut only = init.run(
        &[&gr],
        &["--converged-timeout", "0.5", "--ssh-identity", &ecdsa_key],
    );
    assert!(!only.wait_exit().success());
    let log = only.log().join("\n");
    assert!(log.contains(&format!("tried {ecdsa_key};")), "{log}");
}

/// ^C during a --no-caching run: the remote stops, and its temporary directory goes.
#[test]
fn an_interrupted_no_caching_run_leaves_nothing_behind() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("tmphost");
    let g = init.file_graph("g", &format!("ssh://root@{}", h.ip()), "x");
    let mut run = init.run(&[&g], &["--no-caching"]);
    wait_in(&h, "/tmp/f", "x\n");
    let dirs = h.exec("ls -d /tmp/homeostat.* | wc -l");
    assert_eq!(String::from_utf8_lossy(&dirs.stdout).trim(), "1");
    run.signal(libc::SIGTERM);
    run.wait_exit();
    wait_for(|| h.pids().is_empty().then_some(()))
        .unwrap_or_else(|| panic!("left running: {:?}", h.pids()));
    let dirs = h.exec("ls -d /tmp/homeostat.* 2>/dev/null | wc -l");
    assert_eq!(String::from_utf8_lossy(&dirs.stdout).trim(), "0");
    let log = run.log().join("\n");
    assert!(
        log.contains(&format!("{} | stopped after", h.ip())),
        "{log}"
    );
}

/// No key the host takes, no password in the URL: with --allow-interactive (and a
/// terminal) the password is asked for; without it, nothing is asked.
#[test]
fn a_password_is_asked_for_only_with_allow_interactive() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = SshHost::builder("askhost").password("typed pw").start();
    init.keys.add_known_host(&h);
    let g = init.file_graph("g", &format!("ssh://root@{}", h.ip()), "typed");
    let mut quiet = init.run(&[&g], &["--converged-timeout", "0.5"]);
    assert!(!quiet.wait_exit().success());
    let log = quiet.log().join("\n");
    assert!(log.contains("permission denied"), "{log}");
    assert!(
        !log.contains("password: "),
        "no prompt without --allow-interactive: {log}"
    );

    // `script` gives the run a terminal; what it reads on its input is typed there.
    let local = write_graph(init.dir.path(), "local.yaml", "graph: initiator\n");
    let command = format!(
        "{} run {} --remote {} --client-urls {} --server-urls {} --lease-ttl 2 \
         --remote-binary {} --converged-timeout 0.5 --allow-interactive --tmp-prefix",
        homeostat_tests::binary().display(),
        local.display(),
        g.display(),
        init.client_url,
        init.server_url,
        shipped_binary().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .envs(init.env())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script (util-linux) runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"typed pw\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("password: "), "{text}");
    wait_in(&h, "/tmp/f", "typed\n");
}

/// A graph with a lock file ships exactly its pinned plugin, and its lock file beside it
/// (the host checks the pins again); a lock pinning another build stops the run before
/// any host is reached.
#[test]
fn a_locked_graph_ships_its_pinned_plugin_and_its_lock() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("lockhost");
    let (_p, plugins, grants) = granted_dir(&line_wasm());
    let g = write_graph(
        init.dir.path(),
        "g.yaml",
        &format!(
            "graph: g\nremote: ssh://root@{}\nresources:\n  lineinfile:\n  - name: l\n    path: /tmp/l.conf\n    line: pinned\n",
            h.ip()
        ),
    );
    let plugin_flags = [
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
    ];
    let lock = homeostat(&[&["plugin", "lock", g.to_str().unwrap()][..], &plugin_flags].concat());
    assert!(lock.status.success(), "{}", stderr(&lock));
    let mut run = init.run(
        &[&g],
        &[&["--converged-timeout", "1"][..], &plugin_flags].concat(),
    );
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(status.success(), "{log}");
    wait_in(&h, "/tmp/l.conf", "pinned\n");
    let runs = h.path(Path::new("/var/lib/homeostat/remote/run"));
    let shipped = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .map(|d| d.path().join("tree/g.yaml.lock"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no g.yaml.lock under {}", runs.display()));
    assert_eq!(
        std::fs::read(&shipped).unwrap(),
        std::fs::read(init.dir.path().join("g.yaml.lock")).unwrap()
    );

    // Pinned to another build: refused here, before any host is reached.
    let lock_file = init.dir.path().join("g.yaml.lock");
    let text = std::fs::read_to_string(&lock_file).unwrap();
    let pinned = homeostat_tests::sha256_file(&line_wasm());
    std::fs::write(&lock_file, text.replace(&pinned, &"0".repeat(64))).unwrap();
    std::fs::remove_file(h.path(Path::new("/tmp/l.conf"))).unwrap();
    let mut run = init.run(
        &[&g],
        &[&["--converged-timeout", "1"][..], &plugin_flags].concat(),
    );
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(!status.success(), "{log}");
    assert!(log.contains("for kind `lineinfile` has SHA-256"), "{log}");
    assert_eq!(
        read_in(&h, "/tmp/l.conf"),
        None,
        "the host was reached: {log}"
    );
}

/// `--noop` goes along: the host changes nothing and says what it would, and the
/// initiator exits 2 (changes pending), as a local noop run does.
#[test]
fn noop_reaches_the_remote_and_exits_2() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("noophost");
    let g = init.file_graph("g", &format!("ssh://root@{}", h.ip()), "x");
    let mut run = init.run(&[&g], &["--converged-timeout", "0.5", "--noop"]);
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("would change (noop)"), "{log}");
    assert_eq!(read_in(&h, "/tmp/f"), None, "nothing written");
}

/// A remote that does not stop when asked (a command still running) is killed after
/// the grace period, with the commands it started: nothing is left on the host.
#[test]
fn a_remote_that_does_not_stop_is_killed_with_its_commands() {
    skip_unless_ready!();
    let init = Initiator::new();
    let h = init.host("stuckhost");
    let g = write_graph(
        init.dir.path(),
        "g.yaml",
        &format!(
            "graph: g\nremote: ssh://root@{}\nresources:\n  exec:\n  - name: long\n    cmd: /bin/sleep 300\n",
            h.ip()
        ),
    );
    let mut run = init.run(&[&g], &[]);
    // (The hosts share the machine's pid namespace: look among the host's own.)
    let sleeping = || {
        h.pids().into_iter().any(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
    };
    wait_for(|| sleeping().then_some(())).expect("the command runs on the host");
    run.signal(libc::SIGINT);
    run.wait_exit();
    let log = run.log().join("\n");
    assert!(log.contains("did not stop within 10s; killing it"), "{log}");
    wait_for(|| h.pids().is_empty().then_some(()))
        .unwrap_or_else(|| panic!("left running: {:?}", h.pids()));
}

/// The initiator's World on mutual TLS (docs/security.md): it holds the CA, issues each
/// remote a short-lived certificate (the one in the middle of a tree gets its leaf's
/// too, never the CA key), and every remote uses TLS through its tunnel, checking that
/// the server is the initiator.
#[test]
fn remotes_get_their_own_certificates_and_use_tls_through_the_tunnel() {
    skip_unless_ready!();
    let init = Initiator::new();
    let agent = Agent::start(&init.keys, init.dir.path());
    let dir = init.dir.path();
    let state = dir.join("state");
    let ca_dir = state.join("ca");
    let ca = |args: &[&str]| homeostat_tests::homeostat_ca(&ca_dir, args);
    ca(&["init"]);
    ca(&[
        "issue",
        "root",
        "--out",
        &state.join("tls").display().to_string(),
    ]);

    let mid = init.host("tlsmid");
    let leaf = SshHost::start("tlsleaf", &[init.keys.pub_line(KeyKind::Ed25519)]);
    let addr = mid.link(&leaf);
    init.keys
        .add_known_hosts_line(&format!("{addr} {}", leaf.host_key_line()));
    let graph = |name: &str, url: String, remotes: &str| {
        format!(
            "graph: {name}\nremote: {url}\n{remotes}resources:\n  file:\n  \
             - name: collected\n    path: /tmp/collected/\n  \
             - name: \"@@{name}\"\n    path: /srv/{name}\n    content: \"from {name}\\n\"\n\
             collect:\n- kind: file\n  pattern: /tmp/collected/\n"
        )
    };
    write_graph(
        dir,
        "leaf.yaml",
        &graph("tlsleaf", format!("ssh://root@{addr}"), ""),
    );
    let mid_graph = write_graph(
        dir,
        "mid.yaml",
        &graph(
            "tlsmid",
            format!("ssh://root@{}", mid.ip()),
            "remotes: [leaf.yaml]\n",
        ),
    );
    let mut env = init.env();
    env.retain(|(k, _)| k != "SSH_AUTH_SOCK");
    env.push(("SSH_AUTH_SOCK".into(), agent.socket().display().to_string()));
    let local = write_graph(dir, "local.yaml", "graph: root\n");
    let https = |url: &str| url.replace("http://", "https://");
    let args = [
        "--hostname".into(),
        "root".into(),
        "--prefix".into(),
        state.display().to_string(),
        "--remote".into(),
        mid_graph.display().to_string(),
        "--client-urls".into(),
        https(&init.client_url),
        "--server-urls".into(),
        https(&init.server_url),
        "--lease-ttl".into(),
        "2".into(),
        "--remote-binary".into(),
        shipped_binary().display().to_string(),
        "--converged-timeout".into(),
        "1".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Running::start_env(&local, &args, &env);
    let status = run.wait_exit();
    let log = run.log().join("\n");
    assert!(status.success(), "{log}");
    let (mid_name, leaf_name) = (mid.ip().to_string(), addr.to_string());
    for (host, name) in [(&mid, &mid_name), (&leaf, &leaf_name)] {
        for from in ["tlsmid", "tlsleaf"] {
            assert_eq!(
                read_in(host, &format!("/tmp/collected/{from}")).as_deref(),
                Some(format!("from {from}\n").as_str()),
                "{name} collected {from}\n{log}"
            );
        }
        assert!(
            log.contains(&format!("over mutual TLS as host `{name}`")),
            "{name} is not on TLS:\n{log}"
        );
    }
    // Each remote holds its own key (0600) and the CA certificate, never the CA key.
    let found = mid.exec(
        "stat -c '%a %n' /var/lib/homeostat/remote/run/*/state/tls/host.key; \
         find /var/lib/homeostat/remote -name ca.key",
    );
    let found = String::from_utf8_lossy(&found.stdout);
    assert!(found.starts_with("600 "), "{found}");
    assert!(!found.contains("ca.key"), "{found}");
    let certs = mid.exec("ls /var/lib/homeostat/remote/run/*/certs");
    assert!(String::from_utf8_lossy(&certs.stdout).contains(&leaf_name));
}

/// A World on TLS without the CA at hand: the remotes cannot get certificates, and the
/// run says where the CA was looked for.
#[test]
fn tls_remotes_need_the_ca() {
    skip_unless_ready!();
    let init = Initiator::new();
    let dir = init.dir.path();
    let state = dir.join("state");
    let ca_dir = dir.join("elsewhere");
    for args in [
        &["init"][..],
        &[
            "issue",
            "root",
            "--out",
            &state.join("tls").display().to_string(),
        ],
    ] {
        homeostat_tests::homeostat_ca(&ca_dir, args);
    }
    let g = init.file_graph("g", "ssh://root@192.0.2.1", "x");
    let out = homeostat_tests::homeostat_within_deadline(&[
        "run",
        "--hostname",
        "root",
        "--prefix",
        &state.display().to_string(),
        "--remote",
        &g.display().to_string(),
        "--client-urls",
        &init.client_url.replace("http://", "https://"),
        "--server-urls",
        &init.server_url.replace("http://", "https://"),
    ]);
    let e = homeostat_tests::stderr(&out);
    assert!(!out.status.success(), "{e}");
    assert!(
        e.contains("mutual TLS") && e.contains("--ca-dir") && e.contains("state/ca/ca.crt"),
        "{e}"
    );
}

//! Trust between hosts (docs/security.md, "Between hosts"): certificates made with
//! `homeostat ca`, etcd served and reached over mutual TLS (Debian's `etcd-server`, on
//! loopback ports the tests pick), and the refusals: a host without a certificate, one
//! with another CA's, a certificate for another host, plaintext off loopback.

use std::path::{Path, PathBuf};
use std::process::Output;

use homeostat_tests::{
    Running, client_args, collector_graph, command, exporter_graph, free_port, homeostat_ca,
    homeostat_within_deadline, stderr, wait_for, write_graph,
};

fn https(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// `out` is a failure whose standard error says `needle`.
fn refused_with(out: &Output, needle: &str) {
    let e = stderr(out);
    assert!(
        !out.status.success() && e.contains(needle),
        "want {needle:?} in\n{e}"
    );
}

/// `homeostat ca ARGS`, to completion.
fn ca_out(args: &[&str]) -> Output {
    command()
        .arg("ca")
        .args(args)
        .output()
        .expect("homeostat runs")
}

/// A host's state directory with its certificate from the CA in `ca_dir` in `tls/`.
fn state_with_cert(root: &Path, ca_dir: &Path, host: &str) -> PathBuf {
    let state = root.join(format!("state-{host}"));
    let out = state.join("tls").display().to_string();
    homeostat_ca(ca_dir, &["issue", host, "--out", &out]);
    state
}

/// [`wait_for`] for what takes longer: a membership change (a lease expiry, an etcd
/// start, a promotion), asked every half second for up to 90 s.
fn wait_long<T>(mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(90) {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    None
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A host serving etcd over TLS on fresh ports; returns it and its client URL.
fn tls_server(root: &Path, ca_dir: &Path, graph: &Path, name: &str) -> (Running, String) {
    let state = state_with_cert(root, ca_dir, name);
    let client = free_port();
    let args = [
        "--hostname".into(),
        name.to_owned(),
        "--client-urls".into(),
        https(client),
        "--server-urls".into(),
        https(free_port()),
        "--prefix".into(),
        state.display().to_string(),
        "--lease-ttl".into(),
        "2".into(),
    ];
    let host = Running::start(graph, &strs(&args));
    host.wait_log(&["world: etcd at", "over mutual TLS", name]);
    (host, https(client))
}

/// `etcdctl ARGS` at `seeds` with the certificate in `tls` (a host's `tls/`).
fn etcdctl_as(seeds: &str, tls: &Path, args: &[&str]) -> Output {
    std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            seeds,
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "3s",
        ])
        .arg(format!("--cacert={}", tls.join("ca.crt").display()))
        .arg(format!("--cert={}", tls.join("host.crt").display()))
        .arg(format!("--key={}", tls.join("host.key").display()))
        .args(args)
        .output()
        .expect("etcdctl (Debian's etcd-client) runs")
}

/// `homeostat cluster ARGS --seeds SEEDS` with the certificate of `member` (a state
/// directory under `root`).
fn cluster_as(root: &Path, member: &str, seeds: &str, args: &[&str]) -> Output {
    let state = root.join(format!("state-{member}"));
    command()
        .arg("cluster")
        .args(args)
        .args(["--seeds", seeds, "--prefix"])
        .arg(state)
        .output()
        .expect("homeostat runs")
}

/// Let `host` into the cluster (as a member with `--serve`), as the member `member`.
fn allow(root: &Path, member: &str, seeds: &str, host: &str, extra: &[&str]) {
    let out = cluster_as(root, member, seeds, &[&["allow", host], extra].concat());
    assert!(out.status.success(), "allow {host}: {}", stderr(&out));
}

/// A CA in `root`/ca and host `s` serving etcd over TLS with an empty graph (also
/// returned, for other hosts): the cluster of most tests here.
fn tls_cluster(root: &Path) -> (PathBuf, PathBuf, Running, String) {
    let ca_dir = root.join("ca");
    homeostat_ca(&ca_dir, &["init"]);
    let empty = write_graph(root, "server.yaml", "graph: server\nresources: {}\n");
    let (server, seeds) = tls_server(root, &ca_dir, &empty, "s");
    (ca_dir, empty, server, seeds)
}

#[test]
fn ca_makes_private_keys_and_shows_names_and_expiry() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    homeostat_ca(&dir, &["init", "--name", "test CA"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    // A second init never replaces the CA.
    let d = dir.display().to_string();
    let again = ca_out(&["init", "--dir", &d]);
    refused_with(&again, "never replaced");

    homeostat_ca(
        &dir,
        &[
            "issue",
            "web1",
            "--ip",
            "10.1.2.3",
            "--dns",
            "web1.example",
            "--days",
            "30",
        ],
    );
    assert_eq!(mode(&dir.join("hosts/web1/host.key")), 0o600);
    let shown = homeostat_ca(&dir, &["show"]);
    assert!(shown.contains("CA `test CA`"), "{shown}");
    assert!(
        shown.contains("host `web1`, issued by `test CA`"),
        "{shown}"
    );
    assert!(
        shown.contains("for web1, web1.example, 127.0.0.1, ::1, 10.1.2.3"),
        "{shown}"
    );
    assert!(
        shown.contains("29 days left") || shown.contains("30 days left"),
        "{shown}"
    );

    // No CA: the error says how to make one.
    let none = tmp.path().join("none").display().to_string();
    let out = ca_out(&["issue", "x", "--dir", &none]);
    refused_with(&out, "homeostat ca init --dir");
}

/// Two hosts and a server on mutual TLS share exports; a host with no certificate, or
/// one from another CA, cannot reach the World, and says why.
#[test]
fn hosts_share_a_world_over_mutual_tls_and_strangers_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (ca_dir, empty, _server, seeds) = tls_cluster(root);
    allow(root, "s", &seeds, "e", &[]);
    allow(root, "s", &seeds, "c", &[]);

    let exp = write_graph(root, "exporter.yaml", &exporter_graph("over tls\\n"));
    let state = state_with_cert(root, &ca_dir, "e");
    let _exporter = Running::start(&exp, &strs(&client_args(&state, "e", &seeds)));
    let dest = root.join("collected");
    let col = write_graph(root, "collector.yaml", &collector_graph(&dest, false));
    let state = state_with_cert(root, &ca_dir, "c");
    let _collector = Running::start(&col, &strs(&client_args(&state, "c", &seeds)));
    let motd = dest.join("motd");
    assert!(
        wait_for(|| (std::fs::read_to_string(&motd).ok()? == "over tls\n").then_some(())).is_some(),
        "the export never arrived over TLS"
    );

    // The etcd takes no client without a certificate of the cluster's CA: plaintext
    // etcdctl is refused, as is one with another CA's certificate.
    let port = seeds.rsplit(':').next().unwrap();
    let plain = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &format!("http://127.0.0.1:{port}")])
        .args([
            "--dial-timeout",
            "2s",
            "--command-timeout",
            "3s",
            "get",
            "--prefix",
            "/",
        ])
        .output()
        .expect("etcdctl runs");
    assert!(!plain.status.success(), "plaintext etcdctl read the World");
    let other = root.join("other-ca");
    homeostat_ca(&other, &["init"]);
    let stranger = state_with_cert(root, &other, "x");
    let t = stranger.join("tls");
    assert!(
        !etcdctl_as(&seeds, &t, &["get", "--prefix", "/homeostat/hosts/"])
            .status
            .success(),
        "another CA's certificate read the World"
    );
    // ... while the cluster's own certificate reads it.
    let own = etcdctl_as(
        &seeds,
        &root.join("state-c/tls"),
        &["get", "--prefix", "/homeostat/hosts/", "--keys-only"],
    );
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    assert!(String::from_utf8_lossy(&own.stdout).contains("/homeostat/hosts/e"));

    // homeostat with another CA's certificate does not get in, and says so each time.
    let stranger_host = Running::start(&empty, &strs(&client_args(&stranger, "x", &seeds)));
    stranger_host.wait_log(&["cannot join the cluster", "retrying"]);
    // One with no certificate that speaks plaintext to it is told why, at once.
    let plain_seeds = seeds.replace("https://", "http://");
    let args = client_args(&root.join("state-plain"), "plain", &plain_seeds);
    let out = run_args(&empty, &strs(&args));
    refused_with(&out, "answers in TLS: it serves TLS only");
    // One with no certificate at all is refused before it connects.
    let bare = root.join("state-bare");
    let args = client_args(&bare, "bare", &seeds);
    let out = run_args(&empty, &strs(&args));
    refused_with(&out, "https:// needs this host's TLS files");
}

fn run_args(graph: &Path, args: &[&str]) -> Output {
    let g = graph.display().to_string();
    homeostat_within_deadline(&[&["run", &g, "--converged-timeout", "0"], args].concat())
}

#[test]
fn bad_tls_setups_are_refused_before_anything_connects() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let empty = write_graph(root, "g.yaml", "graph: g\nresources: {}\n");
    let expect = |args: &[&str], needles: &[&str]| {
        let out = run_args(&empty, args);
        let e = stderr(&out);
        assert!(!out.status.success(), "{args:?} ran");
        for n in needles {
            assert!(e.contains(n), "{args:?}: want {n:?} in\n{e}");
        }
    };
    // Plaintext off loopback: refused, saying how to make certificates; --insecure
    // lets it through (and then fails to connect, which is not this test's business).
    expect(
        &[
            "--hostname",
            "h",
            "--seeds",
            "http://192.0.2.1:2379",
            "--no-server",
        ],
        &[
            "refusing plaintext etcd off loopback",
            "homeostat ca init",
            "--insecure",
        ],
    );
    expect(
        &[
            "--hostname",
            "h",
            "--client-urls",
            "http://0.0.0.0:2379",
            "--prefix",
            "/nonexistent",
        ],
        &["--client-urls http://0.0.0.0:2379", "refusing plaintext"],
    );

    let ca_dir = root.join("ca");
    homeostat_ca(&ca_dir, &["init"]);
    let state = state_with_cert(root, &ca_dir, "web1");
    let s = state.display().to_string();
    // With certificates, URLs are https://.
    expect(
        &[
            "--hostname",
            "web1",
            "--prefix",
            &s,
            "--seeds",
            "http://127.0.0.1:1",
            "--no-server",
        ],
        &["this host has TLS certificates", "https://127.0.0.1:1"],
    );
    // Another host's certificate.
    expect(
        &[
            "--hostname",
            "web2",
            "--prefix",
            &s,
            "--seeds",
            "https://127.0.0.1:1",
            "--no-server",
        ],
        &["host.crt", "of host `web1`, not of this host `web2`"],
    );
    // A key others can read.
    let key = state.join("tls/host.key");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    expect(
        &[
            "--hostname",
            "web1",
            "--prefix",
            &s,
            "--seeds",
            "https://127.0.0.1:1",
            "--no-server",
        ],
        &["host.key", "0644", "chmod 600"],
    );
    // Flags naming missing files.
    expect(
        &[
            "--hostname",
            "web1",
            "--cert",
            "/nonexistent/h.crt",
            "--prefix",
            &s,
            "--seeds",
            "https://127.0.0.1:1",
            "--no-server",
        ],
        &["/nonexistent/h.crt: no such file", "homeostat ca issue"],
    );
}

/// Three hosts on TLS grow their etcd to three voting members: peers prove themselves
/// with their certificates too (`--peer-client-cert-auth`), and `cluster status` reads
/// the cluster with a host's certificate.
#[test]
fn a_tls_cluster_grows_to_three_members() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let ca_dir = root.join("ca");
    homeostat_ca(&ca_dir, &["init"]);
    let empty = write_graph(root, "g.yaml", "graph: g\nresources: {}\n");
    let first = https(free_port());
    let mut hosts = Vec::new();
    for name in ["t1", "t2", "t3"] {
        let state = state_with_cert(root, &ca_dir, name);
        let client = if name == "t1" {
            first.clone()
        } else {
            https(free_port())
        };
        let mut args = vec![
            "--hostname".to_owned(),
            name.into(),
            "--client-urls".into(),
            client,
            "--server-urls".into(),
            https(free_port()),
            "--prefix".into(),
            state.display().to_string(),
            "--lease-ttl".into(),
            "2".into(),
        ];
        if name == "t1" {
            args.extend(["--ideal-cluster-size".into(), "3".into()]);
        } else {
            args.extend(["--seeds".into(), first.clone()]);
        }
        let host = Running::start(&empty, &strs(&args));
        host.wait_log(&["world: etcd at", "over mutual TLS", name]);
        hosts.push(host);
        if name == "t1" {
            allow(root, "t1", &first, "t2", &["--serve"]);
            allow(root, "t1", &first, "t3", &["--serve"]);
        }
    }
    let state = root.join("state-t1").display().to_string();
    let voters = wait_long(|| {
        let out = command()
            .args([
                "cluster", "status", "--json", "--seeds", &first, "--prefix", &state,
            ])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let members = v["members"].as_array()?;
        let healthy = members
            .iter()
            .filter(|m| m["healthy"] == true && m["role"] == "voter")
            .count();
        (healthy == 3).then_some(v)
    });
    assert!(
        voters.is_some(),
        "the TLS cluster never had three healthy voters"
    );
    // Without a certificate, `cluster status` cannot read it.
    let out = command()
        .args([
            "cluster",
            "status",
            "--seeds",
            &first,
            "--prefix",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    refused_with(&out, "https:// needs this host's TLS files");
}

/// Per-host rights: on a cluster over TLS, host `a` writes its own keys and nothing
/// else: not `b`'s export (written, changed or deleted), not a volunteer or nominee
/// key; a host allowed only as a host that asks to serve etcd is told why it may not,
/// and runs on; a denied host is cut off, its exports gone.
#[test]
fn a_host_may_write_only_its_own_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (ca_dir, empty, _server, seeds) = tls_cluster(root);
    // Before it is allowed, a host with a good certificate may do nothing.
    let state_a = state_with_cert(root, &ca_dir, "a");
    let a_graph = write_graph(root, "a.yaml", &exporter_graph("from a\\n"));
    let a = Running::start(&a_graph, &strs(&client_args(&state_a, "a", &seeds)));
    a.wait_log(&["permission denied", "homeostat cluster allow"]);
    allow(root, "s", &seeds, "a", &[]);
    a.wait_log(&["world: exported 1 resources"]);

    let state_b = state_with_cert(root, &ca_dir, "b");
    allow(root, "s", &seeds, "b", &[]);
    let b_graph = write_graph(
        root,
        "b.yaml",
        "graph: b\nresources:\n  file:\n  - name: \"@@bfile\"\n    path: /srv/bfile\n    content: \"b\\n\"\n  - name: for-a\n    path: /srv/for-a\n    content: \"only a\\n\"\n    meta:\n      export: [a]\n",
    );
    let b = Running::start(&b_graph, &strs(&client_args(&state_b, "b", &seeds)));
    b.wait_log(&["world: exported 2 resources"]);

    let a_tls = state_a.join("tls");
    let as_a = |args: &[&str]| etcdctl_as(&seeds, &a_tls, args);
    let refused = |args: &[&str]| {
        let out = as_a(args);
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && e.contains("permission denied"),
            "a could {args:?}: {e}"
        );
    };
    let b_export = "/homeostat/exported/*/b/file/bfile";
    refused(&["put", b_export, "{\"path\":\"/etc/shadow\"}"]);
    refused(&["put", "/homeostat/exported/*/b/exec/new", "{}"]);
    refused(&["del", b_export]);
    refused(&["put", "/homeostat/nominated/a", "{}"]);
    refused(&["put", "/homeostat/volunteers/a", "{}"]);
    refused(&["put", "/homeostat/cluster/ideal-size", "1"]);
    refused(&["put", "/homeostat/hosts/b", "{}"]);
    refused(&["put", "/homeostat/values/b/k", "v"]);
    refused(&["get", "--prefix", "/homeostat/state/b/"]);
    // What b exports to itself only, a cannot read.
    refused(&["get", "--prefix", "/homeostat/exported/b/"]);
    // b's export is unchanged.
    let b_tls = state_b.join("tls");
    let got = etcdctl_as(&seeds, &b_tls, &["get", b_export, "--print-value-only"]);
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "{\"content\":\"b\\n\",\"path\":\"/srv/bfile\"}"
    );
    // What a may do: write its own keys, read what it may collect.
    let ok = as_a(&["put", "/homeostat/exported/*/a/file/extra", "{}"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mine = as_a(&["get", "--prefix", "/homeostat/exported/a/", "--keys-only"]);
    assert!(String::from_utf8_lossy(&mine.stdout).contains("/homeostat/exported/a/b/file/for-a"));
    let all = as_a(&["get", "--prefix", "/homeostat/exported/*/", "--keys-only"]);
    assert!(String::from_utf8_lossy(&all.stdout).contains(b_export));

    // A host allowed as a host that asks to serve: a clear error, and it runs on as a
    // client.
    let state_v = state_with_cert(root, &ca_dir, "v");
    allow(root, "s", &seeds, "v", &[]);
    let v_args = [
        client_args(&state_v, "v", &seeds)
            .into_iter()
            .filter(|a| a != "--no-server")
            .collect::<Vec<_>>(),
        vec![
            "--client-urls".into(),
            https(free_port()),
            "--server-urls".into(),
            https(free_port()),
        ],
    ]
    .concat();
    let v = Running::start(&empty, &strs(&v_args));
    v.wait_log(&[
        "this host may not serve etcd",
        "homeostat cluster allow v --serve",
    ]);
    let hosts = etcdctl_as(
        &seeds,
        &a_tls,
        &["get", "/homeostat/hosts/v", "--keys-only"],
    );
    assert!(String::from_utf8_lossy(&hosts.stdout).contains("/homeostat/hosts/v"));

    // Denied: b's exports go at once, and b can write nothing more.
    let out = cluster_as(root, "s", &seeds, &["deny", "b"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let gone = wait_for(|| {
        let left = as_a(&["get", "--prefix", "/homeostat/exported/*/b/", "--keys-only"]);
        String::from_utf8_lossy(&left.stdout)
            .trim()
            .is_empty()
            .then_some(())
    });
    assert!(gone.is_some(), "b's exports outlived its denial");
    let b_put = etcdctl_as(
        &seeds,
        &b_tls,
        &["put", "/homeostat/exported/*/b/file/x", "{}"],
    );
    assert!(!b_put.status.success());
    // A host that is not a member may not let others in.
    let out = cluster_as(root, "a", &seeds, &["allow", "a", "--serve"]);
    refused_with(&out, "permission denied");
    drop(b);
}

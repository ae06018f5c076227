//! Hosts sharing a World on a real etcd (Debian's `etcd-server`), all on loopback ports
//! the tests pick: one homeostat serves a one-member etcd, the others join it with
//! `--seeds`. Every host is a `homeostat run` process with its own state directory and
//! hostname; the etcd a host serves stops with it (SIGTERM, or the kernel's parent-death
//! signal when the test kills it), so nothing outlives a test.

use std::path::Path;
use std::time::Duration;

use homeostat_tests::{
    Running, client_args, collector_graph, exporter_graph, free_port, homeostat_command,
    loopback_url as url, wait_for, write_atomic, write_graph,
};

/// The flags of a host `name` serving etcd on `client` and `peer`, its state in `dir`,
/// with a lease TTL of 2 s: the same flags start it again on the same data.
fn server_args(dir: &Path, name: &str, client: u16, peer: u16) -> Vec<String> {
    let state = dir.join(format!("state-{name}"));
    [
        "--hostname",
        name,
        "--client-urls",
        &url(client),
        "--server-urls",
        &url(peer),
        "--prefix",
        &state.display().to_string(),
        "--lease-ttl",
        "2",
    ]
    .map(String::from)
    .to_vec()
}

/// `args` as `&str`s, for [`Running::start`].
fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A host that serves etcd on two fresh ports; returns it with its client URL.
fn server(dir: &Path, graph: &Path, name: &str, extra: &[&str]) -> (Running, String) {
    let client = free_port();
    let mut args = server_args(dir, name, client, free_port());
    args.extend(extra.iter().map(|s| s.to_string()));
    let host = Running::start(graph, &strs(&args));
    host.wait_log(&["world: etcd at", name]);
    (host, url(client))
}

/// A host that joins the etcd at `seeds` as a client.
fn client(dir: &Path, graph: &Path, name: &str, seeds: &str, extra: &[&str]) -> Running {
    let mut args = client_args(&dir.join(format!("state-{name}")), name, seeds);
    args.extend(extra.iter().map(|s| s.to_string()));
    let host = Running::start(graph, &strs(&args));
    host.wait_log(&["world: etcd at", name]);
    host
}

/// The etcd cluster's id, as `etcdctl endpoint status` reports it: the same after a
/// restart from the data directory, new after a fresh bootstrap.
fn cluster_id(endpoint: &str) -> u64 {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "endpoint", "status", "-w", "json"])
        .output()
        .expect("etcdctl (Debian's etcd-client) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON status");
    v[0]["Status"]["header"]["cluster_id"]
        .as_u64()
        .expect("a cluster id")
}

/// `homeostat run GRAPH --converged-timeout 0.3 EXTRA...` from `dir`, to completion.
fn run_settled(dir: &Path, graph: &Path, extra: &[&str]) -> std::process::Output {
    let g = graph.to_str().unwrap();
    homeostat_command(
        dir,
        &[&["run", g, "--converged-timeout", "0.3"][..], extra].concat(),
    )
    .output()
    .unwrap()
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn wait_gone(path: &Path) {
    assert!(
        wait_for(|| (!path.exists()).then_some(())).is_some(),
        "{} is still there",
        path.display()
    );
}

fn wait_text(path: &Path, text: &str) {
    assert!(
        wait_for(|| (read(path).as_deref() == Some(text)).then_some(())).is_some(),
        "{} never held {text:?} (holds {:?})",
        path.display(),
        read(path)
    );
}

#[test]
fn an_export_reaches_two_collectors_follows_edits_and_vanishes_with_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let (_server, seeds) = server(dir.path(), &empty, "s", &[]);
    let exp_graph = write_graph(dir.path(), "exporter.yaml", &exporter_graph("one\\n"));
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ga = write_graph(dir.path(), "a.yaml", &collector_graph(&a, true));
    let gb = write_graph(dir.path(), "b.yaml", &collector_graph(&b, false));
    let mut exporter = client(dir.path(), &exp_graph, "e", &seeds, &[]);
    let _ca = client(dir.path(), &ga, "ca", &seeds, &[]);
    let cb = client(dir.path(), &gb, "cb", &seeds, &[]);
    // Placed in each collector's own directory; the exporter applies nothing itself.
    wait_text(&a.join("motd"), "one\n");
    wait_text(&b.join("motd"), "one\n");
    assert_eq!(
        exporter.count_log(&["file[motd]"]),
        0,
        "the exporter applied its export"
    );

    // Editing the export swaps the change in on both collectors.
    write_atomic(&exp_graph, &exporter_graph("two\\n"));
    wait_text(&a.join("motd"), "two\n");
    wait_text(&b.join("motd"), "two\n");
    cb.wait_log(&["file[motd]", "changed in the new graph"]);

    // The exporter dies: its export goes with its lease (2 s); the purging collector
    // removes the file, the other drops the vertex and leaves the file.
    exporter.signal(libc::SIGKILL);
    exporter.wait_exit();
    wait_gone(&a.join("motd"));
    cb.wait_log(&["graph `collector` swapped in", "1 removed"]);
    assert_eq!(read(&b.join("motd")).as_deref(), Some("two\n"));
}

#[test]
fn a_restarted_server_comes_back_with_its_exports_and_collectors_reapply_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exp_graph = write_graph(dir.path(), "exporter.yaml", &exporter_graph("kept\\n"));
    let client_port = free_port();
    let state = dir.path().join("state-s");
    let args = server_args(dir.path(), "s", client_port, free_port());
    let args = strs(&args);
    let mut server = Running::start(&exp_graph, &args);
    server.wait_log(&["world: exported 1 resources"]);
    let c = dir.path().join("c");
    let gc = write_graph(dir.path(), "c.yaml", &collector_graph(&c, false));
    let collector = client(dir.path(), &gc, "c", &url(client_port), &[]);
    wait_text(&c.join("motd"), "kept\n");
    let before = cluster_id(&url(client_port));
    assert!(server.stop().success());
    assert!(
        !std::process::Command::new("pgrep")
            .args(["-f", &format!("data-dir={}", state.join("etcd").display()),])
            .status()
            .unwrap()
            .success(),
        "etcd outlived the homeostat that served it"
    );

    // Same flags: etcd comes back from its data directory, not a fresh bootstrap. The
    // clean stop revoked the server's lease, so its export left and comes back.
    let mut server = Running::start(&exp_graph, &args);
    server.wait_log(&["world: exported 1 resources"]);
    assert_eq!(
        cluster_id(&url(client_port)),
        before,
        "etcd bootstrapped a new cluster"
    );
    // Killed this time: its export stays in etcd on the dead run's lease, which etcd
    // restores with its data. The next run must move it to its own lease, or it would
    // vanish a TTL later.
    server.signal(libc::SIGKILL);
    server.wait_exit();
    let server = Running::start(&exp_graph, &args);
    server.wait_log(&["running graph `exporter`"]);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        exported_keys(&url(client_port)).contains("/homeostat/exported/*/s/file/motd"),
        "the export vanished with the killed run's lease"
    );
    // Through all of it the collector rewrote nothing: the file was created once.
    assert_eq!(read(&c.join("motd")).as_deref(), Some("kept\n"));
    assert_eq!(collector.count_log(&["file[motd]: create file"]), 1);
    assert_eq!(collector.count_log(&["file[motd]: content"]), 0);
    drop(server);
}

/// The keys under `/homeostat/exported/`, one per line, as `etcdctl` lists them.
fn exported_keys(endpoint: &str) -> String {
    let out = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            endpoint,
            "get",
            "--prefix",
            "--keys-only",
            "/homeostat/exported/",
        ])
        .output()
        .expect("etcdctl (Debian's etcd-client) runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plugin_state_and_exports_survive_a_restart_in_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    // A kmsg fact counts records since it started; its cursor is its `state` value.
    let g = write_graph(
        dir.path(),
        "g.yaml",
        "graph: g\nresources:\n  kmsg:\n  - name: k\n    since: now\n  file:\n  - name: \"@@x\"\n    path: /srv/x\n",
    );
    let run = |g: &Path| {
        let out = run_settled(dir.path(), g, &["--prefix", state.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = run(&g);
    assert!(first.contains("world: exported 1 resources"), "{first}");
    let db = std::fs::read(state.join("world.redb")).unwrap();
    let has = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"state/"), "no kmsg cursor was saved");
    assert!(has(b"exported/*/"), "no export was saved");
    // The same graph again: the export is unchanged (nothing written).
    let second = run(&g);
    assert!(!second.contains("world: exported"), "{second}");
    // Without the export: the earlier run's export is retracted.
    let g2 = write_graph(
        dir.path(),
        "g2.yaml",
        "graph: g\nresources:\n  kmsg:\n  - name: k\n    since: now\n",
    );
    let third = run(&g2);
    assert!(third.contains("retracted 1"), "{third}");
}

#[test]
fn duplicate_exporters_and_rejected_params_are_errors_and_the_rest_runs() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let (_server, seeds) = server(dir.path(), &empty, "s", &[]);
    let e1 = write_graph(dir.path(), "e1.yaml", &exporter_graph("from e1\\n"));
    let e2 = write_graph(dir.path(), "e2.yaml", &exporter_graph("from e2\\n"));
    let _x1 = client(dir.path(), &e1, "e1", &seeds, &[]);
    let _x2 = client(dir.path(), &e2, "e2", &seeds, &[]);
    // An export no homeostat would write (a relative path), as an older or foreign
    // exporter might: the collector's own plugin rejects it.
    let put = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &seeds,
            "put",
            "/homeostat/exported/*/old/file/bad",
            r#"{"path": "relative/bad", "content": "x"}"#,
        ])
        .output()
        .expect("etcdctl (Debian's etcd-client) runs");
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let c = dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    let gc = write_graph(
        dir.path(),
        "c.yaml",
        &format!(
            "graph: c\nresources:\n  file:\n  - name: own\n    path: {}/own\n    content: mine\ncollect:\n- kind: file\n",
            c.display()
        ),
    );
    let collector = client(dir.path(), &gc, "c", &seeds, &[]);
    collector.wait_log(&[
        "file[motd] is exported to this host by `e1` and `e2`",
        "collecting neither",
    ]);
    collector.wait_log(&[
        "world:exported/*/old/file/bad",
        "collected resource left out",
    ]);
    wait_text(&c.join("own"), "mine");
    assert!(!c.join("motd").exists());
}

#[test]
fn every_live_host_converges_before_a_cluster_run_exits() {
    let dir = tempfile::tempdir().unwrap();
    let slow = |secs: u32, marker: &Path| {
        format!(
            "graph: slow\nresources:\n  exec:\n  - name: work\n    shell: /bin/sh\n    cmd: \"sleep {secs} && touch {}\"\n    creates: {}\n",
            marker.display(),
            marker.display()
        )
    };
    let gs = write_graph(dir.path(), "s.yaml", &slow(1, &dir.path().join("s-done")));
    let gc = write_graph(dir.path(), "c.yaml", &slow(4, &dir.path().join("c-done")));
    let (mut s, seeds) = server(dir.path(), &gs, "s", &["--converged-timeout", "1"]);
    let mut c = client(dir.path(), &gc, "c", &seeds, &["--converged-timeout", "1"]);
    // The server settles first but waits for the client.
    assert!(c.wait_exit().success());
    assert!(s.wait_exit().success());
    let line = s.wait_log(&["every host has converged"]);
    assert!(
        line.contains("s (converged)") && line.contains("c (converged)"),
        "{line}"
    );
    assert!(dir.path().join("c-done").exists());
}

#[test]
fn bad_cluster_flags_and_environments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let g = write_graph(dir.path(), "g.yaml", "graph: g\nresources: {}\n");
    let g = g.to_str().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = homeostat_command(dir.path(), &[&["run", g][..], args].concat());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = homeostat_tests::output_within_deadline(cmd);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A port in use.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, err) = run(
        &[
            "--client-urls",
            &url(port),
            "--server-urls",
            &url(free_port()),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot serve etcd on {}", url(port))) && err.contains("in use"),
        "{err}"
    );
    // etcd not installed (not on PATH): the error names the package.
    let (code, err) = run(
        &[
            "--client-urls",
            &url(free_port()),
            "--server-urls",
            &url(free_port()),
        ],
        &[("PATH", "/nonexistent")],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("`etcd-server`"), "{err}");
    // A data directory homeostat did not create.
    let foreign = dir.path().join("foreign");
    std::fs::create_dir_all(foreign.join("etcd/member")).unwrap();
    let (code, err) = run(
        &[
            "--client-urls",
            &url(free_port()),
            "--server-urls",
            &url(free_port()),
            "--prefix",
            foreign.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("homeostat did not create"), "{err}");
    // Flags that contradict each other.
    let (code, err) = run(&["--no-server"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--no-server needs --seeds"), "{err}");
}

#[test]
fn unreachable_seeds_are_retried_with_an_error_each_time_and_a_signal_ends_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let g = write_graph(dir.path(), "g.yaml", "graph: g\nresources: {}\n");
    let seeds = url(free_port());
    let mut host = Running::start(
        &g,
        &["--seeds", &seeds, "--no-server", "--hostname", "lost"],
    );
    host.wait_log(&["cannot join the cluster", &seeds, "retrying in 0.5 s"]);
    host.wait_log(&["cannot join the cluster", "retrying in 1.0 s"]);
    host.signal(libc::SIGTERM);
    // Nothing was applied: interrupted while starting, 128 + SIGTERM.
    assert_eq!(host.wait_exit().code(), Some(143));
}

/// A graph with a `kv` (0.2 plugin) that sets this host's value of `greeting` and a file
/// (0.1 plugin) that receives every host's values.
fn kv_graph(dir: &Path, host: &str) -> String {
    format!(
        "graph: kv\nresources:\n  kv:\n  - name: greeting\n    key: greeting\n    value: hello from {host}\n  file:\n  - name: seen\n    path: {}/seen-{host}\n    content: \"\"\nedges:\n- from: {{kind: kv, name: greeting}}\n  to: {{kind: file, name: seen}}\n  send: {{values: content}}\n",
        dir.display()
    )
}

#[test]
fn kv_values_cross_hosts_through_send_recv() {
    let dir = tempfile::tempdir().unwrap();
    let ga = write_graph(dir.path(), "a.yaml", &kv_graph(dir.path(), "a"));
    let gb = write_graph(dir.path(), "b.yaml", &kv_graph(dir.path(), "b"));
    let (_a, seeds) = server(dir.path(), &ga, "a", &[]);
    let b = client(dir.path(), &gb, "b", &seeds, &[]);
    let both = r#"{"a":"hello from a","b":"hello from b"}"#;
    // Each host's file holds what both hosts set: a's learnt b's value when b set it.
    wait_text(&dir.path().join("seen-a"), both);
    wait_text(&dir.path().join("seen-b"), both);
    // `state: absent` on b (a live edit) removes b's value everywhere; present again
    // brings it back.
    let absent =
        kv_graph(dir.path(), "b").replace("    value: hello from b\n", "    state: absent\n");
    write_atomic(&gb, &absent);
    wait_text(&dir.path().join("seen-a"), r#"{"a":"hello from a"}"#);
    write_atomic(&gb, &kv_graph(dir.path(), "b"));
    wait_text(&dir.path().join("seen-a"), both);
    // b leaves: its value goes with its lease, and a's file follows.
    drop(b);
    wait_text(&dir.path().join("seen-a"), r#"{"a":"hello from a"}"#);
}

#[test]
fn a_bad_world_key_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let g = write_graph(
        dir.path(),
        "g.yaml",
        "graph: g\nresources:\n  kv:\n  - name: bad\n    key: a/b\n    value: x\n",
    );
    let out = homeostat_command(dir.path(), &["validate", g.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("g.yaml:5:10") && err.contains("cannot be part of a key"),
        "{err}"
    );
}

/// A graph of one `worldly` test resource making the `world` call `call`.
fn worldly(dir: &Path, call: &str) -> std::path::PathBuf {
    write_graph(
        dir,
        &format!("{call}.yaml"),
        &format!("graph: w\nresources:\n  worldly:\n  - name: w\n    call: {call}\n"),
    )
}

#[test]
fn world_calls_are_refused_outside_their_phase_and_noop_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = homeostat_tests::test_plugins();
    let plugins = plugins.to_str().unwrap();
    let stderr = |args: &[&str]| {
        let out = homeostat_command(dir.path(), args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (call, want) in [
        (
            "put-in-validate",
            "put in validate: refused: world.put is not allowed from validate",
        ),
        (
            "get-in-validate",
            "get in validate: refused: world.get is not allowed from validate",
        ),
        (
            "key",
            "watch of ../x: refused: '/' cannot be part of a world key",
        ),
    ] {
        let g = worldly(dir.path(), call);
        let (code, err) = stderr(&["validate", g.to_str().unwrap(), "--plugin-dir", plugins]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(want), "{call}: {err}");
    }
    // `run` of the graph `g`, settled for 0.2 s, with `extra` flags.
    let run = |g: &Path, extra: &[&str]| {
        let g = g.to_str().unwrap();
        let args = [
            &[
                "run",
                g,
                "--converged-timeout",
                "0.2",
                "--plugin-dir",
                plugins,
            ],
            extra,
        ];
        stderr(&args.concat())
    };
    let (code, err) = run(&worldly(dir.path(), "watch-in-check"), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("world.watch is only allowed from validate"),
        "{err}"
    );
    // A noop check-apply may read but never write the World.
    let g = worldly(dir.path(), "put");
    let (code, err) = run(&g, &["--noop"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("put (apply: false): refused: world.put is not allowed from a check-apply that does not apply (noop)"), "{err}");
    let (code, err) = run(&g, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("worldly[w]: put k"), "{err}");
}

#[test]
fn a_0_1_plugin_and_a_0_2_plugin_run_in_one_graph() {
    let inspect = |which: &str| {
        let out = homeostat_tests::command()
            .args(["plugin", "inspect", which])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(inspect("bundled:file").contains("api:          homeostat:resource@0.1.0"));
    let kv = inspect("bundled:kv");
    assert!(
        kv.contains("api:          homeostat:resource@0.2.0"),
        "{kv}"
    );
    assert!(kv.contains("homeostat:resource/world@0.2.0"), "{kv}");
    // The graph of `kv_values_cross_hosts_through_send_recv` has both, in one host.
    let dir = tempfile::tempdir().unwrap();
    let g = write_graph(dir.path(), "g.yaml", &kv_graph(dir.path(), "solo"));
    let out = run_settled(dir.path(), &g, &["--hostname", "solo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(&dir.path().join("seen-solo")).as_deref(),
        Some(r#"{"solo":"hello from solo"}"#)
    );
}

#[test]
fn noop_publishes_no_export() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let g = write_graph(dir.path(), "g.yaml", &exporter_graph("x\\n"));
    let out = run_settled(
        dir.path(),
        &g,
        &["--noop", "--prefix", state.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("world: would export 1 resources (noop: nothing is published)"),
        "{err}"
    );
    let db = std::fs::read(state.join("world.redb")).unwrap();
    assert!(
        !db.windows(9).any(|w| w == b"exported/"),
        "a noop run published an export"
    );
}

#[test]
fn an_etcd_that_dies_is_restarted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let (server, seeds) = server(dir.path(), &empty, "s", &[]);
    let etcd_pid = || {
        let out = std::process::Command::new("pgrep")
            .args([
                "-f",
                &format!("data-dir={}", dir.path().join("state-s/etcd").display()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i32>()
            .ok()
    };
    let first = etcd_pid().expect("the served etcd runs");
    // SAFETY: kill(2) on a pid read from pgrep.
    unsafe { libc::kill(first, libc::SIGKILL) };
    server.wait_log(&["etcd: exited", "restarting in"]);
    assert!(
        wait_for(|| etcd_pid().filter(|p| *p != first)).is_some(),
        "etcd was not restarted"
    );
    // It serves again: a client joins and its export reaches a collector on the server's
    // etcd (its data came back from the data directory).
    let exp = write_graph(dir.path(), "e.yaml", &exporter_graph("after\\n"));
    let _e = client(dir.path(), &exp, "e", &seeds, &[]);
    let c = dir.path().join("c");
    let gc = write_graph(dir.path(), "c.yaml", &collector_graph(&c, false));
    let _c = client(dir.path(), &gc, "c", &seeds, &[]);
    wait_text(&c.join("motd"), "after\n");
}

#[test]
fn a_host_collects_its_own_exports_from_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let g = write_graph(
        dir.path(),
        "g.yaml",
        &format!(
            "graph: self\nresources:\n  file:\n  - name: \"@@motd\"\n    path: /srv/motd\n    content: mine\n  - name: out\n    path: {}/\ncollect:\n- kind: file\n  pattern: {}/\n",
            out.display(),
            out.display()
        ),
    );
    let state = dir.path().join("state");
    let host = Running::start(&g, &["--prefix", state.to_str().unwrap()]);
    wait_text(&out.join("motd"), "mine");
    host.wait_log(&["world: exported 1 resources"]);
}

#[test]
fn cluster_status_shows_members_and_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let (_s, seeds) = server(dir.path(), &empty, "s", &[]);
    let _c = client(dir.path(), &empty, "c", &seeds, &[]);
    let status = |extra: &[&str]| {
        let out = homeostat_tests::command()
            .args([&["cluster", "status", "--seeds", &seeds][..], extra].concat())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = status(&[]);
    assert!(
        text.contains("  s (voter) leader healthy clients http://127.0.0.1:"),
        "{text}"
    );
    // Each host is busy until it has been settled for 5 s, then converged.
    for host in ["c", "s"] {
        let listed = ["busy", "converged"]
            .iter()
            .any(|state| text.contains(&format!("\n  {host} {state}\n")));
        assert!(listed, "{host} is not listed as a live host: {text}");
    }
    let json: serde_json::Value = serde_json::from_str(&status(&["--json"])).unwrap();
    assert_eq!(json["members"][0]["name"], "s");
    assert_eq!(json["members"][0]["role"], "voter");
    assert_eq!(json["members"][0]["leader"], true);
    assert!(
        json["hosts"].get("c").is_some() && json["hosts"].get("s").is_some(),
        "{json}"
    );
    // Nothing answers: a clear error, exit 1.
    let out = homeostat_tests::command()
        .args(["cluster", "status", "--seeds", &url(free_port())])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot read the cluster's status from http://127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn exports_etcd_refused_are_published_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let client_port = free_port();
    let args = server_args(dir.path(), "s", client_port, free_port());
    let mut s = Running::start(&empty, &strs(&args));
    s.wait_log(&["world: etcd at"]);
    let seeds = url(client_port);
    let exp = write_graph(dir.path(), "e.yaml", &exporter_graph("one\\n"));
    let e = client(dir.path(), &exp, "e", &seeds, &[]);
    let c = dir.path().join("c");
    let gc = write_graph(dir.path(), "c.yaml", &collector_graph(&c, false));
    let _c = client(dir.path(), &gc, "c", &seeds, &[]);
    wait_text(&c.join("motd"), "one\n");
    // etcd goes (its host killed), and the exporter's graph changes meanwhile.
    s.signal(libc::SIGKILL);
    s.wait_exit();
    write_atomic(&exp, &exporter_graph("two\\n"));
    e.wait_log(&["cannot publish this host's exports", "retrying every 2 s"]);
    // etcd is back: the export is published without another edit.
    let _s = Running::start(&empty, &strs(&args));
    e.wait_log(&["this host's exports are published again"]);
    wait_text(&c.join("motd"), "two\n");
}

/// `collect: [{..., hosts: [e1]}]` takes only what `e1` exports: `e2`'s export of the
/// same kind, already in the World, is not collected.
#[test]
fn a_collect_limited_to_named_hosts_ignores_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write_graph(dir.path(), "server.yaml", "graph: server\nresources: {}\n");
    let (_server, seeds) = server(dir.path(), &empty, "s", &[]);
    let exporter = |name: &str| {
        write_graph(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "graph: {name}\nresources:\n  file:\n  - name: \"@@from-{name}\"\n    path: /srv/from-{name}\n    content: \"{name}\\n\"\n"
            ),
        )
    };
    let e2 = client(dir.path(), &exporter("e2"), "e2", &seeds, &[]);
    e2.wait_log(&["world: exported 1 resources"]);
    let _e1 = client(dir.path(), &exporter("e1"), "e1", &seeds, &[]);
    let d = dir.path().join("collected");
    let graph = write_graph(
        dir.path(),
        "collector.yaml",
        &format!(
            "graph: collector\nresources:\n  file:\n  - name: own\n    path: {}/\ncollect:\n- kind: file\n  pattern: {}/\n  hosts: [e1]\n",
            d.display(),
            d.display()
        ),
    );
    let _c = client(dir.path(), &graph, "c", &seeds, &[]);
    wait_text(&d.join("from-e1"), "e1\n");
    assert_eq!(read(&d.join("from-e2")), None, "collected from e2");
}

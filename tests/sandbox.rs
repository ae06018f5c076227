//! Bad input and hostile plugins: each fails alone with a clear error, nothing crashes,
//! and the rest of the graph still converges.

use std::path::Path;

use homeostat_tests::{
    Running, homeostat, run_converged, stderr, test_plugins, wait_content, write_graph,
};

/// A graph with one hostile resource of `kind` and one ordinary file.
fn hostile_graph(dir: &Path, kind: &str, extra: &str) -> std::path::PathBuf {
    write_graph(
        dir,
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  {kind}:\n  - name: bad\n    path: {}\n{extra}  file:\n  - name: good\n    path: {}\n    content: \"ok\\n\"\n",
            dir.join("bad").display(),
            dir.join("good").display()
        ),
    )
}

fn run_hostile(
    kind: &str,
    extra: &str,
    flags: &[&str],
) -> (tempfile::TempDir, String, Option<i32>) {
    let t = tempfile::tempdir().unwrap();
    let g = hostile_graph(t.path(), kind, extra);
    let plugins = test_plugins();
    let mut args = vec![
        "run",
        g.to_str().unwrap(),
        "--converged-timeout",
        "0.5",
        "--plugin-dir",
        plugins.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = homeostat(&args);
    let err = stderr(&out);
    assert_ne!(
        out.status.code(),
        Some(101),
        "the host must not panic:\n{err}"
    );
    assert!(
        !err.contains("panicked at host/"),
        "the host must not panic:\n{err}"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("good")).unwrap(),
        "ok\n",
        "the good resource converged:\n{err}"
    );
    (t, err, out.status.code())
}

#[test]
fn a_trapping_plugin_fails_alone() {
    let (_t, err, code) = run_hostile("trap", "", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("trap[bad]") && err.contains("trapped"),
        "{err}"
    );
    assert!(
        err.contains("it panicked at hostile/src/lib.rs") && err.contains("deliberate trap"),
        "the plugin's panic message and location are shown:\n{err}"
    );
}

#[test]
fn an_endless_loop_is_stopped_by_the_cpu_budget() {
    let (_t, err, code) = run_hostile("spin", "", &["--plugin-cpu", "300"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("spin[bad]") && err.contains("CPU budget of 300ms"),
        "{err}"
    );
}

#[test]
fn a_memory_hog_is_stopped_by_the_memory_cap() {
    let (_t, err, code) = run_hostile("hog", "", &["--plugin-memory", "16"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("hog[bad]") && err.contains("ran out of memory") && err.contains("16 MiB"),
        "{err}"
    );
}

#[test]
fn a_read_outside_the_footprint_is_refused() {
    let (_t, err, code) = run_hostile("escape", "    target: /etc/shadow\n", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("escape[bad]") && err.contains("/etc/shadow") && err.contains("footprint"),
        "{err}"
    );
    assert!(!err.contains("bytes it should not have"), "{err}");
}

#[test]
fn a_command_line_outside_the_footprint_is_refused() {
    let (_t, err, code) = run_hostile("runaway", "    target: /bin/sh -c id\n", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("runaway[bad]")
            && err.contains("command `/bin/sh -c id` is not among the command lines"),
        "{err}"
    );
    assert!(!err.contains("should not have"), "{err}");
}

#[test]
fn an_undeclared_capability_is_refused() {
    let (_t, err, code) = run_hostile("unitgrab", "    target: ssh.service\n", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("unitgrab[bad]") && err.contains("did not declare the `systemd` capability"),
        "{err}"
    );
    assert!(!err.contains("should not have"), "{err}");
}

#[test]
fn the_engine_keeps_repairing_after_a_trap() {
    let t = tempfile::tempdir().unwrap();
    let g = hostile_graph(t.path(), "trap", "");
    let plugins = test_plugins();
    let mut run = Running::start(&g, &["--plugin-dir", plugins.to_str().unwrap()]);
    let good = t.path().join("good");
    wait_content(&good, "ok\n");
    run.wait_log(&["trap[bad]", "trapped"]);
    // The trap's instance is gone; a trigger makes it trap again, and still nothing else suffers.
    std::fs::write(t.path().join("bad"), "poke").unwrap();
    std::fs::write(&good, "drift\n").unwrap();
    wait_content(&good, "ok\n");
    assert!(run.alive());
}

fn plugin_dir_with(name: &str, bytes: &[u8]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(name), bytes).unwrap();
    d
}

fn validate_with_plugin_dir(dir: &Path) -> (bool, String) {
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  file:\n  - name: f\n    path: /tmp/x\n",
    );
    let out = homeostat(&[
        "validate",
        g.to_str().unwrap(),
        "--plugin-dir",
        dir.to_str().unwrap(),
    ]);
    (out.status.success(), stderr(&out))
}

#[test]
fn a_core_module_is_not_a_plugin() {
    let d = plugin_dir_with("core.wasm", b"\0asm\x01\0\0\0");
    let (ok, err) = validate_with_plugin_dir(d.path());
    assert!(!ok);
    assert!(
        err.contains("core.wasm")
            && err.contains("not a component")
            && err.contains("wasm32-wasip2"),
        "{err}"
    );
}

#[test]
fn a_truncated_plugin_is_refused() {
    let real = std::fs::read(test_plugins().join("hostile.wasm")).unwrap();
    let d = plugin_dir_with("cut.wasm", &real[..real.len() / 2]);
    let (ok, err) = validate_with_plugin_dir(d.path());
    assert!(!ok);
    assert!(err.contains("cut.wasm"), "{err}");
}

#[test]
fn a_kind_provided_twice_names_both() {
    let d = tempfile::tempdir().unwrap();
    let real = std::fs::read(test_plugins().join("hostile.wasm")).unwrap();
    std::fs::write(d.path().join("a.wasm"), &real).unwrap();
    std::fs::write(d.path().join("b.wasm"), &real).unwrap();
    let (ok, err) = validate_with_plugin_dir(d.path());
    assert!(!ok);
    assert!(
        err.contains("a.wasm") && err.contains("b.wasm") && err.contains("provided by both"),
        "{err}"
    );
}

#[test]
fn a_missing_plugin_kind_is_named() {
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        "graph: t\nresources:\n  augeas:\n  - name: x\n    lens: Sshd.lns\n",
    );
    let out = homeostat(&["validate", g.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("g.yaml:3:") && err.contains("augeas"), "{err}");
}

#[test]
fn a_failing_resource_is_retried_per_its_metaparams() {
    let t = tempfile::tempdir().unwrap();
    let marker = t.path().join("ready");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  flaky:\n  - name: f\n    path: {}\n    meta: {{retry: -1, delay: 50}}\n",
            marker.display()
        ),
    );
    let plugins = test_plugins();
    let mut run = Running::start(
        &g,
        &[
            "--converged-timeout",
            "0.5",
            "--plugin-dir",
            plugins.to_str().unwrap(),
        ],
    );
    // It fails (the marker is missing) and keeps retrying: a resource still retrying is
    // not converged, so the run does not exit.
    run.wait_log(&["flaky[f]", "does not exist yet"]);
    let first = run.count_log(&["flaky[f]", "does not exist yet"]);
    let retried = homeostat_tests::wait_for(|| {
        (run.count_log(&["flaky[f]", "does not exist yet"]) > first).then_some(())
    });
    assert!(retried.is_some(), "the failure is retried after `delay`");
    assert!(
        run.alive(),
        "a resource still retrying keeps the run from converging"
    );
    // Once the cause is gone, the next retry succeeds and the run converges with exit 0.
    std::fs::write(&marker, "").unwrap();
    let status = run.wait_exit();
    assert!(
        status.success(),
        "converged after the retry succeeded: {status:?}"
    );
}

#[test]
fn a_socket_is_refused() {
    // A listener the plugin tries to reach: it must never see a connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let (_t, err, code) = run_hostile("socket", &format!("    target: {addr}\n"), &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("socket[bad]") && err.contains("network refused"),
        "{err}"
    );
    assert!(!err.contains("should not have"), "{err}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "the plugin reached the listener"
    );
}

#[test]
fn a_server_that_spins_is_stopped_by_its_cpu_budget() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = port.local_addr().unwrap();
    drop(port);
    let (_t, err, code) = run_hostile(
        "servespin",
        &format!("    target: {addr}\n"),
        &["--plugin-cpu", "300"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("servespin[bad]: not serving")
            && err.contains("more than its CPU budget of 300ms"),
        "{err}"
    );
}

#[test]
fn a_server_binds_only_its_declared_addresses() {
    let (_t, err, code) = run_hostile("netescape", "    target: 127.0.0.1:6000\n", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("netescape[bad]: not serving")
            && err.contains("binding udp 127.0.0.1:6001 is outside this resource's footprint")
            && err.contains("it declared udp 127.0.0.1:6000"),
        "{err}"
    );
    assert!(
        err.contains("check-apply socket refused")
            && err.contains("only available to a resource's `serve` call"),
        "{err}"
    );
    assert!(!err.contains("should not have"), "{err}");
}

/// A grants file holding `text`, in a new temporary directory.
fn grants_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("grants.toml");
    std::fs::write(&p, text).unwrap();
    (d, p)
}

#[test]
fn an_ungranted_third_party_plugin_gets_nothing() {
    let sha = homeostat_tests::sha256_file(&test_plugins().join("hostile.wasm"));
    let (_g, grants) = grants_file("[plugins]\n");
    let (_t, err, code) = run_hostile("flaky", "", &["--grants", grants.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    // Warned at load, with the line granting everything it declares ...
    assert!(
        err.contains("is not granted [fs, process, net]")
            && err.contains(&format!(
                "hostile = {{ sha256 = \"{sha}\", capabilities = [\"fs\", \"process\", \"net\"] }}"
            )),
        "{err}"
    );
    // ... and the call fails closed, naming plugin, capability and the line allowing it.
    assert!(
        err.contains("flaky[bad]")
            && err.contains("plugin `hostile 0.1.0`")
            && err.contains("not granted the `fs` capability")
            && err.contains("has no grant for plugin `hostile`")
            && err.contains(&format!(
                "hostile = {{ sha256 = \"{sha}\", capabilities = [\"fs\"] }}"
            )),
        "{err}"
    );
}

#[test]
fn a_grant_for_another_build_does_not_count() {
    let sha = homeostat_tests::sha256_file(&test_plugins().join("hostile.wasm"));
    let other = "ab".repeat(32);
    let (_g, grants) = grants_file(&format!(
        "[plugins]\nhostile = {{ sha256 = \"{other}\", capabilities = [\"fs\"] }}\n"
    ));
    let (_t, err, code) = run_hostile("flaky", "", &["--grants", grants.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("flaky[bad]")
            && err.contains(&format!("is for sha256 {other}"))
            && err.contains(&sha),
        "{err}"
    );
}

#[test]
fn a_granted_plugin_gets_only_what_it_declares_and_is_granted() {
    let sha = homeostat_tests::sha256_file(&test_plugins().join("hostile.wasm"));
    // `fs` granted: flaky works (its file exists, so it converges) ...
    let (_g, grants) = grants_file(&format!(
        "[plugins]\nhostile = {{ sha256 = \"{sha}\", capabilities = [\"fs\"] }}\n"
    ));
    let t = tempfile::tempdir().unwrap();
    let g = hostile_graph(t.path(), "flaky", "");
    std::fs::write(t.path().join("bad"), "").unwrap();
    let plugins = test_plugins();
    let args = [
        "run",
        g.to_str().unwrap(),
        "--converged-timeout",
        "0.5",
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
    ];
    let out = homeostat(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    // ... but `process`, declared and not granted, is refused with the line adding it.
    let (_t, err, code) = run_hostile(
        "runaway",
        "    target: /bin/true\n",
        &["--grants", grants.to_str().unwrap()],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("runaway[bad]")
            && err.contains("not granted the `process` capability")
            && err.contains("grants `hostile` only [fs]")
            && err.contains("capabilities = [\"fs\", \"process\"]"),
        "{err}"
    );
}

#[test]
fn unusable_plugin_files_fail_alone() {
    let d = tempfile::tempdir().unwrap();
    let real = std::fs::read(test_plugins().join("hostile.wasm")).unwrap();
    std::fs::write(d.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(d.path().join("cut.wasm"), &real[..real.len() / 2]).unwrap();
    std::fs::copy(
        test_plugins().join("broken/broken_import.wasm"),
        d.path().join("nope.wasm"),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: good\n    path: {}\n    content: \"ok\\n\"\n",
            good.display()
        ),
    );
    let out = run_converged(&g, "0.5", &["--plugin-dir", d.path().to_str().unwrap()]);
    let err = stderr(&out);
    assert!(out.status.success(), "the rest runs and converges:\n{err}");
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "ok\n");
    assert!(
        err.contains("core.wasm") && err.contains("not a component"),
        "{err}"
    );
    assert!(
        err.contains("cut.wasm") && err.contains("not a valid WebAssembly component"),
        "{err}"
    );
    assert!(
        err.contains("nope.wasm")
            && err.contains("imports `test:nope/nope`")
            && err.contains("does not provide"),
        "{err}"
    );

    // A graph using the kind of the plugin that could not be linked says why it is missing.
    let g = write_graph(
        t.path(),
        "n.yaml",
        "graph: t\nresources:\n  nope:\n  - name: x\n",
    );
    let out = homeostat(&[
        "validate",
        g.to_str().unwrap(),
        "--plugin-dir",
        d.path().to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("n.yaml:3:")
            && err.contains("resource kind `nope` is unavailable")
            && err.contains("test:nope/nope"),
        "{err}"
    );
}

#[test]
fn a_bundled_kind_cannot_be_shadowed() {
    // The hostile plugin with its `trap` kind renamed `file` (same length: the manifest
    // section keeps its size).
    let mut wasm = std::fs::read(test_plugins().join("hostile.wasm")).unwrap();
    let (from, to) = (b"[kinds.\"trap\"", b"[kinds.\"file\"");
    let mut n = 0;
    for i in 0..wasm.len() - from.len() {
        if &wasm[i..i + from.len()] == from {
            wasm[i..i + to.len()].copy_from_slice(to);
            n += 1;
        }
    }
    assert!(n > 0, "the manifest names the kind");
    let d = plugin_dir_with("shadow.wasm", &wasm);
    let (ok, err) = validate_with_plugin_dir(d.path());
    assert!(!ok);
    assert!(
        err.contains("kind `file` is provided by both bundled:file and")
            && err.contains("shadow.wasm")
            && err.contains("cannot replace a bundled kind"),
        "{err}"
    );
}

#[test]
fn memory_and_cpu_return_to_normal_after_hostile_plugins() {
    let t = tempfile::tempdir().unwrap();
    let g = hostile_graph(t.path(), "hog", "    meta: {retry: -1, delay: 100}\n");
    let plugins = test_plugins();
    let run = Running::start(
        &g,
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--plugin-memory",
            "32",
        ],
    );
    wait_content(&t.path().join("good"), "ok\n");
    let oom = ["hog[bad]", "ran out of memory"];
    homeostat_tests::wait_for(|| (run.count_log(&oom) >= 2).then_some(()))
        .expect("the hog fails twice");
    let early = run.rss_kib();
    homeostat_tests::wait_for(|| (run.count_log(&oom) >= 12).then_some(()))
        .expect("the hog keeps failing and being retried");
    let late = run.rss_kib();
    // Ten more 32 MiB hogs: if their memory were kept, RSS would grow by ~320 MiB.
    assert!(
        late < early + 48 * 1024,
        "RSS grew from {early} KiB to {late} KiB over ten failed hogs"
    );
    drop(run);

    // A spinning plugin without retries: once it failed, the engine idles.
    let g = hostile_graph(t.path(), "spin", "");
    let run = Running::start(
        &g,
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--plugin-cpu",
            "300",
        ],
    );
    run.wait_log(&["spin[bad]", "CPU budget"]);
    let before = run.cpu_time();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = run.cpu_time() - before;
    assert!(
        used < std::time::Duration::from_millis(500),
        "the engine used {used:?} of CPU in 2 s after the spinning plugin was stopped"
    );
}

#[test]
fn limits_can_be_set_per_resource() {
    // The global limits are generous; the metaparams of each resource tighten them.
    let (_t, err, code) = run_hostile(
        "hog",
        "    meta: {memory: 16}\n",
        &["--plugin-memory", "256"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("hog[bad]") && err.contains("capped at 16 MiB"),
        "{err}"
    );
    let (_t, err, code) = run_hostile("spin", "    meta: {cpu: 200}\n", &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("spin[bad]") && err.contains("CPU budget of 200ms"),
        "{err}"
    );
}

// ---- Input from outside: bounded, and never waited on (issue 19, §2) ----

/// `homeostat validate GRAPH` and `homeostat run GRAPH`, each within the deadline: both
/// must fail, and their stderr (the two joined) is returned.
fn refused_graph(graph: &Path, extra: &[&str]) -> String {
    let mut all = String::new();
    for cmd in ["validate", "run"] {
        let mut args = vec![cmd, graph.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = homeostat_tests::homeostat_within_deadline(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        all.push_str(&err);
    }
    all
}

#[test]
fn a_fifo_as_graph_is_refused_at_once() {
    let t = tempfile::tempdir().unwrap();
    let fifo = t.path().join("g.yaml");
    homeostat_tests::mkfifo(&fifo);
    // Nobody ever writes to it: reading it would wait forever.
    let err = refused_graph(&fifo, &[]);
    assert!(
        err.contains(&format!(
            "graph file {} is a FIFO, not a regular file",
            fifo.display()
        )),
        "{err}"
    );
}

#[test]
fn a_device_as_graph_is_refused_at_once() {
    let err = refused_graph(Path::new("/dev/zero"), &[]);
    assert!(
        err.contains("graph file /dev/zero is a character device, not a regular file"),
        "{err}"
    );
    // Through a link: what counts is what it leads to.
    let t = tempfile::tempdir().unwrap();
    let link = t.path().join("g.yaml");
    std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
    let err = refused_graph(&link, &[]);
    assert!(err.contains("is a character device"), "{err}");
    // A directory.
    let err = refused_graph(t.path(), &[]);
    assert!(err.contains("is a directory"), "{err}");
}

#[test]
fn an_oversized_sparse_graph_is_refused_naming_its_size_and_the_cap() {
    let t = tempfile::tempdir().unwrap();
    let g = t.path().join("big.yaml");
    // 65 MiB of nothing: no disk used, and still refused by its size.
    std::fs::File::create(&g)
        .unwrap()
        .set_len(65 << 20)
        .unwrap();
    let err = refused_graph(&g, &[]);
    assert!(
        err.contains(&format!(
            "graph file {} is 65 MiB (68157440 bytes), larger than the cap of 64 MiB (raise it \
             with --max-graph-size)",
            g.display()
        )),
        "{err}"
    );
    // The flag moves the cap, both ways.
    let small = write_graph(
        t.path(),
        "small.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: f\n    path: {}\n    # {}\n",
            t.path().join("f").display(),
            "x".repeat(2 << 20)
        ),
    );
    let err = refused_graph(&small, &["--max-graph-size", "1"]);
    assert!(err.contains("larger than the cap of 1 MiB"), "{err}");
    let out = homeostat(&["validate", small.to_str().unwrap(), "--max-graph-size", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_fifo_or_device_as_plugin_is_refused_at_once_and_the_rest_runs() {
    let d = tempfile::tempdir().unwrap();
    homeostat_tests::mkfifo(&d.path().join("fifo.wasm"));
    std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.wasm")).unwrap();
    std::fs::create_dir(d.path().join("dir.wasm")).unwrap();
    let t = tempfile::tempdir().unwrap();
    let good = t.path().join("good");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: good\n    path: {}\n    content: \"ok\\n\"\n",
            good.display()
        ),
    );
    let dir = d.path().to_str().unwrap();
    let out = homeostat_tests::homeostat_within_deadline(&[
        "validate",
        g.to_str().unwrap(),
        "--plugin-dir",
        dir,
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for (file, kind) in [
        ("fifo.wasm", "a FIFO"),
        ("zero.wasm", "a character device"),
        ("dir.wasm", "a directory"),
    ] {
        assert!(
            err.contains(&format!(
                "plugin {} is {kind}, not a regular file",
                d.path().join(file).display()
            )),
            "{file}: {err}"
        );
    }
    let out = homeostat_tests::homeostat_within_deadline(&[
        "run",
        g.to_str().unwrap(),
        "--converged-timeout",
        "0.5",
        "--plugin-dir",
        dir,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&good).unwrap(), "ok\n");
    // `plugin inspect` reads the same way.
    let out = homeostat_tests::output_within_deadline({
        let mut c = homeostat_tests::command();
        c.args(["plugin", "inspect"])
            .arg(d.path().join("fifo.wasm"));
        c
    });
    assert!(
        !out.status.success() && stderr(&out).contains("is a FIFO"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_fifo_as_grants_file_is_refused_at_once() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("grants.toml");
    homeostat_tests::mkfifo(&fifo);
    let (_t, g) = {
        let t = tempfile::tempdir().unwrap();
        let g = hostile_graph(t.path(), "flaky", "");
        (t, g)
    };
    let plugins = test_plugins();
    let out = homeostat_tests::homeostat_within_deadline(&[
        "validate",
        g.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        fifo.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "grants file {} is a FIFO, not a regular file",
            fifo.display()
        )),
        "{err}"
    );
}

// ---- What reaches a terminal or a log is what it claims to be (issue 19, §5) ----

/// What the hostile plugin says: a newline and a line made to look like homeostat's own,
/// a carriage return, and escape sequences (colour, clear screen, window title).
const FORGED: &str =
    r#"hello\n2026-01-01T00:00:00.000000Z  INFO file[good]: forged\r\e[31m\e[2J\e]0;owned\a"#;

/// The same, as homeostat must show it: on one line, escaped.
const SHOWN: &str =
    r"hello\n2026-01-01T00:00:00.000000Z  INFO file[good]: forged\r\x1b[31m\x1b[2J\x1b]0;owned\x07";

/// The forged line as a diff shows it: its newline is a line break there (a diff is
/// lines), and the line after it is indented like every line of a diff, so it cannot pass
/// for a log line either.
const DIFF_SHOWN: &str = r"hello
  2026-01-01T00:00:00.000000Z  INFO file[good]: forged\r\x1b[31m\x1b[2J\x1b]0;owned\x07";

/// What the plugin printed on stderr: each line is logged as a line of homeostat's own,
/// saying that the plugin printed it.
const PRINTED: [&str; 2] = [
    "hostile 0.1.0 printed: hello",
    r"hostile 0.1.0 printed: 2026-01-01T00:00:00.000000Z  INFO file[good]: forged\r\x1b[31m\x1b[2J\x1b]0;owned\x07",
];

/// No line of `err` was forged, and no escape character reached it.
fn assert_unforged(err: &str) {
    assert!(
        !err.contains('\x1b'),
        "an escape character got through:\n{err}"
    );
    assert!(!err.contains('\r'), "a carriage return got through:\n{err}");
    for line in err.lines() {
        assert!(
            !line.starts_with("2026-01-01T00:00:00.000000Z"),
            "a forged line: {line:?}\n{err}"
        );
    }
}

#[test]
fn a_plugin_cannot_forge_log_lines_nor_reach_the_terminal() {
    let t = tempfile::tempdir().unwrap();
    let extra = format!("    target: \"{FORGED}\"\n");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  forge:\n  - name: bad\n    path: {0}/bad\n{extra}  forgefail:\n  - name: worse\n    path: {0}/worse\n{extra}  file:\n  - name: good\n    path: {0}/good\n    content: \"ok\\n\"\n",
            t.path().display()
        ),
    );
    let plugins = test_plugins();
    let args = [
        "run",
        g.to_str().unwrap(),
        "--converged-timeout",
        "0.5",
        "--plugin-dir",
        plugins.to_str().unwrap(),
    ];
    let out = homeostat(&args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "forgefail fails:\n{err}");
    assert_unforged(&err);
    // Each way the plugin spoke is there, escaped on one line: its log message and its
    // change summary, its error (in the log and in the summary); what it printed is
    // logged line by line, each saying so.
    let said = format!("forge[bad]: {SHOWN}");
    assert_eq!(
        err.lines().filter(|l| l.ends_with(&said)).count(),
        2,
        "log message and change:\n{err}"
    );
    for printed in PRINTED {
        assert!(
            err.lines().any(|l| l.ends_with(printed)),
            "{printed}:\n{err}"
        );
    }
    assert!(
        err.contains(&format!("forgefail[worse]: {SHOWN}\n")),
        "error:\n{err}"
    );
    assert!(
        err.contains(&format!("  failed: forgefail[worse]: {SHOWN}")),
        "summary:\n{err}"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("good")).unwrap(),
        "ok\n"
    );

    // In noop, its diff keeps its lines, each escaped and indented below the line.
    let mut noop = args.to_vec();
    noop.push("--noop");
    let out = homeostat(&noop);
    let err = stderr(&out);
    assert_unforged(&err);
    assert!(
        err.contains(&format!("forge[bad]: would change (noop): {SHOWN}\n")),
        "{err}"
    );
    assert!(
        err.contains(&format!("\n  -{DIFF_SHOWN}\n  +{DIFF_SHOWN}\n")),
        "the diff's lines:\n{err}"
    );
}

#[test]
fn a_plugin_that_says_too_much_is_cut_and_the_engine_carries_on() {
    // 17 MiB in a log message, a change summary and a sent value.
    let (_t, err, code) = run_hostile(
        "loud",
        &format!("    target: \"{}\"\n", 17 << 20),
        &["--plugin-memory", "512"],
    );
    assert_eq!(code, Some(0), "{err}");
    let log = err
        .lines()
        .find(|l| l.contains("loud[bad]: loud log"))
        .unwrap_or_else(|| panic!("no log line:\n{}", &err[..err.len().min(4000)]));
    assert!(
        log.len() < 64 << 10 && log.contains("bytes cut] …yyy"),
        "the log message is cut with a marker: {} bytes",
        log.len()
    );
    let change = err
        .lines()
        .find(|l| l.contains("loud[bad]: loud change"))
        .expect("a change line");
    assert!(
        change.len() < 16 << 10 && change.contains("bytes cut]"),
        "{}",
        change.len()
    );
    assert!(
        err.contains(
            "loud[bad]: sent `blob` is 17 MiB (17825794 bytes), more than the cap of 16 MiB \
             for one value; dropped"
        ),
        "{}",
        &err[..err.len().min(4000)]
    );
    assert!(
        err.len() < 1 << 20,
        "the whole log is small: {} bytes",
        err.len()
    );
}

// ---- The missing-grants message names the file looked for (issue 19, §6) ----

#[test]
fn the_missing_grant_message_names_the_grants_file_given() {
    let (_g, grants) = grants_file("[plugins]\n");
    let (_t, err, code) = run_hostile("flaky", "", &["--grants", grants.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    let file = grants.display().to_string();
    // The warning at load and the call's error both say where the line goes.
    assert!(
        err.contains(&format!(
            "is not granted [fs, process, net], which it declares: its calls to them will \
             fail. To grant them, put this line under `[plugins]` in {file}: hostile = "
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the grants file {file} has no grant for plugin `hostile`"
        )) && err.contains(&format!("under `[plugins]` in {file}: hostile = ")),
        "{err}"
    );
}

#[test]
fn the_missing_grant_message_names_the_default_grants_file() {
    // Without --grants (the harness adds one to every run with --plugin-dir, so this one
    // is started by hand): root's file is /etc/homeostat/grants.toml, another user's is
    // under XDG_CONFIG_HOME, which the test points at a directory of its own.
    let config = tempfile::tempdir().unwrap();
    let root = running_as_root();
    let expected = if root {
        std::path::PathBuf::from("/etc/homeostat/grants.toml")
    } else {
        config.path().join("homeostat/grants.toml")
    };
    if expected.exists() {
        eprintln!("SKIP: {} exists on this machine", expected.display());
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let g = hostile_graph(t.path(), "flaky", "");
    let mut c = homeostat_tests::command();
    c.args(["run", g.to_str().unwrap(), "--converged-timeout", "0.5"])
        .arg("--plugin-dir")
        .arg(test_plugins())
        .arg("--cache-dir")
        .arg(homeostat_tests::cache_dir())
        .env("RUST_LOG", "info")
        .env("XDG_CONFIG_HOME", config.path());
    let out = homeostat_tests::output_within_deadline(c);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = expected.display().to_string();
    assert!(
        err.contains(&format!("the default one, {file}, does not exist"))
            && err.contains(&format!("under `[plugins]` in {file}: hostile = ")),
        "{err}"
    );
}

/// Whether the tests run as root.
fn running_as_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

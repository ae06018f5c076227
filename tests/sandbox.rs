//! Bad input and hostile plugins: each fails alone with a clear error, nothing crashes,
//! and the rest of the graph still converges.

use std::path::Path;

use homeostat_tests::{Running, homeostat, stderr, test_plugins, wait_content, write_graph};

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
        "graph: t\nresources:\n  sysctl:\n  - name: x\n    key: vm.swappiness\n",
    );
    let out = homeostat(&["validate", g.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("g.yaml:3:") && err.contains("sysctl"), "{err}");
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

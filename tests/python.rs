//! A resource plugin in Python, first class: `tests/plugins-py/pynote`, built by
//! componentize-py against `wit/v0.1` (by `cargo xtask test`, which installs
//! componentize-py with pip), given its manifest by `homeostat plugin pack`, then loaded,
//! run, repairing drift, honouring noop and grants, and passing the plugin test kit,
//! with the instance cap and pool its component needs.
//!
//! When `cargo xtask test` could not get componentize-py (no package index), it says why
//! in `HOMEOSTAT_SKIP_PYTHON` and these tests skip, saying so.

use std::path::{Path, PathBuf};

use homeostat_tests::{
    Running, command, granted_dir, root, run_converged, stderr, wait_content, write_graph,
};

/// The unpacked component, or `None` (with the reason printed) when the suite runs
/// without componentize-py.
fn bare() -> Option<PathBuf> {
    if let Ok(why) = std::env::var("HOMEOSTAT_SKIP_PYTHON") {
        eprintln!("skipped: {why}");
        return None;
    }
    let p = root().join("target/python-plugins/pynote.wasm");
    assert!(
        p.is_file(),
        "{} is missing: run the tests with `cargo xtask test`",
        p.display()
    );
    Some(p)
}

fn manifest() -> PathBuf {
    root().join("tests/plugins-py/pynote/manifest.toml")
}

fn pack(input: &Path, manifest: &Path, out: &Path) -> std::process::Output {
    command()
        .args(["plugin", "pack"])
        .arg(input)
        .arg("--manifest")
        .arg(manifest)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run plugin pack")
}

/// The packed plugin in a directory of its own.
fn packed(bare: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("pynote.wasm");
    let o = pack(bare, &manifest(), &out);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

#[test]
fn pack_adds_a_checked_manifest_and_inspect_shows_the_instances_it_needs() {
    let Some(bare) = bare() else { return };
    let d = tempfile::tempdir().unwrap();
    // Without a manifest: the error says how to add one.
    let o = command()
        .args(["plugin", "inspect"])
        .arg(&bare)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        out(&o).contains("homeostat plugin pack IN.wasm --manifest M.toml"),
        "{}",
        out(&o)
    );

    let wasm = packed(&bare, d.path());
    let o = command()
        .args(["plugin", "inspect"])
        .arg(&wasm)
        .output()
        .unwrap();
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("name:         pynote") && text.contains("  pynote\n"),
        "{text}"
    );
    // componentize-py's runtime: more core instances than the SDK's, and megabytes of
    // memory per instance, so a smaller pool.
    let instances: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("instances:"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("an instances line");
    assert!(instances > 5, "{text}");
    let pool: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("pool:         up to "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("a pool line");
    assert!((2..64).contains(&pool), "{text}");

    // Packed twice, a bad manifest, the output over the input: refused, nothing written.
    let again = pack(&wasm, &manifest(), &d.path().join("twice.wasm"));
    assert!(
        out(&again).contains("already has a `homeostat:manifest` section"),
        "{}",
        out(&again)
    );
    let bad = d.path().join("bad.toml");
    std::fs::write(
        &bad,
        std::fs::read_to_string(manifest())
            .unwrap()
            .replace("cleanup = false", "cleanp = false"),
    )
    .unwrap();
    let o = pack(&bare, &bad, &d.path().join("bad.wasm"));
    assert!(
        !o.status.success()
            && out(&o).contains("unknown field `cleanp`")
            && out(&o).contains("line"),
        "{}",
        out(&o)
    );
    assert!(!d.path().join("bad.wasm").exists());
    let o = pack(&bare, &manifest(), &bare);
    assert!(!o.status.success());
}

#[test]
fn a_python_plugin_runs_repairs_drift_and_honours_noop_and_grants() {
    let Some(bare) = bare() else { return };
    let p = tempfile::tempdir().unwrap();
    let (_g, plugins, grants) = granted_dir(&packed(&bare, p.path()));
    let d = tempfile::tempdir().unwrap();
    let note = d.path().join("note.txt");
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: py\nresources:\n  pynote:\n  - name: n\n    path: {}\n    text: hello from python\n",
            note.display()
        ),
    );
    let flags = [
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
    ];
    // Noop: says what it would do, does nothing, exits 2.
    let o = run_converged(&graph, "0", &[&flags[..], &["--noop"]].concat());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("pynote[n]: would change (noop): create"),
        "{}",
        stderr(&o)
    );
    assert!(!note.exists());
    // Without a grant: fails closed, naming the line that would allow it.
    let none = d.path().join("no-grants.toml");
    std::fs::write(&none, "[plugins]\n").unwrap();
    let o = run_converged(
        &graph,
        "0",
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            none.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not granted the `fs` capability"),
        "{}",
        stderr(&o)
    );
    assert!(!note.exists());
    // Run and repair drift.
    let r = Running::start(&graph, &flags);
    wait_content(&note, "hello from python\n");
    std::fs::write(&note, "drifted\n").unwrap();
    wait_content(&note, "hello from python\n");
    std::fs::remove_file(&note).unwrap();
    wait_content(&note, "hello from python\n");
    drop(r);
    // It exports no `describe` (API 0.3): `homeostat resource` says so, and nothing else
    // of it changes.
    let o = homeostat_tests::command()
        .args([
            "resource",
            "pynote",
            "n",
            &format!("path={}", note.display()),
        ])
        .args(["text=x"])
        .args(flags)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not export `homeostat:resource/describe@0.3.x`"),
        "{}",
        stderr(&o)
    );
}

/// `componentize-py --stub-wasi` makes a component that creates more core instances than
/// the 16 every plugin used to be allowed: the cap follows the component.
#[test]
fn a_build_with_stubbed_wasi_gets_the_instances_it_needs() {
    let Some(bare) = bare() else { return };
    let stub = bare.with_file_name("pynote-stub.wasm");
    let p = tempfile::tempdir().unwrap();
    let (_g, plugins, grants) = granted_dir(&packed(&stub, p.path()));
    let d = tempfile::tempdir().unwrap();
    let note = d.path().join("stub.txt");
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: py\nresources:\n  pynote:\n  - name: n\n    path: {}\n    text: stubbed\n",
            note.display()
        ),
    );
    let o = run_converged(
        &graph,
        "0",
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            grants.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "stubbed\n");
}

#[test]
fn the_test_kit_passes_a_python_plugin() {
    let Some(bare) = bare() else { return };
    let d = tempfile::tempdir().unwrap();
    let wasm = packed(&bare, d.path());
    let graph = write_graph(
        d.path(),
        "kit.yaml",
        "graph: kit\nresources:\n  pynote:\n  - name: a\n    path: $ROOT/a.txt\n    text: a\n  - name: b\n    path: $ROOT/b.txt\n    text: b\n",
    );
    let o = command()
        .args(["plugin", "test"])
        .arg(&wasm)
        .arg(&graph)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("2. apply:       2 changed, none failed"),
        "{}",
        out(&o)
    );
}

/// The pool of a Python plugin is sized by its memory at start, and a grant's `pool`
/// sets it instead.
#[test]
fn a_python_plugins_pool_follows_its_memory_or_its_grant() {
    let Some(bare) = bare() else { return };
    let p = tempfile::tempdir().unwrap();
    let (_g, plugins, grants) = granted_dir(&packed(&bare, p.path()));
    let d = tempfile::tempdir().unwrap();
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: py\nresources:\n  pynote:\n  - name: n\n    path: {}\n    text: pooled\n",
            d.path().join("n.txt").display()
        ),
    );
    let pool_of = |grants: &Path| {
        let o = command()
            .args(["run", graph.to_str().unwrap(), "--converged-timeout", "0"])
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("--grants")
            .arg(grants)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        err.lines()
            .find_map(|l| l.split("`pynote 0.1.0`: pool of ").nth(1))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no pool line in:\n{err}"))
    };
    let sized = pool_of(&grants);
    assert!((2..64).contains(&sized), "{sized}");
    let text = std::fs::read_to_string(&grants).unwrap();
    let granted = p.path().join("pool-grants.toml");
    std::fs::write(&granted, text.replace("] }", "], pool = 3 }")).unwrap();
    assert_eq!(pool_of(&granted), 3);
}

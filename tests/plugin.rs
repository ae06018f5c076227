//! The plugin author's path: `homeostat plugin inspect`, `homeostat plugin new` (the
//! generated crate builds with one command and runs), and the third-party example
//! `examples/third-party-plugin/` (`line`) loaded with `--plugin-dir` and a grants file.

use std::process::Command;

use homeostat_tests::{
    Running, granted_dir, homeostat, line_wasm, root, run_converged, stderr, wait_content,
    wait_for, write_atomic, write_graph,
};

/// `homeostat plugin ARGS` (no cache or grants flags: `plugin` takes none).
fn plugin(args: &[&str]) -> std::process::Output {
    homeostat_tests::command()
        .arg("plugin")
        .args(args)
        .output()
        .expect("run homeostat plugin")
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn inspect_shows_a_bundled_plugin() {
    let out = plugin(&["inspect", "bundled:file"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for want in [
        "name:         homeostat-file",
        "api:          homeostat:resource@0.1.0",
        "capabilities: fs",
        "bundled: trusted",
        "  file (sends path: string, size: integer; collected into the pattern's directory: \
         `path`; removes what it manages when `state` is `absent`; owns a file's content when one of `content`, `source`, `symlink` is set; \
         `homeostat resource file NAME` sets `path` to NAME)",
        "  homeostat:resource/fs@0.1.0",
        "  homeostat:resource/plugin@0.1.0",
        "  homeostat:resource/describe@0.3.0",
        "params schema of `file`:",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let out = plugin(&["inspect", "bundled:nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bundled: file"), "{}", stderr(&out));
}

#[test]
fn inspect_json_of_a_third_party_plugin() {
    let wasm = line_wasm();
    let out = plugin(&["inspect", "--json", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sha = homeostat_tests::sha256_file(&wasm);
    assert_eq!(v["name"], "line");
    assert_eq!(v["api"], "homeostat:resource@0.1.0");
    assert_eq!(v["sha256"], sha.as_str());
    assert_eq!(v["capabilities"], serde_json::json!(["fs"]));
    assert_eq!(
        v["kinds"]["lineinfile"]["schema"]["required"],
        serde_json::json!(["path", "line"])
    );
    let imports: Vec<&str> = v["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        imports.contains(&"homeostat:resource/fs@0.1.0"),
        "{imports:?}"
    );
    assert!(
        v["imports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["provided"] == true)
    );
    assert_eq!(
        v["grant_line"],
        format!("line = {{ sha256 = \"{sha}\", capabilities = [\"fs\"] }}").as_str()
    );
}

#[test]
fn inspect_flags_an_import_the_host_lacks() {
    let wasm = root().join("target/test-plugins/broken/broken_import.wasm");
    let out = plugin(&["inspect", wasm.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("test:nope/nope  (NOT provided by this homeostat)"),
        "{}",
        stdout(&out)
    );
    let core = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(core.path(), b"\0asm\x01\0\0\0").unwrap();
    let out = plugin(&["inspect", core.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not a component"), "{}", stderr(&out));
}

#[test]
fn the_third_party_example_runs_when_granted() {
    let (_d, plugins, grants) = granted_dir(&line_wasm());
    let t = tempfile::tempdir().unwrap();
    let conf = t.path().join("sshd_config");
    std::fs::write(&conf, "Port 22\nPermitRootLogin yes\n").unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  lineinfile:\n  - name: root-login\n    path: {}\n    line: PermitRootLogin no\n    prefix: \"PermitRootLogin \"\n",
            conf.display()
        ),
    );
    let run = Running::start(
        &g,
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            grants.to_str().unwrap(),
        ],
    );
    wait_content(&conf, "Port 22\nPermitRootLogin no\n");
    // Drift is repaired the moment it happens.
    write_atomic(
        &conf,
        "Port 22\nPermitRootLogin yes\nPermitRootLogin maybe\n",
    );
    wait_content(&conf, "Port 22\nPermitRootLogin no\n");
    drop(run);

    // The example's own graph validates with the plugin.
    let example = root().join("examples/third-party-plugin/example.yaml");
    let out = homeostat(&[
        "validate",
        example.to_str().unwrap(),
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn the_third_party_example_gets_nothing_without_a_grant() {
    let (d, plugins, _grants) = granted_dir(&line_wasm());
    let empty = d.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("f");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  lineinfile:\n  - name: l\n    path: {}\n    line: x\n",
            file.display()
        ),
    );
    let out = run_converged(
        &g,
        "0.5",
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            empty.to_str().unwrap(),
        ],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!file.exists());
    let sha = homeostat_tests::sha256_file(&line_wasm());
    assert!(
        err.contains("lineinfile[l]")
            && err.contains("not granted the `fs` capability")
            && err.contains(&format!(
                "line = {{ sha256 = \"{sha}\", capabilities = [\"fs\"] }}"
            )),
        "{err}"
    );
}

/// `cargo` with the variables of the outer cargo that must not leak into a wasm build.
fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        c.env_remove(var);
    }
    c
}

/// Builds the crate `plugin new` generated in `dir` with its one documented command; the
/// component. The example's lock file pins the same dependencies, and a shared target
/// directory keeps repeated runs warm.
fn build_generated(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    std::fs::copy(
        root().join("examples/third-party-plugin/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    let status = cargo()
        .current_dir(dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", root().join("target/test-plugin-new"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "the generated plugin does not build");
    root().join(format!(
        "target/test-plugin-new/wasm32-wasip2/release/{name}.wasm"
    ))
}

#[test]
fn plugin_new_makes_a_crate_that_builds_with_one_command_and_runs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("greeting");
    let out = plugin(&["new", "greeting", "--path", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("cargo build --release --target wasm32-wasip2"),
        "{}",
        stdout(&out)
    );
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "schema/greeting.json",
        "README.md",
        "example.yaml",
    ] {
        assert!(dir.join(f).is_file(), "{f} was not generated");
    }
    // A second time into the same directory is refused rather than overwriting.
    let again = plugin(&["new", "greeting", "--path", dir.to_str().unwrap()]);
    assert!(!again.status.success());
    let bad = plugin(&["new", "Bad_Name"]);
    assert!(!bad.status.success() && stderr(&bad).contains("not a usable plugin name"));
    // A kind a bundled plugin owns: it could never load.
    let taken = plugin(&["new", "exec", "--path", dir.join("x").to_str().unwrap()]);
    assert!(
        !taken.status.success()
            && stderr(&taken).contains("already provided by the bundled plugin `exec`"),
        "{}",
        stderr(&taken)
    );
    assert!(!dir.join("x").exists());

    let wasm = build_generated(&dir, "greeting");
    let (_p, plugins, grants) = granted_dir(&wasm);

    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("greeting.txt");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  greeting:\n  - name: hello\n    path: {}\n    text: hi\n",
            target.display()
        ),
    );
    let out = run_converged(
        &g,
        "0.5",
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            grants.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        wait_for(|| (std::fs::read_to_string(&target).ok()? == "hi\n").then_some(())).is_some()
    );

    // Its tests as generated: the native unit test, and the test kit's check → apply →
    // check of `tests/kit.yaml` through this homeostat.
    let status = cargo()
        .current_dir(&dir)
        .args(["test", "--target", "x86_64-unknown-linux-gnu"])
        .env("CARGO_TARGET_DIR", root().join("target/test-plugin-new"))
        .env("HOMEOSTAT", homeostat_tests::binary())
        .status()
        .expect("run cargo test");
    assert!(status.success(), "the generated plugin's tests fail");
}

/// `plugin test` fails a plugin whose second check is not clean, saying which resource.
#[test]
fn plugin_test_fails_a_resource_that_changes_at_every_check() {
    let d = tempfile::tempdir().unwrap();
    let steer = homeostat_tests::test_plugins().join("steer.wasm");
    let graph = |change: &str| {
        write_graph(
            d.path(),
            &format!("{change}.yaml"),
            &format!(
                "graph: kit\nresources:\n  steer:\n  - name: s\n    state: $ROOT/count\n    change: {change}\n"
            ),
        )
    };
    let out = plugin(&[
        "test",
        steer.to_str().unwrap(),
        graph("always").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("2. apply:       1 changed, none failed")
            && text.contains("FAILED: not idempotent")
            && text.contains("steer[s]: changed as asked"),
        "{text}"
    );
    let out = plugin(&[
        "test",
        steer.to_str().unwrap(),
        graph("never").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("ok: converges in one apply"),
        "{}",
        stdout(&out)
    );
}

/// `plugin new --edits` scaffolds a kind that edits part of a file; built as generated,
/// it runs issue 24's shared-edit scenario like the bundled `ini`.
#[test]
fn plugin_new_edits_scaffolds_a_kind_that_shares_its_file() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("keyval");
    let out = plugin(&["new", "keyval", "--edits", "--path", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let wasm = build_generated(&dir, "keyval");
    let inspect = plugin(&["inspect", wasm.to_str().unwrap()]);
    assert!(
        stdout(&inspect).contains("keyval (edits part of its files"),
        "{}",
        stdout(&inspect)
    );
    let (_p, plugins, grants) = granted_dir(&wasm);
    homeostat_tests::shared_edit_scenario(
        "keyval",
        &|k, v| format!("    key: {k}\n    value: \"{v}\"\n"),
        &|k, v| format!("{k}={v}"),
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            grants.to_str().unwrap(),
        ],
    );
}

/// Bundled plugins are compiled (and cached) on first use: a graph of `file` resources
/// run with an empty cache compiles the `file` plugin and no other.
#[test]
fn only_the_bundled_plugins_a_graph_uses_are_compiled() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let graph = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: g\nresources:\n  file:\n  - name: f\n    path: {}\n    content: \"x\\n\"\n",
            t.path().join("f").display()
        ),
    );
    let out = homeostat_tests::command()
        .args(["run", graph.to_str().unwrap(), "--converged-timeout", "0"])
        .arg("--cache-dir")
        .arg(&cache)
        .env("XDG_DATA_HOME", t.path().join("no-user-plugins"))
        .output()
        .expect("run homeostat");
    assert!(out.status.success(), "{}", stderr(&out));
    let compiled: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    let file_sha = homeostat_tests::sha256_file(&root().join("target/plugins/file.wasm"));
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    assert!(
        compiled[0]
            .file_name()
            .to_string_lossy()
            .starts_with(&file_sha),
        "{compiled:?} is not the file plugin ({file_sha})"
    );
}

/// `plugin inspect` warns where what a plugin imports and what it declares disagree: the
/// hostile test plugin calls `systemd` without declaring it (every call is refused).
#[test]
fn inspect_warns_when_imports_and_capabilities_disagree() {
    let hostile = homeostat_tests::test_plugins().join("hostile.wasm");
    let out = plugin(&["inspect", hostile.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(
            "warning:      imports `homeostat:resource/systemd` but does not declare the \
             `systemd` capability"
        ),
        "{text}"
    );
    let json = plugin(&["inspect", "--json", hostile.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1), "{v:#}");
    // The bundled plugins agree with themselves.
    let file = plugin(&["inspect", "bundled:file"]);
    assert!(!stdout(&file).contains("warning:"), "{}", stdout(&file));
}

/// The SDK carries the WIT it binds (so that the published crate builds on its own): its
/// copies are the repository's `wit/`, byte for byte.
#[test]
fn the_sdk_carries_the_wit_the_host_implements() {
    for version in ["v0.1", "v0.2"] {
        let at = |base: &str| root().join(base).join(version).join("resource.wit");
        let (ours, sdk) = (at("wit"), at("plugins/sdk/wit"));
        assert_eq!(
            std::fs::read_to_string(&sdk).unwrap_or_else(|e| panic!("{}: {e}", sdk.display())),
            std::fs::read_to_string(&ours).unwrap(),
            "{} differs from {}: copy wit/ into plugins/sdk/wit/ (the SDK binds its copy)",
            sdk.display(),
            ours.display()
        );
    }
    let listed = std::fs::read_dir(root().join("wit")).unwrap().count();
    let copied = std::fs::read_dir(root().join("plugins/sdk/wit"))
        .unwrap()
        .count();
    assert_eq!(listed, copied, "every WIT version is copied into the SDK");
}

/// `plugin lock` pins the third-party plugin of each kind a graph uses; another build is
/// then refused before anything runs, with both digests, and so is a kind not pinned.
#[test]
fn a_locked_graph_refuses_another_build_of_its_plugin() {
    let (_d, plugins, grants) = granted_dir(&line_wasm());
    let t = tempfile::tempdir().unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  lineinfile:\n  - name: l\n    path: {}/f\n    line: x\n",
            t.path().display()
        ),
    );
    let flags = [
        "--plugin-dir",
        plugins.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
    ];
    fn joined<'a>(args: &[&'a str], flags: &[&'a str]) -> Vec<&'a str> {
        [args, flags].concat()
    }
    let out = plugin(&joined(&["lock", g.to_str().unwrap()], &flags));
    assert!(out.status.success(), "{}", stderr(&out));
    let lock = std::fs::read_to_string(t.path().join("g.yaml.lock")).unwrap();
    let sha = homeostat_tests::sha256_file(&line_wasm());
    assert!(lock.contains(&format!("sha256 = \"{sha}\"")), "{lock}");
    let out = homeostat(&joined(&["validate", g.to_str().unwrap()], &flags));
    assert!(out.status.success(), "{}", stderr(&out));
    // Another build of the plugin: the same component with one more custom section.
    let mut wasm = std::fs::read(line_wasm()).unwrap();
    wasm.extend_from_slice(&[0, 4, 3, b'x', b'y', b'z']);
    std::fs::write(plugins.join("line.wasm"), &wasm).unwrap();
    for cmd in ["validate", "run"] {
        let mut args = joined(&[cmd, g.to_str().unwrap()], &flags);
        if cmd == "run" {
            args.extend(["--converged-timeout", "0"]);
        }
        let out = homeostat(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {err}");
        assert!(
            err.contains("for kind `lineinfile` has SHA-256")
                && err.contains(&format!("but the lock pins {sha}")),
            "{cmd}: {err}"
        );
        assert!(!t.path().join("f").exists(), "{cmd} ran something");
    }
    // A kind the lock does not name is refused too.
    std::fs::write(t.path().join("g.yaml.lock"), "[kinds]\n").unwrap();
    let out = homeostat(&joined(&["validate", g.to_str().unwrap()], &flags));
    assert!(
        stderr(&out).contains("kind `lineinfile` (plugin `line`")
            && stderr(&out).contains("is not pinned"),
        "{}",
        stderr(&out)
    );
}

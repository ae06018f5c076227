//! What a script relies on (docs/exit-codes.md, docs/report.md): the exit codes of both
//! schemes, an interrupted run that never looks like success, the JSON run report (its
//! schema, its counts, its periods in a long run), refresh-only commands, and the
//! command line's own output (`--version`, completions, man pages, JSON logs, `-q`).

use std::path::Path;
use std::process::Output;

use homeostat_tests::{
    Running, command, homeostat_in, root, run_converged, stderr, wait_for, write_graph,
};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A graph with one file under `dir`; when `failing`, also an exec `bad` whose guard
/// cannot run (it fails, under `--noop` too) and an exec `after` behind it.
fn graph(dir: &Path, content: &str, failing: bool) -> std::path::PathBuf {
    let mut text = format!(
        "graph: codes\nresources:\n  file:\n  - name: f\n    path: {}/f\n    content: \"{content}\"\n",
        dir.display()
    );
    if failing {
        text.push_str(&format!(
            "  exec:\n  - name: bad\n    cmd: \"true\"\n    ifcmd: {}/no-such-guard\n  \
             - name: after\n    cmd: \"true\"\nedges:\n- from: {{kind: exec, name: bad}}\n  \
             to: {{kind: exec, name: after}}\n",
            dir.display()
        ));
    }
    write_graph(dir, "g.yaml", &text)
}

#[test]
fn exit_codes_plain_and_detailed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = graph(d, "one", false);
    // Detailed: changes made, then nothing to do.
    let first = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&first), 2, "{}", stderr(&first));
    let again = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    // Plain: a run that changed something is a success.
    let g = graph(d, "two", false);
    let plain = run_converged(&g, "0", &[]);
    assert_eq!(code(&plain), 0, "{}", stderr(&plain));
    // Noop with changes pending: 2 in both.
    let g = graph(d, "three", false);
    for extra in [&["--noop"][..], &["--noop", "--detailed-exitcodes"]] {
        let o = run_converged(&g, "0", extra);
        assert_eq!(code(&o), 2, "{extra:?}: {}", stderr(&o));
    }
    // Failures: 1 plain; 6 detailed with a change, 4 without.
    let g = graph(d, "four", true);
    let o = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let o = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&o), 4, "{}", stderr(&o));
    let o = run_converged(&g, "0", &[]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    // Noop with a failure and a pending change: 6 shows both (plain says 1).
    let g = graph(d, "five", true);
    let o = run_converged(&g, "0", &["--noop", "--detailed-exitcodes"]);
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    // The counts add up: the blocked resource is counted and named with its blocker.
    let err = stderr(&o);
    assert!(err.contains("1 failed, 1 blocked"), "{err}");
    assert!(err.contains("blocked: exec[after] (by exec[bad])"), "{err}");
    // A wrong command line has its own code, never one a run ends with.
    let o = homeostat_in(d, &["run", "g.yaml", "--no-such-flag"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    let o = homeostat_in(d, &["run", "g.yaml", "--plugin-memory", "0"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
}

#[test]
fn an_interrupted_run_never_looks_like_success() {
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let g = write_graph(
        dir.path(),
        "slow.yaml",
        &format!(
            "graph: slow\nresources:\n  exec:\n  - name: slow\n    shell: /bin/sh\n    \
             cmd: touch {}; sleep 2\n",
            started.display()
        ),
    );
    for (signal, want) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let _ = std::fs::remove_file(&started);
        let mut run = Running::start(&g, &["--detailed-exitcodes"]);
        wait_for(|| started.exists().then_some(())).expect("the command started");
        run.signal(signal);
        let status = run.wait_exit();
        assert_eq!(status.code(), Some(want), "{}", run.log().join("\n"));
        assert!(
            run.log().iter().any(|l| l.starts_with("interrupted after")),
            "{}",
            run.log().join("\n")
        );
    }
    // Stopped while idle (converged), a run reports its result as usual.
    let g = graph(dir.path(), "x", false);
    let mut run = Running::start(&g, &["--detailed-exitcodes"]);
    run.wait_log(&["file[f]: "]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = run.stop();
    assert_eq!(status.code(), Some(2), "{}", run.log().join("\n"));
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("docs/report.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).expect("docs/report.schema.json is a valid schema")
}

fn valid(schema: &jsonschema::Validator, report: &serde_json::Value) {
    let errors: Vec<String> = schema
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{report:#}");
}

fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn the_run_report_is_complete_and_follows_its_schema() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = graph(d, "one", true);
    let report = d.join("report.json");
    let o = run_converged(
        &g,
        "0",
        &["--detailed-exitcodes", "--report", report.to_str().unwrap()],
    );
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let r = read_json(&report);
    valid(&schema(), &r);
    assert_eq!(r["exit_code"], 6);
    assert_eq!(r["graph"]["name"], "codes");
    assert_eq!(r["run"]["ended"], "settled_with_failures");
    let counts = &r["counts"];
    assert_eq!(
        (&counts["changed"], &counts["failed"], &counts["blocked"]),
        (&1.into(), &1.into(), &1.into()),
        "{r:#}"
    );
    let by_id = |id: &str| {
        r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {r:#}"))
            .clone()
    };
    assert_eq!(by_id("file[f]")["outcome"], "changed");
    assert!(
        by_id("file[f]")["what"][0]
            .as_str()
            .unwrap()
            .contains("create file"),
        "{r:#}"
    );
    assert_eq!(by_id("exec[bad]")["outcome"], "failed");
    assert!(
        by_id("exec[bad]")["error"]
            .as_str()
            .unwrap()
            .contains("no-such-guard` does not exist")
    );
    assert_eq!(by_id("exec[after]")["outcome"], "blocked");
    assert_eq!(by_id("exec[after]")["blocked_by"], "exec[bad]");
    let plugins = r["plugins"].as_array().unwrap();
    assert!(
        plugins
            .iter()
            .any(|p| p["kinds"][0] == "file" && p["sha256"].as_str().unwrap().len() == 64),
        "{r:#}"
    );
    // `--report -`: the same record on standard output, the log stays on stderr.
    let o = run_converged(&g, "0", &["--noop", "--report", "-"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a report on stdout");
    valid(&schema(), &r);
    assert_eq!(r["run"]["noop"], true);
}

/// A check-apply that fails after some of its changes landed (a tree copied, then a
/// purge it may not do) is listed under `changed:` and `failed:`, and its report entry
/// says what changed, as the host saw it.
#[test]
fn a_resource_that_changed_then_failed_counts_both() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, text) in [("src/a", "a\n"), ("src/b", "b\n"), ("dst/old", "old\n")] {
        std::fs::create_dir_all(d.join(name).parent().unwrap()).unwrap();
        std::fs::write(d.join(name), text).unwrap();
    }
    // A directory purge may not remove without `force`.
    std::fs::create_dir(d.join("dst/keep")).unwrap();
    let g = write_graph(
        d,
        "g.yaml",
        &format!(
            "graph: partly\nresources:\n  file:\n  - name: tree\n    path: {d}/dst/\n    \
             source: {d}/src/\n    recurse: true\n    purge: true\n",
            d = d.display()
        ),
    );
    let report = d.join("report.json");
    let o = run_converged(&g, "0", &["--report", report.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert_eq!(std::fs::read_to_string(d.join("dst/a")).unwrap(), "a\n");
    assert!(err.contains("1 changes, 1 failed"), "{err}");
    assert!(err.contains("\n  changed: file[tree]"), "{err}");
    assert!(
        err.contains("\n  failed: file[tree]: purge would remove the directory"),
        "{err}"
    );
    let r = read_json(&report);
    valid(&schema(), &r);
    let tree = &r["resources"][0];
    assert_eq!(tree["outcome"], "failed", "{r:#}");
    assert_eq!(tree["changes"], 1, "{r:#}");
    assert_eq!(
        tree["what"],
        serde_json::json!([
            format!("copied {0}/src/a to {0}/dst/a", d.display()),
            format!("copied {0}/src/b to {0}/dst/b", d.display()),
        ]),
        "{r:#}"
    );
}

/// `homeostat resource KIND NAME`: the graph it prints validates, and running it changes
/// nothing (a file, a directory, a symlink, a path with nothing there); a kind that
/// cannot describe, an unknown kind and bad params are refused, each saying why.
#[test]
fn resource_prints_a_graph_that_declares_the_thing_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("conf.d")).unwrap();
    std::fs::write(
        d.join("conf.d/app.conf"),
        "# app\nport = 8080\n\nname: \"x\"\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("conf.d/app.conf", d.join("link")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        d.join("conf.d/app.conf"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    for (what, extra) in [
        ("conf.d/app.conf", ""),
        ("conf.d", ""),
        ("link", ""),
        ("missing", ""),
        ("conf.d/", "mode=0700"),
    ] {
        let path = d.join(what).display().to_string() + if what.ends_with('/') { "/" } else { "" };
        let mut args = vec!["resource", "file", path.as_str()];
        if !extra.is_empty() {
            args.push(extra);
        }
        let o = command().args(&args).output().unwrap();
        assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
        let text = String::from_utf8(o.stdout).unwrap();
        let g = write_graph(d, "described.yaml", &text);
        let o = run_converged(&g, "0", &["--noop", "--detailed-exitcodes"]);
        assert_eq!(code(&o), 0, "{what}: not as it is:\n{text}\n{}", stderr(&o));
        match what {
            "conf.d/app.conf" => assert!(
                text.contains("    content: |\n      # app\n      port = 8080\n\n")
                    && text.contains("    mode: \"0640\"\n"),
                "{text}"
            ),
            "link" => assert!(
                text.contains("source: conf.d/app.conf\n    symlink: true\n"),
                "{text}"
            ),
            "missing" => assert!(text.contains("state: absent"), "{text}"),
            _ => assert!(
                text.contains(&format!("path: {}/\n", d.join("conf.d").display())),
                "{text}"
            ),
        }
    }
    for (args, says) in [
        (
            vec!["resource", "exec", "x"],
            "exec[x]: the kind `exec` cannot describe",
        ),
        (
            vec!["resource", "fil", "/x"],
            "no plugin provides the kind `fil`; did you mean `file`?",
        ),
        (
            vec!["resource", "file", "/etc/hosts", "mode=abc"],
            "command line: file[/etc/hosts]: `abc` is not a valid mode",
        ),
        (
            vec!["resource", "file", "/etc/hosts", "mode"],
            "`mode` is not PARAM=VALUE",
        ),
    ] {
        let o = command().args(&args).output().unwrap();
        assert_eq!(code(&o), 1, "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }
}

/// `describe` may only read: a plugin whose `describe` writes a file its footprint lets
/// its check-apply write is refused, and the file stays as it was.
#[test]
fn describe_may_only_read() {
    let (_g, plugins, grants) =
        homeostat_tests::granted_dir(&homeostat_tests::test_plugins().join("steer.wasm"));
    let d = tempfile::tempdir().unwrap();
    let counter = d.path().join("count");
    std::fs::write(&counter, "5\n").unwrap();
    let o = command()
        .args(["resource", "steer", "x"])
        .arg(format!("state={}", counter.display()))
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("--grants")
        .arg(&grants)
        .output()
        .unwrap();
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("error: steer[x]: ") && stderr(&o).contains("read-only"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&counter).unwrap(), "5\n");
}

#[test]
fn the_documented_example_follows_the_schema() {
    let doc = std::fs::read_to_string(root().join("docs/report.md")).unwrap();
    let start = doc
        .find("```json\n")
        .expect("a JSON example in docs/report.md")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    let example: serde_json::Value = serde_json::from_str(&doc[start..end]).unwrap();
    valid(&schema(), &example);
}

#[test]
fn a_long_run_writes_a_report_per_converged_period() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = graph(d, "one", false);
    let report = d.join("r.json");
    let mut run = Running::start(&g, &["--report", report.to_str().unwrap()]);
    let first = wait_for(|| report.exists().then(|| read_json(&report)))
        .expect("the first period's report");
    assert_eq!(first["run"]["period"], 1, "{first:#}");
    assert_eq!(first["counts"]["changes"], 1, "{first:#}");
    // Drift: repaired, and reported as a period of its own.
    std::fs::write(d.join("f"), "drifted").unwrap();
    let second = wait_for(|| {
        let r = read_json(&report);
        (r["run"]["period"] == 2).then_some(r)
    })
    .expect("a second period after the drift");
    valid(&schema(), &second);
    assert_eq!(second["counts"]["changes"], 1, "{second:#}");
    assert_eq!(read_json(&d.join("r.json.1"))["run"]["period"], 1);
    let status = run.stop();
    assert_eq!(status.code(), Some(0), "{}", run.log().join("\n"));
    // The final report covers the whole run.
    let last = read_json(&report);
    assert_eq!(last["counts"]["changes"], 2, "{last:#}");
    assert_eq!(last["exit_code"], 0);
    assert_eq!(read_json(&d.join("r.json.1"))["run"]["period"], 2);
}

#[test]
fn a_refresh_only_command_runs_when_notified_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ran = d.join("ran");
    let text = |content: &str| {
        format!(
            "graph: handler\nresources:\n  file:\n  - name: conf\n    path: {d}/conf\n    \
             content: \"{content}\"\n  exec:\n  - name: reload\n    shell: /bin/sh\n    \
             cmd: echo x >> {ran}\n    refreshonly: true\n\
             edges:\n- from: {{kind: file, name: conf}}\n  to: {{kind: exec, name: reload}}\n  \
             notify: true\n",
            d = d.display(),
            ran = ran.display()
        )
    };
    let g = write_graph(d, "g.yaml", &text("one"));
    let o = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "x\n");
    // Converged: the handler does not run, nothing is reported, noop sees no drift.
    let o = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = run_converged(&g, "0", &["--noop", "--detailed-exitcodes"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "x\n");
    // A change to what notifies it runs it once more.
    write_graph(d, "g.yaml", &text("two"));
    let o = run_converged(&g, "0", &["--detailed-exitcodes"]);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "x\nx\n");
}

#[test]
fn version_completions_and_man_pages() {
    let o = command().arg("--version").output().unwrap();
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{v}");
    assert!(
        v.contains("commit ") && v.contains("homeostat:resource 0.1.0"),
        "{v}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let o = command().args(["completions", shell]).output().unwrap();
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && script.contains("converged-timeout"),
            "{shell}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let o = command()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for page in ["homeostat.1", "homeostat-run.1", "homeostat-ca-issue.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let run = std::fs::read_to_string(dir.path().join("homeostat-run.1")).unwrap();
    assert!(run.contains("detailed\\-exitcodes"), "{run}");
    // A subcommand's help: its exit codes and examples.
    let o = command().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(
        help.contains("Exit codes") && help.contains("Examples:"),
        "{help}"
    );
    let o = command().args(["ca", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    assert!(!help.contains("--converged-timeout"), "{help}");
}

#[test]
fn json_logs_and_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let g = graph(dir.path(), "one", true);
    let o = command()
        .args(["run", g.to_str().unwrap(), "--converged-timeout", "0"])
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = stderr(&o);
    let mut levels = Vec::new();
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{err}"));
        levels.push(v["level"].as_str().unwrap_or("").to_string());
        assert!(v["message"].is_string(), "{line}");
    }
    assert!(levels.iter().any(|l| l == "ERROR"), "{err}");
    assert!(err.contains("settled with failures"), "{err}");
    let o = command()
        .args(["-q", "run", g.to_str().unwrap(), "--converged-timeout", "0"])
        .args(["--color", "never"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!err.contains(" INFO "), "{err}");
    assert!(err.contains(" ERROR "), "{err}");
    assert!(err.contains("settled with failures"), "{err}");
}

#[test]
fn only_and_tags_run_a_part_of_the_graph_with_its_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = write_graph(
        d,
        "g.yaml",
        &format!(
            "graph: part\nresources:\n  file:\n  - name: dir\n    path: {d}/t/\n  \
             - name: a\n    path: {d}/t/a\n    content: a\n    meta: {{tags: [web]}}\n  \
             - name: b\n    path: {d}/t/b\n    content: b\n    meta: {{tags: [db]}}\n  \
             exec:\n  - name: after-a\n    shell: /bin/sh\n    cmd: touch {d}/after-a\n\
             edges:\n- from: {{kind: file, name: a}}\n  to: {{kind: exec, name: after-a}}\n",
            d = d.display()
        ),
    );
    let report = d.join("r.json");
    // `--tags web`: file[a], and file[dir] it depends on (autoedge); not its dependent.
    let o = run_converged(
        &g,
        "0",
        &["--tags", "web", "--report", report.to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(d.join("t/a").exists() && !d.join("t/b").exists());
    assert!(!d.join("after-a").exists(), "a dependent ran");
    let err = stderr(&o);
    assert!(
        err.contains("not targeted (not run): file[b], exec[after-a]"),
        "{err}"
    );
    let r = read_json(&report);
    valid(&schema(), &r);
    assert_eq!(r["counts"]["not_targeted"], 2, "{r:#}");
    // `--only` a dependent brings what it depends on.
    let o = run_converged(&g, "0", &["--only", "exec[after-a]"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(d.join("after-a").exists() && !d.join("t/b").exists());
    // A typo runs nothing and fails, naming what exists; a malformed id is a usage error.
    for (flag, value, exit, says) in [
        ("--tags", "wbe", 1, "the tags it uses: db, web"),
        ("--only", "file[zz]", 1, "does not have: file[zz]"),
        ("--only", "zz", 64, "write it kind[name]"),
    ] {
        let o = run_converged(&g, "0", &[flag, value]);
        assert_eq!(code(&o), exit, "{}", stderr(&o));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
    }
}

/// A graph of one file `d/name` with `content`, sensitive or not.
fn one_file(d: &Path, name: &str, content: &str, sensitive: bool) -> std::path::PathBuf {
    write_graph(
        d,
        "g.yaml",
        &format!(
            "graph: one\nresources:\n  file:\n  - name: {name}\n    path: {}/{name}\n    \
             content: {content:?}\n    meta: {{sensitive: {sensitive}}}\n",
            d.display()
        ),
    )
}

#[test]
fn a_sensitive_resource_never_shows_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("secret"), "old-password\n").unwrap();
    let graph = |sensitive| one_file(d, "secret", "new-password\n", sensitive);
    let o = run_converged(&graph(false), "0", &["--noop"]);
    assert!(stderr(&o).contains("+new-password"), "{}", stderr(&o));
    let report = d.join("r.json");
    let o = run_converged(
        &graph(true),
        "0",
        &["--noop", "--report", report.to_str().unwrap()],
    );
    let err = stderr(&o);
    assert!(err.contains("would change (noop): content"), "{err}");
    assert!(!err.contains("password"), "{err}");
    let r = std::fs::read_to_string(&report).unwrap();
    assert!(!r.contains("password"), "{r}");
}

#[test]
fn diff_shows_what_a_real_change_changed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let graph = |sensitive| one_file(d, "conf", "new line\nsame\n", sensitive);
    let reset = || std::fs::write(d.join("conf"), "old line\nsame\n").unwrap();
    reset();
    let o = run_converged(&graph(false), "0", &["--diff"]);
    let err = stderr(&o);
    assert!(
        err.contains("file[conf]: content: 14 bytes -> 14 bytes\n")
            && err.contains("\n  -old line\n  +new line\n   same\n"),
        "{err}"
    );
    // Without --diff, a real change is one line.
    reset();
    let o = run_converged(&graph(false), "0", &[]);
    assert!(!stderr(&o).contains("-old line"), "{}", stderr(&o));
    // Never for a secret.
    reset();
    let o = run_converged(&graph(true), "0", &["--diff"]);
    let err = stderr(&o);
    assert!(
        err.contains("content: 14 bytes -> 14 bytes") && !err.contains("line"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("conf")).unwrap(),
        "new line\nsame\n"
    );
}

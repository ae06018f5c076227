//! The `file` resource end to end: the real binary, the real file system, real inotify.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use homeostat_tests::{
    Running, homeostat, homeostat_command, run_converged, stderr, wait_content, wait_for,
    wait_mode, write_graph,
};

fn run_once(graph: &Path) -> std::process::Output {
    run_converged(graph, "0.3", &[])
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn creates_file_with_content_and_mode_then_is_idempotent() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("motd");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: motd\n    path: {}\n    content: \"hello\\n\"\n    mode: \"0640\"\n",
            f.display()
        ),
    );
    let out = run_once(&g);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello\n");
    assert_eq!(mode(&f), 0o640);
    let log = stderr(&out);
    assert!(
        log.contains("file[motd]"),
        "the change is logged naming file[motd]:\n{log}"
    );
    assert!(log.contains("1 changes"), "{log}");

    let again = run_once(&g);
    assert!(again.status.success(), "{}", stderr(&again));
    let log = stderr(&again);
    assert!(
        log.contains("0 changes"),
        "a second run changes nothing:\n{log}"
    );
    assert!(
        !log.contains("file[motd]:"),
        "no change line on an idempotent run:\n{log}"
    );
}

/// Issue 19 §6: an unquoted mode is applied as written (octal), never as another mode;
/// unquoted forms that YAML reads as a number are refused before anything is applied.
#[test]
fn unquoted_modes_are_applied_as_written_or_refused() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, c) = (t.path().join("a"), t.path().join("b"), t.path().join("c"));
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - {{name: a, path: {}, mode: 0640}}\n  \
             - {{name: b, path: {}, mode: 0o604}}\n  - {{name: c, path: {}, mode: 02711}}\n",
            a.display(),
            b.display(),
            c.display()
        ),
    );
    let out = run_once(&g);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(mode(&a), 0o640);
    assert_eq!(mode(&b), 0o604);
    assert_eq!(mode(&c), 0o2711);

    for (written, hint) in [
        ("644", "quote it"),
        ("420", "quote it"),
        ("6.44", "quote it"),
        ("0x1a4", "not a valid mode"),
    ] {
        let d = t.path().join("d");
        let g = write_graph(
            t.path(),
            "bad.yaml",
            &format!(
                "graph: t\nresources:\n  file:\n  - {{name: d, path: {}, mode: {written}}}\n",
                d.display()
            ),
        );
        let out = run_once(&g);
        assert!(!out.status.success(), "mode: {written} was accepted");
        assert!(stderr(&out).contains(hint), "{written}: {}", stderr(&out));
        assert!(!d.exists(), "mode: {written}: nothing is applied");
    }
}

#[test]
fn directory_tree_with_autoedges_owner_and_symlink() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("a/b");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  file:
  - name: conf
    path: {d}/c/app.conf
    content: "x=1\n"
    owner: daemon
    group: "1"
  - name: dir-c
    path: {d}/c/
    mode: "0750"
  - name: dir-b
    path: {d}/
  - name: dir-a
    path: {a}/
  - name: link
    path: {d}/c/current
    symlink: true
    source: {d}/c/app.conf
"#,
            d = d.display(),
            a = t.path().join("a").display()
        ),
    );
    // The resources are listed child-first: only the autoedges (parent directory before
    // its contents) make this converge without failures.
    let out = run_once(&g);
    assert!(out.status.success(), "{}", stderr(&out));
    let conf = d.join("c/app.conf");
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "x=1\n");
    let md = std::fs::metadata(&conf).unwrap();
    assert_eq!((md.uid(), md.gid()), (1, 1));
    assert_eq!(mode(&d.join("c")), 0o750);
    assert_eq!(std::fs::read_link(d.join("c/current")).unwrap(), conf);
    let log = stderr(&out);
    assert!(!log.contains("ERROR"), "no failure on the way:\n{log}");
}

#[test]
fn source_recurse_purge_and_absent() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("one"), "1").unwrap();
    std::fs::write(src.join("sub/two"), "2").unwrap();
    let dst = t.path().join("dst");
    std::fs::create_dir_all(&dst).unwrap();
    std::fs::write(dst.join("stale"), "old").unwrap();
    let gone = t.path().join("gone");
    std::fs::write(&gone, "bye").unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: tree\n    path: {}/\n    source: {}/\n    recurse: true\n    purge: true\n  - name: gone\n    path: {}\n    state: absent\n",
            dst.display(),
            src.display(),
            gone.display()
        ),
    );
    let out = run_once(&g);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dst.join("one")).unwrap(), "1");
    assert_eq!(std::fs::read_to_string(dst.join("sub/two")).unwrap(), "2");
    assert!(
        !dst.join("stale").exists(),
        "purge removes unmanaged entries"
    );
    assert!(!gone.exists(), "state: absent removes the file");
}

#[test]
fn force_is_needed_to_replace_a_directory_by_a_file() {
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("thing");
    std::fs::create_dir(&p).unwrap();
    let graph = |force: bool| {
        format!(
            "graph: t\nresources:\n  file:\n  - name: thing\n    path: {}\n    content: \"f\"\n    force: {force}\n",
            p.display()
        )
    };
    let g = write_graph(t.path(), "g.yaml", &graph(false));
    let out = run_once(&g);
    assert_eq!(
        out.status.code(),
        Some(1),
        "settles with a failure:\n{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("force"),
        "the error says how to allow it:\n{}",
        stderr(&out)
    );
    assert!(p.is_dir(), "nothing was destroyed");
    let g = write_graph(t.path(), "g.yaml", &graph(true));
    let out = run_once(&g);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "f");
}

#[test]
fn noop_reports_and_changes_nothing() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: f\n    path: {}\n    content: x\n",
            f.display()
        ),
    );
    let out = homeostat(&[
        "run",
        g.to_str().unwrap(),
        "--noop",
        "--converged-timeout",
        "0.3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "exit 2 = changes pending:\n{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("would change"), "{}", stderr(&out));
    assert!(!f.exists());
}

/// A graph `t` of `n` files `DIR/d/f0`.. (directory `d` made here), file `fI` holding
/// `"I\n"`; returns the directory and the graph's path.
fn numbered_files(dir: &Path, n: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let files = dir.join("d");
    std::fs::create_dir(&files).unwrap();
    let mut yaml = String::from("graph: t\nresources:\n  file:\n");
    for i in 0..n {
        yaml.push_str(&format!(
            "  - name: f{i}\n    path: {}/f{i}\n    content: \"{i}\\n\"\n",
            files.display()
        ));
    }
    (files, write_graph(dir, "g.yaml", &yaml))
}

#[test]
fn every_change_is_logged_before_the_summary() {
    // Log lines are written in batches (cli::logging); the closing summary must still
    // come after all of them, and none may be lost at exit.
    let t = tempfile::tempdir().unwrap();
    let (_, g) = numbered_files(t.path(), 500);
    // The debug lines of the engine's stop are logged microseconds before the summary is
    // printed, and `runtime shut down` just before the process exits.
    let out = homeostat_command(t.path(), &["run", g.to_str().unwrap()])
        .args(["--converged-timeout", "0"])
        .env(
            "RUST_LOG",
            "info,homeostat::engine=debug,homeostat::engine::vertex=info,homeostat::cli=debug",
        )
        .output()
        .expect("run homeostat");
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    let lines: Vec<&str> = log.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{log}"))
    };
    let summary = at("converged after");
    let logged = |ls: &[&str]| ls.iter().filter(|l| l.contains("create file")).count();
    assert_eq!(logged(&lines[..summary]), 500, "{log}");
    assert_eq!(logged(&lines[summary..]), 0, "{log}");
    assert!(at("engine stopped") < summary, "{log}");
    assert!(lines[summary].contains("500 changes"), "{log}");
    assert!(lines[summary + 1].starts_with("  changed: file[f"), "{log}");
    assert!(
        lines.last().unwrap().contains("runtime shut down"),
        "the last line logged is written before the exit:\n{log}"
    );
}

/// `homeostat run GRAPH --converged-timeout 0.3` logging every check-apply (`debug` logs
/// one that found nothing to do as `kind[name]: ok`).
fn run_logging_checks(graph: &Path) -> (std::process::Output, String) {
    let out = homeostat_command(
        graph.parent().expect("graph in a directory"),
        &[
            "run",
            graph.to_str().expect("UTF-8 graph path"),
            "--converged-timeout",
            "0.3",
        ],
    )
    .env("RUST_LOG", "homeostat::engine=debug")
    .output()
    .expect("run homeostat");
    let log = stderr(&out);
    (out, log)
}

#[test]
fn a_resource_is_not_woken_by_its_own_write() {
    let t = tempfile::tempdir().unwrap();
    // New files are linked into place; f1 exists and is replaced by a rename.
    let (dir, g) = numbered_files(t.path(), 20);
    std::fs::write(dir.join("f1"), "stale\n").unwrap();
    let (out, log) = run_logging_checks(&g);
    assert!(out.status.success(), "{log}");
    let changed = log
        .lines()
        .filter(|l| l.contains("INFO") && l.contains("file[f"));
    assert_eq!(changed.count(), 20, "{log}");
    // Each file's link or rename into place reached the watch hub (the other subscribers
    // of the path would be woken by it), but not the resource that made it: no second,
    // verifying check-apply.
    assert!(
        !log.contains("]: ok"),
        "a resource re-checked its own write:\n{log}"
    );

    // Anyone else's change is still seen and repaired, also one made while the repair of
    // the previous one is being put in place (no pause between them).
    let f = dir.join("f3");
    let mut run = Running::start(&g, &[]);
    run.wait_log(&["running graph"]);
    for i in 0..50 {
        std::fs::write(&f, format!("bad {i}\n")).unwrap();
        wait_content(&f, "3\n");
    }
    assert!(run.alive());
    run.stop();

    // Sanity: the log does name unchanged check-applies.
    let (out, log) = run_logging_checks(&g);
    assert!(out.status.success(), "{log}");
    assert_eq!(log.matches("]: ok").count(), 20, "{log}");
}

#[test]
fn drift_is_repaired_by_the_event_it_causes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("d");
    let f = dir.join("motd");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  file:\n  - name: d\n    path: {}/\n  - name: motd\n    path: {}\n    content: \"good\\n\"\n    mode: \"0644\"\n",
            dir.display(),
            f.display()
        ),
    );
    let mut run = Running::start(&g, &[]);
    wait_content(&f, "good\n");
    run.wait_log(&["file[motd]"]);

    // Edit in place.
    std::fs::write(&f, "bad\n").unwrap();
    wait_content(&f, "good\n");
    // chmod.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    wait_mode(&f, 0o644);
    // Delete.
    std::fs::remove_file(&f).unwrap();
    wait_content(&f, "good\n");
    // Atomic replace, as editors do.
    let tmp = dir.join(".motd.swp");
    std::fs::write(&tmp, "edited\n").unwrap();
    std::fs::rename(&tmp, &f).unwrap();
    wait_content(&f, "good\n");
    // Remove the whole directory (renamed away first: a recursive delete would race the
    // repair it triggers): the directory resource and then the file come back.
    let gone = t.path().join("gone");
    std::fs::rename(&dir, &gone).unwrap();
    std::fs::remove_dir_all(&gone).unwrap();
    wait_content(&f, "good\n");
    // Replace the file by a symlink to elsewhere (atomically, as an attacker would).
    let link = dir.join(".evil");
    std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
    std::fs::rename(&link, &f).unwrap();
    let back = wait_for(|| {
        let md = std::fs::symlink_metadata(&f).ok()?;
        (md.is_file() && std::fs::read_to_string(&f).ok()? == "good\n").then_some(())
    });
    assert!(
        back.is_some(),
        "the symlink was replaced by the managed file"
    );
    assert!(run.alive());
    let status = run.stop();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

/// `rm -rf` of a managed directory: the file inside it sees its own event first, finds
/// its directory gone, and waits for the directory's resource instead of logging an
/// error (a parent being re-created is not an error of the child).
#[test]
fn removing_a_managed_tree_repairs_it_without_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let g = homeostat_tests::write_graph(
        dir.path(),
        "g.yaml",
        &format!(
            "graph: tree\nresources:\n  file:\n  - name: d\n    path: {t}/\n  - name: e\n    \
             path: {t}/sub/\n  - name: f\n    path: {t}/sub/f\n    content: \"x\\n\"\n",
            t = tree.display()
        ),
    );
    let run = homeostat_tests::Running::start(&g, &[]);
    homeostat_tests::wait_content(&tree.join("sub/f"), "x\n");
    for round in 0..5 {
        // homeostat may re-create an entry while the tree is being removed (`rm -rf` then
        // fails with "not empty"): remove until it is gone.
        let mut tries = 0;
        while let Err(e) = std::fs::remove_dir_all(&tree) {
            tries += 1;
            assert!(
                e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 50,
                "round {round}: {e}"
            );
        }
        homeostat_tests::wait_content(&tree.join("sub/f"), "x\n");
        let errors: Vec<String> = run
            .log()
            .into_iter()
            .filter(|l| l.contains("ERROR") || l.contains("blocked"))
            .collect();
        assert!(errors.is_empty(), "round {round}: {errors:#?}");
    }
}

//! Hardening end to end (docs/security.md): the real binary, run as root, against a
//! directory layout an unprivileged user controls part of.

use std::os::unix::fs::{chown, lchown, symlink};
use std::path::{Path, PathBuf};

use homeostat_tests::{Running, wait_content, write_graph};

/// An unprivileged uid for the "user" of these tests.
const USER: u32 = 65534;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A user replaces a directory of their home with a link to root's `/etc` between two
/// check-applies: homeostat, as root, neither writes nor reads there, and says why.
#[test]
fn a_home_directory_turned_into_a_link_to_etc_is_never_written_through() {
    if !is_root() {
        eprintln!("skipped: needs root to hand directories to another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let alice = t.path().join("home/alice");
    let etc = t.path().join("etc");
    std::fs::create_dir_all(alice.join("www")).unwrap();
    std::fs::create_dir(&etc).unwrap();
    for d in [alice.as_path(), &alice.join("www")] {
        chown(d, Some(USER), Some(USER)).unwrap();
    }
    let page = alice.join("www/index.html");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: web\nresources:\n  file:\n  - name: index\n    path: {}\n    content: \"hello\\n\"\n",
            page.display()
        ),
    );
    let run = Running::start(&g, &[]);
    wait_content(&page, "hello\n");

    // The user's move: keep the old directory, point the name at root's.
    // The link comes after homeostat has seen the directory go (the slower user, and the
    // case that once went unnoticed: a link is not a directory when it is created).
    std::fs::rename(alice.join("www"), alice.join("www.old")).unwrap();
    run.wait_log(&["file[index]", "cannot reach", "No such file"]);
    symlink(&etc, alice.join("www")).unwrap();
    lchown(alice.join("www"), Some(USER), Some(USER)).unwrap();
    let line = run.wait_log(&["file[index]", "goes through the symlink", "home/alice/www`"]);
    assert!(
        line.contains("uid 65534") && line.contains("trust_parents"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_dir(&etc).unwrap().count(),
        0,
        "nothing lands in etc"
    );
    drop(run);

    // Put back, the directory is managed again.
    std::fs::remove_file(alice.join("www")).unwrap();
    std::fs::rename(alice.join("www.old"), alice.join("www")).unwrap();
    std::fs::write(&page, "defaced\n").unwrap();
    let _run = Running::start(&g, &[]);
    wait_content(&page, "hello\n");
    assert_eq!(std::fs::read_dir(&etc).unwrap().count(), 0);
}

/// The operator's own layout (`/var/run -> /run`, a link root owns) keeps working, and
/// `trust_parents` lets the operator vouch for a user's link.
#[test]
fn roots_links_are_followed_and_trust_parents_is_per_resource() {
    if !is_root() {
        eprintln!("skipped: needs root to hand directories to another user");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let run_dir = t.path().join("run");
    std::fs::create_dir(&run_dir).unwrap();
    symlink(&run_dir, t.path().join("varrun")).unwrap();
    let shared = t.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let alice = t.path().join("alice");
    std::fs::create_dir(&alice).unwrap();
    chown(&alice, Some(USER), Some(USER)).unwrap();
    symlink(&shared, alice.join("data")).unwrap();
    lchown(alice.join("data"), Some(USER), Some(USER)).unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: layout\nresources:\n  file:\n  - name: pid\n    path: {run}/pid\n    content: \"1\\n\"\n  \
             - name: trusted\n    path: {alice}/data/a\n    content: \"a\\n\"\n    meta: {{trust_parents: true}}\n  \
             - name: untrusted\n    path: {alice}/data/b\n    content: \"b\\n\"\n",
            run = t.path().join("varrun").display(),
            alice = alice.display()
        ),
    );
    let out = homeostat_tests::run_converged(&g, "0.3", &[]);
    let log = homeostat_tests::stderr(&out);
    assert_eq!(
        std::fs::read_to_string(run_dir.join("pid")).unwrap(),
        "1\n",
        "{log}"
    );
    assert_eq!(
        std::fs::read_to_string(shared.join("a")).unwrap(),
        "a\n",
        "{log}"
    );
    assert!(!shared.join("b").exists(), "{log}");
    assert!(
        log.contains("file[untrusted]") && log.contains("goes through the symlink"),
        "{log}"
    );
    assert!(
        !out.status.success(),
        "a refused resource is a failure: {log}"
    );
}

/// Two resources reach one file through two names (a linked directory): the second write
/// is refused, both resources fail naming each other, and the run settles instead of
/// rewriting the file forever.
#[test]
fn one_file_two_names_through_a_linked_directory_is_a_conflict_not_a_fight() {
    let t = tempfile::tempdir().unwrap();
    let real = t.path().join("real");
    std::fs::create_dir(&real).unwrap();
    symlink(&real, t.path().join("alias")).unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: twins\nresources:\n  file:\n  - name: a\n    path: {real}/f\n    content: \"a\\n\"\n  \
             - name: b\n    path: {alias}/f\n    content: \"b\\n\"\n",
            real = real.display(),
            alias = t.path().join("alias").display()
        ),
    );
    let out = homeostat_tests::run_converged(&g, "0.5", &[]);
    let log = homeostat_tests::stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("one file, two names"), "{log}");
    assert!(
        log.contains("failed: file[a]") || log.contains("file[a]: "),
        "both are named: {log}"
    );
    let summary = log
        .lines()
        .find(|l| l.contains("settled"))
        .unwrap_or_default();
    assert!(summary.contains("2 failed"), "{log}");
    let changes: usize = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" changes")?.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(changes <= 2, "no fight: {summary}");
}

/// A `file` that receives its `path` from another `file` would fight it forever. When
/// the graph shows it (the sender's own `path` is what it sends), `validate` refuses it
/// (`tests/cases/send-path-to-another-file`); when only the run shows it (here the path
/// comes from a command's output), it is a conflict at the second write, and the run
/// settles.
#[test]
fn a_path_received_from_another_resource_is_a_conflict_not_a_fight() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("f");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: recv\nresources:\n  exec:\n  - name: where\n    cmd: \"printf {f}\"\n    shell: /bin/sh\n  \
             file:\n  - name: a\n    path: {f}\n    content: \"a\\n\"\n  \
             - name: b\n    path: {other}\n    content: \"b\\n\"\n\
             edges:\n- name: e\n  from: {{kind: exec, name: where}}\n  to: {{kind: file, name: b}}\n  send: {{stdout: path}}\n",
            f = f.display(),
            other = t.path().join("other").display()
        ),
    );
    let out = homeostat_tests::run_converged(&g, "0.5", &[]);
    let log = homeostat_tests::stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("one file, two names"), "{log}");
    let summary = log
        .lines()
        .find(|l| l.contains("settled"))
        .unwrap_or_default();
    let changes: usize = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" changes")?.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(changes <= 3, "no fight: {summary}");
    assert!(!t.path().join("other").exists());
}

/// A graph of two files, `a` and `b` in `dir`, with `b_meta` as `b`'s metaparams; the
/// graph's path and `b`'s.
fn a_and_b(dir: &Path, b_meta: &str) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    let g = write_graph(
        dir,
        "g.yaml",
        &format!(
            "graph: ab\nresources:\n  file:\n  - name: a\n    path: {}\n    content: \"a\\n\"\n  \
             - name: b\n    path: {}\n    content: \"b\\n\"\n    meta: {{{b_meta}}}\n",
            a.display(),
            b.display()
        ),
    );
    (g, b)
}

/// A homeostat bug that panics while running a resource (injected in test builds) fails
/// that resource visibly: logged, in the summary, in the exit code; the rest runs on.
#[test]
fn a_panic_while_running_a_resource_is_a_counted_failure() {
    let t = tempfile::tempdir().unwrap();
    let (g, b) = a_and_b(t.path(), "poll: 1");
    for (place, who) in [("check-apply", "file[a]"), ("timer", "file[b]")] {
        let out = homeostat_tests::homeostat_command(
            t.path(),
            &["run", g.to_str().unwrap(), "--converged-timeout", "1.5"],
        )
        .env("HOMEOSTAT_TEST_PANIC", format!("{place}:{who}"))
        .output()
        .unwrap();
        let log = homeostat_tests::stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{log}");
        assert!(
            log.contains(&format!("failed: {who}: internal error")),
            "{log}"
        );
        assert!(log.contains("1 failed"), "{log}");
    }
    // The other resource ran.
    assert_eq!(std::fs::read_to_string(&b).unwrap(), "b\n");
}

/// `meta: {noop: true}` in a normal run reports "would change", never "changed", in the
/// log and the summary; the pending change is not counted among the changes made.
#[test]
fn a_noop_resource_is_never_reported_as_changed() {
    let t = tempfile::tempdir().unwrap();
    let (g, b) = a_and_b(t.path(), "noop: true");
    let out = homeostat_tests::run_converged(&g, "0.3", &[]);
    let log = homeostat_tests::stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{log}");
    assert!(
        log.contains("1 changes, 1 changes pending (noop), 0 failed"),
        "{log}"
    );
    assert!(log.contains("  changed: file[a]\n"), "{log}");
    assert!(log.contains("  would change (noop): file[b]"), "{log}");
    assert!(log.contains("file[b]: would change (noop)"), "{log}");
    assert!(!b.exists());
}

/// Unmounts (lazily) when dropped, so a failing test leaves no mount behind.
struct Mounted(std::path::PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A new mount over a managed directory changes what the path means without an inotify
/// event; homeostat notices it through the mount table and manages the file that is there
/// now, and again after the mount goes.
#[test]
fn a_mount_over_a_managed_directory_is_noticed_and_repaired() {
    if !is_root() {
        eprintln!("skipped: needs root to mount");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("conf.d");
    std::fs::create_dir(&dir).unwrap();
    let f = dir.join("app.conf");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: mounts\nresources:\n  file:\n  - name: conf\n    path: {}\n    content: \"managed\\n\"\n",
            f.display()
        ),
    );
    let run = Running::start(&g, &[]);
    wait_content(&f, "managed\n");
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "homeostat-test"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "mount a tmpfs over {}", dir.display());
    let mounted = Mounted(dir.clone());
    // The mount hides the file; the graph's file appears in the new file system.
    wait_content(&f, "managed\n");
    // And drift there is repaired: the watch was placed again on the mount.
    std::fs::write(&f, "drift\n").unwrap();
    wait_content(&f, "managed\n");
    drop(mounted);
    wait_content(&f, "managed\n");
    drop(run);
}

/// The pids of running processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .filter(|pid| {
            // Not a zombie waiting for its reaper.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit(") ").next().is_some_and(|r| !r.starts_with('Z')))
        })
        .collect()
}

/// Kills the test's daemon if homeostat did not.
struct KillOnDrop(Vec<String>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let argv: Vec<&str> = self.0.iter().map(String::as_str).collect();
        for pid in pids_running(&argv) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// A command that leaves a child behind with `setsid` (out of its process group) does not
/// outlive homeostat: each command runs in a cgroup of its own, stopped with its resource.
#[test]
fn a_setsid_child_of_a_command_stops_with_its_resource() {
    if !is_root() {
        eprintln!("skipped: needs root to make cgroups");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    // A command line nothing else runs, to find the daemon by.
    let secs = format!("300.{}", std::process::id());
    let argv = vec!["sleep".to_string(), secs.clone()];
    let _cleanup = KillOnDrop(argv.clone());
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: daemons\nresources:\n  exec:\n  - name: daemon\n    \
             cmd: \"setsid sleep {secs} >/dev/null 2>&1 < /dev/null &\"\n    shell: /bin/sh\n"
        ),
    );
    let mut run = Running::start(&g, &[]);
    let argv_ref: Vec<&str> = argv.iter().map(String::as_str).collect();
    assert!(
        homeostat_tests::wait_for(|| (!pids_running(&argv_ref).is_empty()).then_some(())).is_some(),
        "the command started its daemon"
    );
    // SIGTERM: 0 when the run had settled, 143 when it came first (docs/exit-codes.md);
    // either way homeostat stops, and what matters here is that the daemon stops too.
    let code = run.stop().code();
    assert!(matches!(code, Some(0 | 143)), "{code:?}");
    assert!(
        homeostat_tests::wait_for(|| pids_running(&argv_ref).is_empty().then_some(())).is_some(),
        "the daemon outlived homeostat: {:?}",
        pids_running(&argv_ref)
    );
}

//! The `exec` resource end to end: the real binary running real processes — guards,
//! timeouts that kill the whole process group, user and group switching, watch commands
//! and bad input.

use std::path::Path;
use std::process::Command;

use homeostat_tests::{Running, process_running, run_converged, stderr, wait_for, write_graph};

fn run_once(graph: &Path, seconds: &str) -> std::process::Output {
    run_converged(graph, seconds, &[])
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map_or(0, |s| s.lines().count())
}

#[test]
fn guards_decide_whether_cmd_runs_and_the_environment_is_empty() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().display();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: creates
    cmd: touch {d}/created
    creates: {d}/created
  - name: if-false
    cmd: touch {d}/if-false
    ifcmd: "false"
  - name: if-true
    cmd: touch {d}/if-true
    ifcmd: test -d {d}
  - name: nif-true
    cmd: touch {d}/nif-true
    nifcmd: "true"
  - name: nif-shell
    cmd: touch {d}/nif-shell
    nifcmd: test -e {d}/nothing-here
    nifshell: /bin/sh
  - name: env
    shell: /bin/sh
    cmd: "env > {d}/env; echo done >> {d}/done"
    donecmd: touch {d}/donecmd-ran
  - name: args
    cmd: /bin/sh
    args: ["-c", "echo \"$0 $1\" > {d}/args", "one two", "three"]
"#
        ),
    );
    let out = run_once(&g, "0.5");
    assert!(out.status.success(), "{}", stderr(&out));
    let p = |n: &str| t.path().join(n);
    assert!(p("created").exists());
    assert!(!p("if-false").exists(), "ifcmd exited 1: cmd must not run");
    assert!(p("if-true").exists());
    assert!(!p("nif-true").exists(), "nifcmd exited 0: cmd must not run");
    assert!(p("nif-shell").exists());
    assert!(p("donecmd-ran").exists());
    assert_eq!(
        std::fs::read_to_string(p("args")).unwrap(),
        "one two three\n",
        "args are passed without a shell splitting them"
    );
    let env = std::fs::read_to_string(p("env")).unwrap();
    for var in env.lines() {
        let name = var.split('=').next().unwrap();
        assert!(
            ["PWD", "SHLVL", "_", "OLDPWD"].contains(&name),
            "the environment is empty by default, got {var}:\n{env}"
        );
    }
    assert!(stderr(&out).contains("exec[env]: ran `/bin/sh -c"));

    // Second run: `creates` exists now, so only the unguarded resources run again.
    let again = run_once(&g, "0.5");
    assert!(again.status.success(), "{}", stderr(&again));
    let log = stderr(&again);
    assert!(!log.contains("exec[creates]: ran"), "{log}");
    assert_eq!(
        lines(&p("done")),
        2,
        "without a guard cmd runs on every run"
    );
}

#[test]
fn noop_runs_guards_but_not_cmd() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().display();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  exec:\n  - name: x\n    cmd: touch {d}/x\n    ifcmd: touch {d}/guard\n"
        ),
    );
    let out = run_converged(&g, "0.3", &["--noop"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("exec[x]: would change (noop): ran `touch"));
    assert!(!t.path().join("x").exists());
}

#[test]
fn timeout_kills_the_process_group_and_fails_the_resource() {
    let t = tempfile::tempdir().unwrap();
    let pidfile = t.path().join("pid");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: slow
    shell: /bin/sh
    cmd: "sleep 60 & echo $! > {}; wait"
    timeout: 500
"#,
            pidfile.display()
        ),
    );
    let out = run_once(&g, "0.5");
    assert!(
        !out.status.success(),
        "a timed-out command fails its resource"
    );
    let log = stderr(&out);
    assert!(
        log.contains("exec[slow]") && log.contains("did not finish within 500ms"),
        "{log}"
    );
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_for(|| (!process_running(pid)).then_some(())).is_some(),
        "the background `sleep` ({pid}) in the killed process group still runs"
    );
}

#[test]
fn a_second_signal_kills_a_running_command() {
    let t = tempfile::tempdir().unwrap();
    let pidfile = t.path().join("pid");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            "graph: t\nresources:\n  exec:\n  - name: long\n    shell: /bin/sh\n    cmd: \"echo $$ > {}; exec sleep 60\"\n",
            pidfile.display()
        ),
    );
    let mut h = Running::start(&g, &[]);
    let pid: i32 = wait_for(|| std::fs::read_to_string(&pidfile).ok()?.trim().parse().ok())
        .expect("the command started");
    // The first signal lets check-applies in progress finish: the command keeps running.
    h.signal(libc::SIGTERM);
    h.wait_log(&["stopping"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        process_running(pid),
        "a graceful stop waits for the command"
    );
    // The second abandons them: the command's process group is killed.
    h.signal(libc::SIGTERM);
    h.wait_exit();
    assert!(
        wait_for(|| (!process_running(pid)).then_some(())).is_some(),
        "the command ({pid}) survived homeostat's shutdown"
    );
}

/// A non-root user for the test, created once (`useradd`); `None` when not root.
fn test_user() -> Option<(u32, u32)> {
    const NAME: &str = "homeostat-exec-test";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: switching users needs root");
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id").args([flag, NAME]).output().ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        // Races with a parallel test are harmless: useradd fails, the user exists.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--user-group", NAME])
            .status();
    }
    Some((id("-u")?, id("-g")?))
}

#[test]
fn runs_as_another_user_and_group() {
    let Some((uid, gid)) = test_user() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let d = t.path().display();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: as-user
    shell: /bin/sh
    cmd: "id -u > {d}/user; id -g >> {d}/user"
    user: homeostat-exec-test
  - name: as-user-and-group
    shell: /bin/sh
    cmd: "id -u > {d}/both; id -g >> {d}/both"
    user: homeostat-exec-test
    group: daemon
"#
        ),
    );
    let out = run_once(&g, "0.5");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(t.path().join("user")).unwrap(),
        format!("{uid}\n{gid}\n")
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("both")).unwrap(),
        format!("{uid}\n1\n")
    );
}

#[test]
fn every_line_of_a_watch_command_is_an_event() {
    let t = tempfile::tempdir().unwrap();
    let events = t.path().join("events");
    let runs = t.path().join("runs");
    std::fs::write(&events, "").unwrap();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: react
    shell: /bin/sh
    cmd: "echo run >> {}"
    watchcmd: tail -n0 -F {}
"#,
            runs.display(),
            events.display()
        ),
    );
    let h = Running::start(&g, &[]);
    assert!(wait_for(|| (lines(&runs) >= 1).then_some(())).is_some());
    // tail may start after the first append: keep appending until the runs follow.
    let mut n = 0;
    let reacted = wait_for(|| {
        n += 1;
        if n % 25 == 0 {
            std::fs::write(&events, "line\n".repeat(n / 25)).unwrap();
        }
        (lines(&runs) >= 2).then_some(())
    });
    assert!(
        reacted.is_some(),
        "a watch line did not run cmd; log:\n{}",
        h.log().join("\n")
    );
}

#[test]
fn bad_input_names_the_resource_and_the_engine_keeps_running() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().display();
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: missing
    cmd: no-such-program-xyz --flag
    meta: {{retry: 2, delay: 50}}
  - name: nouser
    cmd: "true"
    user: no-such-user-xyz
  - name: nocwd
    cmd: "true"
    cwd: /no/such/dir
  - name: fails
    shell: /bin/sh
    cmd: "echo oops >&2; exit 3"
  - name: dies
    cmd: "true"
    watchcmd: "false"
    meta: {{retry: 1, delay: 50}}
  file:
  - name: still-works
    path: {d}/ok
    content: "ok\n"
"#
        ),
    );
    let out = run_once(&g, "1");
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    for needle in [
        "exec[missing]: cannot run `no-such-program-xyz --flag`: program `no-such-program-xyz` not found in PATH",
        "exec[nouser]: cannot run `true`: user `no-such-user-xyz` does not exist",
        "exec[nocwd]: cannot run `true`: working directory `/no/such/dir` does not exist",
        "exec[fails]: `/bin/sh -c 'echo oops >&2; exit 3'` exited with status 3; stderr: oops",
        "exec[dies]: watch command `false` exited with status 1; restarting the watch in 50ms (0 retries left)",
        "exec[dies]: watch command `false` exited with status 1; not restarting the watch",
    ] {
        assert!(log.contains(needle), "missing {needle:?} in:\n{log}");
    }
    assert_eq!(
        log.matches("ERROR exec[missing]: cannot run").count(),
        3,
        "tried once and retried twice:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(t.path().join("ok")).unwrap(),
        "ok\n"
    );
}

#[test]
fn stdout_is_sent_into_a_file_content() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("motd");
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: hello
    shell: /bin/sh
    cmd: "echo hello from exec"
  file:
  - name: motd
    path: {}
edges:
- name: e1
  from: {{kind: exec, name: hello}}
  to: {{kind: file, name: motd}}
  send: {{stdout: content}}
"#,
            f.display()
        ),
    );
    let out = run_once(&g, "0.5");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello from exec\n");
}

#[test]
fn a_command_that_prints_megabytes_keeps_its_tail() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("out");
    // 10 MiB on stdout, then the line that matters; the same on stderr for the failing one.
    let ten_mib = "head -c 10485760 /dev/zero | tr '\\\\0' x";
    let g = write_graph(
        t.path(),
        "g.yaml",
        &format!(
            r#"graph: t
resources:
  exec:
  - name: chatty
    shell: /bin/sh
    cmd: "{ten_mib}; echo; echo the very end"
  - name: failing
    shell: /bin/sh
    cmd: "{{ {ten_mib}; echo; echo the final error; }} >&2; exit 3"
  file:
  - name: out
    path: {}
edges:
- name: e1
  from: {{kind: exec, name: chatty}}
  to: {{kind: file, name: out}}
  send: {{stdout: content}}
"#,
            f.display()
        ),
    );
    let out = run_once(&g, "0.5");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "`failing` fails:\n{err}");
    // The failure's message ends with the command's last line of stderr.
    let failed = err
        .lines()
        .find(|l| l.contains("exec[failing]: ") && l.contains("exited with status 3"))
        .unwrap_or_else(|| panic!("no failure line:\n{err}"));
    assert!(failed.ends_with("the final error"), "{failed}");
    assert!(failed.len() < 64 << 10, "{} bytes", failed.len());
    // What was sent on: the output's beginning and end, and where the middle was dropped.
    let content = std::fs::read_to_string(&f).unwrap();
    assert!(content.len() <= 4 << 20, "{}", content.len());
    assert!(content.starts_with("xxxx"));
    assert!(
        content.ends_with("xxxx\nthe very end\n"),
        "{}",
        &content[content.len() - 40..]
    );
    assert!(content.contains("bytes of output dropped here]"));
    assert!(
        err.contains("exec[chatty]: `") && err.contains("printed more than 4 MiB"),
        "{err}"
    );
    assert!(
        err.len() < 1 << 20,
        "the log stays small: {} bytes",
        err.len()
    );
}

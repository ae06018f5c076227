//! The `user` and `group` kinds against the real `useradd` & co., in a mount namespace
//! of each test's own where `/etc` is a copy of this machine's and `/home`, `/var/log` and
//! `/var/mail` are empty directories: the tools change the copies, never the machine's
//! accounts. The namespace goes away with its last process.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use homeostat_tests::{Killed, binary, copy_etc, stderr, unshared, wait_for, write_graph};

/// A private copy of the account databases and the command that runs in front of them.
struct Accounts {
    dir: tempfile::TempDir,
}

impl Accounts {
    fn new() -> Accounts {
        let dir = tempfile::tempdir().unwrap();
        copy_etc(dir.path());
        for d in ["home", "log", "mail"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Accounts { dir }
    }

    /// `homeostat ARGS` inside the namespace.
    fn command(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let (etc, home, log, mail) = (d.join("etc"), d.join("home"), d.join("log"), d.join("mail"));
        unshared(
            &[],
            &[
                (&etc, "/etc"),
                (&home, "/home"),
                (&log, "/var/log"),
                (&mail, "/var/mail"),
            ],
            &binary(),
            args,
        )
    }

    fn run(&self, graph: &Path, extra: &[&str]) -> Output {
        let mut args = vec!["run", graph.to_str().unwrap(), "--converged-timeout", "0"];
        args.extend_from_slice(extra);
        self.command(&args).output().unwrap()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join("etc").join(name)
    }

    fn line(&self, file: &str, name: &str) -> Option<String> {
        std::fs::read_to_string(self.file(file))
            .unwrap()
            .lines()
            .find(|l| l.split(':').next() == Some(name))
            .map(str::to_string)
    }
}

fn graph(dir: &Path, text: &str) -> PathBuf {
    write_graph(dir, "g.yaml", text)
}

const ACCOUNTS: &str = "graph: accounts
resources:
  group:
  - name: hsweb
    gid: 15001
  - name: hsextra
  user:
  - name: hsweb
    uid: 15001
    group: hsweb
    groups: [hsextra]
    homedir: /srv/hsweb
    shell: /usr/sbin/nologin
    comment: Web server
    password: \"$6$salt$0123456789abcdef\"
edges:
- from: {kind: group, name: hsweb}
  to: {kind: user, name: hsweb}
- from: {kind: group, name: hsextra}
  to: {kind: user, name: hsweb}
";

#[test]
fn users_and_groups_are_created_changed_and_removed_in_a_copy_of_etc() {
    let a = Accounts::new();
    let d = tempfile::tempdir().unwrap();
    let g = graph(d.path(), ACCOUNTS);
    let o = a.run(&g, &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        a.line("passwd", "hsweb").as_deref(),
        Some("hsweb:x:15001:15001:Web server:/srv/hsweb:/usr/sbin/nologin")
    );
    assert!(
        a.line("group", "hsweb")
            .unwrap()
            .starts_with("hsweb:x:15001:")
    );
    assert!(
        a.line("group", "hsextra").unwrap().ends_with(":hsweb"),
        "{:?}",
        a.line("group", "hsextra")
    );
    assert!(
        a.line("shadow", "hsweb")
            .unwrap()
            .starts_with("hsweb:$6$salt$0123456789abcdef:")
    );
    // The hash never reaches the log.
    assert!(
        !err.contains("0123456789abcdef")
            && err.contains("user[hsweb]: create the user; set the password"),
        "{err}"
    );
    // The machine's own accounts are untouched.
    let real = std::fs::read_to_string("/etc/passwd").unwrap();
    assert!(
        !real.lines().any(|l| l.starts_with("hsweb:")),
        "the test changed /etc/passwd"
    );

    // Converged: a second run changes nothing.
    let o = a.run(&g, &[]);
    assert!(stderr(&o).contains("0 changes, 0 failed"), "{}", stderr(&o));

    // `homeostat resource` says what the graph declares (never the password).
    let o = a.command(&["resource", "user", "hsweb"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "graph: described\nresources:\n  user:\n  - name: hsweb\n    comment: \"Web server\"\n    \
         group: hsweb\n    groups: [\"hsextra\"]\n    homedir: /srv/hsweb\n    \
         shell: /usr/sbin/nologin\n    uid: 15001\n"
    );
    let o = a.command(&["resource", "group", "hsweb"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).ends_with("  - name: hsweb\n    gid: 15001\n"),
        "{}",
        stderr(&o)
    );

    // Drift: a shell and a supplementary group changed by hand are put back.
    let passwd = std::fs::read_to_string(a.file("passwd"))
        .unwrap()
        .replace(":/srv/hsweb:/usr/sbin/nologin", ":/srv/hsweb:/bin/bash");
    std::fs::write(a.file("passwd"), passwd).unwrap();
    let o = a.run(&g, &[]);
    assert!(
        stderr(&o).contains(r#"user[hsweb]: shell "/bin/bash" -> "/usr/sbin/nologin""#),
        "{}",
        stderr(&o)
    );
    assert!(
        a.line("passwd", "hsweb")
            .unwrap()
            .ends_with(":/usr/sbin/nologin")
    );

    // Removed.
    let gone = graph(
        d.path(),
        "graph: gone\nresources:\n  user:\n  - name: hsweb\n    state: absent\n  group:\n  - name: hsweb\n    state: absent\n  - name: hsextra\n    state: absent\nedges:\n- from: {kind: user, name: hsweb}\n  to: {kind: group, name: hsweb}\n",
    );
    let o = a.run(&gone, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(a.line("passwd", "hsweb"), None);
    assert_eq!(a.line("group", "hsweb"), None);
    assert_eq!(a.line("group", "hsextra"), None);
}

#[test]
fn an_account_changed_by_hand_is_repaired_at_once() {
    let a = Accounts::new();
    let d = tempfile::tempdir().unwrap();
    let g = graph(d.path(), ACCOUNTS);
    // `unshare` and `sh` exec: the child is homeostat itself.
    let mut child = Killed(
        a.command(&["run", g.to_str().unwrap()])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stream = child.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            eprintln!("  | {line}");
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let shell = |want: &str| {
        wait_for(|| a.line("passwd", "hsweb").filter(|l| l.ends_with(want)))
            .unwrap_or_else(|| panic!("no {want} shell; log:\n{}", log.lock().unwrap()))
    };
    shell(":/usr/sbin/nologin");
    // Changed with the system's own tool, inside the same namespace's files.
    let passwd = std::fs::read_to_string(a.file("passwd"))
        .unwrap()
        .replace(":/srv/hsweb:/usr/sbin/nologin", ":/srv/hsweb:/bin/sh");
    let tmp = a.file("passwd.hs-test");
    std::fs::write(&tmp, passwd).unwrap();
    std::fs::rename(&tmp, a.file("passwd")).unwrap();
    wait_for(|| {
        log.lock()
            .unwrap()
            .contains(r#"shell "/bin/sh" -> "/usr/sbin/nologin""#)
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not repaired; log:\n{}", log.lock().unwrap()));
    shell(":/usr/sbin/nologin");
}

#[test]
fn bad_accounts_are_refused_at_their_place() {
    let a = Accounts::new();
    let d = tempfile::tempdir().unwrap();
    let g = graph(
        d.path(),
        "graph: bad\nresources:\n  user:\n  - name: \"bad:name\"\n  - name: plain\n    password: hunter2\n  - name: both\n    gid: 1\n    group: adm\n",
    );
    let o = a
        .command(&["validate", g.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "user[bad:name]: `bad:name` is not a usable account name",
        "g.yaml:6:15: user[plain]: `password` is a crypt(3) hash",
        "g.yaml:9:12: user[both]: give the primary group by `gid` or by `group`, not both",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
    let big = write_graph(
        d.path(),
        "big.yaml",
        "graph: big\nresources:\n  user:\n  - name: big\n    uid: 4294967295\n",
    );
    let o = a
        .command(&["validate", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("big.yaml:5:10: user[big]: invalid param `uid`: 4294967295 is greater"),
        "{}",
        stderr(&o)
    );
}

/// A tool that fails fails the resource with its command line, exit code and message.
#[test]
fn a_failing_tool_is_named_with_its_exit_code_and_message() {
    let a = Accounts::new();
    let d = tempfile::tempdir().unwrap();
    let g = graph(
        d.path(),
        "graph: dup\nresources:\n  user:\n  - name: hsdupa\n    uid: 15500\n  - name: hsdupb\n    uid: 15500\n",
    );
    let o = a.run(&g, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("`useradd -u 15500 -M hsdup")
            && err.contains("failed (exit code 4)")
            && err.contains("is not unique"),
        "{err}"
    );
}

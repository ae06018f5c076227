//! The `pkg` kind against the real apt and dpkg, with packages built by the test
//! (`dpkg-deb`) and served from a local `file:` repository, in a mount namespace where
//! `/etc` (its apt sources only that repository), `/var/lib/dpkg`, apt's state and cache,
//! `/var/log` and `/opt` (where the test package installs) are copies or empty
//! directories: the machine's packages never change, and nothing goes to the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use homeostat_tests::{Killed, binary, nsenter, stderr, unshared, wait_for, write_graph};

const PKG: &str = "hs-test-pkg";

struct Apt {
    dir: tempfile::TempDir,
}

fn sh(script: &str) {
    let o = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(
        o.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

impl Apt {
    /// The copies, the repository with versions 1.0 and 2.0 of the test package, and the
    /// package lists read.
    fn new() -> Apt {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        sh(&format!(
            "set -e; cd {d}; cp -a /etc etc; cp -a /var/lib/dpkg dpkg; \
             rm -f etc/apt/sources.list.d/*; echo 'deb [trusted=yes] file:{d}/repo ./' > etc/apt/sources.list; \
             mkdir -p aptlib/lists/partial aptcache/archives/partial log/apt opt repo"
        ));
        for v in ["1.0", "2.0"] {
            sh(&format!(
                "set -e; cd {d}; mkdir -p b{v}/DEBIAN b{v}/opt/hs-test; echo 'version {v}' > b{v}/opt/hs-test/hello.txt; \
                 printf 'Package: {PKG}\\nVersion: {v}\\nArchitecture: all\\nMaintainer: homeostat tests <t@localhost>\\nDescription: a test package\\n' > b{v}/DEBIAN/control; \
                 dpkg-deb --build --root-owner-group b{v} repo/{PKG}_{v}_all.deb >/dev/null"
            ));
        }
        sh(&format!(
            "set -e; cd {d}/repo; dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null"
        ));
        let apt = Apt { dir };
        let o = apt
            .inside(Path::new("apt-get"), &["-q", "update"])
            .output()
            .unwrap();
        assert!(o.status.success(), "apt-get update: {}", stderr(&o));
        apt
    }

    /// `PROGRAM ARGS` in a mount namespace with the copies in place.
    fn inside(&self, program: &Path, args: &[&str]) -> Command {
        let d = self.dir.path();
        let (etc, dpkg, aptlib, aptcache, log, opt) = (
            d.join("etc"),
            d.join("dpkg"),
            d.join("aptlib"),
            d.join("aptcache"),
            d.join("log"),
            d.join("opt"),
        );
        unshared(
            &[],
            &[
                (&etc, "/etc"),
                (&dpkg, "/var/lib/dpkg"),
                (&aptlib, "/var/lib/apt"),
                (&aptcache, "/var/cache/apt"),
                (&log, "/var/log"),
                (&opt, "/opt"),
            ],
            program,
            args,
        )
    }

    fn run(&self, graph: &Path) -> Output {
        self.inside(
            &binary(),
            &["run", graph.to_str().unwrap(), "--converged-timeout", "0"],
        )
        .output()
        .unwrap()
    }

    /// The test package's (status, version) in the copy of dpkg's database.
    fn status(&self) -> Option<(String, String)> {
        let text = std::fs::read_to_string(self.dir.path().join("dpkg/status")).unwrap();
        text.split("\n\n").find_map(|s| {
            let f = |k: &str| {
                s.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| v.trim().to_string())
            };
            (f("Package:").as_deref() == Some(PKG))
                .then(|| (f("Status:").unwrap(), f("Version:").unwrap_or_default()))
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("opt/hs-test/hello.txt")
    }
}

fn graph(d: &Path, state: &str) -> PathBuf {
    write_graph(
        d,
        "g.yaml",
        &format!(
            "graph: p\nresources:\n  pkg:\n  - name: {PKG}\n    state: \"{state}\"\n    allowdowngrade: true\n"
        ),
    )
}

#[test]
fn a_package_is_installed_pinned_upgraded_removed_and_purged() {
    let apt = Apt::new();
    let d = tempfile::tempdir().unwrap();
    let installed = |v: &str| Some(("install ok installed".to_string(), v.to_string()));

    let o = apt.run(&graph(d.path(), "installed"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("pkg[{PKG}]: install")),
        "{}",
        stderr(&o)
    );
    assert_eq!(apt.status(), installed("2.0"));
    assert_eq!(
        std::fs::read_to_string(apt.file()).unwrap(),
        "version 2.0\n"
    );
    let o = apt.run(&graph(d.path(), "installed"));
    assert!(stderr(&o).contains("0 changes, 0 failed"), "{}", stderr(&o));

    let o = apt.run(&graph(d.path(), "1.0"));
    assert!(
        stderr(&o).contains(&format!("pkg[{PKG}]: version 2.0 -> 1.0")),
        "{}",
        stderr(&o)
    );
    assert_eq!(apt.status(), installed("1.0"));

    let o = apt.run(&graph(d.path(), "newest"));
    assert!(
        stderr(&o).contains(&format!("pkg[{PKG}]: upgrade 1.0 -> 2.0")),
        "{}",
        stderr(&o)
    );
    assert_eq!(apt.status(), installed("2.0"));

    let o = apt.run(&graph(d.path(), "uninstalled"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!apt.file().exists());
    let o = apt.run(&graph(d.path(), "purged"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        apt.status().filter(|(s, _)| !s.ends_with("not-installed")),
        None
    );
    // The machine's own database never heard of it.
    let real = std::fs::read_to_string("/var/lib/dpkg/status").unwrap();
    assert!(
        !real.contains(PKG),
        "the test changed the machine's packages"
    );
}

#[test]
fn a_package_removed_by_hand_is_reinstalled_at_once() {
    let apt = Apt::new();
    let d = tempfile::tempdir().unwrap();
    let g = graph(d.path(), "installed");
    let run = Killed(
        apt.inside(&binary(), &["run", g.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(|| apt.file().exists().then_some(())).expect("installed");
    // Once apt has let go of dpkg's lock (the file is there before it does).
    let pid = run.0.id();
    wait_for(|| {
        nsenter("mount", pid, &["dpkg", "-r", PKG])
            .status
            .success()
            .then_some(())
    })
    .expect("removed by hand");
    // dpkg's database is replaced on every change: the event reinstalls it.
    wait_for(|| {
        (apt.status()
            .is_some_and(|(s, _)| s == "install ok installed")
            && apt.file().exists())
        .then_some(())
    })
    .expect("reinstalled");
}

#[test]
fn bad_packages_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: bad\nresources:\n  pkg:\n  - name: Not_A_Package\n  - name: curl\n    state: sometimes\n",
    );
    let o = homeostat_tests::homeostat(&["validate", g.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("pkg[Not_A_Package]: `Not_A_Package` is not a Debian package name"),
        "{err}"
    );
    assert!(
        err.contains("g.yaml:6:12: pkg[curl]: `sometimes` is neither a state"),
        "{err}"
    );
}

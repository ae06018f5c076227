//! The `pkg` kind against the real apt and dpkg, with packages built by the test
//! (`dpkg-deb`) and served from a local `file:` repository, in a mount namespace where
//! `/etc` (its apt sources only that repository), `/var/lib/dpkg`, apt's state and cache,
//! `/var/log` and `/opt` (where the test package installs) are copies or empty
//! directories: the machine's packages never change, and nothing goes to the network.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use homeostat_tests::{Killed, LocalApt, binary, nsenter, stderr, wait_for, write_graph};

const PKG: &str = "hs-test-pkg";

/// Versions 1.0 and 2.0 of the test package in a local apt world.
fn apt() -> LocalApt {
    LocalApt::new(PKG, &["1.0", "2.0"])
}

fn run(apt: &LocalApt, graph: &Path) -> Output {
    apt.command(
        &binary(),
        &["run", graph.to_str().unwrap(), "--converged-timeout", "0"],
    )
    .output()
    .unwrap()
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
    let apt = apt();
    let d = tempfile::tempdir().unwrap();
    let installed = |v: &str| Some(("install ok installed".to_string(), v.to_string()));

    let o = run(&apt, &graph(d.path(), "installed"));
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
    let o = run(&apt, &graph(d.path(), "installed"));
    assert!(stderr(&o).contains("0 changes, 0 failed"), "{}", stderr(&o));
    // `homeostat resource` reads the version from dpkg's database, as `puppet resource
    // package` does.
    let o = apt
        .command(&binary(), &["resource", "pkg", PKG])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .ends_with(&format!("  - name: {PKG}\n    state: \"2.0\"\n")),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );

    let o = run(&apt, &graph(d.path(), "1.0"));
    assert!(
        stderr(&o).contains(&format!("pkg[{PKG}]: version 2.0 -> 1.0")),
        "{}",
        stderr(&o)
    );
    assert_eq!(apt.status(), installed("1.0"));

    let o = run(&apt, &graph(d.path(), "newest"));
    assert!(
        stderr(&o).contains(&format!("pkg[{PKG}]: upgrade 1.0 -> 2.0")),
        "{}",
        stderr(&o)
    );
    assert_eq!(apt.status(), installed("2.0"));

    let o = run(&apt, &graph(d.path(), "uninstalled"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!apt.file().exists());
    let o = run(&apt, &graph(d.path(), "purged"));
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
    let apt = apt();
    let d = tempfile::tempdir().unwrap();
    let g = graph(d.path(), "installed");
    let run = Killed(
        apt.command(&binary(), &["run", g.to_str().unwrap()])
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

/// The `apt-get` command lines of apt's history in `apt`'s world, oldest first.
fn apt_commands(apt: &LocalApt) -> Vec<String> {
    std::fs::read_to_string(apt.dir.path().join("log/apt/history.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("Commandline: "))
        .map(str::to_string)
        .collect()
}

/// mgmt's autogroup: packages ready together are installed in one apt transaction (one
/// `apt-get` merged from the lines each declared), removed in one; `autogroup: false`
/// keeps a package to itself; a failed transaction fails each of its packages.
#[test]
fn packages_ready_together_go_in_one_transaction() {
    let apt = LocalApt::with(&[
        ("hs-grp-a", &["1.0"]),
        ("hs-grp-b", &["1.0"]),
        ("hs-grp-c", &["1.0", "2.0"]),
        ("hs-grp-d", &["1.0"]),
    ]);
    let d = tempfile::tempdir().unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: p\nresources:\n  pkg:\n  - name: hs-grp-a\n  - name: hs-grp-b\n  - name: hs-grp-c\n    \
         state: \"1.0\"\n  - name: hs-grp-d\n    meta:\n      autogroup: false\n",
    );
    let o = run(&apt, &g);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("4 changes, 0 failed"), "{err}");
    for p in ["hs-grp-a", "hs-grp-b", "hs-grp-c", "hs-grp-d"] {
        assert_eq!(
            apt.status_of(p).map(|(s, _)| s).as_deref(),
            Some("install ok installed"),
            "{p}"
        );
    }
    let mut lines = apt_commands(&apt);
    lines.retain(|l| !l.contains("update"));
    lines.sort();
    assert_eq!(
        lines,
        [
            "apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends hs-grp-a hs-grp-b \
             hs-grp-c=1.0",
            "apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends hs-grp-d",
        ],
        "{err}"
    );
    // Removed together; a package apt cannot find fails the transaction it is in, and
    // each of its packages says so.
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: p\nresources:\n  pkg:\n  - name: hs-grp-a\n    state: uninstalled\n  - name: hs-grp-b\n    \
         state: uninstalled\n  - name: hs-grp-nope\n  - name: hs-grp-c\n    state: \"2.0\"\n",
    );
    let o = run(&apt, &g);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for p in ["hs-grp-a", "hs-grp-b"] {
        assert_ne!(
            apt.status_of(p).map(|(s, _)| s).as_deref(),
            Some("install ok installed"),
            "{p}: {err}"
        );
    }
    for p in ["hs-grp-c", "hs-grp-nope"] {
        assert!(
            err.contains(&format!(
                "ERROR pkg[{p}]: `apt-get install -y -q -o DPkg::Lock::Timeout=300 \
                 --no-install-recommends hs-grp-c=2.0 hs-grp-nope` failed"
            )) && err.contains("(one transaction for pkg[hs-grp-c], pkg[hs-grp-nope])"),
            "{err}"
        );
    }
    assert!(
        apt_commands(&apt)
            .iter()
            .any(|l| l == "apt-get remove -y -q -o DPkg::Lock::Timeout=300 hs-grp-a hs-grp-b"),
        "{:?}",
        apt_commands(&apt)
    );
}

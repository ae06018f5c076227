//! The `hostname` kind against the real `hostname(1)` and kernel, in a UTS namespace of
//! the test's own and a mount namespace where `/etc` is a copy of this machine's: the
//! machine's names never change.

use std::process::Stdio;

use homeostat_tests::{Killed, binary, copy_etc, nsenter, unshared, wait_for, write_graph};

/// The kernel's hostname in the UTS namespace of `pid`, or sets it.
fn uts(pid: u32, set: Option<&str>) -> String {
    let mut args = vec!["hostname"];
    args.extend(set);
    String::from_utf8_lossy(&nsenter("uts", pid, &args).stdout)
        .trim()
        .to_string()
}

#[test]
fn the_three_hostnames_are_set_and_repaired_in_a_namespace() {
    let d = tempfile::tempdir().unwrap();
    let etc = copy_etc(d.path());
    std::fs::write(etc.join("machine-info"), "CHASSIS=vm\n").unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: names\nresources:\n  hostname:\n  - name: this host\n    hostname: web1.example.com\n    pretty_hostname: Web server one\n",
    );
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let run = Killed(
        unshared(
            &["--uts"],
            &[(&etc, "/etc")],
            &binary(),
            &["run", g.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let pid = run.0.id();
    let file = |name: &str| std::fs::read_to_string(etc.join(name)).unwrap_or_default();
    wait_for(|| (file("hostname") == "web1.example.com\n").then_some(())).expect("static");
    wait_for(|| {
        (file("machine-info") == "CHASSIS=vm\nPRETTY_HOSTNAME=\"Web server one\"\n").then_some(())
    })
    .unwrap_or_else(|| panic!("pretty: {:?}", file("machine-info")));
    wait_for(|| (uts(pid, None) == "web1.example.com").then_some(())).expect("transient");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before,
        "the machine's hostname changed"
    );

    // Drift of the kernel's name (signalled through `poll` on /proc/sys/kernel/hostname;
    // no `pollint`) and of the file (an inotify event).
    uts(pid, Some("drifted"));
    wait_for(|| (uts(pid, None) == "web1.example.com").then_some(())).expect("repaired transient");
    std::fs::write(etc.join("hostname"), "other\n").unwrap();
    wait_for(|| (file("hostname") == "web1.example.com\n").then_some(())).expect("repaired static");
}

//! The `sysctl` kind against the real kernel and `sysctl`, in a network namespace of the
//! test's own (the `net.*` parameters it sets are that namespace's) and a mount namespace
//! where `/etc/sysctl.d` is a temporary directory: the machine's settings never change.

use std::process::Stdio;

use homeostat_tests::{
    Killed, binary, homeostat, nsenter, stderr, unshared, wait_for, write_atomic, write_graph,
};

/// `sysctl -n KEY` in the network namespace of `pid`.
fn live(pid: u32, key: &str) -> String {
    let o = nsenter("net", pid, &["sysctl", "-n", key]);
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_live(pid: u32, key: &str, value: &str) {
    let o = nsenter(
        "net",
        pid,
        &["sysctl", "-q", "-w", &format!("{key}={value}")],
    );
    assert!(o.status.success());
}

#[test]
fn a_parameter_is_applied_persisted_and_repaired_in_a_namespace() {
    let d = tempfile::tempdir().unwrap();
    let conf_dir = d.path().join("sysctl.d");
    std::fs::create_dir(&conf_dir).unwrap();
    let conf = conf_dir.join("99-homeostat.conf");
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: sysctl\nresources:\n  sysctl:\n  - name: net.ipv4.ip_forward\n    value: \"1\"\n    pollint: 1\n  - name: net.ipv4.ping_group_range\n    value: \"0 2147483647\"\n    pollint: 1\n",
    );
    let child = unshared(
        &["--net"],
        &[(&conf_dir, "/etc/sysctl.d")],
        &binary(),
        &["run", g.to_str().unwrap()],
    )
    .stdout(Stdio::null())
    .spawn()
    .unwrap();
    let run = Killed(child);
    let pid = run.0.id();
    let text = || std::fs::read_to_string(&conf).unwrap_or_default();
    wait_for(|| {
        let t = text();
        (t.contains("net.ipv4.ip_forward = 1\n")
            && t.contains("net.ipv4.ping_group_range = 0 2147483647\n"))
        .then_some(())
    })
    .unwrap_or_else(|| panic!("not persisted: {:?}", text()));
    wait_for(|| (live(pid, "net.ipv4.ip_forward") == "1").then_some(())).expect("applied live");
    assert_eq!(live(pid, "net.ipv4.ping_group_range"), "0 2147483647");
    // The machine's own value is untouched (the test's namespace has its own).
    let mine = std::fs::read_to_string("/proc/sys/net/ipv4/ping_group_range").unwrap();
    assert_ne!(
        mine.split_whitespace().collect::<Vec<_>>(),
        ["0", "2147483647"]
    );

    // Drift of the live value (no event: found by the poll) and of the file (an event).
    set_live(pid, "net.ipv4.ip_forward", "0");
    wait_for(|| (live(pid, "net.ipv4.ip_forward") == "1").then_some(())).expect("repaired live");
    // Replaced whole, as an editor saves (a truncate seen alone would lose the line).
    write_atomic(&conf, "# by hand\n");
    wait_for(|| {
        let t = text();
        (t.starts_with("# by hand\n") && t.contains("net.ipv4.ip_forward = 1\n")).then_some(())
    })
    .unwrap_or_else(|| panic!("not repaired: {:?}", text()));
}

#[test]
fn bad_parameters_are_refused_at_their_place() {
    let d = tempfile::tempdir().unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: bad\nresources:\n  sysctl:\n  - name: ../etc/passwd\n    value: \"1\"\n  - name: vm.swappiness\n  - name: kernel.pid_max\n    value: \"1\"\n    file: relative.conf\n",
    );
    let o = homeostat(&["validate", g.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in [
        "g.yaml:4:5: sysctl[../etc/passwd]: `../etc/passwd` is not a kernel parameter name",
        "sysctl[vm.swappiness]: `value` is required with `state: present`",
        "g.yaml:9:11: sysctl[kernel.pid_max]: `relative.conf` is not an absolute file path",
    ] {
        assert!(err.contains(want), "no {want:?} in:\n{err}");
    }
}

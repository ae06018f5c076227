//! The `sysctl` kind against the real kernel and `sysctl`, in a network namespace of the
//! test's own (the `net.*` parameters it sets are that namespace's) and a mount namespace
//! where `/etc/sysctl.d` is a temporary directory: the machine's settings never change.

use std::process::{Command, Stdio};

use homeostat_tests::{binary, homeostat, stderr, wait_for, write_graph};

/// A process killed (and reaped) when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sysctl -n KEY` in the network namespace of `pid`.
fn live(pid: u32, key: &str) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["sysctl", "-n", key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn set_live(pid: u32, key: &str, value: &str) {
    let ok = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(["sysctl", "-q", "-w", &format!("{key}={value}")])
        .status()
        .unwrap();
    assert!(ok.success());
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
    let child = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind {} /etc/sysctl.d && exec \"$@\"",
            conf_dir.display()
        ))
        .arg("sh")
        .arg(binary())
        .arg("run")
        .arg(&g)
        .env("HOMEOSTAT_TMP_PREFIX", "1")
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
    std::fs::write(&conf, "# by hand\n").unwrap();
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

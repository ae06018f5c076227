//! The `hostname` kind against the real `hostname(1)` and kernel, in a UTS namespace of
//! the test's own and a mount namespace where `/etc` is a copy of this machine's: the
//! machine's names never change.

use std::process::{Command, Stdio};

use homeostat_tests::{binary, wait_for, write_graph};

/// A process killed (and reaped) when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The kernel's hostname in the UTS namespace of `pid`, or sets it.
fn uts(pid: u32, set: Option<&str>) -> String {
    let o = Command::new("nsenter")
        .arg(format!("--uts=/proc/{pid}/ns/uts"))
        .arg("hostname")
        .args(set)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_three_hostnames_are_set_and_repaired_in_a_namespace() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path().join("etc");
    assert!(
        Command::new("cp")
            .args(["-a", "/etc"])
            .arg(&etc)
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(etc.join("machine-info"), "CHASSIS=vm\n").unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: names\nresources:\n  hostname:\n  - name: this host\n    hostname: web1.example.com\n    pretty_hostname: Web server one\n    pollint: 1\n",
    );
    let before = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let run = Killed(
        Command::new("unshare")
            .args(["--uts", "--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind {} /etc && exec \"$@\"",
                etc.display()
            ))
            .arg("sh")
            .arg(binary())
            .arg("run")
            .arg(&g)
            .env("HOMEOSTAT_TMP_PREFIX", "1")
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

    // Drift of the kernel's name (no event: found by the poll) and of the file (an event).
    uts(pid, Some("drifted"));
    wait_for(|| (uts(pid, None) == "web1.example.com").then_some(())).expect("repaired transient");
    std::fs::write(etc.join("hostname"), "other\n").unwrap();
    wait_for(|| (file("hostname") == "web1.example.com\n").then_some(())).expect("repaired static");
}

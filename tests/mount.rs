//! The `mount` kind against the real `mount(8)` and kernel, in a mount namespace of the
//! test's own where `/etc` is a copy of this machine's: the tmpfs it mounts and the fstab
//! line it writes are the namespace's, and both go away with it.

use std::process::{Command, Stdio};

use homeostat_tests::{
    Killed, binary, copy_etc, homeostat, nsenter, stderr, unshared, wait_for, write_graph,
};

/// `ARGS` run in the mount namespace of `pid`; its stdout.
fn inside(pid: u32, args: &[&str]) -> String {
    String::from_utf8_lossy(&nsenter("mount", pid, args).stdout)
        .trim()
        .to_string()
}

#[test]
fn a_tmpfs_is_mounted_persisted_and_repaired_in_a_namespace() {
    let d = tempfile::tempdir().unwrap();
    let etc = copy_etc(d.path());
    let point = d.path().join("data");
    std::fs::create_dir(&point).unwrap();
    let p = point.display().to_string();
    let g = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: m\nresources:\n  mount:\n  - name: {p}\n    device: tmpfs\n    type: tmpfs\n    options: {{size: 1m, noexec: \"\"}}\n"
        ),
    );
    let mut run = Killed(
        unshared(
            &[],
            &[(&etc, "/etc")],
            &binary(),
            &["run", g.to_str().unwrap()],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let pid = run.0.id();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    let stream = run.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stream)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("  | {line}");
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let options = || inside(pid, &["findmnt", "-n", "-o", "FSTYPE,OPTIONS", &p]);
    wait_for(|| options().starts_with("tmpfs ").then_some(())).expect("mounted");
    assert!(
        options().contains("noexec") && options().contains("size=1024k"),
        "{}",
        options()
    );
    let fstab = || std::fs::read_to_string(etc.join("fstab")).unwrap_or_default();
    wait_for(|| {
        fstab()
            .contains(&format!("tmpfs {p} tmpfs noexec,size=1m 0 0\n"))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not in fstab: {}", fstab()));
    // Not in this test's namespace: the machine's mount table is untouched.
    let here = Command::new("findmnt").arg(&p).output().unwrap();
    assert!(!here.status.success(), "mounted outside the namespace");

    // Drift: unmounted, then remounted without `noexec`, both seen through the mount
    // table's `poll` signal (no `pollint`).
    inside(pid, &["umount", &p]);
    wait_for(|| options().starts_with("tmpfs ").then_some(())).expect("mounted again");
    inside(pid, &["mount", "-o", "remount,exec", &p]);
    wait_for(|| {
        log.lock()
            .unwrap()
            .contains("remount with noexec")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("not remounted: {}\n{}", options(), log.lock().unwrap()));
    wait_for(|| options().contains("noexec").then_some(())).expect("noexec again");
}

#[test]
fn bad_mounts_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let g = write_graph(
        d.path(),
        "g.yaml",
        "graph: bad\nresources:\n  mount:\n  - name: relative/dir\n    device: tmpfs\n    type: tmpfs\n  - name: /mnt/x\n    type: tmpfs\n",
    );
    let o = homeostat(&["validate", g.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("g.yaml:4:5: mount[relative/dir]: `relative/dir` is not a mount point"),
        "{err}"
    );
    assert!(
        err.contains("mount[/mnt/x]: `device` is required with `state: exists`"),
        "{err}"
    );
    // A mount point that is a file: refused when it is checked, nothing mounted.
    let file = d.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let g = write_graph(
        d.path(),
        "f.yaml",
        &format!(
            "graph: f\nresources:\n  mount:\n  - name: {}\n    device: tmpfs\n    type: tmpfs\n    persist: false\n",
            file.display()
        ),
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(binary())
        .args(["run", g.to_str().unwrap(), "--converged-timeout", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("is not a directory: a mount point is one"),
        "{}",
        stderr(&o)
    );
}

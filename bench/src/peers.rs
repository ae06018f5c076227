//! `homeostat-bench peers` (`cargo xtask bench peers`, which installs Puppet and
//! ansible-core with apt for the bench only): the kinds operators reach for first,
//! beside Puppet and Ansible on the same machine (issue 26's benchmark).
//!
//! 1. **Idempotent pass** over 50 `pkg` resources (packages this machine has installed)
//!    and 50 `user` resources, everything already in place, as homeostat (`run
//!    --converged-timeout 0`), `puppet apply` (`package` and `user` types) and
//!    `ansible-playbook -c local` (`apt` with the list of packages, `user` in a loop):
//!    wall time from spawn to exit, median of `--runs` (default 3). The users live in a
//!    copy of `/etc` in a mount namespace, so the machine's accounts never change: each
//!    tool runs in such a namespace over the same copy.
//! 2. **Drift repair latency** (homeostat only: the others have no watch): a user's shell
//!    changed in `/etc/passwd` (an event); a package removed with `dpkg -r` (an event on
//!    dpkg's database; a package built here with `dpkg-deb`, served from a `file:`
//!    repository, in a mount namespace with copies of dpkg's and apt's state), timed from
//!    the end of the removal; and a `sysctl` changed with `sysctl -w` in a network
//!    namespace (no event: found by the poll, `pollint: 1`): p50 and max of `--samples`
//!    (default 10), until homeostat has put it back.
//!
//! Numbers are printed, nothing is asserted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::drift::percentile;
use crate::proc;

const USERS: usize = 50;
const PACKAGES: usize = 50;

struct Options {
    homeostat: PathBuf,
    runs: usize,
    samples: usize,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        homeostat: crate::default_homeostat(),
        runs: 3,
        samples: 10,
    };
    crate::each_flag(
        args,
        "homeostat-bench peers [--runs R] [--samples K] [--homeostat PATH]",
        |flag, value| {
            match flag {
                "--homeostat" => o.homeostat = PathBuf::from(value),
                "--runs" => o.runs = crate::positive(flag, &value)?,
                "--samples" => o.samples = crate::positive(flag, &value)?,
                _ => return Ok(false),
            }
            Ok(true)
        },
    )?;
    Ok(o)
}

/// The first `n` packages installed here (by name), without an architecture qualifier.
fn installed_packages(n: usize) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string("/var/lib/dpkg/status").map_err(|e| e.to_string())?;
    let mut names: Vec<String> = text
        .split("\n\n")
        .filter(|s| s.lines().any(|l| l == "Status: install ok installed"))
        .filter(|s| !s.lines().any(|l| l == "Multi-Arch: same"))
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Package: "))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names.dedup();
    if names.len() < n {
        return Err(format!("only {} packages are installed here", names.len()));
    }
    Ok(names.into_iter().take(n).collect())
}

fn user(i: usize) -> (String, u32) {
    (format!("hsbench{i:02}"), 21000 + i as u32)
}

fn homeostat_graph(packages: &[String]) -> String {
    let mut g = String::from("graph: peers\nresources:\n  pkg:\n");
    for p in packages {
        g.push_str(&format!("  - name: {p}\n    state: installed\n"));
    }
    g.push_str("  user:\n");
    for i in 0..USERS {
        let (name, uid) = user(i);
        g.push_str(&format!(
            "  - name: {name}\n    uid: {uid}\n    shell: /bin/sh\n    homedir: /home/{name}\n"
        ));
    }
    g
}

fn puppet_manifest(packages: &[String]) -> String {
    let mut m = String::new();
    for p in packages {
        m.push_str(&format!("package {{ '{p}': ensure => installed }}\n"));
    }
    for i in 0..USERS {
        let (name, uid) = user(i);
        m.push_str(&format!(
            "user {{ '{name}': ensure => present, uid => {uid}, shell => '/bin/sh', home => '/home/{name}' }}\n"
        ));
    }
    m
}

fn ansible_playbook(packages: &[String]) -> String {
    let mut p = String::from(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n  - name: packages\n    apt:\n      state: present\n      name:\n",
    );
    for pkg in packages {
        p.push_str(&format!("      - {pkg}\n"));
    }
    p.push_str("  - name: users\n    user:\n      name: \"{{ item.0 }}\"\n      uid: \"{{ item.1 }}\"\n      shell: /bin/sh\n      home: \"/home/{{ item.0 }}\"\n      create_home: false\n    loop:\n");
    for i in 0..USERS {
        let (name, uid) = user(i);
        p.push_str(&format!("    - [{name}, {uid}]\n"));
    }
    p
}

/// `ARGS` in a mount namespace where `/etc` and `/home` are the work directory's copies.
fn in_namespace(work: &Path, args: &[&str]) -> Command {
    let (etc, home) = (work.join("etc"), work.join("home"));
    let mut c = homeostat_tests::unshared(
        &[],
        &[(&etc, "/etc"), (&home, "/home")],
        Path::new(args[0]),
        &args[1..],
    );
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Spawn to exit of `c`, which must succeed.
fn timed(c: &mut Command, what: &str) -> Result<Duration, String> {
    let done = proc::spawn(c)
        .map_err(|e| format!("cannot run {what}: {e}"))?
        .wait(Duration::from_secs(600))?;
    if !done.success() {
        return Err(format!("{what} ended with {}", done.describe()));
    }
    Ok(done.wall)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse(args)?;
    for tool in ["puppet", "ansible-playbook", "unshare"] {
        if Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .stdout(Stdio::null())
            .status()
            .map_or(true, |s| !s.success())
        {
            return Err(format!(
                "`{tool}` is missing: run it as `cargo xtask bench peers`, which installs Puppet and ansible-core"
            ));
        }
    }
    let work = tempfile::Builder::new()
        .prefix("homeostat-bench-peers.")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let w = work.path();
    homeostat_tests::copy_etc(w);
    std::fs::create_dir(w.join("home")).map_err(|e| e.to_string())?;
    let packages = installed_packages(PACKAGES)?;
    let graph = w.join("peers.yaml");
    std::fs::write(&graph, homeostat_graph(&packages)).map_err(|e| e.to_string())?;
    let manifest = w.join("peers.pp");
    std::fs::write(&manifest, puppet_manifest(&packages)).map_err(|e| e.to_string())?;
    let playbook = w.join("peers.yml");
    std::fs::write(&playbook, ansible_playbook(&packages)).map_err(|e| e.to_string())?;
    let h = o.homeostat.display().to_string();
    let hs: Vec<&str> = vec![
        &h,
        "run",
        graph.to_str().unwrap(),
        "--converged-timeout",
        "0",
    ];
    // The users made once (by homeostat), and a warm-up of each tool.
    timed(&mut in_namespace(w, &hs), "homeostat (creating the users)")?;
    let puppet: Vec<&str> = vec![
        "puppet",
        "apply",
        "--logdest",
        "/dev/null",
        manifest.to_str().unwrap(),
    ];
    let ansible: Vec<&str> = vec![
        "ansible-playbook",
        "-i",
        "localhost,",
        "-c",
        "local",
        playbook.to_str().unwrap(),
    ];
    let mut rows = Vec::new();
    for (name, argv) in [
        ("homeostat", &hs),
        ("Puppet (`puppet apply`)", &puppet),
        ("Ansible (`ansible-playbook -c local`)", &ansible),
    ] {
        timed(&mut in_namespace(w, argv), name)?;
        let mut times = Vec::new();
        for _ in 0..o.runs {
            times.push(timed(&mut in_namespace(w, argv), name)?);
        }
        rows.push((name, median(times)));
    }
    println!(
        "Idempotent pass, {PACKAGES} `pkg` and {USERS} `user` resources already in place (median of {} runs, spawn to exit):\n",
        o.runs
    );
    println!("| tool | idempotent pass | ÷ homeostat |");
    println!("|---|---|---|");
    let base = rows[0].1;
    for (name, t) in &rows {
        println!(
            "| {name} | {} | {:.1}× |",
            crate::report::ms(*t),
            t.as_secs_f64() / base.as_secs_f64()
        );
    }

    // Drift: a shell changed by hand, a sysctl changed live.
    let shell = drift_shell(&o, w, &graph)?;
    let pkg = drift_pkg(&o, w)?;
    let sysctl = drift_sysctl(&o, w)?;
    println!(
        "\nDrift repair latency (homeostat; {} samples):\n",
        o.samples
    );
    println!("| drift | p50 | max | seen by |");
    println!("|---|---|---|---|");
    for (what, mut v, how) in [
        (
            "a user's shell changed in /etc/passwd",
            shell,
            "an inotify event",
        ),
        (
            "a package removed with `dpkg -r`",
            pkg,
            "an inotify event (then `apt-get install`)",
        ),
        (
            "a sysctl changed with `sysctl -w` (`pollint: 1`)",
            sysctl,
            "the poll (procfs gives no events)",
        ),
    ] {
        v.sort();
        println!(
            "| {what} | {} | {} | {how} |",
            crate::report::ms(percentile(&v, 50.0)),
            crate::report::ms(*v.last().unwrap())
        );
    }
    Ok(())
}

/// A long run with the users in place; each sample changes one user's shell in the
/// namespace's copy of `/etc/passwd` (written aside, renamed over) and times until it is
/// `/bin/sh` again.
fn drift_shell(o: &Options, w: &Path, graph: &Path) -> Result<Vec<Duration>, String> {
    let h = o.homeostat.display().to_string();
    let mut c = in_namespace(w, &[&h, "run", graph.to_str().unwrap()]);
    let running = proc::spawn(&mut c).map_err(|e| e.to_string())?;
    let passwd = w.join("etc/passwd");
    let line = |name: &str| {
        std::fs::read_to_string(&passwd)
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with(&format!("{name}:")))
            .map(str::to_string)
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut samples = Vec::new();
    for s in 0..o.samples {
        let (name, _) = user(s % USERS);
        let text = std::fs::read_to_string(&passwd).map_err(|e| e.to_string())?;
        let want = line(&name).ok_or("a user is missing")?;
        let drifted = want.replace(":/bin/sh", ":/bin/bash");
        let tmp = w.join("etc/passwd.drift");
        std::fs::write(&tmp, text.replace(&want, &drifted)).map_err(|e| e.to_string())?;
        let started = Instant::now();
        std::fs::rename(&tmp, &passwd).map_err(|e| e.to_string())?;
        loop {
            if line(&name).as_deref() == Some(want.as_str()) {
                samples.push(started.elapsed());
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                running.signal(libc::SIGTERM);
                let _ = running.wait(Duration::from_secs(30));
                return Err(format!("{name}'s shell was not repaired"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(60))?;
    Ok(samples)
}

/// A long run keeping a test package installed, in the harness's local apt world (a
/// package built with `dpkg-deb`, a `file:` repository, copies of dpkg's and apt's state
/// bound in a mount namespace); each sample removes it with `dpkg -r` there and times,
/// from the end of the removal, until dpkg's database says it is installed again.
fn drift_pkg(o: &Options, w: &Path) -> Result<Vec<Duration>, String> {
    let apt = homeostat_tests::LocalApt::new("hs-bench-pkg", &["1.0"]);
    let graph = w.join("pkg.yaml");
    std::fs::write(
        &graph,
        "graph: p\nresources:\n  pkg:\n  - name: hs-bench-pkg\n",
    )
    .map_err(|e| e.to_string())?;
    let mut c = apt.command(&o.homeostat, &["run", graph.to_str().unwrap()]);
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let running = proc::spawn(&mut c).map_err(|e| e.to_string())?;
    let pid = running.child.id();
    let result = (|| {
        let give_up = Instant::now() + Duration::from_secs(120);
        let mut samples = Vec::new();
        for _ in 0..o.samples {
            // Removed once installed and apt has let go of dpkg's lock.
            loop {
                if Instant::now() > give_up {
                    return Err("the test package was never (re)installed".to_string());
                }
                if apt.installed()
                    && homeostat_tests::nsenter("mount", pid, &["dpkg", "-r", "hs-bench-pkg"])
                        .status
                        .success()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let started = Instant::now();
            while !apt.installed() {
                if started.elapsed() > Duration::from_secs(60) {
                    return Err("the test package was not reinstalled".to_string());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            samples.push(started.elapsed());
        }
        Ok(samples)
    })();
    running.signal(libc::SIGTERM);
    let _ = running.wait(Duration::from_secs(60));
    result
}

/// A long run of one `sysctl` in a network namespace; each sample sets it back to 0 with
/// `sysctl -w` there and times until it is 1 again.
fn drift_sysctl(o: &Options, w: &Path) -> Result<Vec<Duration>, String> {
    let graph = w.join("sysctl.yaml");
    std::fs::write(
        &graph,
        "graph: s\nresources:\n  sysctl:\n  - name: net.ipv4.ip_forward\n    value: \"1\"\n    persist: false\n    pollint: 1\n",
    )
    .map_err(|e| e.to_string())?;
    let mut c = Command::new("unshare");
    c.args(["--net"])
        .arg(&o.homeostat)
        .arg("run")
        .arg(&graph)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let running = proc::spawn(&mut c).map_err(|e| e.to_string())?;
    let pid = running.child.id();
    let live = || {
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["sysctl", "-n", "net.ipv4.ip_forward"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    std::thread::sleep(Duration::from_secs(2));
    let mut samples = Vec::new();
    for _ in 0..o.samples {
        let started = Instant::now();
        let _ = Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"])
            .status();
        while live() != "1" {
            if started.elapsed() > Duration::from_secs(30) {
                running.signal(libc::SIGTERM);
                let _ = running.wait(Duration::from_secs(30));
                return Err("the sysctl was not repaired".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        samples.push(started.elapsed());
    }
    running.signal(libc::SIGTERM);
    running.wait(Duration::from_secs(60))?;
    Ok(samples)
}

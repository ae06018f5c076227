//! The SSH harness (`tests/src/ssh.rs`) proven with the real OpenSSH client: simulated
//! hosts have their own hostname and private `/tmp`, `ssh -R` lands on the host's own
//! loopback, host keys are checked, password login stays inside the host, and nothing is
//! left once a host is dropped, also when the test panics. Needs root (skipped otherwise).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use homeostat_tests::ssh::{self, ClientKeys, KeyKind, SshHost};
use homeostat_tests::{process_running, wait_for};

/// Whether to skip (and say why): the harness needs root and OpenSSH.
fn skipped() -> bool {
    match ssh::skip_reason() {
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
        None => false,
    }
}

/// Run `command`, asserting it succeeds; its standard output.
fn ok(mut command: Command) -> String {
    let out = command.output().expect("run ssh");
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// `ssh root@HOST CMD` with the ed25519 key, asserting success; its output.
fn ssh(keys: &ClientKeys, host: &SshHost, cmd: &str) -> String {
    let mut c = keys.ssh(host, KeyKind::Ed25519);
    c.arg(cmd);
    ok(c)
}

/// Answer one HTTP request on `listener` with `body`, on a thread of its own.
fn serve_once(listener: TcpListener, body: &'static str) {
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut request = Vec::new();
        let mut buf = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let _ = write!(
            stream,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    });
}

/// Processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").expect("read /proc").flatten() {
        if let Ok(cmdline) = fs::read(e.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(format!("{}: {cmdline}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// What must hold once a host is gone: no namespace, no process in it or running its
/// config, no veth end, no files.
fn assert_gone(netns: &str, pids: &[u32], dir: &Path) {
    let list = ok({
        let mut c = Command::new("ip");
        c.args(["netns", "list"]);
        c
    });
    assert!(
        !list
            .lines()
            .any(|l| l.split_whitespace().next() == Some(netns)),
        "{netns} is still listed:\n{list}"
    );
    for pid in pids {
        assert!(
            wait_for(|| (!process_running(*pid as i32)).then_some(())).is_some(),
            "process {pid} of {netns} still runs"
        );
    }
    let dir_text = dir.display().to_string();
    assert_eq!(processes_naming(&dir_text), Vec::<String>::new());
    assert!(!dir.exists(), "{} is left", dir.display());
    // The kernel frees a namespace and its devices a moment after the last user is gone.
    let veth_gone = wait_for(|| {
        let out = Command::new("ip")
            .args(["link", "show", "dev", netns])
            .output()
            .expect("run ip link");
        (!out.status.success()).then_some(())
    });
    assert!(veth_gone.is_some(), "veth {netns} is left");
}

/// Two hosts side by side: each answers with its own hostname, and what one writes to
/// its `/tmp` or state directory is seen through its `path()` only: not in the root
/// namespace, not in the other host.
#[test]
fn hosts_have_their_own_hostname_and_private_tmp() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = ClientKeys::new(tmp.path());
    let authorized = [
        keys.pub_line(KeyKind::Ed25519),
        keys.pub_line(KeyKind::Ecdsa),
    ];
    let alpha = SshHost::start("alpha", &authorized);
    let beta = SshHost::start("beta", &authorized);
    keys.add_known_host(&alpha);
    keys.add_known_host(&beta);
    assert_ne!(alpha.ip(), beta.ip());

    assert_eq!(ssh(&keys, &alpha, "hostname"), "alpha\n");
    let mut ecdsa = keys.ssh(&beta, KeyKind::Ecdsa);
    ecdsa.arg("hostname");
    assert_eq!(ok(ecdsa), "beta\n");
    // A key added later (the RSA pair is made on first use) is accepted too.
    beta.authorize(&keys.pub_line(KeyKind::Rsa));
    let mut rsa = keys.ssh(&beta, KeyKind::Rsa);
    rsa.arg("echo rsa");
    assert_eq!(ok(rsa), "rsa\n");

    let marker = format!("/tmp/homeostat-ssh-harness-{}", std::process::id());
    let state = "/var/lib/homeostat/ssh-harness-marker";
    ssh(
        &keys,
        &alpha,
        &format!("echo from-alpha > {marker} && echo state > {state}"),
    );
    let seen = fs::read_to_string(alpha.path(Path::new(&marker))).expect("read via path()");
    assert_eq!(seen, "from-alpha\n");
    assert_eq!(
        fs::read_to_string(alpha.path(Path::new(state))).expect("read state"),
        "state\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&alpha.exec(&format!("cat {marker}")).stdout),
        "from-alpha\n"
    );
    assert!(
        !Path::new(&marker).exists(),
        "{marker} leaked to the root /tmp"
    );
    assert!(!Path::new(state).exists(), "{state} leaked to the root");
    assert!(!beta.path(Path::new(&marker)).exists());
    assert!(!beta.exec(&format!("test -e {marker}")).status.success());
    assert_eq!(
        ssh(&keys, &beta, &format!("cat {marker} || echo none")),
        "none\n"
    );
    // The machine keeps its own name.
    let own = fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    assert_ne!(own.trim(), "alpha");
}

/// `ssh -R` from the initiator opens a port on the host's own loopback that leads back to
/// a server on the initiator's loopback; the host also reaches the initiator directly at
/// `gateway()`.
#[test]
fn reverse_forward_reaches_the_initiator() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = ClientKeys::new(tmp.path());
    let host = SshHost::start("forward", &[keys.pub_line(KeyKind::Ed25519)]);
    keys.add_known_host(&host);

    // Port 0: the kernel picks a free port and the listener holds it, so nothing races.
    let local = TcpListener::bind("127.0.0.1:0").expect("listen on loopback");
    let local_port = local.local_addr().expect("local addr").port();
    serve_once(local, "through the tunnel");
    // The host's loopback is its own: any port is free there.
    let remote_port = homeostat_tests::free_port();
    let mut c = keys.ssh(&host, KeyKind::Ed25519);
    c.args(["-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("127.0.0.1:{remote_port}:127.0.0.1:{local_port}"))
        .arg(format!(
            "curl -sS --max-time 10 http://127.0.0.1:{remote_port}/"
        ));
    assert_eq!(ok(c), "through the tunnel");

    let direct = TcpListener::bind((host.gateway(), 0)).expect("listen on the veth");
    let direct_port = direct.local_addr().expect("direct addr").port();
    serve_once(direct, "direct");
    let body = ssh(
        &keys,
        &host,
        &format!(
            "curl -sS --max-time 10 http://{}:{direct_port}/",
            host.gateway()
        ),
    );
    assert_eq!(body, "direct");
}

/// Dropping a host kills its sessions and what they left running, deletes its namespace,
/// veth and files; the same happens when the test owning it panics.
#[test]
fn drop_removes_everything_even_on_panic() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = ClientKeys::new(tmp.path());
    let authorized = [keys.pub_line(KeyKind::Ed25519)];

    let host = SshHost::start("teardown", &authorized);
    keys.add_known_host(&host);
    // A session still running and a daemon detached from any session.
    let mut session = keys.ssh(&host, KeyKind::Ed25519);
    session.arg("sleep 600");
    let mut session = session.spawn().expect("start a long session");
    let out = host.exec("setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $!");
    assert!(out.status.success());
    let busy = wait_for(|| {
        let p = host.pids();
        // The session's sleep and the detached one (sshd's own processes besides).
        let sleeps = p
            .iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
            })
            .count();
        (sleeps == 2).then_some(p)
    });
    let mut pids = busy.unwrap_or_else(|| panic!("no session in {:?}", host.pids()));
    pids.push(host.sshd_pid());
    let netns = host.netns().to_string();
    let dir = ssh::harness_dir().join(&netns);
    assert!(dir.is_dir());
    drop(host);
    assert_gone(&netns, &pids, &dir);
    // The client sees its connection end.
    let ended = wait_for(|| session.try_wait().expect("try_wait ssh"));
    assert!(ended.is_some(), "the ssh client still runs");

    let made = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let host = SshHost::start("panics", &authorized);
        *made.lock().unwrap() = Some((host.netns().to_string(), host.sshd_pid()));
        panic!("deliberate: a test failing while it owns a host");
    }));
    assert!(result.is_err());
    let (netns, sshd) = made.lock().unwrap().take().expect("the host had started");
    assert_gone(&netns, &[sshd], &ssh::harness_dir().join(&netns));
}

/// A rotated host key is refused by strict host key checking and accepted once
/// `known_hosts` has the new one; the host keeps its `/tmp` through the restart.
#[test]
fn rotated_host_key_is_refused_until_known() {
    if skipped() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = ClientKeys::new(tmp.path());
    let mut host = SshHost::start("rotate", &[keys.pub_line(KeyKind::Ed25519)]);
    keys.add_known_host(&host);
    assert_eq!(
        ssh(&keys, &host, "echo kept > /tmp/kept && echo ok"),
        "ok\n"
    );

    let old = host.host_key_line();
    host.rotate_host_key();
    assert_ne!(host.host_key_line(), old);
    let mut c = keys.ssh(&host, KeyKind::Ed25519);
    c.arg("true");
    let out: Output = c.output().expect("run ssh");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "ssh said: {err}"
    );

    fs::write(keys.known_hosts(), "").expect("empty known_hosts");
    keys.add_known_host(&host);
    assert_eq!(ssh(&keys, &host, "cat /tmp/kept"), "kept\n");
}

/// Password login for root, with the password in a private copy of `/etc/shadow` that
/// the machine never sees.
#[test]
fn password_login_stays_inside_the_host() {
    if skipped() {
        return;
    }
    let shadow_before = fs::read("/etc/shadow").expect("read /etc/shadow");
    let tmp = tempfile::tempdir().expect("tempdir");
    let keys = ClientKeys::new(tmp.path());
    let host = SshHost::builder("password")
        .password("correct horse")
        .start();
    keys.add_known_host(&host);

    let login = |password: &str| -> Output {
        let askpass: PathBuf = tmp.path().join("askpass");
        fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).expect("askpass");
        let mut perms = fs::metadata(&askpass).expect("stat").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        fs::set_permissions(&askpass, perms).expect("chmod askpass");
        Command::new("/usr/bin/ssh")
            .args(["-F", "/dev/null", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                keys.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "PubkeyAuthentication=no",
                "-o",
                "PreferredAuthentications=password",
                "-o",
                "NumberOfPasswordPrompts=1",
            ])
            .arg(format!("root@{}", host.ip()))
            .arg("hostname")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run ssh")
    };
    let good = login("correct horse");
    assert!(
        good.status.success(),
        "{}\nsshd log:\n{}",
        String::from_utf8_lossy(&good.stderr),
        host.log()
    );
    assert_eq!(String::from_utf8_lossy(&good.stdout), "password\n");
    assert!(!login("wrong").status.success());
    assert_eq!(
        fs::read("/etc/shadow").expect("read /etc/shadow"),
        shadow_before
    );
}

//! Simulated SSH hosts for trying remote execution by hand, with the test harness's own
//! namespaces ([`homeostat_tests::ssh`]): `cargo run -p homeostat-tests --bin ssh-hosts
//! -- web1 web2` starts one `sshd` per name in network, mount and UTS namespaces of its
//! own, writes a key pair and a `known_hosts` for them into `./ssh-hosts/home/.ssh/`,
//! prints each host's address and the `remote:` line to use, and keeps them until ^C
//! (or SIGTERM), when every process, namespace and file of theirs is removed. Root only.

use std::path::PathBuf;

use homeostat_tests::ssh::{ClientKeys, KeyKind, SshHost, skip_reason};

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    if names.is_empty() || names.iter().any(|n| n.starts_with('-')) {
        eprintln!("usage: ssh-hosts NAME... (as root): simulated SSH hosts until ^C");
        std::process::exit(2);
    }
    if let Some(why) = skip_reason() {
        eprintln!("ssh-hosts: cannot start hosts: {why}");
        std::process::exit(1);
    }
    // Block the stop signals before any thread starts, then wait for one: the hosts
    // are dropped (and removed) on the way out.
    // SAFETY: plain libc signal-set calls on a local, zeroed set.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let dir = PathBuf::from("ssh-hosts");
    std::fs::create_dir_all(&dir).expect("create ./ssh-hosts");
    let keys = ClientKeys::new(&dir);
    let hosts: Vec<SshHost> = names
        .iter()
        .map(|n| {
            let h = SshHost::start(n, &[keys.pub_line(KeyKind::Ed25519)]);
            keys.add_known_host(&h);
            h
        })
        .collect();
    println!(
        "HOME for homeostat: {}",
        keys.home().canonicalize().unwrap().display()
    );
    for h in &hosts {
        println!("{}: remote: ssh://root@{}", h.name(), h.ip());
    }
    println!(
        "e.g. HOME={} homeostat run --remote web1.yaml; ^C here removes the hosts",
        keys.home().canonicalize().unwrap().display()
    );
    let mut sig = 0;
    // SAFETY: waits on the set blocked above.
    unsafe { libc::sigwait(&set, &mut sig) };
    drop(hosts);
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("ssh-hosts: removed");
}

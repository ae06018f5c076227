//! Simulated remote hosts for the SSH suites: each [`SshHost`] is a real OpenSSH `sshd`
//! in network, mount and UTS namespaces of its own, reached from the test process (the
//! initiator, in the root namespaces) over a veth pair. [`ClientKeys`] is the initiator's
//! side: a throwaway home with key pairs of each kind and a `known_hosts` file.
//!
//! One host, named `hs<pid>-<n>` after the test process and a counter:
//!
//! - **Network**: network namespace `hs<pid>-<n>` with its loopback up and `eth0`, the
//!   peer of the veth `hs<pid>-<n>` left in the root namespace. The pair gets a /30 of
//!   10.211.0.0/16: the initiator's end is [`SshHost::gateway`], the host's
//!   [`SshHost::ip`]. There is no default route: the host reaches the initiator's address
//!   and its own loopback, nothing else (an `ssh -R` forward lands on its own loopback).
//! - **Mounts**: a private mount namespace with tmpfs on `/tmp`, `/var/lib/homeostat` and
//!   `/var/cache/homeostat` (and, for password login, a private copy of `/etc/shadow`),
//!   seen by `sshd` and every session it starts and by nothing else. The rest of the file
//!   system (`/etc`, `/root`, `/run`, `/usr`) is the machine's own and shared.
//! - **Hostname**: a UTS namespace of its own with the name the test gave.
//! - **Files**: config, host key, authorized keys, pid file and `sshd`'s log in a
//!   directory of the harness outside `/tmp` ([`harness_dir`] says why).
//!
//! Dropping an [`SshHost`] (also while a failed test unwinds) kills every process in its
//! network namespace, deletes the namespace (the veth pair goes with it) and removes its
//! files. A test process killed outright leaves them behind; the next one to start a host
//! removes the leftovers of processes that are gone.
//!
//! Everything here needs root, `/usr/sbin/sshd` (Debian `openssh-server`), `ssh-keygen`
//! (`openssh-client`) and `ip` (`iproute2`); [`skip_reason`] says which is missing.
//!
//! Note for clients: OpenSSH (and clients that imitate it) find `~/.ssh` through the
//! password database, not `$HOME`, so [`ClientKeys::ssh`] names the key and the
//! `known_hosts` file explicitly.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long `sshd` may take to listen after a start or a restart: it is a local process
/// that starts in milliseconds, so this only bounds a broken start.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// How long teardown keeps killing the processes of a namespace before it gives up.
const KILL_DEADLINE: Duration = Duration::from_secs(10);

/// The /16 the hosts' /30 subnets are cut from.
const SUBNET_BASE: u32 = u32::from_be_bytes([10, 211, 0, 0]);

/// How many /30 subnets the /16 holds.
const SUBNETS: u32 = 1 << 14;

/// Lock taken while choosing names and subnets, so test binaries running at once never
/// pick the same subnet. In `/run`: machine-wide, like the namespaces it guards.
const LOCK_FILE: &str = "/run/homeostat-ssh-harness.lock";

/// Hosts started by this process so far: with the pid, a unique namespace name.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Why the SSH harness cannot run here, or `None` when it can: it needs root (namespaces,
/// mounts, `sshd`) and the programs it drives.
pub fn skip_reason() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces and sshd");
    }
    for (program, package) in [
        ("/usr/sbin/sshd", "openssh-server"),
        ("/usr/bin/ssh-keygen", "openssh-client"),
        ("/usr/bin/ssh", "openssh-client"),
        ("/usr/sbin/ip", "iproute2"),
        ("/usr/bin/nsenter", "util-linux"),
    ] {
        if !Path::new(program).exists() {
            eprintln!("ssh harness: {program} is missing (Debian package {package})");
            return Some("a program the SSH harness drives is missing");
        }
    }
    None
}

/// The kinds of key pair [`ClientKeys`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `id_ed25519`, made by [`ClientKeys::new`].
    Ed25519,
    /// `id_ecdsa` (NIST P-256), made by [`ClientKeys::new`].
    Ecdsa,
    /// `id_rsa` (3072 bits), made on first use: it takes the longest to generate.
    Rsa,
}

impl KeyKind {
    /// Every kind.
    pub const ALL: [KeyKind; 3] = [KeyKind::Ed25519, KeyKind::Ecdsa, KeyKind::Rsa];

    /// The private key's file name in `~/.ssh`, as OpenSSH names it.
    pub fn file_name(self) -> &'static str {
        match self {
            KeyKind::Ed25519 => "id_ed25519",
            KeyKind::Ecdsa => "id_ecdsa",
            KeyKind::Rsa => "id_rsa",
        }
    }

    /// `ssh-keygen` arguments choosing the kind.
    fn keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyKind::Ed25519 => &["-t", "ed25519"],
            KeyKind::Ecdsa => &["-t", "ecdsa", "-b", "256"],
            KeyKind::Rsa => &["-t", "rsa", "-b", "3072"],
        }
    }
}

/// The initiator's credentials: a fake home `DIR/home` whose `.ssh/` holds `id_ed25519`,
/// `id_ecdsa` and `id_rsa` (each with its `.pub`, no passphrase) and a `known_hosts`
/// that starts empty. Set [`ClientKeys::home`] as `HOME` for a homeostat initiator.
pub struct ClientKeys {
    /// `DIR/home`.
    home: PathBuf,
    /// `DIR/home/.ssh`.
    ssh_dir: PathBuf,
}

impl ClientKeys {
    /// Make `dir/home/.ssh` (mode 0700, as OpenSSH wants it) with an ed25519 and an
    /// ECDSA key pair and an empty `known_hosts`; the RSA pair is made on first use.
    pub fn new(dir: &Path) -> ClientKeys {
        let home = dir.join("home");
        let ssh_dir = home.join(".ssh");
        fs::create_dir_all(&ssh_dir).expect("create the fake home's .ssh");
        fs::set_permissions(&ssh_dir, fs::Permissions::from_mode(0o700)).expect("chmod .ssh");
        let keys = ClientKeys { home, ssh_dir };
        fs::write(keys.known_hosts(), "").expect("create known_hosts");
        keys.key(KeyKind::Ed25519);
        keys.key(KeyKind::Ecdsa);
        keys
    }

    /// The fake home (`DIR/home`).
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The fake home's `.ssh` directory.
    pub fn ssh_dir(&self) -> &Path {
        &self.ssh_dir
    }

    /// The private key of `kind`, generated now if it is not there yet.
    pub fn key(&self, kind: KeyKind) -> PathBuf {
        let path = self.ssh_dir.join(kind.file_name());
        if !path.exists() {
            keygen(&path, kind.keygen_args(), "homeostat-test-client");
        }
        path
    }

    /// The public key line of `kind` (`ssh-ed25519 AAAA... comment`), for
    /// `authorized_keys`.
    pub fn pub_line(&self, kind: KeyKind) -> String {
        let path = self.key(kind).with_extension("pub");
        fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// `home/.ssh/known_hosts`.
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir.join("known_hosts")
    }

    /// Append `host`'s key to `known_hosts` ([`SshHost::known_hosts_line`]).
    pub fn add_known_host(&self, host: &SshHost) {
        self.add_known_hosts_line(&host.known_hosts_line());
    }

    /// Append one line to `known_hosts`.
    pub fn add_known_hosts_line(&self, line: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.known_hosts())
            .expect("open known_hosts");
        writeln!(f, "{}", line.trim()).expect("append to known_hosts");
    }

    /// The OpenSSH client as `root` to `host` with the key of `kind` and this
    /// `known_hosts` only: no config file, strict host key checking, no prompts, no agent.
    /// Add the remote command and run it; more options (`-R`, `-o`) may still come first,
    /// after the destination (OpenSSH reads options on both sides of it).
    pub fn ssh(&self, host: &SshHost, kind: KeyKind) -> Command {
        let mut c = Command::new("/usr/bin/ssh");
        c.args(["-F", "/dev/null", "-o"])
            .arg(format!(
                "UserKnownHostsFile={}",
                self.known_hosts().display()
            ))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "ConnectTimeout=10",
                "-i",
            ])
            .arg(self.key(kind))
            .arg("-p")
            .arg(host.port().to_string())
            .arg(format!("root@{}", host.ip()))
            .stdin(Stdio::null());
        c
    }
}

/// Choices for a host beyond its name; made by [`SshHost::builder`].
pub struct SshHostBuilder {
    /// Hostname inside the host.
    name: String,
    /// Lines of its `authorized_keys` (for every user).
    authorized: Vec<String>,
    /// Root's password, when password login is allowed.
    password: Option<String>,
}

impl SshHostBuilder {
    /// Public key lines `sshd` accepts (for any user; the test logs in as `root`).
    pub fn authorized(mut self, lines: &[String]) -> SshHostBuilder {
        self.authorized.extend(lines.iter().cloned());
        self
    }

    /// Allow root to log in with `password` too (`PermitRootLogin yes`,
    /// `PasswordAuthentication yes`). The password lives in a copy of `/etc/shadow`
    /// bind-mounted over the real one inside the host's private mount namespace only: the
    /// machine's `/etc/shadow` is never written. The copy is taken at start, so users
    /// added to the machine later have no password inside the host.
    pub fn password(mut self, password: &str) -> SshHostBuilder {
        self.password = Some(password.to_string());
        self
    }

    /// Start the host (see [`SshHost::start`]).
    pub fn start(self) -> SshHost {
        SshHost::start_with(self)
    }
}

/// A simulated remote host: a real `sshd` listening on [`SshHost::ip`] port 22 in
/// namespaces of its own (see the module docs). Torn down when dropped.
pub struct SshHost {
    /// Hostname inside the host.
    name: String,
    /// Name of the network namespace and of the veth end in the root namespace.
    netns: String,
    /// The harness's files for this host (config, keys, log).
    dir: PathBuf,
    /// The host's address (its `eth0`).
    ip: Ipv4Addr,
    /// The initiator's address on the veth pair, as the host sees it.
    gateway: Ipv4Addr,
    /// The listening `sshd`: it holds the mount and UTS namespaces, so its pid leads
    /// into them ([`SshHost::path`], [`SshHost::exec`]). `None` once stopped.
    sshd: Option<Child>,
}

impl SshHost {
    /// Start a host called `name` (its hostname; letters, digits, `-` and `.`) whose
    /// `sshd` accepts the public key lines `authorized` for root. Panics with `sshd`'s log
    /// when it does not listen within a few seconds.
    pub fn start(name: &str, authorized: &[String]) -> SshHost {
        SshHost::builder(name).authorized(authorized).start()
    }

    /// A host called `name` with more choices ([`SshHostBuilder`]).
    pub fn builder(name: &str) -> SshHostBuilder {
        SshHostBuilder {
            name: name.to_string(),
            authorized: Vec::new(),
            password: None,
        }
    }

    /// Set up the namespaces and start `sshd`. `host` exists before the first thing is
    /// made, so a panic on the way unwinds through its `Drop`, which removes what was.
    fn start_with(options: SshHostBuilder) -> SshHost {
        if let Some(why) = skip_reason() {
            panic!("SshHost cannot start: {why}");
        }
        let name = options.name;
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
            "host name {name:?}: use letters, digits, '-' and '.'"
        );
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let netns = format!("hs{}-{counter}", std::process::id());
        // The veth end in the root namespace carries the same name.
        assert!(netns.len() <= 15, "interface name {netns} is too long");
        let mut host = SshHost {
            dir: harness_dir().join(&netns),
            name,
            netns,
            ip: Ipv4Addr::UNSPECIFIED,
            gateway: Ipv4Addr::UNSPECIFIED,
            sshd: None,
        };
        {
            let _lock = HarnessLock::take();
            remove_leftovers();
            fs::create_dir_all(&host.dir).expect("create the host's harness directory");
            ip(&["netns", "add", &host.netns]);
            ip(&[
                "link",
                "add",
                &host.netns,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                &host.netns,
            ]);
            let subnet = free_subnet(counter);
            host.gateway = Ipv4Addr::from(subnet + 1);
            host.ip = Ipv4Addr::from(subnet + 2);
            // Under the lock: the address is what the next one's search sees.
            ip(&[
                "addr",
                "add",
                &format!("{}/30", host.gateway),
                "dev",
                &host.netns,
            ]);
        }
        ip(&["link", "set", &host.netns, "up"]);
        let ns = host.netns.clone();
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/30", host.ip),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);

        keygen(&host.host_key(), &["-t", "ed25519"], &host.name);
        let mut keys = options.authorized.join("\n");
        keys.push('\n');
        fs::write(host.authorized_keys(), keys).expect("write authorized_keys");
        let shadow = options
            .password
            .as_deref()
            .map(|pw| host.private_shadow(pw));
        host.write_config(shadow.is_some());
        host.spawn_sshd(shadow.as_deref());
        host.wait_listening(1);
        host
    }

    /// Connects this host and `other` with a veth pair of their own, as if on one LAN
    /// (hosts are otherwise reachable only from the test process), and returns `other`'s
    /// address on it: what a graph running here uses to reach `other`. Each link gets a
    /// /30 of 10.212.0.0/16 unique in this process, so a host's links never overlap; the
    /// pair goes with either namespace.
    pub fn link(&self, other: &SshHost) -> Ipv4Addr {
        static LINKS: AtomicU32 = AtomicU32::new(0);
        let n = LINKS.fetch_add(1, Ordering::Relaxed);
        assert!(n < SUBNETS, "too many links");
        let subnet = u32::from_be_bytes([10, 212, 0, 0]) + n * 4;
        let (here, there) = (Ipv4Addr::from(subnet + 1), Ipv4Addr::from(subnet + 2));
        let (a, b) = (format!("ln{n}a"), format!("ln{n}b"));
        ip(&[
            "link",
            "add",
            &a,
            "netns",
            &self.netns,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "netns",
            &other.netns,
        ]);
        for (ns, dev, addr) in [(&self.netns, &a, here), (&other.netns, &b, there)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        there
    }

    /// Hostname inside the host.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Name of the host's network namespace (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The host's address, where `sshd` listens.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The initiator's address as the host sees it (the root namespace's veth end).
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The port `sshd` listens on: 22, like a real host.
    pub fn port(&self) -> u16 {
        22
    }

    /// The host key's public line without its comment (`ssh-ed25519 AAAA...`).
    pub fn host_key_line(&self) -> String {
        let path = self.host_key().with_extension("pub");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The host's `known_hosts` line, as OpenSSH writes it: `IP KEY` on port 22,
    /// `[IP]:PORT KEY` on any other.
    pub fn known_hosts_line(&self) -> String {
        let key = self.host_key_line();
        match self.port() {
            22 => format!("{} {key}", self.ip),
            port => format!("[{}]:{port} {key}", self.ip),
        }
    }

    /// Where the absolute path `p` inside the host (its private `/tmp` and state
    /// directories included) is seen from the test: `/proc/<sshd pid>/root/p`.
    pub fn path(&self, p: &Path) -> PathBuf {
        let rel = p
            .strip_prefix("/")
            .unwrap_or_else(|_| panic!("{} is not absolute", p.display()));
        PathBuf::from(format!("/proc/{}/root", self.sshd_pid())).join(rel)
    }

    /// The processes in the host's network namespace other than the listening `sshd`
    /// (sessions, what they started, what [`SshHost::exec`] runs).
    pub fn pids(&self) -> Vec<u32> {
        let sshd = self.sshd.as_ref().map(Child::id);
        netns_pids(&self.netns)
            .into_iter()
            .filter(|p| Some(*p) != sshd)
            .collect()
    }

    /// Run `sh -c cmd` inside the host's network, mount and UTS namespaces, to completion.
    pub fn exec(&self, cmd: &str) -> Output {
        Command::new("/usr/bin/nsenter")
            .args(["-t", &self.sshd_pid().to_string(), "-n", "-m", "-u"])
            .args(["sh", "-c", cmd])
            .stdin(Stdio::null())
            .output()
            .expect("run nsenter")
    }

    /// Append a public key line to the host's `authorized_keys` (read at each login).
    pub fn authorize(&self, pub_line: &str) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.authorized_keys())
            .expect("open authorized_keys");
        writeln!(f, "{}", pub_line.trim()).expect("append to authorized_keys");
    }

    /// What `sshd` logged so far (it logs at `VERBOSE`: connections, accepted keys,
    /// forwards, disconnections).
    pub fn log(&self) -> String {
        fs::read(self.log_file())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Give the host a new host key: generate it and make `sshd` re-read it (SIGHUP
    /// re-executes `sshd` with the same pid, so the namespaces and what the host holds in
    /// `/tmp` stay). Returns once it listens again; sessions open before go on.
    pub fn rotate_host_key(&mut self) {
        let before = self.log().matches("Server listening on").count();
        keygen(&self.host_key(), &["-t", "ed25519"], &self.name);
        let pid = self.sshd_pid();
        // SAFETY: kill has no memory preconditions; `pid` is our child, not yet reaped.
        let r = unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) };
        assert_eq!(r, 0, "SIGHUP sshd: {}", std::io::Error::last_os_error());
        self.wait_listening(before + 1);
    }

    /// Tear the host down now (what dropping it does).
    pub fn stop(mut self) {
        self.teardown();
    }

    /// Pid of the listening `sshd`, the process holding the host's namespaces.
    pub fn sshd_pid(&self) -> u32 {
        self.sshd.as_ref().expect("sshd is running").id()
    }

    /// The host's private key file.
    fn host_key(&self) -> PathBuf {
        self.dir.join("ssh_host_ed25519_key")
    }

    /// The `AuthorizedKeysFile` (absolute, for every user).
    fn authorized_keys(&self) -> PathBuf {
        self.dir.join("authorized_keys")
    }

    /// `sshd`'s standard output and error.
    fn log_file(&self) -> PathBuf {
        self.dir.join("sshd.log")
    }

    /// `sshd_config`.
    fn config_file(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    /// A copy of `/etc/shadow` whose root entry has `password` (SHA-512 crypt by
    /// `openssl passwd`, which `sshd` without PAM checks with crypt(3)).
    fn private_shadow(&self, password: &str) -> PathBuf {
        let mut child = Command::new("openssl")
            .args(["passwd", "-6", "-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl passwd (Debian package openssl)");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(format!("{password}\n").as_bytes())
            .expect("write the password to openssl");
        let out = child.wait_with_output().expect("wait for openssl");
        assert!(
            out.status.success(),
            "openssl passwd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hash = String::from_utf8(out.stdout).expect("hash is UTF-8");
        let shadow = fs::read_to_string("/etc/shadow").expect("read /etc/shadow");
        let mut copy = String::new();
        for line in shadow.lines() {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields.first() == Some(&"root") && fields.len() > 1 {
                fields[1] = hash.trim();
            }
            copy.push_str(&fields.join(":"));
            copy.push('\n');
        }
        let path = self.dir.join("shadow");
        fs::write(&path, copy).expect("write the private shadow");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod shadow");
        path
    }

    /// Write `sshd_config`: keys only (or a root password too), forwarding allowed,
    /// verbose log, room for many sessions at once.
    fn write_config(&self, password: bool) {
        let q = |p: PathBuf| format!("\"{}\"", p.display());
        let (root_login, password_auth) = if password {
            ("yes", "yes")
        } else {
            ("prohibit-password", "no")
        };
        // Every address of the namespace: its eth0, and the links of `SshHost::link`.
        let config = format!(
            "ListenAddress 0.0.0.0:{port}\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin {root_login}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication {password_auth}\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             AllowTcpForwarding yes\n\
             PrintMotd no\n\
             Subsystem sftp internal-sftp\n\
             LogLevel VERBOSE\n\
             MaxStartups 100\n\
             MaxSessions 100\n",
            port = self.port(),
            key = q(self.host_key()),
            pid = q(self.dir.join("sshd.pid")),
            authorized = q(self.authorized_keys()),
        );
        fs::write(self.config_file(), config).expect("write sshd_config");
    }

    /// Start `sshd` in the namespaces. `ip netns exec` enters the network namespace and
    /// makes a mount namespace whose mounts are slaves of the root's (so the root's new
    /// mounts still show, but nothing flows back); `unshare --mount --propagation
    /// private` makes one more, private, for the host's own mounts, plus the UTS
    /// namespace. Each step execs the next, so the child's pid is `sshd`'s.
    fn spawn_sshd(&mut self, shadow: Option<&Path>) {
        let _ = fs::create_dir_all("/run/sshd");
        // sshd refuses a privilege separation directory others may write.
        let _ = fs::set_permissions("/run/sshd", fs::Permissions::from_mode(0o755));
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .expect("create sshd.log");
        // The paths go as arguments ($1..$3), never pasted into the script.
        let script = "set -e\n\
            hostname \"$1\"\n\
            mount -t tmpfs tmpfs /tmp\n\
            mkdir -p /var/lib/homeostat /var/cache/homeostat\n\
            mount -t tmpfs tmpfs /var/lib/homeostat\n\
            mount -t tmpfs tmpfs /var/cache/homeostat\n\
            if [ -n \"$3\" ]; then mount --bind \"$3\" /etc/shadow; fi\n\
            exec /usr/sbin/sshd -D -e -f \"$2\"\n";
        let child = Command::new("/usr/sbin/ip")
            .args(["netns", "exec", &self.netns])
            .args(["unshare", "--uts", "--mount", "--propagation", "private"])
            .args(["sh", "-c", script, "homeostat-ssh-host", &self.name])
            .arg(self.config_file())
            .arg(shadow.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup sshd.log"))
            .stderr(log)
            .spawn()
            .expect("start sshd through ip netns exec");
        self.sshd = Some(child);
    }

    /// Wait until `sshd` has said "Server listening" `times` times in all and accepts a
    /// TCP connection, or panic with its log.
    fn wait_listening(&mut self, times: usize) {
        let addr = SocketAddr::from((self.ip, self.port()));
        let start = Instant::now();
        loop {
            let child = self.sshd.as_mut().expect("sshd was started");
            if let Some(status) = child.try_wait().expect("try_wait sshd") {
                panic!(
                    "sshd of host {} ({}) exited ({status}) before it listened; its log:\n{}",
                    self.name,
                    self.netns,
                    self.log()
                );
            }
            if self.log().matches("Server listening on").count() >= times
                && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            {
                return;
            }
            if start.elapsed() > START_DEADLINE {
                panic!(
                    "sshd of host {} ({}) does not accept connections on {addr} after \
                     {START_DEADLINE:?}; its log:\n{}",
                    self.name,
                    self.netns,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill every process of the host, delete its namespace and files. Safe to call on a
    /// half-made host and twice; reports trouble on stderr instead of panicking (it runs
    /// in `Drop`, maybe while a test unwinds).
    fn teardown(&mut self) {
        if let Some(mut sshd) = self.sshd.take() {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
        kill_netns_processes(&self.netns);
        delete_netns(&self.netns);
        if self.dir.exists()
            && let Err(e) = fs::remove_dir_all(&self.dir)
        {
            eprintln!("ssh harness: remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// An `ssh-agent` holding a client's ed25519 key (hosts a hierarchy reaches log in with
/// the initiator's forwarded agent), killed when dropped.
pub struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    /// Starts an agent listening in `dir` and adds `keys`' ed25519 key to it.
    pub fn start(keys: &ClientKeys, dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client) runs");
        let mut agent = Agent { child, socket };
        let until = Instant::now() + START_DEADLINE;
        while !agent.socket.exists() {
            assert!(Instant::now() < until, "ssh-agent did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        let added = Command::new("ssh-add")
            .arg(keys.key(KeyKind::Ed25519))
            .env("SSH_AUTH_SOCK", &agent.socket)
            .output()
            .expect("ssh-add runs");
        if !added.status.success() {
            let _ = agent.child.kill();
            panic!("ssh-add: {}", String::from_utf8_lossy(&added.stderr));
        }
        agent
    }

    /// The socket to give as `SSH_AUTH_SOCK`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the hosts' files go: `target/ssh-harness/` (the same target directory as
/// [`crate::binary`]), removed with the rest by `cargo clean`. Not under `/tmp`: `sshd`
/// reads its config, host key and authorized keys from inside the host's mount
/// namespace, after a tmpfs has hidden the real `/tmp`. A target directory under `/tmp`
/// falls back to `/var/tmp/homeostat-ssh-harness/`.
pub fn harness_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::root().join("target"));
    if target.is_absolute() && !target.starts_with("/tmp") {
        target.join("ssh-harness")
    } else {
        PathBuf::from("/var/tmp/homeostat-ssh-harness")
    }
}

/// An exclusive `flock` on [`LOCK_FILE`], released when dropped (the file closes).
struct HarnessLock(#[expect(dead_code, reason = "held for its lock")] fs::File);

impl HarnessLock {
    /// Wait for the lock.
    fn take() -> HarnessLock {
        use std::os::fd::AsRawFd;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(LOCK_FILE)
            .unwrap_or_else(|e| panic!("open {LOCK_FILE}: {e}"));
        // SAFETY: the descriptor is open for the duration of the call.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            r,
            0,
            "flock {LOCK_FILE}: {}",
            std::io::Error::last_os_error()
        );
        HarnessLock(file)
    }
}

/// A /30 of 10.211.0.0/16 (its network address) no address of the machine is in,
/// searched from a start derived from the pid and the namespace's counter so that test
/// processes mostly start apart. Called under [`HarnessLock`].
fn free_subnet(counter: u32) -> u32 {
    let out = ip(&["-4", "-o", "addr", "show"]);
    let used: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            let addr: Ipv4Addr = words.next()?.split('/').next()?.parse().ok()?;
            Some(u32::from(addr))
        })
        .filter(|a| a & 0xffff_0000 == SUBNET_BASE)
        .map(|a| (a - SUBNET_BASE) / 4)
        .collect();
    let start = std::process::id().wrapping_mul(64).wrapping_add(counter) % SUBNETS;
    (0..SUBNETS)
        .map(|i| (start + i) % SUBNETS)
        .find(|i| !used.contains(i))
        .map(|i| SUBNET_BASE + i * 4)
        .expect("a free /30 in 10.211.0.0/16")
}

/// Run `ip ARGS`, panicking with its error output when it fails.
fn ip(args: &[&str]) -> Output {
    let out = Command::new("/usr/sbin/ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

/// Pids in network namespace `netns` (none when it does not exist).
fn netns_pids(netns: &str) -> Vec<u32> {
    Command::new("/usr/sbin/ip")
        .args(["netns", "pids", netns])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL every process in `netns` until none is left (new ones may fork meanwhile),
/// for at most [`KILL_DEADLINE`].
fn kill_netns_processes(netns: &str) {
    let start = Instant::now();
    loop {
        let pids = netns_pids(netns);
        if pids.is_empty() {
            return;
        }
        if start.elapsed() > KILL_DEADLINE {
            eprintln!("ssh harness: processes {pids:?} of {netns} survive SIGKILL");
            return;
        }
        for pid in pids {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `ip netns del`, when the namespace exists. The kernel frees it (and the veth pair)
/// once no process is left in it.
fn delete_netns(netns: &str) {
    if !Path::new("/run/netns").join(netns).exists() {
        return;
    }
    let out = Command::new("/usr/sbin/ip")
        .args(["netns", "del", netns])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "ssh harness: ip netns del {netns}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("ssh harness: ip netns del {netns}: {e}"),
    }
}

/// Once per process, under [`HarnessLock`]: remove the namespaces and harness
/// directories of test processes that died without dropping their hosts (their names
/// carry the pid). Ones carrying this process's pid are a dead namesake's: this process
/// has made none yet.
fn remove_leftovers() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let stale = |name: &str| -> bool {
            let Some(rest) = name.strip_prefix("hs") else {
                return false;
            };
            let Some((pid, n)) = rest.split_once('-') else {
                return false;
            };
            let (Ok(pid), Ok(_)) = (pid.parse::<u32>(), n.parse::<u32>()) else {
                return false;
            };
            pid == std::process::id() || !crate::process_running(pid as i32)
        };
        let list = Command::new("/usr/sbin/ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for netns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if stale(netns) {
                eprintln!("ssh harness: removing namespace {netns} left by a dead test process");
                kill_netns_processes(netns);
                delete_netns(netns);
            }
        }
        if let Ok(entries) = fs::read_dir(harness_dir()) {
            for e in entries.flatten() {
                if stale(&e.file_name().to_string_lossy()) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    });
}

/// Make a passphrase-less key pair at `path` (and `path.pub`), replacing any there.
fn keygen(path: &Path, kind_args: &[&str], comment: &str) {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    let out = Command::new("/usr/bin/ssh-keygen")
        .args(["-q", "-N", ""])
        .args(kind_args)
        .args(["-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen {kind_args:?} -f {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

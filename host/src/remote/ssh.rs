//! One SSH connection to a remote host (russh): connect within `--ssh-timeout`, verify
//! the host key ([`super::trust`]), authenticate, run commands, and carry the reverse
//! forward (`ssh -R`) from the remote's loopback to the initiator's etcd.
//!
//! **Authentication** tries, in order: the SSH agent's keys (`SSH_AUTH_SOCK`); the
//! `--ssh-identity` files, or else `~/.ssh/id_ed25519`, `id_ecdsa` and `id_rsa`; the
//! password of the `remote:` URL (warned about: it sits in a file in clear); and, only
//! with `--allow-interactive` and a terminal, a password typed at a prompt. A failure
//! lists what was tried and what the server accepts. Encrypted key files are skipped
//! with a note (add them to the agent).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg, MethodKind};
use tokio::io::AsyncWriteExt;

use super::target::SshUrl;
use super::trust::{HostKeyError, KnownHosts};

/// How to reach and log in to remotes (the `--ssh-*` flags).
#[derive(Debug, Clone)]
pub struct SshOptions {
    pub known_hosts: KnownHosts,
    /// `--ssh-identity` (when empty: the standard files under `~/.ssh`).
    pub identities: Vec<PathBuf>,
    pub allow_interactive: bool,
    /// Connect, key exchange and authentication together.
    pub timeout: Duration,
    /// Ask for zlib compression (`--ssh-compression`): pays on slow links, costs CPU on
    /// fast ones.
    pub compression: bool,
}

/// The handler russh calls back: host key check and forwarded connections.
struct Client {
    host: String,
    port: u16,
    known_hosts: KnownHosts,
    /// Why the host key was refused (russh only learns "no").
    refused: Arc<Mutex<Option<Box<HostKeyError>>>>,
    /// Where forwarded connections go (`host:port` of the initiator's etcd).
    forward_to: Arc<Mutex<Option<String>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match self
            .known_hosts
            .check(&self.host, self.port, &key.public_key())
        {
            Ok(()) => Ok(true),
            Err(e) => {
                *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
                Ok(false)
            }
        }
    }

    /// A host below this one logs in with this side's agent (`ssh -A`): its requests
    /// come back on this channel and go to the local agent, whose keys never leave it.
    async fn server_channel_open_agent_forward(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let Some(socket) = std::env::var_os("SSH_AUTH_SOCK").filter(|s| !s.is_empty()) else {
            return Ok(()); // refused: there is no agent here
        };
        reply.accept().await;
        tokio::spawn(async move {
            if let Ok(mut agent) = tokio::net::UnixStream::connect(&socket).await {
                let mut stream = channel.into_stream();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut agent).await;
            }
        });
        Ok(())
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        _connected_address: &str,
        _connected_port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: russh::client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let target = self
            .forward_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(target) = target else {
            // Nobody asked for a forward: dropping the reply refuses the channel.
            return Ok(());
        };
        reply.accept().await;
        let host = self.host.clone();
        tokio::spawn(async move {
            match tokio::net::TcpStream::connect(&target).await {
                Ok(mut etcd) => {
                    let _ = etcd.set_nodelay(true);
                    let mut stream = channel.into_stream();
                    let _ = tokio::io::copy_bidirectional(&mut stream, &mut etcd).await;
                }
                Err(e) => tracing::warn!("{host}: the tunnel cannot reach etcd at {target}: {e}"),
            }
        });
        Ok(())
    }
}

/// An authenticated connection.
pub struct Connection {
    handle: Handle<Client>,
    forward_to: Arc<Mutex<Option<String>>>,
    /// `user@host:port`, for messages.
    pub label: String,
    /// The user logged in as.
    pub user: String,
}

/// What a finished command printed and how it ended.
#[derive(Debug)]
pub struct Output {
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).trim().to_string()
    }
}

/// Connects to `url`, checks its host key and logs in, all within `opts.timeout`.
pub async fn connect(url: &SshUrl, opts: &SshOptions) -> Result<Connection, String> {
    let label = format!("{}@{}", url.user, url.socket());
    match tokio::time::timeout(opts.timeout, connect_inner(url, opts, &label)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "{label}: no SSH session within {:?} (--ssh-timeout)",
            opts.timeout
        )),
    }
}

async fn connect_inner(url: &SshUrl, opts: &SshOptions, label: &str) -> Result<Connection, String> {
    let mut config = client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    };
    if opts.compression {
        config.preferred.compression = std::borrow::Cow::Borrowed(&[
            russh::compression::ZLIB_LEGACY,
            russh::compression::ZLIB,
            russh::compression::NONE,
        ]);
    }
    // Ask for a key type the known_hosts files hold first, as OpenSSH does.
    let known = opts.known_hosts.recorded_algorithms(&url.host, url.port);
    if !known.is_empty() {
        let mut order: Vec<_> = known.clone();
        order.extend(
            config
                .preferred
                .key
                .iter()
                .filter(|a| !known.contains(a))
                .cloned(),
        );
        config.preferred.key = order.into();
    }
    let refused = Arc::new(Mutex::new(None));
    let forward_to = Arc::new(Mutex::new(None));
    let handler = Client {
        host: url.host.clone(),
        port: url.port,
        known_hosts: opts.known_hosts.clone(),
        refused: refused.clone(),
        forward_to: forward_to.clone(),
    };
    let mut handle = match client::connect(Arc::new(config), url.socket(), handler).await {
        Ok(h) => h,
        Err(e) => {
            if let Some(why) = refused
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                return Err(format!("{label}: {why}"));
            }
            return Err(format!("{label}: cannot connect: {e}"));
        }
    };
    authenticate(&mut handle, url, opts, label).await?;
    Ok(Connection {
        handle,
        forward_to,
        label: label.to_string(),
        user: url.user.clone(),
    })
}

/// Tries the agent, the key files, the URL's password and a prompt, in that order.
async fn authenticate(
    handle: &mut Handle<Client>,
    url: &SshUrl,
    opts: &SshOptions,
    label: &str,
) -> Result<(), String> {
    let user = url.user.as_str();
    let mut attempts = Attempts::default();
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    // The agent.
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) {
        match russh::keys::agent::client::AgentClient::connect_env().await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for id in identities {
                    let key = id.public_key().into_owned();
                    let what = format!(
                        "agent key {}",
                        key.fingerprint(russh::keys::HashAlg::Sha256)
                    );
                    let result = handle
                        .authenticate_publickey_with(user, key, rsa_hash, &mut agent)
                        .await
                        .map_err(|e| e.to_string());
                    if attempts.note(result, what) {
                        return Ok(());
                    }
                }
            }
            Err(e) => attempts.tried.push(format!("the SSH agent ({e})")),
        }
    }
    // Key files.
    let files = if opts.identities.is_empty() {
        let home = std::env::home_dir().unwrap_or_else(|| PathBuf::from("/root"));
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| home.join(".ssh").join(n))
            .filter(|p| p.exists())
            .collect()
    } else {
        opts.identities.clone()
    };
    for file in files {
        let what = file.display().to_string();
        let key = match russh::keys::load_secret_key(&file, None) {
            Ok(key) => key,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                attempts
                    .tried
                    .push(format!("{what} (encrypted: add it to ssh-agent)"));
                continue;
            }
            Err(e) => {
                attempts.tried.push(format!("{what} (unreadable: {e})"));
                continue;
            }
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), rsa_hash);
        let result = handle
            .authenticate_publickey(user, key)
            .await
            .map_err(|e| e.to_string());
        if attempts.note(result, what) {
            return Ok(());
        }
    }
    // The URL's password.
    if let Some(password) = &url.password {
        tracing::warn!(
            "{label}: logging in with the password written in the graph's `remote:` URL; \
             prefer a key (anyone who reads the graph file can log in)"
        );
        let result = handle
            .authenticate_password(user, password.clone())
            .await
            .map_err(|e| e.to_string());
        if attempts.note(result, "the URL's password".into()) {
            return Ok(());
        }
    }
    // A prompt.
    if opts.allow_interactive {
        match prompt_password(&format!("{label} password: ")) {
            Ok(password) => {
                let result = handle
                    .authenticate_password(user, password)
                    .await
                    .map_err(|e| e.to_string());
                if attempts.note(result, "a typed password".into()) {
                    return Ok(());
                }
            }
            Err(e) => attempts.tried.push(format!("a password prompt ({e})")),
        }
    }
    let Attempts { tried, accepts } = attempts;
    let accepts = match accepts {
        Some(methods) if !methods.is_empty() => methods
            .iter()
            .map(|m| <&str>::from(m).to_string())
            .collect::<Vec<_>>()
            .join(", "),
        _ => "unknown".into(),
    };
    let tried = if tried.is_empty() {
        "nothing: no agent, no key in ~/.ssh, no password (give --ssh-identity)".into()
    } else {
        tried.join("; ")
    };
    Err(format!(
        "{label}: permission denied for user `{user}`; tried {tried}; the server accepts: \
         {accepts}"
    ))
}

/// What authentication tried, and the methods the server said it accepts.
#[derive(Default)]
struct Attempts {
    tried: Vec<String>,
    accepts: Option<Vec<MethodKind>>,
}

impl Attempts {
    /// Records one attempt; true when it logged in.
    fn note(&mut self, result: Result<russh::client::AuthResult, String>, what: String) -> bool {
        match result {
            Ok(russh::client::AuthResult::Success) => true,
            Ok(russh::client::AuthResult::Failure {
                remaining_methods, ..
            }) => {
                self.accepts = Some(remaining_methods.iter().copied().collect());
                self.tried.push(what);
                false
            }
            Err(e) => {
                self.tried.push(format!("{what} ({e})"));
                false
            }
        }
    }
}

/// Reads a password from the terminal without echo (`--allow-interactive`).
fn prompt_password(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    use std::io::{BufRead, Write};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| format!("no terminal: {e}"))?;
    let saved = tcgetattr(&tty).map_err(|e| format!("not a terminal: {e}"))?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&tty, OptionalActions::Now, &quiet).map_err(|e| e.to_string())?;
    let mut line = String::new();
    let read = (|| {
        (&tty).write_all(prompt.as_bytes())?;
        std::io::BufReader::new(&tty).read_line(&mut line)?;
        (&tty).write_all(b"\n")
    })();
    let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
    read.map_err(|e| e.to_string())?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

impl Connection {
    /// Runs `command` (through the login shell) and collects its output.
    pub async fn output(&self, command: &str) -> Result<Output, String> {
        let started = std::time::Instant::now();
        let mut channel = self.session().await?;
        channel
            .exec(true, command)
            .await
            .map_err(|e| format!("{}: cannot run `{command}`: {e}", self.label))?;
        let mut out = Output {
            status: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        // The exit status may come after EOF: read until the channel closes.
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                _ => {}
            }
        }
        tracing::debug!("{}: `{command}` took {:.1?}", self.label, started.elapsed());
        Ok(out)
    }

    /// Runs `command` and fails unless it exits 0 (with its stderr in the error).
    pub async fn check(&self, command: &str) -> Result<Output, String> {
        let out = self.output(command).await?;
        if out.status == Some(0) {
            return Ok(out);
        }
        Err(format!(
            "{}: `{command}` failed ({}): {}",
            self.label,
            out.status
                .map_or("no exit status".to_string(), |s| format!("exit {s}")),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }

    /// A new session channel.
    pub async fn session(&self) -> Result<Channel<Msg>, String> {
        self.handle
            .channel_open_session()
            .await
            .map_err(|e| format!("{}: cannot open a session: {e}", self.label))
    }

    /// Forwards connections to the remote's `127.0.0.1:PORT` (the port returned) to
    /// `target` on this side (`ssh -R 0:target`).
    pub async fn reverse_forward(&self, target: String) -> Result<u16, String> {
        *self
            .forward_to
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(target);
        let port = self
            .handle
            .tcpip_forward("127.0.0.1", 0)
            .await
            .map_err(|e| {
                format!(
                    "{}: the server refused the reverse tunnel ({e}); sshd needs \
                     `AllowTcpForwarding yes` (or `remote`)",
                    self.label
                )
            })?;
        u16::try_from(port).map_err(|_| format!("{}: the server bound port {port}", self.label))
    }

    /// An SFTP session on a new channel.
    pub async fn sftp(&self) -> Result<russh_sftp::client::SftpSession, String> {
        let channel = self.session().await?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| format!("{}: no SFTP subsystem: {e}", self.label))?;
        russh_sftp::client::SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| format!("{}: SFTP: {e}", self.label))
    }

    /// Closes the connection (and with it every channel and forward).
    pub async fn close(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// Writes `data` to a channel's stdin and closes it (a command's input).
pub async fn send_stdin(channel: &Channel<Msg>, data: &[u8]) -> Result<(), String> {
    let mut w = channel.make_writer();
    w.write_all(data).await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())?;
    channel.eof().await.map_err(|e| e.to_string())
}

/// Quotes `s` for the remote's POSIX shell.
pub fn quote(s: &str) -> String {
    shlex::try_quote(s).map_or_else(|_| "''".into(), |q| q.into_owned())
}

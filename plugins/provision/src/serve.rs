//! The server loop: the thin driver between the host's sockets (`net`) and the sans-IO
//! cores. It runs in the resource's long-running watch (the `serve` export) and does,
//! per turn: wait for events (at most until the next TFTP retransmission or HTTP idle
//! deadline), feed each to its core, carry out what the core says (send, open a
//! fresh transfer socket, stream a file, close), then fire due timers.
//!
//! Files are read through the host `fs` interface ([`HostTree`]) in 64 KiB chunks with
//! `read-at`, so a 40 MiB image costs one host call per chunk, not per TFTP block, and
//! never sits in memory whole. The host does not follow symlinks below `root`.
//!
//! A params change arrives as a `reconfigured` event: new transfers and requests use
//! the new settings and files; transfers in progress keep theirs; a changed address
//! closes the old listening socket and binds the new one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use homeostat_sdk::{Error, Result, fs, log, net, state};

use crate::files::{FileError, FileSource, Layered, RelPath};
use crate::http::{self, Body, DoneSet, Parsed, Site};
use crate::params::{Address, Params, Spec};
use crate::tftp::{self, Action, End, Reply};

/// What both servers read: the inline files, then the tree under `root`.
pub type Source = Layered<HostTree>;

/// Bytes read from the host per call.
const CHUNK: usize = 64 * 1024;
/// An HTTP connection that has not sent a complete request head by then is closed.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// An HTTP connection whose client stopped reading for this long is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// HTTP connections at once; more are closed as they arrive.
const MAX_CONNECTIONS: usize = 256;
/// Longest wait when nothing is due.
const IDLE_WAIT: Duration = Duration::from_secs(5);

/// The files under `root`, read through the host. Each clone has its own chunk cache
/// (a TFTP transfer reads its file front to back, one block at a time).
#[derive(Debug)]
pub struct HostTree {
    root: String,
    cache: RefCell<Option<(RelPath, u64, Vec<u8>)>>,
}

impl HostTree {
    pub fn new(root: &str) -> Self {
        HostTree {
            root: root.to_string(),
            cache: RefCell::new(None),
        }
    }
}

impl Clone for HostTree {
    fn clone(&self) -> Self {
        HostTree::new(&self.root)
    }
}

fn file_error(e: fs::Error) -> FileError {
    match e.code {
        fs::ErrorCode::NotFound => FileError::NotFound,
        fs::ErrorCode::WrongType => FileError::NotAFile,
        fs::ErrorCode::NotAllowed | fs::ErrorCode::PermissionDenied => FileError::Denied,
        _ => FileError::Io(e.message),
    }
}

impl FileSource for HostTree {
    fn size(&self, path: &RelPath) -> std::result::Result<u64, FileError> {
        match fs::stat(&path.under(&self.root)).map_err(file_error)? {
            None => Err(FileError::NotFound),
            Some(s) if s.file_type == fs::FileType::File => Ok(s.size),
            Some(_) => Err(FileError::NotAFile),
        }
    }

    fn read_at(
        &self,
        path: &RelPath,
        offset: u64,
        buf: &mut [u8],
    ) -> std::result::Result<usize, FileError> {
        let mut cache = self.cache.borrow_mut();
        let hit = matches!(&*cache, Some((p, at, data))
            if p == path && *at <= offset && offset < *at + data.len() as u64);
        if !hit {
            let want = buf.len().max(CHUNK) as u32;
            let data = fs::read_at(&path.under(&self.root), offset, want).map_err(file_error)?;
            if data.is_empty() {
                return Ok(0);
            }
            *cache = Some((path.clone(), offset, data));
        }
        let (_, at, data) = cache.as_ref().expect("filled above");
        let start = (offset - at) as usize;
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }
}

/// The IP to bind for `a`, as an address's host part: `0.0.0.0` for `:PORT`, an IPv6
/// address in brackets.
fn bind_ip(a: &Address) -> String {
    match a.ip {
        None => "0.0.0.0".to_string(),
        Some(std::net::IpAddr::V4(ip)) => ip.to_string(),
        Some(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
    }
}

/// `0.0.0.0:PORT` for `:PORT`, else the address as given.
fn bind_address(a: &Address) -> String {
    format!("{}:{}", bind_ip(a), a.port)
}

/// The addresses a resource with these params binds (its footprint).
pub fn addresses(spec: &Spec) -> (String, String) {
    (
        bind_address(&spec.tftp_address),
        bind_address(&spec.http_address),
    )
}

fn source(spec: &Spec) -> Source {
    Layered::new(spec.inline.clone(), HostTree::new(&spec.root))
}

/// What one HTTP connection is doing.
enum Conn {
    /// Reading the request head.
    Head { buf: Vec<u8>, since: Instant },
    /// Sending a response: `out` first, then the file from `offset` to `end`.
    Send {
        out: Vec<u8>,
        file: Option<(RelPath, u64, u64)>,
        source: Source,
        since: Instant,
    },
}

/// The running servers.
struct Loop {
    spec: Spec,
    started: Instant,
    tftp_listen: net::Socket,
    http_listen: net::Socket,
    tftp: tftp::Server<Source>,
    /// Transfer socket → its peer.
    transfers: HashMap<net::Socket, SocketAddr>,
    /// Peer → its transfer socket.
    sockets: HashMap<SocketAddr, net::Socket>,
    site: Site<Source>,
    conns: HashMap<net::Socket, Conn>,
    limits: http::Limits,
}

fn bind_error(what: &str, address: &str, e: net::Error) -> Error {
    let hint = match e.code {
        net::ErrorCode::AddressInUse => " (another program or resource listens there)",
        net::ErrorCode::NotAllowed if address.ends_with(":69") => {
            " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        }
        _ => "",
    };
    Error::param(what, format!("{}{hint}", e.message))
}

/// Bind a new listening socket and close `old`. When the new address overlaps the old
/// one (same port, `0.0.0.0` → one IP), `old` has to go first.
fn rebind(
    old: net::Socket,
    bind: impl Fn() -> std::result::Result<net::Socket, net::Error>,
) -> std::result::Result<net::Socket, net::Error> {
    match bind() {
        Ok(s) => {
            net::close(old);
            Ok(s)
        }
        Err(e) if e.code == net::ErrorCode::AddressInUse => {
            net::close(old);
            bind()
        }
        Err(e) => Err(e),
    }
}

/// Run both servers until the resource leaves the graph (see the module docs).
pub fn run(p: &Params) -> Result<()> {
    let spec = Spec::from_params(p)?;
    let (tftp_at, http_at) = addresses(&spec);
    let tftp_listen =
        net::bind_udp(&tftp_at).map_err(|e| bind_error("tftp_address", &tftp_at, e))?;
    let http_listen =
        net::listen_tcp(&http_at).map_err(|e| bind_error("http_address", &http_at, e))?;
    let done: DoneSet = state::load().unwrap_or_default();
    log::info(&format!(
        "serving {} over TFTP on {tftp_at} and HTTP on {http_at} ({} hosts done)",
        spec.root,
        done.len()
    ));
    let mut l = Loop {
        tftp: tftp::Server::new(spec.tftp_config(), source(&spec)),
        site: Site::new(source(&spec), spec.site_config(), done),
        spec,
        started: Instant::now(),
        tftp_listen,
        http_listen,
        transfers: HashMap::new(),
        sockets: HashMap::new(),
        conns: HashMap::new(),
        limits: http::Limits::default(),
    };
    // Record the done set again: a graph swap may have cleared the host's copy.
    state::save(l.site.done());
    loop {
        let wait = l.next_wait();
        for event in net::wait(wait.as_millis().min(u128::from(u32::MAX)) as u32) {
            l.on_event(event)?;
        }
        l.on_timers();
    }
}

impl Loop {
    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Until the next TFTP deadline or HTTP idle limit, at most [`IDLE_WAIT`].
    fn next_wait(&self) -> Duration {
        let now = self.now();
        let mut wait = IDLE_WAIT;
        if let Some(d) = self.tftp.next_deadline() {
            wait = wait.min(d.saturating_sub(now));
        }
        if !self.conns.is_empty() {
            wait = wait.min(Duration::from_secs(1));
        }
        wait
    }

    fn on_event(&mut self, event: net::Event) -> Result<()> {
        match event {
            net::Event::Datagram(d) => {
                let Ok(peer) = d.peer.parse::<SocketAddr>() else {
                    return Ok(());
                };
                if d.socket == self.tftp_listen {
                    self.on_request(peer, &d.data);
                } else {
                    self.on_transfer_packet(d.socket, peer, &d.data);
                }
            }
            net::Event::Accepted(a) => {
                if self.conns.len() >= MAX_CONNECTIONS {
                    log::warn(&format!(
                        "http: refusing {} (already {MAX_CONNECTIONS} connections)",
                        a.peer
                    ));
                    net::close(a.connection);
                } else {
                    self.conns.insert(
                        a.connection,
                        Conn::Head {
                            buf: Vec::new(),
                            since: Instant::now(),
                        },
                    );
                }
            }
            net::Event::Received(r) => self.on_received(r.connection, &r.data),
            net::Event::Writable(s) => self.pump(s),
            net::Event::Failed(f) => {
                if f.socket == self.tftp_listen || f.socket == self.http_listen {
                    return Err(Error::new(format!(
                        "a listening socket failed: {}",
                        f.message
                    )));
                }
                self.conns.remove(&f.socket);
                if let Some(peer) = self.transfers.remove(&f.socket) {
                    self.sockets.remove(&peer);
                    self.tftp.abort(&peer);
                    log::warn(&format!("tftp: transfer to {peer} failed: {}", f.message));
                }
            }
            net::Event::Reconfigured(json) => self.reconfigure(&json)?,
        }
        Ok(())
    }

    // ---- TFTP ----

    fn on_request(&mut self, peer: SocketAddr, data: &[u8]) {
        let now = self.now();
        match self.tftp.on_request(peer, data, now) {
            Reply::Start(first) => match self.fresh_socket() {
                Ok(s) => {
                    self.transfers.insert(s, peer);
                    self.sockets.insert(peer, s);
                    if let Err(e) = net::send_to(s, &peer.to_string(), &first) {
                        log::warn(&format!("tftp: cannot answer {peer}: {}", e.message));
                    }
                }
                Err(e) => {
                    log::warn(&format!("tftp: no socket for {peer}: {}", e.message));
                    self.tftp.abort(&peer);
                }
            },
            Reply::Refuse(error) => {
                // From a fresh port, as RFC 1350 answers requests.
                if let Ok(s) = self.fresh_socket() {
                    let _ = net::send_to(s, &peer.to_string(), &error);
                    net::close(s);
                }
            }
            Reply::Ignore => {}
        }
    }

    /// A UDP socket on an ephemeral port of the TFTP address's IP.
    fn fresh_socket(&self) -> std::result::Result<net::Socket, net::Error> {
        net::bind_udp(&format!("{}:0", bind_ip(&self.spec.tftp_address)))
    }

    fn on_transfer_packet(&mut self, s: net::Socket, from: SocketAddr, data: &[u8]) {
        let Some(&peer) = self.transfers.get(&s) else {
            return;
        };
        if from != peer {
            let _ = net::send_to(s, &from.to_string(), &tftp::unknown_tid());
            return;
        }
        let now = self.now();
        match self.tftp.on_packet(peer, data, now) {
            Some(action) => self.carry_out(peer, action),
            None => self.end_transfer(peer),
        }
    }

    fn carry_out(&mut self, peer: SocketAddr, action: Action) {
        let Some(&s) = self.sockets.get(&peer) else {
            return;
        };
        match action {
            Action::Send(bytes) => {
                if let Err(e) = net::send_to(s, &peer.to_string(), &bytes) {
                    log::debug(&format!("tftp: send to {peer} failed: {}", e.message));
                }
            }
            Action::Wait => {}
            Action::Close { send, end } => {
                if let Some(bytes) = send {
                    let _ = net::send_to(s, &peer.to_string(), &bytes);
                }
                match end {
                    End::Complete { bytes } => {
                        log::info(&format!("tftp: sent {bytes} bytes to {peer}"))
                    }
                    End::PeerError { code, message } => log::info(&format!(
                        "tftp: {peer} ended its transfer with error {}: {message}",
                        code.0
                    )),
                    End::TimedOut => log::warn(&format!("tftp: {peer} stopped answering")),
                    End::ReadFailed(e) => log::warn(&format!("tftp: transfer to {peer}: {e}")),
                }
                self.end_transfer(peer);
            }
        }
    }

    fn end_transfer(&mut self, peer: SocketAddr) {
        if let Some(s) = self.sockets.remove(&peer) {
            self.transfers.remove(&s);
            net::close(s);
        }
    }

    fn on_timers(&mut self) {
        let now = self.now();
        for (peer, action) in self.tftp.on_timeout(now) {
            self.carry_out(peer, action);
        }
        let stale: Vec<net::Socket> = self
            .conns
            .iter()
            .filter(|(_, c)| match c {
                Conn::Head { since, .. } => since.elapsed() > HEAD_TIMEOUT,
                Conn::Send { since, .. } => since.elapsed() > SEND_TIMEOUT,
            })
            .map(|(s, _)| *s)
            .collect();
        for s in stale {
            self.conns.remove(&s);
            net::close(s);
        }
    }

    // ---- HTTP ----

    fn on_received(&mut self, s: net::Socket, data: &[u8]) {
        let Some(Conn::Head { buf, .. }) = self.conns.get_mut(&s) else {
            // Body bytes after the head, or the end of a client's sending side while
            // its response is still going out: nothing to do.
            return;
        };
        if data.is_empty() {
            // The client gave up before finishing its request.
            self.conns.remove(&s);
            net::close(s);
            return;
        }
        buf.extend_from_slice(data);
        let response = match http::parse(buf, &self.limits) {
            Ok(Parsed::Partial) => return,
            Ok(Parsed::Complete { request, .. }) => {
                let (resp, event) = self.site.handle(&request);
                log::info(&format!(
                    "http: {} {} {}",
                    request.method, request.target, resp.status
                ));
                if let Some(http::Event::HostDone(host)) = event {
                    log::info(&format!("{host} reported done: its next boot is local"));
                    state::save(self.site.done());
                }
                resp
            }
            Err(e) => {
                log::info(&format!("http: bad request: {e}"));
                e.response()
            }
        };
        let mut out = response.head();
        let file = match response.body {
            Body::Empty => None,
            Body::Inline(bytes) => {
                out.extend_from_slice(&bytes);
                None
            }
            Body::File { path, len } => Some((path, 0, len)),
        };
        self.conns.insert(
            s,
            Conn::Send {
                out,
                file,
                source: self.site.source().clone(),
                since: Instant::now(),
            },
        );
        self.pump(s);
    }

    /// Write what the connection can take; close it once everything is out.
    fn pump(&mut self, s: net::Socket) {
        let Some(Conn::Send {
            out,
            file,
            source,
            since,
        }) = self.conns.get_mut(&s)
        else {
            return;
        };
        *since = Instant::now();
        loop {
            if out.is_empty() {
                let Some((path, offset, end)) = file.as_mut() else {
                    break;
                };
                if *offset >= *end {
                    *file = None;
                    break;
                }
                let want = (CHUNK as u64).min(*end - *offset) as usize;
                let mut chunk = vec![0u8; want];
                match crate::files::read_full(&*source, path, *offset, &mut chunk) {
                    Ok(n) if n > 0 => {
                        chunk.truncate(n);
                        *offset += n as u64;
                        *out = chunk;
                    }
                    // The file shrank or became unreadable: end the response early;
                    // the client sees fewer bytes than Content-Length.
                    _ => {
                        log::warn(&format!("http: {path} changed while being sent"));
                        *file = None;
                        break;
                    }
                }
            }
            match net::write(s, out) {
                Ok(n) if (n as usize) == out.len() => out.clear(),
                Ok(n) => {
                    out.drain(..n as usize);
                    return; // a `writable` event follows
                }
                Err(_) => break,
            }
        }
        self.conns.remove(&s);
        net::close(s);
    }

    // ---- params ----

    fn reconfigure(&mut self, json: &str) -> Result<()> {
        let p: Params = serde_json::from_str(json)
            .map_err(|e| Error::new(format!("new params do not parse: {e}")))?;
        let spec = Spec::from_params(&p)?;
        let (old_tftp, old_http) = addresses(&self.spec);
        let (tftp_at, http_at) = addresses(&spec);
        if tftp_at != old_tftp {
            self.tftp_listen = rebind(self.tftp_listen, || net::bind_udp(&tftp_at))
                .map_err(|e| bind_error("tftp_address", &tftp_at, e))?;
        }
        if http_at != old_http {
            self.http_listen = rebind(self.http_listen, || net::listen_tcp(&http_at))
                .map_err(|e| bind_error("http_address", &http_at, e))?;
        }
        self.tftp.set_config(spec.tftp_config());
        self.tftp.set_source(source(&spec));
        self.site.set_config(spec.site_config());
        self.site.set_source(source(&spec));
        log::info(&format!(
            "now serving {} over TFTP on {tftp_at} and HTTP on {http_at}; {} transfers in \
             progress continue",
            spec.root,
            self.tftp.active()
        ));
        self.spec = spec;
        state::save(self.site.done());
        Ok(())
    }
}

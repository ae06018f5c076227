//! Sockets as a resource's server holds them (the `net` host interface, available only to
//! a resource's `serve` call, the long-running watch: see `crate::plugin::serve`).
//!
//! **Allow-list.** A resource may bind only what its footprint's `sockets` grant
//! ([`check_bind`]): the exact address of a grant, or port 0 (an ephemeral port, e.g. a
//! TFTP transfer's fresh port) on a granted IP of the same protocol. Datagrams may go to
//! any peer (a server answers its clients); there is no outgoing connect.
//!
//! **The host waits.** Every socket has a small tokio task that waits on it and feeds one
//! bounded queue of [`Event`]s; the guest takes them with [`NetHost::wait`], so a serve
//! loop is a plain `loop { for e in wait(ms) { … } }` and never blocks a thread. The queue
//! holds at most [`QUEUE`] events: when the guest falls behind, readers stop reading and
//! the kernel's socket buffers (then the peers) absorb the pressure.
//!
//! **Writes never block the loop.** [`NetHost::write`] takes at most what fits in the
//! connection's [`SEND_BUFFER`] and returns how much it took; a writer task drains it and
//! reports [`Event::Writable`] once a connection that refused bytes has room again. So
//! one slow HTTP client cannot stall TFTP transfers served by the same loop.
//!
//! Dropping the [`NetHost`] (the serve instance ends or the resource leaves the graph)
//! aborts every task and closes every socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::sys::footprint::{Footprint, Protocol};

/// Events queued for the guest at most (see the module docs).
pub const QUEUE: usize = 1024;
/// Bytes a connection buffers for sending before `write` takes less than given.
pub const SEND_BUFFER: usize = 256 * 1024;
/// Sockets one serve instance may hold (listeners, UDP sockets and connections);
/// connections beyond it are accepted and closed at once.
pub const MAX_SOCKETS: usize = 4096;
/// Events returned by one `wait` at most.
const BATCH: usize = 256;
/// Bytes read from a connection at a time.
const READ_CHUNK: usize = 16 * 1024;

/// WIT `net.error-code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotAllowed,
    AddressInUse,
    Invalid,
    Other,
}

/// A failed `net` call: what to tell the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError {
    pub code: ErrorCode,
    pub message: String,
}

impl NetError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        NetError {
            code,
            message: message.into(),
        }
    }

    fn io(what: &str, at: &str, e: &std::io::Error) -> Self {
        let code = match e.kind() {
            std::io::ErrorKind::AddrInUse => ErrorCode::AddressInUse,
            std::io::ErrorKind::PermissionDenied => ErrorCode::NotAllowed,
            _ => ErrorCode::Other,
        };
        NetError::new(code, format!("cannot {what} {at}: {e}"))
    }
}

/// Parse `IP:PORT` or `[IPV6]:PORT`.
pub fn parse_address(s: &str) -> Result<SocketAddr, NetError> {
    s.parse().map_err(|_| {
        NetError::new(
            ErrorCode::Invalid,
            format!("`{s}` is not an address (write `IP:PORT` or `[IPV6]:PORT`)"),
        )
    })
}

/// Whether the footprint allows binding `address` with `protocol` (see the module docs).
pub fn check_bind(fp: &Footprint, protocol: Protocol, address: SocketAddr) -> Result<(), NetError> {
    let allowed = fp.sockets.iter().any(|g| {
        g.protocol == protocol
            && g.address.ip() == address.ip()
            && (g.address.port() == address.port() || address.port() == 0)
    });
    if allowed {
        return Ok(());
    }
    let declared: Vec<String> = fp.sockets.iter().map(ToString::to_string).collect();
    Err(NetError::new(
        ErrorCode::NotAllowed,
        format!(
            "binding {} {address} is outside this resource's footprint (it declared {})",
            protocol.name(),
            if declared.is_empty() {
                "no sockets".to_string()
            } else {
                declared.join(", ")
            }
        ),
    ))
}

/// What [`NetHost::wait`] reports (WIT `net.event`, without `reconfigured`, which the
/// serve loop adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Datagram {
        socket: u32,
        peer: SocketAddr,
        data: Vec<u8>,
    },
    Accepted {
        listener: u32,
        connection: u32,
        peer: SocketAddr,
    },
    /// Empty `data`: the peer closed its side.
    Received {
        connection: u32,
        data: Vec<u8>,
    },
    Writable(u32),
    Failed {
        socket: u32,
        message: String,
    },
}

/// What the socket tasks send; accepted streams become connections in `wait`.
enum Raw {
    Event(Event),
    Accept {
        listener: u32,
        stream: TcpStream,
        peer: SocketAddr,
    },
}

struct Conn {
    out: mpsc::UnboundedSender<Vec<u8>>,
    /// Bytes taken by `write` and not yet written to the socket.
    buffered: Arc<AtomicUsize>,
    /// A `write` took less than given: report `writable` once there is room.
    blocked: Arc<AtomicBool>,
    reader: AbortHandle,
    writer: AbortHandle,
}

enum Sock {
    Udp {
        socket: Arc<UdpSocket>,
        task: AbortHandle,
    },
    Listener {
        local: SocketAddr,
        task: AbortHandle,
    },
    Conn {
        local: SocketAddr,
        conn: Conn,
    },
}

/// The sockets of one serve instance (see the module docs).
pub struct NetHost {
    next: u32,
    sockets: HashMap<u32, Sock>,
    tx: mpsc::Sender<Raw>,
    rx: mpsc::Receiver<Raw>,
    /// Writer tasks of closed connections still sending what was queued.
    closing: Vec<AbortHandle>,
}

impl Default for NetHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NetHost {
    fn drop(&mut self) {
        for (_, s) in self.sockets.drain() {
            abort(&s);
        }
        self.closing.iter().for_each(AbortHandle::abort);
    }
}

fn abort(s: &Sock) {
    match s {
        Sock::Udp { task, .. } | Sock::Listener { task, .. } => task.abort(),
        Sock::Conn { conn, .. } => {
            conn.reader.abort();
            conn.writer.abort();
        }
    }
}

impl NetHost {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        NetHost {
            next: 1,
            sockets: HashMap::new(),
            tx,
            rx,
            closing: Vec::new(),
        }
    }

    /// Sockets open now.
    pub fn open(&self) -> usize {
        self.sockets.len()
    }

    fn insert(&mut self, s: Sock) -> u32 {
        let id = self.next;
        // Handles are never reused while the instance lives (u32 is plenty: a new
        // socket per TFTP transfer is ~4 billion transfers).
        self.next = self.next.wrapping_add(1).max(1);
        self.sockets.insert(id, s);
        id
    }

    fn room(&self) -> Result<(), NetError> {
        if self.sockets.len() >= MAX_SOCKETS {
            return Err(NetError::new(
                ErrorCode::Other,
                format!("too many sockets open (at most {MAX_SOCKETS})"),
            ));
        }
        Ok(())
    }

    /// Bind a UDP socket; the footprint was checked by the caller.
    pub async fn bind_udp(&mut self, address: SocketAddr) -> Result<u32, NetError> {
        self.room()?;
        let socket = Arc::new(
            UdpSocket::bind(address)
                .await
                .map_err(|e| NetError::io("bind udp", &address.to_string(), &e))?,
        );
        let id = self.next;
        let task = tokio::spawn(udp_reader(id, socket.clone(), self.tx.clone())).abort_handle();
        Ok(self.insert(Sock::Udp { socket, task }))
    }

    /// Listen on TCP; the footprint was checked by the caller.
    pub async fn listen_tcp(&mut self, address: SocketAddr) -> Result<u32, NetError> {
        self.room()?;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|e| NetError::io("listen on tcp", &address.to_string(), &e))?;
        let local = listener.local_addr().unwrap_or(address);
        let id = self.next;
        let task = tokio::spawn(acceptor(id, listener, self.tx.clone())).abort_handle();
        Ok(self.insert(Sock::Listener { local, task }))
    }

    pub fn local_address(&self, s: u32) -> Result<SocketAddr, NetError> {
        match self.sockets.get(&s) {
            Some(Sock::Udp { socket, .. }) => socket
                .local_addr()
                .map_err(|e| NetError::io("read the address of", "a socket", &e)),
            Some(Sock::Listener { local, .. } | Sock::Conn { local, .. }) => Ok(*local),
            None => Err(no_socket(s)),
        }
    }

    pub async fn send_to(&mut self, s: u32, peer: SocketAddr, data: &[u8]) -> Result<(), NetError> {
        let Some(Sock::Udp { socket, .. }) = self.sockets.get(&s) else {
            return Err(wrong_socket(s, "a UDP socket"));
        };
        socket
            .send_to(data, peer)
            .await
            .map(|_| ())
            .map_err(|e| NetError::io("send a datagram to", &peer.to_string(), &e))
    }

    /// Queue what fits of `data` on a connection; returns how many bytes were taken.
    pub fn write(&mut self, s: u32, data: &[u8]) -> Result<u32, NetError> {
        let Some(Sock::Conn { conn, .. }) = self.sockets.get(&s) else {
            return Err(wrong_socket(s, "a connection"));
        };
        let room = SEND_BUFFER.saturating_sub(conn.buffered.load(Ordering::Acquire));
        let take = data.len().min(room);
        if take < data.len() {
            conn.blocked.store(true, Ordering::Release);
        }
        if take > 0 {
            conn.buffered.fetch_add(take, Ordering::AcqRel);
            if conn.out.send(data[..take].to_vec()).is_err() {
                return Err(NetError::new(
                    ErrorCode::Other,
                    "the connection is closed".to_string(),
                ));
            }
        }
        Ok(take as u32)
    }

    /// Close a socket; a connection sends what it has queued first.
    pub fn close(&mut self, s: u32) {
        match self.sockets.remove(&s) {
            Some(Sock::Conn { conn, .. }) => {
                conn.reader.abort();
                // Dropping the sender ends the writer after the queued bytes.
                drop(conn.out);
                self.closing.retain(|h| !h.is_finished());
                self.closing.push(conn.writer);
            }
            Some(other) => abort(&other),
            None => {}
        }
    }

    /// Wait up to `timeout` for events; returns those queued (at most a batch).
    pub async fn wait(&mut self, timeout: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        let first = match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(raw)) => raw,
            // The queue's sender lives in `self`: it never closes while we hold it.
            Ok(None) | Err(_) => return out,
        };
        self.take(first, &mut out);
        while out.len() < BATCH {
            match self.rx.try_recv() {
                Ok(raw) => self.take(raw, &mut out),
                Err(_) => break,
            }
        }
        out
    }

    fn take(&mut self, raw: Raw, out: &mut Vec<Event>) {
        match raw {
            Raw::Event(e) => {
                // Events of sockets closed meanwhile are dropped.
                let socket = match &e {
                    Event::Datagram { socket, .. } | Event::Failed { socket, .. } => *socket,
                    Event::Accepted { listener, .. } => *listener,
                    Event::Received { connection, .. } => *connection,
                    Event::Writable(s) => *s,
                };
                if self.sockets.contains_key(&socket) {
                    if let Event::Failed { socket, .. } = &e
                        && let Some(s) = self.sockets.remove(socket)
                    {
                        abort(&s);
                    }
                    out.push(e);
                }
            }
            Raw::Accept {
                listener,
                stream,
                peer,
            } => {
                if !self.sockets.contains_key(&listener) || self.room().is_err() {
                    return; // dropping the stream closes it
                }
                let local = stream.local_addr().unwrap_or(peer);
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                let id = self.next;
                let buffered = Arc::new(AtomicUsize::new(0));
                let blocked = Arc::new(AtomicBool::new(false));
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                let reader = tokio::spawn(conn_reader(id, read, self.tx.clone())).abort_handle();
                let writer = tokio::spawn(conn_writer(
                    id,
                    write,
                    out_rx,
                    buffered.clone(),
                    blocked.clone(),
                    self.tx.clone(),
                ))
                .abort_handle();
                let connection = self.insert(Sock::Conn {
                    local,
                    conn: Conn {
                        out: out_tx,
                        buffered,
                        blocked,
                        reader,
                        writer,
                    },
                });
                out.push(Event::Accepted {
                    listener,
                    connection,
                    peer,
                });
            }
        }
    }
}

fn no_socket(s: u32) -> NetError {
    NetError::new(ErrorCode::Invalid, format!("there is no socket {s}"))
}

fn wrong_socket(s: u32, what: &str) -> NetError {
    NetError::new(
        ErrorCode::Invalid,
        format!("socket {s} does not exist or is not {what}"),
    )
}

/// Report that socket `id` failed (its task ends).
async fn failed(tx: &mpsc::Sender<Raw>, id: u32, message: String) {
    let _ = tx
        .send(Raw::Event(Event::Failed {
            socket: id,
            message,
        }))
        .await;
}

async fn udp_reader(id: u32, socket: Arc<UdpSocket>, tx: mpsc::Sender<Raw>) {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                let e = Event::Datagram {
                    socket: id,
                    peer,
                    data: buf[..n].to_vec(),
                };
                if tx.send(Raw::Event(e)).await.is_err() {
                    return;
                }
            }
            // An ICMP error for an earlier datagram (e.g. port unreachable) is reported
            // on the next receive on Linux; the socket itself is fine.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) => {}
            Err(e) => return failed(&tx, id, format!("receiving failed: {e}")).await,
        }
    }
}

async fn acceptor(id: u32, listener: TcpListener, tx: mpsc::Sender<Raw>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let raw = Raw::Accept {
                    listener: id,
                    stream,
                    peer,
                };
                if tx.send(raw).await.is_err() {
                    return;
                }
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(e) => {
                tracing::debug!("accept on listener {id} failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn conn_reader(id: u32, mut read: tokio::net::tcp::OwnedReadHalf, tx: mpsc::Sender<Raw>) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let e = match read.read(&mut buf).await {
            Ok(n) => Event::Received {
                connection: id,
                data: buf[..n].to_vec(),
            },
            Err(e) => Event::Failed {
                socket: id,
                message: format!("reading failed: {e}"),
            },
        };
        let end = !matches!(&e, Event::Received { data, .. } if !data.is_empty());
        if tx.send(Raw::Event(e)).await.is_err() || end {
            return;
        }
    }
}

async fn conn_writer(
    id: u32,
    mut write: tokio::net::tcp::OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    buffered: Arc<AtomicUsize>,
    blocked: Arc<AtomicBool>,
    tx: mpsc::Sender<Raw>,
) {
    while let Some(chunk) = queue.recv().await {
        if let Err(e) = write.write_all(&chunk).await {
            return failed(&tx, id, format!("sending failed: {e}")).await;
        }
        let left = buffered.fetch_sub(chunk.len(), Ordering::AcqRel) - chunk.len();
        if left <= SEND_BUFFER / 2 && blocked.swap(false, Ordering::AcqRel) {
            let _ = tx.send(Raw::Event(Event::Writable(id))).await;
        }
    }
    // Closed by the guest: everything queued was sent.
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::footprint::SocketGrant;

    fn grant(p: Protocol, a: &str) -> SocketGrant {
        SocketGrant {
            protocol: p,
            address: a.parse().unwrap(),
        }
    }

    fn fp(grants: &[SocketGrant]) -> Footprint {
        Footprint {
            sockets: grants.to_vec(),
            ..Footprint::default()
        }
    }

    #[test]
    fn binds_are_checked_against_the_grants() {
        let f = fp(&[
            grant(Protocol::Udp, "127.0.0.1:6969"),
            grant(Protocol::Tcp, "0.0.0.0:4280"),
        ]);
        let ok = |p, a: &str| check_bind(&f, p, a.parse().unwrap()).is_ok();
        assert!(ok(Protocol::Udp, "127.0.0.1:6969"));
        assert!(
            ok(Protocol::Udp, "127.0.0.1:0"),
            "ephemeral on a granted IP"
        );
        assert!(!ok(Protocol::Udp, "127.0.0.2:0"));
        assert!(!ok(Protocol::Udp, "127.0.0.1:6970"));
        assert!(
            !ok(Protocol::Tcp, "127.0.0.1:6969"),
            "protocols are separate"
        );
        assert!(ok(Protocol::Tcp, "0.0.0.0:4280"));
        assert!(!ok(Protocol::Tcp, "127.0.0.1:4280"), "exact IPs only");
        let e = check_bind(&fp(&[]), Protocol::Udp, "0.0.0.0:69".parse().unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotAllowed);
        assert!(e.message.contains("no sockets"), "{}", e.message);
    }

    #[test]
    fn overlap_needs_protocol_port_and_ip() {
        let a = grant(Protocol::Udp, "0.0.0.0:69");
        assert!(a.overlaps(&grant(Protocol::Udp, "127.0.0.1:69")));
        assert!(!a.overlaps(&grant(Protocol::Tcp, "0.0.0.0:69")));
        assert!(!a.overlaps(&grant(Protocol::Udp, "0.0.0.0:70")));
        let b = grant(Protocol::Udp, "127.0.0.1:69");
        assert!(!b.overlaps(&grant(Protocol::Udp, "127.0.0.2:69")));
    }

    #[tokio::test]
    async fn udp_round_trip_through_wait() {
        let mut net = NetHost::new();
        let s = net.bind_udp("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = net.local_address(s).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        client.send_to(b"ping", addr).await.unwrap();
        let events = net.wait(Duration::from_secs(5)).await;
        let Some(Event::Datagram { socket, peer, data }) = events.first().cloned() else {
            panic!("no datagram: {events:?}");
        };
        assert_eq!((socket, data.as_slice()), (s, &b"ping"[..]));
        net.send_to(s, peer, b"pong").await.unwrap();
        let mut buf = [0u8; 8];
        let (n, from) = client.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], addr));
        assert!(net.wait(Duration::from_millis(10)).await.is_empty());
    }

    #[tokio::test]
    async fn tcp_accept_read_write_and_backpressure() {
        let mut net = NetHost::new();
        let l = net
            .listen_tcp("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = net.local_address(l).unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let mut conn = None;
        let mut got = Vec::new();
        while got.is_empty() {
            for e in net.wait(Duration::from_secs(5)).await {
                match e {
                    Event::Accepted { connection, .. } => conn = Some(connection),
                    Event::Received { data, .. } => got.extend(data),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        let c = conn.expect("accepted");
        assert_eq!(got, b"GET / HTTP/1.0\r\n\r\n");
        // More than the buffer: the first write takes only SEND_BUFFER bytes.
        let big = vec![7u8; SEND_BUFFER + 1000];
        let took = net.write(c, &big).unwrap() as usize;
        assert_eq!(took, SEND_BUFFER);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all.len()
        });
        let mut writable = false;
        while !writable {
            writable = net
                .wait(Duration::from_secs(5))
                .await
                .contains(&Event::Writable(c));
        }
        assert_eq!(net.write(c, &big[took..]).unwrap(), 1000);
        net.close(c);
        assert_eq!(reader.await.unwrap(), SEND_BUFFER + 1000);
        assert!(net.write(c, b"x").is_err());
    }
}

//! The TFTP server: requests on the well-known port, and the set of active transfers.
//!
//! [`Server`] owns every [`Transfer`] in progress, keyed by the peer's address (its
//! TID: a client uses a fresh port per request). The loop calls
//! [`Server::on_request`] for each datagram on the listening socket,
//! [`Server::on_packet`] for each datagram on a transfer's socket, and
//! [`Server::on_timeout`] when [`Server::next_deadline`] has passed.
//!
//! On the listening socket: an RRQ starts a transfer (or is refused with an ERROR); a
//! WRQ is refused with error 2 (access violation: the server is read-only); a
//! malformed RRQ/WRQ gets error 4 (illegal operation) naming what is wrong; anything
//! else (DATA, ACK, ERROR, OACK, noise) is dropped without a reply, so the server does
//! not answer garbage with more traffic. A repeated RRQ from a peer whose transfer is
//! running is dropped too: the transfer's own timer retransmits its first packet.
//! Beyond `max_transfers` transfers, RRQs are refused with error 0 "too many
//! transfers".
//!
//! [`Server::set_source`] and [`Server::set_config`] apply to transfers started
//! afterwards; running transfers keep the source and settings they started with, so a
//! change of params is picked up without dropping downloads in progress.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::packet::{self, ErrorCode, Packet};
use super::transfer::{Action, Config, Transfer};
use crate::files::FileSource;

/// What to do with a datagram that arrived on the listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A transfer started: open a fresh socket for this peer and send this first
    /// packet (OACK or DATA 1) from it. Its later datagrams go to
    /// [`Server::on_packet`].
    Start(Vec<u8>),
    /// Send this ERROR to the peer (from a fresh port, as RFC 1350 replies do) and
    /// forget it.
    Refuse(Vec<u8>),
    /// Send nothing.
    Ignore,
}

/// The TFTP server state (see the module docs).
#[derive(Debug)]
pub struct Server<S> {
    config: Config,
    source: S,
    transfers: HashMap<SocketAddr, Transfer<S>>,
}

impl<S: FileSource + Clone> Server<S> {
    pub fn new(config: Config, source: S) -> Self {
        Server {
            config,
            source,
            transfers: HashMap::new(),
        }
    }

    /// Serve new transfers from `source`; running ones keep theirs.
    pub fn set_source(&mut self, source: S) {
        self.source = source;
    }

    /// New settings for transfers started from now on (`max_transfers` counts the
    /// running ones too).
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Transfers in progress.
    pub fn active(&self) -> usize {
        self.transfers.len()
    }

    /// The transfer with `peer`, if one is running.
    pub fn transfer(&self, peer: &SocketAddr) -> Option<&Transfer<S>> {
        self.transfers.get(peer)
    }

    /// A datagram from `peer` arrived on the listening socket.
    pub fn on_request(&mut self, peer: SocketAddr, bytes: &[u8], now: Duration) -> Reply {
        let req = match Packet::parse(bytes) {
            Ok(Packet::Rrq(req)) => req,
            Ok(Packet::Wrq(_)) => {
                return Reply::Refuse(packet::error(
                    ErrorCode::ACCESS_VIOLATION,
                    "this server is read-only: write requests are refused",
                ));
            }
            Err(e) if packet::is_request(bytes) => {
                return Reply::Refuse(packet::error(
                    ErrorCode::ILLEGAL_OPERATION,
                    &format!("malformed request: {e}"),
                ));
            }
            Ok(_) | Err(_) => return Reply::Ignore,
        };
        if self.transfers.contains_key(&peer) {
            return Reply::Ignore;
        }
        if self.transfers.len() >= self.config.max_transfers {
            return Reply::Refuse(packet::error(
                ErrorCode::NOT_DEFINED,
                "too many transfers; try again later",
            ));
        }
        match Transfer::new(&req, self.source.clone(), &self.config, now) {
            Ok((t, first)) => {
                self.transfers.insert(peer, t);
                Reply::Start(first)
            }
            Err(refusal) => Reply::Refuse(refusal.packet()),
        }
    }

    /// A datagram from `peer` arrived on its transfer's socket. `None` when no
    /// transfer with `peer` is running (the loop may answer [`unknown_tid`]).
    /// A [`Action::Close`] removes the transfer.
    pub fn on_packet(&mut self, peer: SocketAddr, bytes: &[u8], now: Duration) -> Option<Action> {
        let t = self.transfers.get_mut(&peer)?;
        let action = t.on_packet(bytes, now);
        if matches!(action, Action::Close { .. }) {
            self.transfers.remove(&peer);
        }
        Some(action)
    }

    /// The earliest deadline of all transfers: call [`Server::on_timeout`] then.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.transfers.values().map(Transfer::deadline).min()
    }

    /// Retransmit or give up for every transfer whose deadline has passed; returns
    /// what to do per peer (closed transfers are removed).
    pub fn on_timeout(&mut self, now: Duration) -> Vec<(SocketAddr, Action)> {
        let mut out = Vec::new();
        for (peer, t) in self.transfers.iter_mut() {
            if t.deadline() <= now {
                out.push((*peer, t.on_timeout(now)));
            }
        }
        for (peer, a) in &out {
            if matches!(a, Action::Close { .. }) {
                self.transfers.remove(peer);
            }
        }
        out
    }

    /// Drop the transfer with `peer` (e.g. its socket failed).
    pub fn abort(&mut self, peer: &SocketAddr) -> bool {
        self.transfers.remove(peer).is_some()
    }
}

/// The ERROR for a datagram from a stranger on a transfer's socket (RFC 1350: error 5,
/// unknown transfer ID; the transfer itself is not disturbed).
pub fn unknown_tid() -> Vec<u8> {
    packet::error(ErrorCode::UNKNOWN_TID, "unknown transfer ID")
}

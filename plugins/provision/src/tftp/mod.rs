//! TFTP, read-only: RFC 1350 with option negotiation (RFC 2347) for `blksize`
//! (RFC 2348), `tsize` and `timeout` (RFC 2349). Sans-IO: no sockets, no clock.
//!
//! - [`packet`]: the wire format, parse and encode.
//! - [`Transfer`]: one download, a state machine driven by datagrams and timeouts.
//! - [`Server`]: requests on the listening port, `max_transfers`, the transfers by peer.
//! - [`netascii`]: the text mode's line-end translation.
//!
//! The server loop (in the plugin's long-running watch, once the host has a `net`
//! interface) owns the sockets: one listening socket, plus one per transfer bound to a
//! fresh port and talking to one peer. It reads a monotonic clock, passes the time in,
//! and sleeps until a datagram arrives or [`Server::next_deadline`] passes:
//!
//! ```text
//! loop {
//!     wait for a datagram on any socket, or until server.next_deadline()
//!     listening socket: match server.on_request(peer, bytes, now) {
//!         Reply::Start(first) => open a socket for peer, send first from it
//!         Reply::Refuse(error) => send error to peer
//!         Reply::Ignore => {}
//!     }
//!     transfer socket of P, datagram from P: carry out server.on_packet(P, bytes, now)
//!     transfer socket of P, datagram from Q != P: send unknown_tid() to Q
//!     deadline passed: carry out every action of server.on_timeout(now)
//! }
//! carry out: Send(b) => send b; Wait => nothing; Close { send, .. } => send, close socket
//! ```

pub mod netascii;
pub mod packet;
mod server;
mod transfer;

#[cfg(test)]
mod tests;

pub use packet::{ErrorCode, Mode, Packet, ParseError, Request};
pub use server::{Reply, Server, unknown_tid};
pub use transfer::{Action, Config, End, Refusal, Transfer};

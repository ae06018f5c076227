//! One read transfer: from an accepted RRQ to the ACK of the last block.
//!
//! A [`Transfer`] is a sans-IO state machine. The server loop gives every transfer its
//! own socket (the "TID" of RFC 1350, a fresh port), feeds it the datagrams that
//! arrive there ([`Transfer::on_packet`]) and calls [`Transfer::on_timeout`] once
//! [`Transfer::deadline`] has passed; each call returns the [`Action`] to carry out.
//! Time is whatever monotonic clock the loop uses, as a [`Duration`] since any origin.
//!
//! Lock-step as in RFC 1350, with the classic pitfalls handled:
//!
//! - Only a timeout retransmits, and only the last packet. An ACK for anything but the
//!   block just sent (a duplicate ACK of the previous block, an ACK of an older or a
//!   future block) is ignored, so duplicate ACKs never cause duplicate DATA — the
//!   Sorcerer's Apprentice bug (RFC 1123 §4.2.3.1).
//! - Block numbers are 16-bit and roll over from 65535 to 0, so files of more than
//!   65 535 blocks work (what tftp-hpa, curl and iPXE expect).
//! - The transfer ends after the ACK of the last block (shorter than the block size, an
//!   empty one when the size is a multiple of it), after an ERROR from the peer, or
//!   after `max_retries` timeouts in a row (given up silently: the peer is gone).
//! - Malformed datagrams and packets that make no sense on a read transfer (DATA, RRQ,
//!   OACK) are ignored rather than ending the transfer: a flood of garbage cannot
//!   cancel a download, and the retransmission timer still bounds a dead one.
//!
//! Options (RFC 2347): `blksize` (RFC 2348; 8..=65464, larger requests are lowered to
//! the configured maximum, smaller ones ignored), `tsize` (RFC 2349; answered with the
//! file size, octet mode only), `timeout` (RFC 2349; 1..=255 s, used as the
//! retransmission timeout). Unknown or invalid options are left out of the OACK. An
//! OACK is sent only when at least one option was accepted; the first DATA then waits
//! for ACK 0. Otherwise DATA 1 is the first packet.

use std::time::Duration;

use super::netascii;
use super::packet::{
    self, DEFAULT_BLKSIZE, ErrorCode, MAX_BLKSIZE, MIN_BLKSIZE, Mode, Packet, Request,
};
use crate::files::{FileError, FileSource, PathError, RelPath, confine_under, read_full};

/// Settings shared by all transfers of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The served root; only used to strip it from absolute request paths (see
    /// [`confine_under`]). Empty: none.
    pub root: String,
    /// The largest block size granted; requests for more get this much.
    pub max_blksize: u16,
    /// Retransmission timeout when the client does not ask for one.
    pub timeout: Duration,
    /// Timeouts in a row after which a transfer is given up.
    pub max_retries: u32,
    /// Transfers at once; more RRQs are refused (used by [`super::Server`]).
    pub max_transfers: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: String::new(),
            max_blksize: MAX_BLKSIZE,
            timeout: Duration::from_secs(1),
            max_retries: 5,
            max_transfers: 64,
        }
    }
}

/// What the server loop must do after a call into a [`Transfer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this datagram to the peer, then wait for a packet or the new
    /// [`Transfer::deadline`].
    Send(Vec<u8>),
    /// Nothing to send (an ignored packet, or a timeout call before the deadline);
    /// keep waiting.
    Wait,
    /// The transfer is over: send `send` if there is one, then close its socket and
    /// drop it.
    Close { send: Option<Vec<u8>>, end: End },
}

/// How a transfer ended (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The last block was acknowledged.
    Complete { bytes: u64 },
    /// The peer sent an ERROR.
    PeerError { code: ErrorCode, message: String },
    /// No acknowledgement after `max_retries` retransmissions.
    TimedOut,
    /// Reading the file failed mid-transfer; the peer is sent an ERROR.
    ReadFailed(FileError),
}

/// Why an RRQ was refused before any transfer started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// The ERROR datagram to send to the peer (from a fresh port, like any reply).
    pub fn packet(&self) -> Vec<u8> {
        packet::error(self.code, &self.message)
    }
}

/// The TFTP error for a file that cannot be served.
fn file_error(e: &FileError) -> (ErrorCode, String) {
    match e {
        FileError::NotFound | FileError::NotAFile => (ErrorCode::FILE_NOT_FOUND, e.to_string()),
        FileError::Denied => (ErrorCode::ACCESS_VIOLATION, e.to_string()),
        FileError::Io(_) => (ErrorCode::NOT_DEFINED, "read error".to_string()),
    }
}

/// The options granted for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Negotiated {
    blksize: u16,
    timeout: Duration,
    /// What goes into the OACK, in request order; empty: no OACK.
    oack: Vec<(String, String)>,
}

fn negotiate(req: &Request, size: u64, config: &Config) -> Negotiated {
    let mut n = Negotiated {
        blksize: DEFAULT_BLKSIZE,
        timeout: config.timeout,
        oack: Vec::new(),
    };
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &req.options {
        let lower = name.to_ascii_lowercase();
        if seen.contains(&lower) {
            continue; // the first of a repeated option counts
        }
        seen.push(lower.clone());
        let value = value.trim();
        let granted = match lower.as_str() {
            "blksize" => match value.parse::<u64>() {
                Ok(v) if v >= MIN_BLKSIZE as u64 => {
                    let cap = config.max_blksize.clamp(MIN_BLKSIZE, MAX_BLKSIZE);
                    n.blksize = v.min(cap as u64) as u16;
                    Some(n.blksize.to_string())
                }
                _ => None,
            },
            "timeout" => match value.parse::<u8>() {
                Ok(v) if v >= 1 => {
                    n.timeout = Duration::from_secs(v as u64);
                    Some(v.to_string())
                }
                _ => None,
            },
            "tsize" if req.mode == Mode::Octet => Some(size.to_string()),
            _ => None,
        };
        if let Some(v) = granted {
            // Reply with the client's spelling of the name; clients match it
            // case-insensitively anyway.
            n.oack.push((name.clone(), v));
        }
    }
    n
}

/// One read transfer (see the module docs).
#[derive(Debug)]
pub struct Transfer<S> {
    source: S,
    path: RelPath,
    blksize: usize,
    timeout: Duration,
    max_retries: u32,
    /// Netascii state; `None` for octet.
    netascii: Option<netascii::Encoder>,
    /// Next file offset to read (octet).
    offset: u64,
    /// Payload bytes sent in DATA so far (encoded bytes for netascii).
    sent_bytes: u64,
    /// Block number of the last packet sent, the one the peer must ACK (0 for OACK).
    block: u16,
    /// The last packet sent, kept for retransmission.
    last: Vec<u8>,
    /// `last` is the final DATA block.
    last_is_final: bool,
    /// When to retransmit.
    deadline: Duration,
    /// Retransmissions of `last` so far.
    retries: u32,
}

impl<S: FileSource> Transfer<S> {
    /// Start serving an RRQ; returns the transfer and the first datagram to send (an
    /// OACK or DATA 1), or the refusal to send as an ERROR.
    ///
    /// Refused: `mail` mode (error 4), paths with `..` or NUL (error 2), the root
    /// itself, missing files and non-files (error 1), files the source denies
    /// (error 2) or cannot read (error 0). WRQs never get here: [`super::Server`]
    /// refuses them.
    pub fn new(
        req: &Request,
        source: S,
        config: &Config,
        now: Duration,
    ) -> Result<(Transfer<S>, Vec<u8>), Refusal> {
        if req.mode == Mode::Mail {
            return Err(Refusal::new(
                ErrorCode::ILLEGAL_OPERATION,
                "mode `mail` is not supported; use octet or netascii",
            ));
        }
        let path = confine_under(&config.root, &req.filename).map_err(|e| match e {
            PathError::Empty => Refusal::new(ErrorCode::FILE_NOT_FOUND, e.to_string()),
            _ => Refusal::new(ErrorCode::ACCESS_VIOLATION, e.to_string()),
        })?;
        let size = source.size(&path).map_err(|e| {
            let (code, msg) = file_error(&e);
            Refusal::new(code, msg)
        })?;
        let n = negotiate(req, size, config);
        let mut t = Transfer {
            source,
            path,
            blksize: n.blksize as usize,
            timeout: n.timeout,
            max_retries: config.max_retries,
            netascii: (req.mode == Mode::Netascii).then(netascii::Encoder::new),
            offset: 0,
            sent_bytes: 0,
            block: 0,
            last: Vec::new(),
            last_is_final: false,
            deadline: now,
            retries: 0,
        };
        if n.oack.is_empty() {
            t.send_next_block(now).map_err(|e| {
                let (code, msg) = file_error(&e);
                Refusal::new(code, msg)
            })?;
        } else {
            t.last = Packet::Oack { options: n.oack }.encode();
            t.deadline = now + t.timeout;
        }
        let first = t.last.clone();
        Ok((t, first))
    }

    /// The file being served.
    pub fn path(&self) -> &RelPath {
        &self.path
    }

    /// The negotiated block size.
    pub fn blksize(&self) -> usize {
        self.blksize
    }

    /// The retransmission timeout in use.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// When [`Transfer::on_timeout`] should be called if no packet arrives before.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Read the next block into `self.last` and arm the timer.
    fn send_next_block(&mut self, now: Duration) -> Result<(), FileError> {
        let block = self.block.wrapping_add(1);
        let mut out = std::mem::take(&mut self.last);
        out.clear();
        out.reserve(4 + self.blksize);
        packet::data_header(&mut out, block);
        let n = match &mut self.netascii {
            Some(enc) => {
                enc.fill(&self.source, &self.path, &mut out, self.blksize)?;
                out.len() - 4
            }
            None => {
                out.resize(4 + self.blksize, 0);
                let n = read_full(&self.source, &self.path, self.offset, &mut out[4..])?;
                out.truncate(4 + n);
                self.offset += n as u64;
                n
            }
        };
        self.sent_bytes += n as u64;
        self.last = out;
        self.last_is_final = n < self.blksize;
        self.block = block;
        self.retries = 0;
        self.deadline = now + self.timeout;
        Ok(())
    }

    /// A datagram arrived from the peer.
    pub fn on_packet(&mut self, bytes: &[u8], now: Duration) -> Action {
        match Packet::parse(bytes) {
            Ok(Packet::Ack { block }) if block == self.block => {
                if self.last_is_final {
                    return Action::Close {
                        send: None,
                        end: End::Complete {
                            bytes: self.sent_bytes,
                        },
                    };
                }
                match self.send_next_block(now) {
                    Ok(()) => Action::Send(self.last.clone()),
                    Err(e) => {
                        let (code, msg) = file_error(&e);
                        Action::Close {
                            send: Some(packet::error(code, &msg)),
                            end: End::ReadFailed(e),
                        }
                    }
                }
            }
            Ok(Packet::Error { code, message }) => Action::Close {
                send: None,
                end: End::PeerError { code, message },
            },
            // Stale, duplicate or future ACKs, other packets, garbage.
            _ => Action::Wait,
        }
    }

    /// The loop's timer fired: retransmit the last packet if the deadline has passed,
    /// or give up after `max_retries` retransmissions.
    pub fn on_timeout(&mut self, now: Duration) -> Action {
        if now < self.deadline {
            return Action::Wait;
        }
        if self.retries >= self.max_retries {
            return Action::Close {
                send: None,
                end: End::TimedOut,
            };
        }
        self.retries += 1;
        self.deadline = now + self.timeout;
        Action::Send(self.last.clone())
    }
}

//! TFTP packets on the wire (RFC 1350, options and OACK from RFC 2347): parse and encode.
//!
//! Parsing is total: any byte string gives a [`Packet`] or a [`ParseError`], never a
//! panic, and it is strict — trailing bytes after an ACK, an unterminated string or an
//! option without a value are errors, so garbage is not half-understood.

use std::fmt;

/// Largest `blksize` RFC 2348 allows (65535 − IP, UDP and TFTP headers).
pub const MAX_BLKSIZE: u16 = 65464;
/// Smallest `blksize` RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// The block size of plain RFC 1350.
pub const DEFAULT_BLKSIZE: u16 = 512;

/// Opcodes.
const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

/// A transfer mode. Names are case-insensitive on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Text with CR LF line ends (and CR as CR NUL).
    Netascii,
    /// Bytes as they are.
    Octet,
    /// Obsolete mail delivery (RFC 1350); parsed so it can be refused by name.
    Mail,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Netascii => "netascii",
            Mode::Octet => "octet",
            Mode::Mail => "mail",
        }
    }
}

/// An RRQ or a WRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub filename: String,
    pub mode: Mode,
    /// RFC 2347 options in the order sent; names as sent (compare them
    /// case-insensitively), values as sent.
    pub options: Vec<(String, String)>,
}

impl Request {
    /// The value of an option, by case-insensitive name (the first one when repeated).
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A TFTP error code (RFC 1350 §5, 8 from RFC 2347). Other numbers are kept as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    pub const NOT_DEFINED: ErrorCode = ErrorCode(0);
    pub const FILE_NOT_FOUND: ErrorCode = ErrorCode(1);
    pub const ACCESS_VIOLATION: ErrorCode = ErrorCode(2);
    pub const DISK_FULL: ErrorCode = ErrorCode(3);
    pub const ILLEGAL_OPERATION: ErrorCode = ErrorCode(4);
    pub const UNKNOWN_TID: ErrorCode = ErrorCode(5);
    pub const FILE_EXISTS: ErrorCode = ErrorCode(6);
    pub const NO_SUCH_USER: ErrorCode = ErrorCode(7);
    pub const OPTION_REFUSED: ErrorCode = ErrorCode(8);
}

/// One TFTP datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Rrq(Request),
    Wrq(Request),
    Data {
        block: u16,
        data: Vec<u8>,
    },
    Ack {
        block: u16,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Accepted options, in the order of the request.
    Oack {
        options: Vec<(String, String)>,
    },
}

/// Why a datagram is not a TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Fewer bytes than the packet's fixed part.
    TooShort,
    /// An opcode other than 1–6.
    UnknownOpcode(u16),
    /// A string field without its terminating NUL.
    Unterminated,
    /// A filename, mode, option or message that is not UTF-8.
    NotUtf8,
    /// A mode other than netascii, octet or mail.
    UnknownMode(String),
    /// An option name without a value.
    MissingOptionValue(String),
    /// Bytes after the end of a fixed-size packet (ACK, ERROR).
    Trailing,
    /// A DATA payload larger than [`MAX_BLKSIZE`].
    Oversized,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("packet too short"),
            ParseError::UnknownOpcode(op) => write!(f, "unknown opcode {op}"),
            ParseError::Unterminated => f.write_str("string field without NUL terminator"),
            ParseError::NotUtf8 => f.write_str("string field is not UTF-8"),
            ParseError::UnknownMode(m) => write!(f, "unknown transfer mode `{m}`"),
            ParseError::MissingOptionValue(o) => write!(f, "option `{o}` has no value"),
            ParseError::Trailing => f.write_str("trailing bytes after the packet"),
            ParseError::Oversized => f.write_str("DATA larger than 65464 bytes"),
        }
    }
}

impl std::error::Error for ParseError {}

/// The opcode of a datagram, if it has one (used to tell a malformed request from noise).
pub fn opcode(bytes: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?))
}

/// Whether a datagram claims to be an RRQ or a WRQ, parsable or not.
pub fn is_request(bytes: &[u8]) -> bool {
    matches!(opcode(bytes), Some(RRQ | WRQ))
}

/// Reads NUL-terminated strings off the front of a byte slice.
struct Strings<'a>(&'a [u8]);

impl<'a> Strings<'a> {
    fn next(&mut self) -> Result<&'a str, ParseError> {
        let end = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(ParseError::Unterminated)?;
        let s = std::str::from_utf8(&self.0[..end]).map_err(|_| ParseError::NotUtf8)?;
        self.0 = &self.0[end + 1..];
        Ok(s)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn parse_options(s: &mut Strings<'_>) -> Result<Vec<(String, String)>, ParseError> {
    let mut options = Vec::new();
    while !s.is_empty() {
        let name = s.next()?;
        let value = s
            .next()
            .map_err(|_| ParseError::MissingOptionValue(name.to_string()))?;
        options.push((name.to_string(), value.to_string()));
    }
    Ok(options)
}

fn parse_request(body: &[u8]) -> Result<Request, ParseError> {
    let mut s = Strings(body);
    let filename = s.next()?.to_string();
    let mode = s.next()?;
    let mode = if mode.eq_ignore_ascii_case("octet") {
        Mode::Octet
    } else if mode.eq_ignore_ascii_case("netascii") {
        Mode::Netascii
    } else if mode.eq_ignore_ascii_case("mail") {
        Mode::Mail
    } else {
        return Err(ParseError::UnknownMode(mode.to_string()));
    };
    let options = parse_options(&mut s)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

fn block(body: &[u8]) -> Result<(u16, &[u8]), ParseError> {
    let b = body.get(..2).ok_or(ParseError::TooShort)?;
    Ok((u16::from_be_bytes([b[0], b[1]]), &body[2..]))
}

impl Packet {
    /// Parse one datagram.
    pub fn parse(bytes: &[u8]) -> Result<Packet, ParseError> {
        let op = opcode(bytes).ok_or(ParseError::TooShort)?;
        let body = &bytes[2..];
        match op {
            RRQ => Ok(Packet::Rrq(parse_request(body)?)),
            WRQ => Ok(Packet::Wrq(parse_request(body)?)),
            DATA => {
                let (block, data) = block(body)?;
                if data.len() > MAX_BLKSIZE as usize {
                    return Err(ParseError::Oversized);
                }
                Ok(Packet::Data {
                    block,
                    data: data.to_vec(),
                })
            }
            ACK => match block(body)? {
                (block, []) => Ok(Packet::Ack { block }),
                _ => Err(ParseError::Trailing),
            },
            ERROR => {
                let (code, rest) = block(body)?;
                let mut s = Strings(rest);
                let message = s.next()?.to_string();
                if !s.is_empty() {
                    return Err(ParseError::Trailing);
                }
                Ok(Packet::Error {
                    code: ErrorCode(code),
                    message,
                })
            }
            OACK => Ok(Packet::Oack {
                options: parse_options(&mut Strings(body))?,
            }),
            other => Err(ParseError::UnknownOpcode(other)),
        }
    }

    /// The datagram's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Append the datagram's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        fn string(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(s.as_bytes());
            out.push(0);
        }
        fn options(out: &mut Vec<u8>, opts: &[(String, String)]) {
            for (n, v) in opts {
                string(out, n);
                string(out, v);
            }
        }
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let op = if matches!(self, Packet::Rrq(_)) {
                    RRQ
                } else {
                    WRQ
                };
                out.extend_from_slice(&op.to_be_bytes());
                string(out, &r.filename);
                string(out, r.mode.as_str());
                options(out, &r.options);
            }
            Packet::Data { block, data } => {
                data_header(out, *block);
                out.extend_from_slice(data);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&ERROR.to_be_bytes());
                out.extend_from_slice(&code.0.to_be_bytes());
                // A NUL inside the message would end it early on the wire.
                string(out, &message.replace('\0', " "));
            }
            Packet::Oack { options: opts } => {
                out.extend_from_slice(&OACK.to_be_bytes());
                options(out, opts);
            }
        }
    }
}

/// Append a DATA header (opcode and block number); the payload follows.
pub(crate) fn data_header(out: &mut Vec<u8>, block: u16) {
    out.extend_from_slice(&DATA.to_be_bytes());
    out.extend_from_slice(&block.to_be_bytes());
}

/// An ERROR datagram.
pub fn error(code: ErrorCode, message: &str) -> Vec<u8> {
    Packet::Error {
        code,
        message: message.to_string(),
    }
    .encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Lcg;

    fn req(name: &str, mode: Mode, opts: &[(&str, &str)]) -> Request {
        Request {
            filename: name.into(),
            mode,
            options: opts
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn round_trips() {
        let packets = [
            Packet::Rrq(req("pxelinux.0", Mode::Octet, &[])),
            Packet::Rrq(req(
                "a/b",
                Mode::Netascii,
                &[("blksize", "1468"), ("tsize", "0")],
            )),
            Packet::Wrq(req("up", Mode::Octet, &[])),
            Packet::Data {
                block: 65535,
                data: vec![1, 2, 3],
            },
            Packet::Data {
                block: 0,
                data: vec![],
            },
            Packet::Ack { block: 7 },
            Packet::Error {
                code: ErrorCode::FILE_NOT_FOUND,
                message: "nope".into(),
            },
            Packet::Oack {
                options: vec![("blksize".into(), "1024".into())],
            },
            Packet::Oack { options: vec![] },
        ];
        for p in packets {
            assert_eq!(Packet::parse(&p.encode()), Ok(p.clone()), "{p:?}");
        }
    }

    #[test]
    fn parses_what_clients_send() {
        // curl: RRQ with options, mode in lower case.
        let bytes = b"\x00\x01boot/x\x00octet\x00tsize\x000\x00blksize\x00512\x00";
        let Packet::Rrq(r) = Packet::parse(bytes).unwrap() else {
            panic!()
        };
        assert_eq!(r.filename, "boot/x");
        assert_eq!(r.mode, Mode::Octet);
        assert_eq!(r.option("TSIZE"), Some("0"));
        assert_eq!(r.option("blksize"), Some("512"));
        // Mode names are case-insensitive.
        let Packet::Rrq(r) = Packet::parse(b"\x00\x01f\x00NetASCII\x00").unwrap() else {
            panic!()
        };
        assert_eq!(r.mode, Mode::Netascii);
    }

    #[test]
    fn malformed_packets_are_typed_errors() {
        use ParseError::*;
        let cases: &[(&[u8], ParseError)] = &[
            (b"", TooShort),
            (b"\x00", TooShort),
            (b"\x00\x09", UnknownOpcode(9)),
            (b"\x00\x00", UnknownOpcode(0)),
            (b"\x00\x01file", Unterminated),
            (b"\x00\x01file\x00", Unterminated),
            (b"\x00\x01file\x00octet", Unterminated),
            (b"\x00\x01file\x00binary\x00", UnknownMode("binary".into())),
            (
                b"\x00\x01f\x00octet\x00blksize\x00",
                MissingOptionValue("blksize".into()),
            ),
            (b"\x00\x01f\x00octet\x00blksize", Unterminated),
            (b"\x00\x01\xff\x00octet\x00", NotUtf8),
            (b"\x00\x03\x00", TooShort),
            (b"\x00\x04\x00", TooShort),
            (b"\x00\x04\x00\x01\x00", Trailing),
            (b"\x00\x05\x00\x01", Unterminated),
            (b"\x00\x05\x00\x01msg\x00x", Trailing),
        ];
        for (bytes, want) in cases {
            assert_eq!(Packet::parse(bytes).as_ref(), Err(want), "{bytes:?}");
        }
        let mut big = vec![0, 3, 0, 1];
        big.resize(4 + MAX_BLKSIZE as usize + 1, 0);
        assert_eq!(Packet::parse(&big), Err(Oversized));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Lcg(0x5eed);
        let mut parsed = 0;
        for i in 0..200_000 {
            let mut bytes = rng.bytes(64);
            // Half the time, start with a valid opcode so the inner parsers get exercised.
            if i % 2 == 0 && bytes.len() >= 2 {
                bytes[0] = 0;
                bytes[1] = (rng.next() % 7) as u8;
            }
            if let Ok(p) = Packet::parse(&bytes) {
                parsed += 1;
                // Whatever parses re-encodes to something that parses to the same packet.
                assert_eq!(Packet::parse(&p.encode()), Ok(p));
            }
        }
        assert!(parsed > 0);
    }

    #[test]
    fn error_messages_cannot_smuggle_a_nul() {
        let bytes = error(ErrorCode::NOT_DEFINED, "a\0b");
        assert_eq!(
            Packet::parse(&bytes),
            Ok(Packet::Error {
                code: ErrorCode::NOT_DEFINED,
                message: "a b".into()
            })
        );
    }
}

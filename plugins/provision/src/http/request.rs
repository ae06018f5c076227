//! Reading one HTTP/1.x request head (request line and headers) with `httparse`.
//!
//! The loop appends what it reads from a connection to a buffer and calls [`parse`]
//! until it returns [`Parsed::Complete`] or an error; [`HttpError::response`] is the
//! reply to send for an error. A head that has not ended within
//! [`Limits::max_head`] bytes is an error (431), so a slow or endless client cannot
//! make the buffer grow without bound.
//!
//! Bodies are not needed by any endpoint (`POST /done/<host>` carries its meaning in
//! the path). A request may still have one: [`Request::content_length`] says how many
//! bytes follow the head, up to [`Limits::max_body`] (413 beyond). The loop reads and
//! discards them before closing, so the client is not reset while it is still sending.
//! `Transfer-Encoding` (chunked bodies) is answered with 501.

use std::fmt;

/// Bounds on what a client may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers + blank line), in bytes.
    pub max_head: usize,
    /// Most header fields.
    pub max_headers: usize,
    /// Largest `Content-Length` accepted (the body is discarded).
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            max_headers: 64,
            max_body: 64 * 1024,
        }
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// As sent; methods are case-sensitive (`get` is not `GET`).
    pub method: String,
    /// The request target as sent: origin form `/path?query`, or absolute form.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Header fields in order; names as sent (compare case-insensitively).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Bytes of body after the head (0 without `Content-Length`).
    pub content_length: u64,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// The result of [`parse`] on what has arrived so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head has not ended yet: read more and call again with the whole buffer.
    Partial,
    /// A complete head of `head_len` bytes; `request.content_length` body bytes follow.
    Complete { request: Request, head_len: usize },
}

/// Why a request cannot be answered normally; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// Not HTTP/1.x syntax (400).
    Malformed(String),
    /// The head is longer than `max_head` or has more than `max_headers` fields (431).
    HeadTooLarge,
    /// `Content-Length` is larger than `max_body` (413).
    BodyTooLarge(u64),
    /// `Content-Length` is not a number, or given twice with different values (400).
    BadContentLength,
    /// A `Transfer-Encoding` header (501).
    TransferEncoding,
}

impl HttpError {
    /// The status code to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::BadContentLength => 400,
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::TransferEncoding => 501,
        }
    }

    /// The response to send before closing the connection.
    pub fn response(&self) -> super::Response {
        super::Response::text(self.status(), &format!("{self}\n"))
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(m) => write!(f, "malformed request: {m}"),
            HttpError::HeadTooLarge => f.write_str("request head too large"),
            HttpError::BodyTooLarge(n) => write!(f, "request body of {n} bytes is too large"),
            HttpError::BadContentLength => f.write_str("invalid Content-Length"),
            HttpError::TransferEncoding => f.write_str("Transfer-Encoding is not supported"),
        }
    }
}

impl std::error::Error for HttpError {}

/// Parse the request head at the start of `buf` (see the module docs).
pub fn parse(buf: &[u8], limits: &Limits) -> Result<Parsed, HttpError> {
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head => {
            return Err(HttpError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::HeadTooLarge),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    if head_len > limits.max_head {
        return Err(HttpError::HeadTooLarge);
    }
    let (Some(method), Some(path), Some(version)) = (req.method, req.path, req.version) else {
        return Err(HttpError::Malformed("incomplete request line".into()));
    };
    let mut content_length: Option<u64> = None;
    let mut fields = Vec::with_capacity(req.headers.len());
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(HttpError::BadContentLength)?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(n);
        }
        fields.push((h.name.to_string(), h.value.to_vec()));
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > limits.max_body {
        return Err(HttpError::BodyTooLarge(content_length));
    }
    Ok(Parsed::Complete {
        request: Request {
            method: method.to_string(),
            target: path.to_string(),
            minor_version: version,
            headers: fields,
            content_length,
        },
        head_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Lcg;

    fn complete(buf: &[u8]) -> (Request, usize) {
        match parse(buf, &Limits::default()) {
            Ok(Parsed::Complete { request, head_len }) => (request, head_len),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_curl_request() {
        let buf = b"GET /ks.cfg HTTP/1.1\r\nHost: 10.0.0.1:4280\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n";
        let (r, n) = complete(buf);
        assert_eq!(n, buf.len());
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/ks.cfg");
        assert_eq!(r.minor_version, 1);
        assert_eq!(r.header("host"), Some(&b"10.0.0.1:4280"[..]));
        assert_eq!(r.content_length, 0);
    }

    #[test]
    fn a_head_arrives_in_pieces() {
        let buf = b"POST /done/node1 HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..buf.len() - 5 - 1 {
            assert_eq!(parse(&buf[..cut], &Limits::default()), Ok(Parsed::Partial));
        }
        let (r, n) = complete(buf);
        assert_eq!(n, buf.len() - 5);
        assert_eq!(r.content_length, 5);
        assert_eq!(r.minor_version, 0);
    }

    #[test]
    fn limits_and_errors() {
        let l = Limits::default();
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost\r\n\r\n", &l),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00\x01\x00", &l),
            Err(HttpError::Malformed(_))
        ));
        let endless = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 9000]].concat();
        assert_eq!(parse(&endless, &l), Err(HttpError::HeadTooLarge));
        let many: String = (0..65).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(parse(many.as_bytes(), &l), Err(HttpError::HeadTooLarge));
        for cl in ["x", "-1", "", "1 2", "99999999999999999999999"] {
            let buf = format!("POST /done/a HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n");
            assert!(parse(buf.as_bytes(), &l).is_err(), "{cl}");
        }
        let twice = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert_eq!(parse(twice, &l), Err(HttpError::BadContentLength));
        let big = b"POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n";
        assert_eq!(parse(big, &l), Err(HttpError::BodyTooLarge(65537)));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse(chunked, &l), Err(HttpError::TransferEncoding));
        assert_eq!(HttpError::TransferEncoding.response().status, 501);
        assert_eq!(HttpError::HeadTooLarge.response().status, 431);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = Lcg(80);
        let l = Limits {
            max_head: 256,
            ..Limits::default()
        };
        for i in 0..50_000 {
            let mut buf = rng.bytes(300);
            if i % 2 == 0 {
                // A plausible start, so the header parser is reached.
                buf.splice(0..0, b"GET /x HTTP/1.1\r\n".iter().copied());
            }
            let _ = parse(&buf, &l);
        }
    }
}

//! HTTP, read-only: the install server's second half. Sans-IO: no sockets, no clock.
//!
//! - [`request`]: the request head, parsed with `httparse`, with size limits.
//! - [`Site`]: what a request gets — files from the tree and the inline `files`,
//!   `GET`/`HEAD`, and the boot-once endpoints `/boot/<host>` and `/done/<host>`
//!   backed by a [`DoneSet`].
//! - [`Response`] and [`Body`]: a head to send as bytes, and a body the loop streams.
//!
//! One request per connection: every response carries `Connection: close` and the
//! loop closes after sending it (no keep-alive, no pipelining). Installers fetch a few
//! large files; a fresh connection per file costs nothing that matters, and it keeps
//! the state of a connection to "reading the head" → "sending the response". A client
//! that sends `Connection: keep-alive` is told `close` and copes, as HTTP/1.1 requires.
//!
//! The loop, per accepted connection:
//!
//! ```text
//! read into buf until request::parse(&buf, &limits) is Complete (or an error:
//!     send err.response().head(), its inline body, close)
//! read and discard request.content_length body bytes
//! let (response, event) = site.handle(&request)
//! if let Some(Event::HostDone(_)) = event { persist site.done() via the state interface }
//! send response.head(); then the body: Inline(bytes) as is, or File { path, len }
//!     read through the same FileSource in chunks (close early if the file shrank),
//!     Empty: nothing (HEAD, errors without a body)
//! close
//! ```

pub mod request;
mod site;

pub use request::{HttpError, Limits, Parsed, Request, parse};
pub use site::{DoneSet, Event, LOCAL_BOOT_IPXE, Site, SiteConfig, content_type, valid_host};

use crate::files::RelPath;

/// What follows the head of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// No body (`HEAD`, or a status without one). `Content-Length` may still be > 0.
    Empty,
    /// A small body held in memory: errors, the boot document.
    Inline(Vec<u8>),
    /// `len` bytes of a file from the site's [`crate::files::FileSource`], to be read
    /// in chunks from offset 0.
    File { path: RelPath, len: u64 },
}

/// A response: status, headers and body. `Content-Length` and `Connection: close` are
/// added by [`Response::head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Extra header fields (not `Content-Length` or `Connection`).
    pub headers: Vec<(String, String)>,
    /// The value of `Content-Length`: the body's length, or for `HEAD` the length a
    /// `GET` would have sent.
    pub content_length: u64,
    pub body: Body,
}

impl Response {
    /// A response with an in-memory body.
    pub fn inline(status: u16, content_type: &str, body: Vec<u8>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            content_length: body.len() as u64,
            body: Body::Inline(body),
        }
    }

    /// A plain-text response (errors).
    pub fn text(status: u16, text: &str) -> Self {
        Self::inline(
            status,
            "text/plain; charset=utf-8",
            text.as_bytes().to_vec(),
        )
    }

    /// Add a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The same response without its body, for `HEAD`: headers and `Content-Length`
    /// stay what `GET` would send.
    pub fn without_body(mut self) -> Self {
        self.body = Body::Empty;
        self
    }

    /// The value of a header field, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The status line and header fields as bytes, ending with the blank line.
    pub fn head(&self) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (n, v) in &self.headers {
            // Values come from this crate, but never let one end the head early.
            let v: String = v.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\n", self.content_length));
        out.push_str("Connection: close\r\n\r\n");
        out.into_bytes()
    }
}

/// The reason phrase for the status codes this server uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "",
    }
}

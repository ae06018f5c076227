//! What each request gets: files, the boot-once endpoints and the error statuses.
//!
//! Routing, for the decoded path (the target's path part, `%XX` decoded, query and
//! fragment dropped; absolute-form targets are reduced to their path):
//!
//! | path | `GET` | `HEAD` | `POST` | other methods |
//! |---|---|---|---|---|
//! | `/done/<host>` | mark `<host>` done, 200 | 200, marks nothing | as `GET` | 405 |
//! | `/boot/<host>` | the boot document (below) | its head | 405 | 405 |
//! | anything else | the file, confined to the root | its head | 405 | 405 |
//!
//! Files: inline `files` first, then the tree (a [`FileSource`]). The path is confined
//! like a TFTP filename ([`confine_under`]) after percent-decoding, so `%2e%2e` is `..`
//! and refused: `..` or NUL → 403, the root itself (`/`, no listings) → 404, missing or
//! not a regular file → 404, refused by the source → 403, read error → 500. Bad
//! percent escapes or a path that is not UTF-8 → 400. A `Content-Type` is guessed from
//! the extension ([`content_type`]).
//!
//! Boot once ("PXE just once", as Cobbler calls it): `/boot/<host>` serves the
//! configured boot file (`boot` param, e.g. an iPXE script that starts the installer)
//! while `<host>` is not in the [`DoneSet`], and the local-boot document
//! ([`SiteConfig::local_boot`], by default the iPXE script `#!ipxe\nexit\n`, which hands
//! the machine back to the firmware to boot its next device, the local disk) once it
//! is. The installer reports success by fetching `/done/<host>` (GET or POST, e.g.
//! from a kickstart `%post`), which adds `<host>` to the set and returns
//! [`Event::HostDone`] the first time, so the plugin can persist the set. Both
//! endpoints answer `Cache-Control: no-store`. `<host>` is whatever name the boot
//! script uses — a hostname, `${net0/mac}` with `:` or `-`, an IP — checked by
//! [`valid_host`]. `done` and `boot` at the top of the tree are reserved by these
//! routes.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::{Body, Request, Response};
use crate::files::{FileError, FileSource, PathError, confine_under};

/// The hosts that reported a finished install. Serializable so the plugin can keep it
/// in the host's per-resource `state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneSet {
    hosts: BTreeSet<String>,
}

impl DoneSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Record `host` as done; true when it was not yet.
    pub fn mark(&mut self, host: &str) -> bool {
        self.hosts.insert(host.to_string())
    }

    /// Whether `host` reported done.
    pub fn contains(&self, host: &str) -> bool {
        self.hosts.contains(host)
    }

    /// Forget `host`, so its next boot installs again; true when it was done.
    pub fn forget(&mut self, host: &str) -> bool {
        self.hosts.remove(host)
    }

    /// The done hosts, sorted.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// Something the plugin must act on besides sending the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A host reported done for the first time: persist [`Site::done`].
    HostDone(String),
}

/// What the site serves besides the file tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteConfig {
    /// The served root; only used to strip it from absolute request paths.
    pub root: String,
    /// The file (inline or in the tree) served at `/boot/<host>` until the host is
    /// done; `None`: `/boot/<host>` is 404 until then.
    pub boot: Option<String>,
    /// The document served at `/boot/<host>` once the host is done.
    pub local_boot: String,
}

/// The default local-boot document: iPXE's `exit` returns to the firmware, which boots
/// the next device in its order — the local disk on a machine set to boot from the
/// network first. Works on BIOS and UEFI (`sanboot --drive 0x80` is BIOS-only).
pub const LOCAL_BOOT_IPXE: &str = "#!ipxe\nexit\n";

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            root: String::new(),
            boot: None,
            local_boot: LOCAL_BOOT_IPXE.to_string(),
        }
    }
}

/// The HTTP side's state (see the module docs).
#[derive(Debug, Clone)]
pub struct Site<S> {
    source: S,
    config: SiteConfig,
    done: DoneSet,
}

/// Longest accepted `<host>`.
const MAX_HOST: usize = 253;

/// Whether `host` may name a machine in `/done/<host>` and `/boot/<host>`: 1 to 253
/// characters of ASCII letters, digits, `.`, `-`, `_` and `:` (hostnames, MAC and IP
/// addresses), not `.` or `..`.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST
        && host != "."
        && host != ".."
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// `Content-Type` by file extension (case-insensitive); `application/octet-stream` for
/// anything not in the table.
pub fn content_type(file_name: &str) -> &'static str {
    const TEXT: &str = "text/plain; charset=utf-8";
    let ext = match file_name.rsplit_once('.') {
        Some((_, ext)) => ext.to_ascii_lowercase(),
        None => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" | "cfg" | "conf" | "ks" | "ipxe" | "sh" | "seed" | "preseed" | "list" => TEXT,
        "css" => "text/css",
        "js" => "text/javascript",
        "json" => "application/json",
        "xml" => "application/xml",
        "yaml" | "yml" => "application/yaml",
        "iso" => "application/x-iso9660-image",
        "gz" | "tgz" => "application/gzip",
        "xz" => "application/x-xz",
        "zst" => "application/zstd",
        "bz2" => "application/x-bzip2",
        "tar" => "application/x-tar",
        "rpm" => "application/x-rpm",
        "deb" | "udeb" => "application/vnd.debian.binary-package",
        "asc" | "sig" | "gpg" => "application/pgp-signature",
        _ => "application/octet-stream",
    }
}

/// Decode `%XX` escapes (`+` stays `+`: it means space only in queries).
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The decoded path of a request target, or a 400 response.
fn target_path(target: &str) -> Result<String, Response> {
    let bad = |why: &str| Response::text(400, &format!("bad request target: {why}\n"));
    // Absolute form (`http://host/path`), as sent to proxies.
    let target = match target.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => target,
    };
    if !target.starts_with('/') {
        return Err(bad("must start with `/`"));
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    let bytes = percent_decode(path).ok_or_else(|| bad("invalid percent escape"))?;
    String::from_utf8(bytes).map_err(|_| bad("not UTF-8"))
}

fn not_found() -> Response {
    Response::text(404, "not found\n")
}

fn method_not_allowed(allow: &str) -> Response {
    Response::text(405, "method not allowed\n").with_header("Allow", allow)
}

impl<S: FileSource> Site<S> {
    pub fn new(source: S, config: SiteConfig, done: DoneSet) -> Self {
        Site {
            source,
            config,
            done,
        }
    }

    /// Serve from `source` from now on (a change of params or files). Responses
    /// already being streamed keep reading the source the loop holds for them.
    pub fn set_source(&mut self, source: S) {
        self.source = source;
    }

    pub fn set_config(&mut self, config: SiteConfig) {
        self.config = config;
    }

    /// The source responses' [`Body::File`] bodies are read from.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The hosts that reported done.
    pub fn done(&self) -> &DoneSet {
        &self.done
    }

    /// Mutable access, e.g. to [`DoneSet::forget`] a host on the operator's behalf.
    pub fn done_mut(&mut self) -> &mut DoneSet {
        &mut self.done
    }

    /// Answer one request (see the module docs for the routes).
    pub fn handle(&mut self, req: &Request) -> (Response, Option<Event>) {
        let path = match target_path(&req.target) {
            Ok(p) => p,
            Err(resp) => return (resp, None),
        };
        let head = req.method == "HEAD";
        let (resp, event) = self.route(&req.method, &path);
        (if head { resp.without_body() } else { resp }, event)
    }

    fn route(&mut self, method: &str, path: &str) -> (Response, Option<Event>) {
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let endpoint = match (parts.next(), parts.next()) {
            (Some("done"), Some(host)) => Some((true, host)),
            (Some("boot"), Some(host)) => Some((false, host)),
            _ => None,
        };
        match endpoint {
            Some((true, host)) => {
                if !matches!(method, "GET" | "HEAD" | "POST") {
                    return (method_not_allowed("GET, HEAD, POST"), None);
                }
                if !valid_host(host) {
                    return (Response::text(400, "invalid host name\n"), None);
                }
                let event = if method != "HEAD" && self.done.mark(host) {
                    Some(Event::HostDone(host.to_string()))
                } else {
                    None
                };
                let resp = Response::text(200, &format!("{host} is done\n"))
                    .with_header("Cache-Control", "no-store");
                (resp, event)
            }
            Some((false, host)) => {
                if !matches!(method, "GET" | "HEAD") {
                    return (method_not_allowed("GET, HEAD"), None);
                }
                if !valid_host(host) {
                    return (Response::text(400, "invalid host name\n"), None);
                }
                let resp = if self.done.contains(host) {
                    Response::text(200, &self.config.local_boot)
                } else {
                    match self.config.boot.clone() {
                        Some(boot) => self.file(&boot),
                        None => not_found(),
                    }
                };
                (resp.with_header("Cache-Control", "no-store"), None)
            }
            None => {
                if !matches!(method, "GET" | "HEAD") {
                    return (method_not_allowed("GET, HEAD"), None);
                }
                (self.file(path), None)
            }
        }
    }

    fn file(&self, path: &str) -> Response {
        let rel = match confine_under(&self.config.root, path) {
            Ok(rel) => rel,
            Err(PathError::Empty) => return not_found(),
            Err(e) => return Response::text(403, &format!("forbidden: {e}\n")),
        };
        match self.source.size(&rel) {
            Ok(len) => Response {
                status: 200,
                headers: vec![("Content-Type".into(), content_type(rel.file_name()).into())],
                content_length: len,
                body: Body::File { path: rel, len },
            },
            Err(FileError::NotFound | FileError::NotAFile) => not_found(),
            Err(FileError::Denied) => Response::text(403, "forbidden\n"),
            Err(FileError::Io(_)) => Response::text(500, "read error\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{Layered, MemFiles, confine};
    use crate::http::{Limits, Parsed, parse};
    use crate::testutil::Lcg;

    fn site(boot: Option<&str>) -> Site<Layered<MemFiles>> {
        let mut tree = MemFiles::new();
        tree.insert("images/vmlinuz", vec![7u8; 5000]).unwrap();
        tree.insert("ks.cfg", b"tree ks".to_vec()).unwrap();
        tree.insert("a b.txt", b"space".to_vec()).unwrap();
        let mut inline = MemFiles::new();
        inline.insert("ks.cfg", b"inline ks".to_vec()).unwrap();
        inline
            .insert("install.ipxe", b"#!ipxe\nkernel /images/vmlinuz\n".to_vec())
            .unwrap();
        let config = SiteConfig {
            root: "/srv/install".into(),
            boot: boot.map(str::to_string),
            ..SiteConfig::default()
        };
        Site::new(Layered::new(inline, tree), config, DoneSet::new())
    }

    fn get(site: &mut Site<Layered<MemFiles>>, method: &str, target: &str) -> Response {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n\r\n");
        let Ok(Parsed::Complete { request, .. }) = parse(raw.as_bytes(), &Limits::default()) else {
            panic!("unparsable {raw:?}")
        };
        site.handle(&request).0
    }

    /// The body a loop would send: inline bytes, or the file read from the source.
    fn body(site: &Site<Layered<MemFiles>>, r: &Response) -> Vec<u8> {
        match &r.body {
            Body::Empty => vec![],
            Body::Inline(b) => b.clone(),
            Body::File { path, len } => {
                let mut buf = vec![0; *len as usize];
                let n = crate::files::read_full(site.source(), path, 0, &mut buf).unwrap();
                assert_eq!(n as u64, *len);
                buf
            }
        }
    }

    #[test]
    fn get_serves_inline_files_before_the_tree() {
        let mut s = site(None);
        let r = get(&mut s, "GET", "/ks.cfg");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_length, 9);
        assert_eq!(body(&s, &r), b"inline ks");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        let r = get(&mut s, "GET", "/images/vmlinuz");
        assert_eq!(r.content_length, 5000);
        assert_eq!(
            r.body,
            Body::File {
                path: confine("images/vmlinuz").unwrap(),
                len: 5000
            }
        );
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        let head = String::from_utf8(r.head()).unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nContent-Length: 5000\r\n"));
        assert!(head.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn head_has_the_same_length_and_no_body() {
        let mut s = site(None);
        let g = get(&mut s, "GET", "/images/vmlinuz");
        let h = get(&mut s, "HEAD", "/images/vmlinuz");
        assert_eq!(h.body, Body::Empty);
        assert_eq!(h.head(), g.head());
        let h = get(&mut s, "HEAD", "/missing");
        assert_eq!((h.status, h.body), (404, Body::Empty));
        assert_eq!(h.content_length, 10);
    }

    #[test]
    fn targets_are_decoded_then_confined() {
        let mut s = site(None);
        let r = get(&mut s, "GET", "/a%20b.txt");
        assert_eq!(body(&s, &r), b"space");
        assert_eq!(get(&mut s, "GET", "/ks.cfg?x=1#f").status, 200);
        assert_eq!(
            get(&mut s, "GET", "http://10.0.0.1:4280/ks.cfg").status,
            200
        );
        assert_eq!(get(&mut s, "GET", "/srv/install/ks.cfg").status, 200);
        assert_eq!(get(&mut s, "GET", "//images//vmlinuz").status, 200);
        for escape in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/images/..%2f..%2fetc/passwd",
            "/images%5c..%5c..%5cetc",
            "/ks.cfg%00.txt",
        ] {
            assert_eq!(get(&mut s, "GET", escape).status, 403, "{escape}");
        }
        assert_eq!(get(&mut s, "GET", "/").status, 404);
        assert_eq!(get(&mut s, "GET", "/missing").status, 404);
        assert_eq!(get(&mut s, "GET", "/%zz").status, 400);
        assert_eq!(get(&mut s, "GET", "/%ff").status, 400);
        assert_eq!(get(&mut s, "GET", "*").status, 400);
        assert_eq!(get(&mut s, "GET", "ftp://x/ks.cfg").status, 400);
    }

    #[test]
    fn other_methods_are_405() {
        let mut s = site(None);
        for m in ["PUT", "DELETE", "POST", "OPTIONS", "get", "PATCH"] {
            let r = get(&mut s, m, "/ks.cfg");
            assert_eq!(r.status, 405, "{m}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"));
        }
        let r = get(&mut s, "DELETE", "/done/node1");
        assert_eq!(r.header("allow"), Some("GET, HEAD, POST"));
        assert_eq!(get(&mut s, "POST", "/boot/node1").status, 405);
        assert!(s.done().is_empty());
    }

    #[test]
    fn boot_serves_the_installer_until_done_then_local_boot() {
        let mut s = site(Some("install.ipxe"));
        let r = get(&mut s, "GET", "/boot/52:54:00:12:34:56");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(body(&s, &r), b"#!ipxe\nkernel /images/vmlinuz\n");
        // HEAD on done is safe: it marks nothing.
        assert_eq!(get(&mut s, "HEAD", "/done/52:54:00:12:34:56").status, 200);
        assert!(s.done().is_empty());
        let raw = b"POST /done/52:54:00:12:34:56 HTTP/1.1\r\nContent-Length: 2\r\n\r\nok";
        let Ok(Parsed::Complete { request, .. }) = parse(raw, &Limits::default()) else {
            panic!()
        };
        let (r, event) = s.handle(&request);
        assert_eq!(r.status, 200);
        assert_eq!(event, Some(Event::HostDone("52:54:00:12:34:56".into())));
        // Reporting again changes nothing.
        let raw = b"GET /done/52:54:00:12:34:56 HTTP/1.1\r\n\r\n";
        let Ok(Parsed::Complete { request, .. }) = parse(raw, &Limits::default()) else {
            panic!()
        };
        assert_eq!(s.handle(&request).1, None);
        let r = get(&mut s, "GET", "/boot/52:54:00:12:34:56");
        assert_eq!(body(&s, &r), LOCAL_BOOT_IPXE.as_bytes());
        // Other hosts still install.
        let r = get(&mut s, "GET", "/boot/node2");
        assert_eq!(body(&s, &r), b"#!ipxe\nkernel /images/vmlinuz\n");
        // Forgetting a host makes it install again.
        assert!(s.done_mut().forget("52:54:00:12:34:56"));
        let r = get(&mut s, "GET", "/boot/52:54:00:12:34:56");
        assert_eq!(body(&s, &r), b"#!ipxe\nkernel /images/vmlinuz\n");
    }

    #[test]
    fn boot_without_a_boot_file_is_404_until_done() {
        let mut s = site(None);
        assert_eq!(get(&mut s, "GET", "/boot/n1").status, 404);
        get(&mut s, "GET", "/done/n1");
        let r = get(&mut s, "GET", "/boot/n1");
        assert_eq!(
            (r.status, body(&s, &r)),
            (200, LOCAL_BOOT_IPXE.as_bytes().to_vec())
        );
    }

    #[test]
    fn host_names_are_checked() {
        let mut s = site(None);
        for bad in [
            "/done/",
            "/done/a/b",
            "/done/..",
            "/done/a%20b",
            "/boot/x%0ay",
        ] {
            assert_eq!(get(&mut s, "GET", bad).status, 400, "{bad}");
        }
        assert!(valid_host("node-1.example.com"));
        assert!(valid_host("52-54-00-12-34-56"));
        assert!(valid_host("fe80::1"));
        assert!(!valid_host(&"a".repeat(254)));
        assert!(s.done().is_empty());
    }

    #[test]
    fn done_set_round_trips_through_json() {
        let mut d = DoneSet::new();
        d.mark("b");
        d.mark("a");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r#"{"hosts":["a","b"]}"#);
        assert_eq!(serde_json::from_str::<DoneSet>(&json).unwrap(), d);
        assert_eq!(d.hosts().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("ks.cfg"), "text/plain; charset=utf-8");
        assert_eq!(content_type("boot.IPXE"), "text/plain; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("d.iso"), "application/x-iso9660-image");
        assert_eq!(content_type("initrd.gz"), "application/gzip");
        assert_eq!(content_type("vmlinuz"), "application/octet-stream");
        assert_eq!(content_type("pxelinux.0"), "application/octet-stream");
    }

    #[test]
    fn random_requests_get_a_response_never_a_panic() {
        let mut s = site(Some("install.ipxe"));
        let mut rng = Lcg(443);
        let alphabet = b"/%.azAZ09:_-?#\\ \x00\xff+";
        for _ in 0..20_000 {
            let len = rng.next() as usize % 40;
            let target: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.next() as usize % alphabet.len()])
                .collect();
            let method = ["GET", "HEAD", "POST", "PUT"][rng.next() as usize % 4];
            let req = Request {
                method: method.into(),
                target: String::from_utf8_lossy(&target).into_owned(),
                minor_version: 1,
                headers: vec![],
                content_length: 0,
            };
            let (r, _) = s.handle(&req);
            assert!(!super::super::reason(r.status).is_empty());
        }
    }
}

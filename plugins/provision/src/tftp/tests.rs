//! Transfers and the server, driven by a simulated client over in-memory files.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::netascii;
use super::packet::{self, ErrorCode, Mode, Packet, Request};
use super::*;
use crate::files::{FileError, FileSource, MemFiles, RelPath};
use crate::testutil::Lcg;

const T0: Duration = Duration::from_secs(100);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn rrq(name: &str, opts: &[(&str, &str)]) -> Request {
    Request {
        filename: name.into(),
        mode: Mode::Octet,
        options: opts
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

fn ack(block: u16) -> Vec<u8> {
    Packet::Ack { block }.encode()
}

fn data(bytes: &[u8]) -> (u16, Vec<u8>) {
    match Packet::parse(bytes) {
        Ok(Packet::Data { block, data }) => (block, data),
        other => panic!("expected DATA, got {other:?}"),
    }
}

fn sent(a: Action) -> Vec<u8> {
    match a {
        Action::Send(b) => b,
        other => panic!("expected Send, got {other:?}"),
    }
}

/// Deterministic content of `len` bytes.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

fn files(list: &[(&str, Vec<u8>)]) -> Rc<MemFiles> {
    let mut m = MemFiles::new();
    for (n, c) in list {
        m.insert(n, c.clone()).unwrap();
    }
    Rc::new(m)
}

fn start(req: &Request, src: &Rc<MemFiles>, config: &Config) -> (Transfer<Rc<MemFiles>>, Vec<u8>) {
    Transfer::new(req, src.clone(), config, T0).unwrap()
}

/// A well-behaved client: ACKs every DATA once, checks block numbers (with rollover),
/// and returns the file and the number of DATA packets.
fn download(t: &mut Transfer<Rc<MemFiles>>, first: Vec<u8>, blksize: usize) -> (Vec<u8>, u64) {
    let mut got = Vec::new();
    let mut expect: u16 = 1;
    let mut packets = 0u64;
    let mut pkt = first;
    if let Ok(Packet::Oack { .. }) = Packet::parse(&pkt) {
        pkt = sent(t.on_packet(&ack(0), T0));
    }
    loop {
        let (block, d) = data(&pkt);
        assert_eq!(block, expect, "block numbers in order");
        assert!(d.len() <= blksize);
        packets += 1;
        got.extend_from_slice(&d);
        match t.on_packet(&ack(block), T0) {
            Action::Send(next) => {
                assert!(d.len() == blksize, "more after a short block");
                pkt = next;
            }
            Action::Close {
                send: None,
                end: End::Complete { bytes },
            } => {
                assert!(d.len() < blksize, "ended on a short block");
                assert_eq!(bytes, got.len() as u64);
                return (got, packets);
            }
            other => panic!("unexpected {other:?}"),
        }
        expect = expect.wrapping_add(1);
    }
}

#[test]
fn without_options_the_first_packet_is_data_1() {
    let body = content(1300, 1);
    let src = files(&[("pxelinux.0", body.clone())]);
    let (mut t, first) = start(&rrq("pxelinux.0", &[]), &src, &Config::default());
    assert_eq!(data(&first).0, 1);
    assert_eq!(t.blksize(), 512);
    let (got, packets) = download(&mut t, first, 512);
    assert_eq!(got, body);
    assert_eq!(packets, 3);
}

#[test]
fn options_are_answered_with_an_oack_then_data_waits_for_ack_0() {
    let body = content(5000, 2);
    let src = files(&[("k", body.clone())]);
    let req = rrq(
        "k",
        &[
            ("tsize", "0"),
            ("BLKSIZE", "1468"),
            ("timeout", "3"),
            ("windowsize", "8"),
        ],
    );
    let (mut t, first) = start(&req, &src, &Config::default());
    assert_eq!(
        Packet::parse(&first),
        Ok(Packet::Oack {
            options: vec![
                ("tsize".into(), "5000".into()),
                ("BLKSIZE".into(), "1468".into()),
                ("timeout".into(), "3".into()),
            ]
        })
    );
    assert_eq!(t.blksize(), 1468);
    assert_eq!(t.timeout(), secs(3));
    assert_eq!(t.deadline(), T0 + secs(3));
    // A DATA-style ACK 1 before ACK 0 is ignored.
    assert_eq!(t.on_packet(&ack(1), T0), Action::Wait);
    let (got, packets) = download(&mut t, first, 1468);
    assert_eq!(got, body);
    assert_eq!(packets, 4);
}

#[test]
fn blksize_is_capped_and_invalid_options_are_left_out() {
    let src = files(&[("f", content(100, 3))]);
    let config = Config {
        max_blksize: 1024,
        ..Config::default()
    };
    let (t, first) = start(&rrq("f", &[("blksize", "65464")]), &src, &config);
    assert_eq!(t.blksize(), 1024);
    assert_eq!(
        Packet::parse(&first),
        Ok(Packet::Oack {
            options: vec![("blksize".into(), "1024".into())]
        })
    );
    // Too small, not a number, timeout out of range, unknown: nothing accepted, no OACK.
    let req = rrq(
        "f",
        &[
            ("blksize", "7"),
            ("blksize", "1024"), // a repeat does not count
            ("timeout", "0"),
            ("timeout", "256"),
            ("tsize", "x"), // accepted anyway: the server knows the size
            ("multicast", ""),
        ],
    );
    let (t, first) = start(&req, &src, &Config::default());
    assert_eq!(t.blksize(), 512);
    assert_eq!(
        Packet::parse(&first),
        Ok(Packet::Oack {
            options: vec![("tsize".into(), "100".into())]
        })
    );
    let req = rrq("f", &[("blksize", "abc"), ("timeout", "-1"), ("foo", "1")]);
    let (t, first) = start(&req, &src, &Config::default());
    assert_eq!(t.blksize(), 512);
    assert_eq!(data(&first).0, 1);
}

#[test]
fn duplicate_acks_do_not_cause_duplicate_sends() {
    let src = files(&[("f", content(2048, 4))]);
    let (mut t, first) = start(&rrq("f", &[]), &src, &Config::default());
    assert_eq!(data(&first).0, 1);
    let second = sent(t.on_packet(&ack(1), T0));
    assert_eq!(data(&second).0, 2);
    // The Sorcerer's Apprentice: ACK 1 again (its DATA 2 was delayed) must not resend 2.
    assert_eq!(t.on_packet(&ack(1), T0), Action::Wait);
    assert_eq!(t.on_packet(&ack(1), T0), Action::Wait);
    // Old and future blocks are ignored as well.
    assert_eq!(t.on_packet(&ack(0), T0), Action::Wait);
    assert_eq!(t.on_packet(&ack(3), T0), Action::Wait);
    assert_eq!(t.on_packet(&ack(65535), T0), Action::Wait);
    let third = sent(t.on_packet(&ack(2), T0));
    assert_eq!(data(&third).0, 3);
}

#[test]
fn timeouts_retransmit_the_last_packet_then_give_up() {
    let src = files(&[("f", content(600, 5))]);
    let config = Config {
        max_retries: 3,
        ..Config::default()
    };
    let (mut t, first) = start(&rrq("f", &[]), &src, &config);
    // Too early: nothing.
    assert_eq!(t.on_timeout(T0 + Duration::from_millis(999)), Action::Wait);
    let mut now = T0;
    for _ in 0..3 {
        now = t.deadline();
        assert_eq!(t.on_timeout(now), Action::Send(first.clone()));
        assert_eq!(t.deadline(), now + secs(1));
    }
    assert_eq!(
        t.on_timeout(t.deadline()),
        Action::Close {
            send: None,
            end: End::TimedOut
        }
    );
    // An ACK resets the retry count: a new block gets its own retries.
    let (mut t, _) = start(&rrq("f", &[]), &src, &config);
    assert!(matches!(t.on_timeout(T0 + secs(1)), Action::Send(_)));
    assert!(matches!(t.on_timeout(T0 + secs(2)), Action::Send(_)));
    let second = sent(t.on_packet(&ack(1), now));
    for i in 1..=3 {
        assert_eq!(t.on_timeout(now + secs(i)), Action::Send(second.clone()));
    }
}

#[test]
fn the_oack_is_retransmitted_with_the_negotiated_timeout() {
    let src = files(&[("f", content(10, 6))]);
    let (mut t, first) = start(&rrq("f", &[("timeout", "5")]), &src, &Config::default());
    assert_eq!(t.on_timeout(T0 + secs(4)), Action::Wait);
    assert_eq!(t.on_timeout(T0 + secs(5)), Action::Send(first));
    assert_eq!(t.deadline(), T0 + secs(10));
}

#[test]
fn sizes_at_block_boundaries() {
    for (len, packets) in [(0, 1), (1, 1), (511, 1), (512, 2), (1024, 3), (1025, 3)] {
        let body = content(len, len as u64);
        let src = files(&[("f", body.clone())]);
        let (mut t, first) = start(&rrq("f", &[]), &src, &Config::default());
        let (got, n) = download(&mut t, first, 512);
        assert_eq!(got, body, "len {len}");
        assert_eq!(n, packets, "len {len}");
    }
}

#[test]
fn peer_errors_end_the_transfer() {
    let src = files(&[("f", content(10, 7))]);
    let (mut t, _) = start(&rrq("f", &[("blksize", "1024")]), &src, &Config::default());
    // The client refuses our options (RFC 2347: error 8).
    let refusal = packet::error(ErrorCode::OPTION_REFUSED, "no");
    assert_eq!(
        t.on_packet(&refusal, T0),
        Action::Close {
            send: None,
            end: End::PeerError {
                code: ErrorCode::OPTION_REFUSED,
                message: "no".into()
            }
        }
    );
}

#[test]
fn garbage_on_a_transfer_socket_is_ignored() {
    let body = content(3000, 8);
    let src = files(&[("f", body.clone())]);
    let (mut t, first) = start(&rrq("f", &[]), &src, &Config::default());
    let mut rng = Lcg(99);
    for _ in 0..10_000 {
        let mut junk = rng.bytes(40);
        // Never a well-formed ACK 1 or ERROR (those are meaningful, not garbage).
        if junk.len() >= 2 && junk[0] == 0 && (junk[1] == 4 || junk[1] == 5) {
            junk[1] = 3;
        }
        assert_eq!(t.on_packet(&junk, T0), Action::Wait);
    }
    let (got, _) = download(&mut t, first, 512);
    assert_eq!(got, body);
}

/// 40 MiB at 512-byte blocks is 81 920 blocks: the block number rolls over from 65535
/// to 0 once, and every byte must still arrive in order exactly once.
#[test]
fn forty_mib_at_blksize_512_rolls_block_numbers_over() {
    let len = 40 << 20;
    let body = content(len, 40);
    let src = files(&[("big.iso", body.clone())]);
    let (mut t, first) = start(&rrq("big.iso", &[]), &src, &Config::default());
    let (got, packets) = download(&mut t, first, 512);
    assert_eq!(packets, (len / 512 + 1) as u64);
    assert!(packets > 65535);
    assert!(got == body, "content differs");
}

#[test]
fn rollover_goes_from_65535_to_0() {
    let src = files(&[("f", content(65537 * 8, 9))]);
    let (mut t, first) = start(&rrq("f", &[("blksize", "8")]), &src, &Config::default());
    let mut pkt = sent(t.on_packet(&ack(0), T0));
    assert!(Packet::parse(&first).is_ok());
    let mut blocks = Vec::new();
    for _ in 0..65537 {
        let (block, _) = data(&pkt);
        blocks.push(block);
        pkt = sent(t.on_packet(&ack(block), T0));
    }
    assert_eq!(&blocks[65533..], &[65534, 65535, 0, 1]);
    // The final, empty block is number 2.
    assert_eq!(data(&pkt), (2, vec![]));
}

#[test]
fn netascii_is_translated_and_tsize_is_not_offered() {
    let text = b"line one\nline two\r\nend".repeat(100);
    let src = files(&[("t.txt", text.clone())]);
    let mut req = rrq("t.txt", &[("tsize", "0"), ("blksize", "100")]);
    req.mode = Mode::Netascii;
    let (mut t, first) = start(&req, &src, &Config::default());
    assert_eq!(
        Packet::parse(&first),
        Ok(Packet::Oack {
            options: vec![("blksize".into(), "100".into())]
        })
    );
    let (got, _) = download(&mut t, first, 100);
    assert!(got.windows(2).any(|w| w == b"\r\n"));
    assert_eq!(netascii::decode(&got), text);
}

#[test]
fn refusals_name_the_problem() {
    let src = files(&[("f", vec![1])]);
    let config = Config {
        root: "/srv/tftp".into(),
        ..Config::default()
    };
    let refuse = |req: &Request| Transfer::new(req, src.clone(), &config, T0).unwrap_err();
    let mut mail = rrq("f", &[]);
    mail.mode = Mode::Mail;
    assert_eq!(refuse(&mail).code, ErrorCode::ILLEGAL_OPERATION);
    assert_eq!(refuse(&rrq("missing", &[])).code, ErrorCode::FILE_NOT_FOUND);
    assert_eq!(refuse(&rrq("/", &[])).code, ErrorCode::FILE_NOT_FOUND);
    for escape in ["../etc/passwd", "/srv/tftp/../../etc/shadow", "a/../../b"] {
        let r = refuse(&rrq(escape, &[]));
        assert_eq!(r.code, ErrorCode::ACCESS_VIOLATION, "{escape}");
        assert_eq!(
            Packet::parse(&r.packet()),
            Ok(Packet::Error {
                code: ErrorCode::ACCESS_VIOLATION,
                message: "`..` is not allowed in a path".into()
            })
        );
    }
    assert_eq!(refuse(&rrq("f\0x", &[])).code, ErrorCode::ACCESS_VIOLATION);
    // The root prefix of an absolute request is stripped.
    assert!(Transfer::new(&rrq("/srv/tftp/f", &[]), src.clone(), &config, T0).is_ok());
    assert!(Transfer::new(&rrq("/f", &[]), src.clone(), &config, T0).is_ok());
}

/// A source whose reads fail from some offset on.
#[derive(Clone)]
struct Failing;
impl FileSource for Failing {
    fn size(&self, _: &RelPath) -> Result<u64, FileError> {
        Ok(10_000)
    }
    fn read_at(&self, _: &RelPath, offset: u64, buf: &mut [u8]) -> Result<usize, FileError> {
        if offset >= 512 {
            return Err(FileError::Io("disk on fire".into()));
        }
        buf.fill(7);
        Ok(buf.len().min(512 - offset as usize))
    }
}

#[test]
fn a_read_error_mid_transfer_sends_an_error_and_ends() {
    let (mut t, first) = Transfer::new(&rrq("f", &[]), Failing, &Config::default(), T0).unwrap();
    assert_eq!(data(&first).0, 1);
    match t.on_packet(&ack(1), T0) {
        Action::Close {
            send: Some(err),
            end: End::ReadFailed(FileError::Io(_)),
        } => assert_eq!(
            Packet::parse(&err),
            Ok(Packet::Error {
                code: ErrorCode::NOT_DEFINED,
                message: "read error".into()
            })
        ),
        other => panic!("{other:?}"),
    }
}

// ---- Server ----

fn peer(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

fn error_code(bytes: &[u8]) -> ErrorCode {
    match Packet::parse(bytes) {
        Ok(Packet::Error { code, .. }) => code,
        other => panic!("expected ERROR, got {other:?}"),
    }
}

fn start_reply(r: Reply) -> Vec<u8> {
    match r {
        Reply::Start(b) => b,
        other => panic!("expected Start, got {other:?}"),
    }
}

fn refused(r: Reply) -> ErrorCode {
    match r {
        Reply::Refuse(b) => error_code(&b),
        other => panic!("expected Refuse, got {other:?}"),
    }
}

#[test]
fn server_refuses_writes_and_malformed_requests_and_ignores_noise() {
    let mut s = Server::new(Config::default(), files(&[("f", vec![1])]));
    let wrq = Packet::Wrq(rrq("f", &[])).encode();
    assert_eq!(
        refused(s.on_request(peer(1), &wrq, T0)),
        ErrorCode::ACCESS_VIOLATION
    );
    let bad = b"\x00\x01f\x00binary\x00";
    assert_eq!(
        refused(s.on_request(peer(1), bad, T0)),
        ErrorCode::ILLEGAL_OPERATION
    );
    for noise in [
        &ack(1)[..],
        b"",
        b"\x00",
        b"\x00\x03\x00\x01hi",
        b"GET / HTTP/1.1\r\n",
    ] {
        assert_eq!(s.on_request(peer(1), noise, T0), Reply::Ignore);
    }
    assert_eq!(s.active(), 0);
}

#[test]
fn server_limits_transfers_and_frees_slots() {
    let config = Config {
        max_transfers: 2,
        ..Config::default()
    };
    let mut s = Server::new(config, files(&[("f", vec![1; 10])]));
    let req = Packet::Rrq(rrq("f", &[])).encode();
    start_reply(s.on_request(peer(1), &req, T0));
    // A repeated RRQ from the same peer does not start a second transfer.
    assert_eq!(s.on_request(peer(1), &req, T0), Reply::Ignore);
    start_reply(s.on_request(peer(2), &req, T0));
    assert_eq!(
        refused(s.on_request(peer(3), &req, T0)),
        ErrorCode::NOT_DEFINED
    );
    assert_eq!(s.active(), 2);
    // Finishing one frees a slot.
    assert!(matches!(
        s.on_packet(peer(1), &ack(1), T0),
        Some(Action::Close {
            end: End::Complete { bytes: 10 },
            ..
        })
    ));
    assert_eq!(s.on_packet(peer(1), &ack(1), T0), None);
    start_reply(s.on_request(peer(3), &req, T0));
    assert_eq!(
        refused(s.on_request(peer(4), &Packet::Rrq(rrq("nope", &[])).encode(), T0)),
        ErrorCode::NOT_DEFINED
    );
}

#[test]
fn server_runs_parallel_transfers_and_times_them_out() {
    let a = content(100_000, 10);
    let b = content(70_000, 11);
    let src = files(&[("a", a.clone()), ("b", b.clone())]);
    let mut s = Server::new(Config::default(), src);
    let mut first = [
        start_reply(s.on_request(peer(1), &Packet::Rrq(rrq("a", &[])).encode(), T0)),
        start_reply(s.on_request(
            peer(2),
            &Packet::Rrq(rrq("b", &[("blksize", "1400")])).encode(),
            T0,
        )),
    ];
    assert_eq!(s.active(), 2);
    assert_eq!(s.next_deadline(), Some(T0 + secs(1)));
    // Interleave: each client ACKs one packet per round; client 2 ACKs its OACK first.
    let mut got = [Vec::new(), Vec::new()];
    let mut done = [false, false];
    let mut last = [first[0].clone(), std::mem::take(&mut first[1])];
    let mut pending_ack = [None, Some(0u16)];
    if let Ok(Packet::Data { block, data }) = Packet::parse(&last[0]) {
        got[0].extend_from_slice(&data);
        pending_ack[0] = Some(block);
    }
    while !(done[0] && done[1]) {
        for i in 0..2 {
            let Some(block) = pending_ack[i] else {
                continue;
            };
            match s.on_packet(peer(i as u16 + 1), &ack(block), T0).unwrap() {
                Action::Send(p) => {
                    let (block, d) = data(&p);
                    got[i].extend_from_slice(&d);
                    pending_ack[i] = Some(block);
                    last[i] = p;
                }
                Action::Close {
                    end: End::Complete { .. },
                    ..
                } => {
                    done[i] = true;
                    pending_ack[i] = None;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got[0], a);
    assert_eq!(got[1], b);
    assert_eq!(s.active(), 0);
    assert_eq!(s.next_deadline(), None);

    // A silent client is retransmitted to, then dropped.
    start_reply(s.on_request(peer(9), &Packet::Rrq(rrq("a", &[])).encode(), T0));
    assert!(s.on_timeout(T0).is_empty());
    let mut now = T0;
    for _ in 0..5 {
        now = s.next_deadline().unwrap();
        let acts = s.on_timeout(now);
        assert!(matches!(acts[..], [(p, Action::Send(_))] if p == peer(9)));
    }
    now += secs(1);
    let acts = s.on_timeout(now);
    assert!(matches!(
        acts[..],
        [(
            _,
            Action::Close {
                end: End::TimedOut,
                ..
            }
        )]
    ));
    assert_eq!(s.active(), 0);
}

#[test]
fn a_new_source_leaves_running_transfers_alone() {
    let old = content(2000, 12);
    let mut s = Server::new(Config::default(), files(&[("f", old.clone())]));
    let first = start_reply(s.on_request(peer(1), &Packet::Rrq(rrq("f", &[])).encode(), T0));
    s.set_source(files(&[("f", vec![0; 10])]));
    let mut got = data(&first).1;
    let mut block = 1;
    loop {
        match s.on_packet(peer(1), &ack(block), T0).unwrap() {
            Action::Send(p) => {
                let (b, d) = data(&p);
                got.extend_from_slice(&d);
                block = b;
            }
            Action::Close { .. } => break,
            Action::Wait => panic!("wait"),
        }
    }
    assert_eq!(got, old);
    let first = start_reply(s.on_request(peer(2), &Packet::Rrq(rrq("f", &[])).encode(), T0));
    assert_eq!(data(&first).1, vec![0; 10]);
}

#[test]
fn a_flood_of_random_datagrams_leaves_the_server_serving() {
    let body = content(20_000, 13);
    let mut s = Server::new(Config::default(), files(&[("f", body.clone())]));
    let mut rng = Lcg(2024);
    let first = start_reply(s.on_request(peer(1), &Packet::Rrq(rrq("f", &[])).encode(), T0));
    let mut got = data(&first).1;
    let mut block = 1u16;
    let mut finished = false;
    for round in 0..50_000u32 {
        let mut junk = rng.bytes(80);
        if junk.len() >= 2 && round % 3 == 0 {
            junk[0] = 0;
            junk[1] = (rng.next() % 8) as u8;
        }
        let from = peer(1000 + (rng.next() % 50) as u16);
        match s.on_request(from, &junk, T0) {
            Reply::Start(_) => {
                s.abort(&from);
            }
            Reply::Refuse(e) => {
                error_code(&e);
            }
            Reply::Ignore => {}
        }
        // Junk on the real transfer's socket, unless it is a valid ACK or ERROR.
        if !matches!(
            Packet::parse(&junk),
            Ok(Packet::Ack { .. } | Packet::Error { .. })
        ) && !finished
        {
            assert_eq!(s.on_packet(peer(1), &junk, T0), Some(Action::Wait));
        }
        if round % 1000 == 0 && !finished {
            match s.on_packet(peer(1), &ack(block), T0).unwrap() {
                Action::Send(p) => {
                    let (b, d) = data(&p);
                    got.extend_from_slice(&d);
                    block = b;
                }
                Action::Close { .. } => finished = true,
                Action::Wait => panic!("wait"),
            }
        }
    }
    assert!(finished);
    assert_eq!(got, body);
    assert_eq!(s.active(), 0);
}

#[test]
fn strangers_on_a_transfer_socket_get_unknown_tid() {
    assert_eq!(error_code(&unknown_tid()), ErrorCode::UNKNOWN_TID);
}

#[test]
fn new_settings_apply_to_new_transfers_only() {
    let mut s = Server::new(Config::default(), files(&[("f", content(5000, 14))]));
    let req = Packet::Rrq(rrq("f", &[("blksize", "4096")])).encode();
    start_reply(s.on_request(peer(1), &req, T0));
    assert_eq!(s.transfer(&peer(1)).unwrap().blksize(), 4096);
    s.set_config(Config {
        max_blksize: 1024,
        max_transfers: 1,
        ..Config::default()
    });
    // The running transfer keeps its block size; the limit counts it.
    assert_eq!(s.transfer(&peer(1)).unwrap().blksize(), 4096);
    assert_eq!(
        refused(s.on_request(peer(2), &req, T0)),
        ErrorCode::NOT_DEFINED
    );
    assert!(s.abort(&peer(1)));
    assert!(!s.abort(&peer(1)));
    start_reply(s.on_request(peer(2), &req, T0));
    assert_eq!(s.transfer(&peer(2)).unwrap().blksize(), 1024);
}

//! The `provision` resource against real clients: `curl` speaks both TFTP and HTTP. Each
//! test serves its own temporary tree on loopback ports that were free a moment before
//! (bound and released by [`free_port`]), so the suites run in parallel.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Output};

use homeostat_tests::{
    Running, homeostat, stderr, test_plugins, wait_content, write_atomic, write_graph,
};

/// A port free for both UDP and TCP on 127.0.0.1 (the OS picks; both are released).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "120"])
        .args(args)
        .output()
        .expect("run curl (the CI installs it)")
}

/// `curl URL` must succeed; its body.
fn fetch(url: &str, extra: &[&str]) -> Vec<u8> {
    let out = curl(&[extra, &[url]].concat());
    assert!(
        out.status.success(),
        "curl {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Server {
    tftp: String,
    http: String,
    running: Running,
}

/// Serve `root` with the extra YAML lines `more` (indented for the resource), plus
/// anything in `extra_resources` at the graph's `resources:` level (it may end with an
/// `edges:` block). The test plugins (`steer`) are loaded too.
fn serve(dir: &Path, root: &Path, more: &str, extra_resources: &str) -> Server {
    let (t, h) = (free_port(), free_port());
    let g = write_graph(dir, "graph.yaml", &graph(root, t, h, more, extra_resources));
    let plugins = test_plugins();
    let running = Running::start(&g, &["--plugin-dir", plugins.to_str().unwrap()]);
    running.wait_log(&["provision[pxe]: serving", &format!("127.0.0.1:{h}")]);
    Server {
        tftp: format!("tftp://127.0.0.1:{t}"),
        http: format!("http://127.0.0.1:{h}"),
        running,
    }
}

fn graph(root: &Path, tftp: u16, http: u16, more: &str, extra_resources: &str) -> String {
    format!(
        r#"
graph: provision-test
resources:
  provision:
  - name: pxe
    root: {}
    tftp_address: "127.0.0.1:{tftp}"
    http_address: "127.0.0.1:{http}"
{more}
{extra_resources}
"#,
        root.display()
    )
}

fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // xorshift: content that compresses badly and differs per offset and seed.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn files_over_tftp_and_http_with_options_and_confinement() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("pxelinux.cfg")).unwrap();
    let kernel = random_bytes(300_000, 1);
    std::fs::write(root.join("vmlinuz"), &kernel).unwrap();
    std::fs::write(root.join("pxelinux.cfg/default"), "default install\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("passwd")).unwrap();
    let s = serve(
        dir.path(),
        &root,
        "    files:\n      ks.cfg: \"text\\nreboot\\n\"",
        "",
    );

    // TFTP, default block size and negotiated ones (RFC 2348).
    assert_eq!(
        fetch(&format!("{}/pxelinux.cfg/default", s.tftp), &[]),
        b"default install\n"
    );
    assert_eq!(fetch(&format!("{}/vmlinuz", s.tftp), &[]), kernel);
    for blksize in ["8", "1024", "1468", "8192"] {
        let got = fetch(&format!("{}/vmlinuz", s.tftp), &["--tftp-blksize", blksize]);
        assert_eq!(got.len(), kernel.len(), "blksize {blksize}");
        assert!(got == kernel, "blksize {blksize}: content differs");
    }
    assert_eq!(fetch(&format!("{}/ks.cfg", s.tftp), &[]), b"text\nreboot\n");

    // HTTP: inline document, file, HEAD, 404.
    assert_eq!(fetch(&format!("{}/ks.cfg", s.http), &[]), b"text\nreboot\n");
    assert_eq!(fetch(&format!("{}/vmlinuz", s.http), &[]), kernel);
    let head = String::from_utf8(fetch(&format!("{}/vmlinuz", s.http), &["--head"])).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Content-Length: 300000"), "{head}");
    let code = |url: String, extra: &[&str]| {
        let out = curl(&[extra, &["-o", "/dev/null", "-w", "%{http_code}", &url]].concat());
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(code(format!("{}/missing", s.http), &[]), "404");
    assert_eq!(
        code(format!("{}/vmlinuz", s.http), &["-X", "DELETE"]),
        "405"
    );

    // Traversal and symlink escapes: refused by both servers.
    assert_eq!(
        code(format!("{}/../../etc/passwd", s.http), &["--path-as-is"]),
        "403"
    );
    assert_eq!(
        code(
            format!("{}/%2e%2e/%2e%2e/etc/passwd", s.http),
            &["--path-as-is"]
        ),
        "403"
    );
    assert_eq!(code(format!("{}/passwd", s.http), &[]), "404");
    for path in ["/../../etc/passwd", "/passwd", "/missing"] {
        let out = curl(&["--path-as-is", &format!("{}{path}", s.tftp)]);
        assert!(!out.status.success(), "tftp {path} was served");
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("root:"),
            "tftp {path} leaked /etc/passwd"
        );
    }
    // Write requests are refused: the server is read-only.
    let upload = dir.path().join("upload");
    std::fs::write(&upload, "x").unwrap();
    let out = curl(&["-T", upload.to_str().unwrap(), &format!("{}/new", s.tftp)]);
    assert!(!out.status.success(), "a TFTP write was accepted");
    assert!(!root.join("new").exists());
    s.running.wait_log(&["http: GET /vmlinuz 200"]);
}

/// Several downloads at once, one of them 40 MiB with 512-byte blocks: 81 920 blocks,
/// so the 16-bit block number wraps around (the rollover curl and iPXE expect).
#[test]
fn parallel_transfers_and_a_40_mib_file_past_the_block_number_rollover() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big = random_bytes(40 << 20, 7);
    std::fs::write(root.join("image.iso"), &big).unwrap();
    let small: Vec<Vec<u8>> = (0..6)
        .map(|i| random_bytes(200_000 + i, i as u64))
        .collect();
    for (i, c) in small.iter().enumerate() {
        std::fs::write(root.join(format!("f{i}")), c).unwrap();
    }
    let s = serve(dir.path(), &root, "", "");

    let out = dir.path().join("image.out");
    let big_url = format!("{}/image.iso", s.tftp);
    let out_arg = out.to_str().unwrap().to_string();
    let large = std::thread::spawn(move || curl(&["-o", &out_arg, &big_url]));
    let parallel: Vec<_> = (0..6)
        .map(|i| {
            let url = format!("{}/f{i}", s.tftp);
            std::thread::spawn(move || fetch(&url, &[]))
        })
        .collect();
    for (i, t) in parallel.into_iter().enumerate() {
        assert!(t.join().unwrap() == small[i], "f{i} differs");
    }
    let done = large.join().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the 40 MiB image differs");
    s.running.wait_log(&["tftp: sent 41943040 bytes"]);
}

/// Garbage at both ports: the servers keep serving and the engine keeps repairing the
/// other resources of the graph.
#[test]
fn a_flood_of_malformed_packets_disturbs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("boot.ipxe"), "#!ipxe\nchain ks\n").unwrap();
    let managed = dir.path().join("motd");
    let s = serve(
        dir.path(),
        &root,
        "",
        &format!(
            "  file:\n  - name: motd\n    path: {}\n    content: \"managed\\n\"",
            managed.display()
        ),
    );
    wait_content(&managed, "managed\n");
    let port: u16 = s.tftp.rsplit(':').next().unwrap().parse().unwrap();
    let flood = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20_000usize {
        let mut packet = random_bytes(i % 700, i as u64 + 3);
        // Every fourth one looks like a request (opcode 1 or 2) with garbage after it.
        if i % 4 == 0 && packet.len() >= 2 {
            packet[0] = 0;
            packet[1] = 1 + (i % 8 == 0) as u8;
        }
        let _ = flood.send_to(&packet, ("127.0.0.1", port));
    }
    let http_port: u16 = s.http.rsplit(':').next().unwrap().parse().unwrap();
    for i in 0..50u64 {
        use std::io::Write;
        if let Ok(mut c) = std::net::TcpStream::connect(("127.0.0.1", http_port)) {
            let _ = c.write_all(&random_bytes(3000, i + 100));
        }
    }
    assert_eq!(
        fetch(&format!("{}/boot.ipxe", s.tftp), &[]),
        b"#!ipxe\nchain ks\n"
    );
    assert_eq!(
        fetch(&format!("{}/boot.ipxe", s.http), &[]),
        b"#!ipxe\nchain ks\n"
    );
    write_atomic(&managed, "drifted\n");
    wait_content(&managed, "managed\n");
    let mut r = s.running;
    assert!(r.alive(), "homeostat died");
    assert_eq!(r.count_log(&["stopped serving"]), 0, "{:?}", r.log());
}

/// PXE just once: `/boot/<host>` serves the installer until the host fetches
/// `/done/<host>`, then the local-boot document; the done hosts are sent as `done`
/// (received here by a `steer` resource, which logs what it gets).
#[test]
fn boot_once_after_done() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let receiver = format!(
        "  steer:\n  - name: hosts\n    state: {}\nedges:\n- from: {{kind: provision, name: pxe}}\n  to: {{kind: steer, name: hosts}}\n  send: {{done: in}}",
        dir.path().join("count").display()
    );
    let s = serve(
        dir.path(),
        &root,
        "    boot: install.ipxe\n    files:\n      install.ipxe: \"#!ipxe\\nkernel vmlinuz\\n\"",
        &receiver,
    );
    s.running.wait_log(&["steer hosts start", "in=[]"]);
    let boot = format!("{}/boot/52-54-00-12-34-56", s.http);
    assert_eq!(fetch(&boot, &[]), b"#!ipxe\nkernel vmlinuz\n");
    assert_eq!(
        fetch(&format!("{}/done/52-54-00-12-34-56", s.http), &[]),
        b"52-54-00-12-34-56 is done\n"
    );
    assert_eq!(fetch(&boot, &[]), b"#!ipxe\nexit\n");
    // Other hosts still install.
    assert_eq!(
        fetch(&format!("{}/boot/other", s.http), &[]),
        b"#!ipxe\nkernel vmlinuz\n"
    );
    s.running
        .wait_log(&["52-54-00-12-34-56 reported done: its next boot is local"]);
    // The server's state change woke the resource, which sent the new list.
    s.running
        .wait_log(&["steer hosts start", r#"in=["52-54-00-12-34-56"]"#]);
}

/// A params change (graph swap) reaches the running server: the new inline file is
/// served at once, and a download in progress finishes intact.
#[test]
fn a_params_change_keeps_transfers_in_progress() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let big = random_bytes(12 << 20, 11);
    std::fs::write(root.join("big"), &big).unwrap();
    let (t, h) = (free_port(), free_port());
    let g = write_graph(
        dir.path(),
        "graph.yaml",
        &graph(&root, t, h, "    files:\n      ks.cfg: \"v1\\n\"", ""),
    );
    let r = Running::start(&g, &[]);
    r.wait_log(&["provision[pxe]: serving"]);
    let out = dir.path().join("big.out");
    let (url, out_arg) = (
        format!("tftp://127.0.0.1:{t}/big"),
        out.to_str().unwrap().to_string(),
    );
    // 512-byte blocks: 24 576 round trips, long enough to span the swap.
    let download = std::thread::spawn(move || curl(&["-o", &out_arg, &url]));
    while std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) < 100_000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    write_atomic(
        &g,
        &graph(&root, t, h, "    files:\n      ks.cfg: \"v2\\n\"", ""),
    );
    r.wait_log(&["provision[pxe]: now serving"]);
    assert_eq!(fetch(&format!("http://127.0.0.1:{h}/ks.cfg"), &[]), b"v2\n");
    let done = download.join().unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(std::fs::read(&out).unwrap() == big, "the download differs");
    assert_eq!(r.count_log(&["stopped serving"]), 0);
}

/// A port another program holds fails this resource with the reason; the rest of the
/// graph converges. Two resources on overlapping addresses are refused before running.
#[test]
fn address_conflicts_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let (t, h) = (free_port(), free_port());
    let _taken = TcpListener::bind(("127.0.0.1", h)).unwrap();
    let managed = dir.path().join("motd");
    let g = write_graph(
        dir.path(),
        "graph.yaml",
        &graph(
            &root,
            t,
            h,
            "    meta: {retry: 0}",
            &format!(
                "  file:\n  - name: motd\n    path: {}\n    content: \"ok\\n\"",
                managed.display()
            ),
        ),
    );
    let r = Running::start(&g, &[]);
    let line = r.wait_log(&["provision[pxe]", "not serving"]);
    assert!(line.contains(&format!("127.0.0.1:{h}")), "{line}");
    assert!(line.to_lowercase().contains("in use"), "{line}");
    wait_content(&managed, "ok\n");
    drop(r);

    let two = format!(
        r#"
graph: two
resources:
  provision:
  - name: a
    root: {root}
    tftp_address: ":{t}"
    http_address: "127.0.0.1:{h}"
  - name: b
    root: {root}
    tftp_address: "127.0.0.1:{t}"
    http_address: "127.0.0.1:{h2}"
"#,
        root = root.display(),
        h2 = free_port(),
    );
    let g = write_graph(dir.path(), "two.yaml", &two);
    let out = homeostat(&["validate", g.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("provision[b] binds udp 127.0.0.1") && err.contains("provision[a]"),
        "{err}"
    );
}

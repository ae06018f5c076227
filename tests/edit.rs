//! Shared edits of one file: the bundled `line` and `ini` kinds (and a third-party
//! editing kind) hold parts of one file beside a `file` resource that manages only its
//! attributes. Their edits land together (one write for the edits made together), an
//! editor rewriting the file while they hold it loses neither its lines nor theirs, and
//! a graph where a whole-file resource owns the content of a file an editor edits is
//! refused with the place of the conflict.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use homeostat_tests::{
    Running, granted_dir, homeostat, line_wasm, run_converged, shared_edit_scenario, stderr,
    wait_for, write_atomic, write_graph,
};

/// An inotify watch of a directory counting the entries put in place under one name
/// (a rename onto it, or a link or create of it): the writes of that file.
struct Writes {
    fd: i32,
    name: Vec<u8>,
    seen: usize,
}

impl Writes {
    fn of(file: &Path) -> Writes {
        // SAFETY: plain syscalls on a descriptor this struct owns; the path is a valid
        // NUL-terminated string.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(fd >= 0, "inotify_init1");
        let dir = CString::new(file.parent().unwrap().as_os_str().as_bytes()).unwrap();
        // SAFETY: as above.
        let wd = unsafe {
            libc::inotify_add_watch(fd, dir.as_ptr(), libc::IN_MOVED_TO | libc::IN_CREATE)
        };
        assert!(wd >= 0, "inotify_add_watch");
        Writes {
            fd,
            name: file.file_name().unwrap().as_bytes().to_vec(),
            seen: 0,
        }
    }

    /// Writes seen so far.
    fn count(&mut self) -> usize {
        let mut buf = [0u8; 64 * 1024];
        loop {
            // SAFETY: reads into a buffer of the given length.
            let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return self.seen;
            }
            let mut at = 0;
            let header = std::mem::size_of::<libc::inotify_event>();
            while at + header <= n as usize {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with the
                // byte buffer's alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf[at..].as_ptr().cast()) };
                let name = &buf[at + header..at + header + ev.len as usize];
                let name = &name[..name.iter().position(|b| *b == 0).unwrap_or(name.len())];
                if name == self.name.as_slice() {
                    self.seen += 1;
                }
                at += header + ev.len as usize;
            }
        }
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        // SAFETY: closes the descriptor this struct owns.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn ini_keys_share_a_file_and_a_live_swap_adds_a_third() {
    shared_edit_scenario(
        "ini",
        &|k, v| format!("    section: main\n    key: {k}\n    value: \"{v}\"\n"),
        &|k, v| format!("{k} = {v}"),
        &[],
    );
}

#[test]
fn ten_lines_on_one_file_converge_with_one_write() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("ten.conf");
    let mut g = format!(
        "graph: ten\nresources:\n  file:\n  - name: conf\n    path: {}\n    mode: \"0640\"\n  line:\n",
        conf.display()
    );
    for i in 0..10 {
        g.push_str(&format!(
            "  - name: l{i}\n    path: {}\n    line: \"setting{i} = {i}\"\n",
            conf.display()
        ));
    }
    let graph = write_graph(d.path(), "g.yaml", &g);
    let mut writes = Writes::of(&conf);
    let out = run_converged(&graph, "0.5", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&conf).unwrap();
    for i in 0..10 {
        assert!(text.contains(&format!("setting{i} = {i}\n")), "{text}");
    }
    assert!(
        stderr(&out).contains("11 changes, 0 failed"),
        "{}",
        stderr(&out)
    );
    // One for the `file` resource's new empty file, one for the ten lines.
    assert_eq!(writes.count(), 2, "{}", stderr(&out));
    // Converged: a second run changes nothing and writes nothing.
    let again = run_converged(&graph, "0.5", &[]);
    assert!(
        stderr(&again).contains("0 changes, 0 failed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(writes.count(), 2);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf).unwrap().permissions().mode() & 0o7777,
        0o640,
        "the file resource's mode is kept through the editors' write"
    );
}

#[test]
fn three_kinds_keep_their_parts_while_an_editor_rewrites_the_file() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("app.conf");
    std::fs::write(&conf, "[main]\nport = 1\n").unwrap();
    let (_p, plugins, grants) = granted_dir(&line_wasm());
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: three\nresources:
  line:
  - name: managed
    path: {p}
    line: \"# managed by homeostat\"
  ini:
  - name: port
    path: {p}
    section: main
    key: port
    value: \"8080\"
  lineinfile:
  - name: root
    path: {p}
    line: PermitRootLogin no
    prefix: \"PermitRootLogin \"
",
            p = conf.display()
        ),
    );
    let r = Running::start(
        &graph,
        &[
            "--plugin-dir",
            plugins.to_str().unwrap(),
            "--grants",
            grants.to_str().unwrap(),
        ],
    );
    let parts = [
        "# managed by homeostat",
        "port = 8080",
        "PermitRootLogin no",
    ];
    let holds = |extra: &str| {
        wait_for(|| {
            let text = std::fs::read_to_string(&conf).ok()?;
            let once = |want: &str| text.lines().filter(|l| *l == want).count() == 1;
            (parts.iter().all(|p| once(p)) && once(extra)).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "{} lost a part: {:?}",
                conf.display(),
                std::fs::read_to_string(&conf)
            )
        })
    };
    holds("[main]");
    // An editor rewrites the file again and again: its own line changes each time, and it
    // drops or undoes what homeostat manages.
    for i in 0..60 {
        let text = match i % 3 {
            0 => format!("[main]\nport = 1\nby hand {i}\n"),
            1 => format!("by hand {i}\n[main]\nPermitRootLogin yes\n"),
            _ => format!("[main]\n# managed by homeostat\nport = 9\nby hand {i}\n"),
        };
        write_atomic(&conf, &text);
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    // Once it stops, every part is back, exactly once. (A write that lands while
    // homeostat puts its own in place is lost to it, as with any tool that replaces
    // files atomically: so the editor's last word comes once homeostat is idle.)
    holds("[main]");
    std::thread::sleep(std::time::Duration::from_millis(200));
    write_atomic(&conf, "by hand, last\n[main]\nport = 2\n");
    holds("by hand, last");
    let log = r.log().join("\n");
    assert!(!log.contains(" ERROR "), "{log}");
}

#[test]
fn a_failing_editor_does_not_hold_back_the_others_of_its_file() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("x.conf");
    std::fs::write(&conf, "a = 1\na = 2\n").unwrap();
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: failing\nresources:\n  line:\n  - name: ambiguous\n    path: {p}\n    line: a = 3\n    match: \"^a =\"\n  - name: fine\n    path: {p}\n    line: b = 1\n",
            p = conf.display()
        ),
    );
    let out = run_converged(&graph, "0.5", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("line[ambiguous]: 2 lines match `^a =`; set `multiple: true`"),
        "{err}"
    );
    assert!(err.contains("1 changes, 1 failed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "a = 1\na = 2\nb = 1\n"
    );
}

#[test]
fn noop_shows_the_edits_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("n.ini");
    std::fs::write(&conf, "[s]\nk = old\n").unwrap();
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: noop\nresources:\n  ini:\n  - name: k\n    path: {p}\n    section: s\n    key: k\n    value: new\n  line:\n  - name: l\n    path: {p}\n    line: \"# x\"\n",
            p = conf.display()
        ),
    );
    let out = run_converged(&graph, "0.5", &["--noop"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("ini[k]: would change (noop): set [s] k"),
        "{err}"
    );
    assert!(
        err.contains("line[l]: would change (noop): add the line"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "[s]\nk = old\n");
}

#[test]
fn an_editor_of_a_file_whose_content_another_resource_owns_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let conf = d.path().join("c.conf");
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: clash\nresources:\n  file:\n  - name: whole\n    path: {p}\n    content: \"x\\n\"\n  line:\n  - name: part\n    path: {p}\n    line: y\n",
            p = conf.display()
        ),
    );
    let out = homeostat(&["validate", graph.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("line[part] edits part of")
            && err.contains("and file[whole] (at ")
            && err.contains(":6:") // the line of `content:`
            && err.contains("sets its whole content (`content`)"),
        "{err}"
    );
    // Without its content, the file resource only manages attributes: accepted.
    let ok = write_graph(
        d.path(),
        "ok.yaml",
        &format!(
            "graph: ok\nresources:\n  file:\n  - name: whole\n    path: {p}\n    mode: \"0600\"\n  line:\n  - name: part\n    path: {p}\n    line: y\n  - name: other\n    path: {p}\n    line: z\n",
            p = conf.display()
        ),
    );
    let out = homeostat(&["validate", ok.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!conf.exists(), "validate touched the file");
}

#[test]
fn authorized_keys_hold_one_line_per_key_beside_other_editors() {
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("authorized_keys");
    std::fs::write(
        &keys,
        "# by hand\ncommand=\"echo hi there\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFsaWNl old-alice\n",
    )
    .unwrap();
    let graph = write_graph(
        d.path(),
        "g.yaml",
        &format!(
            "graph: keys\nresources:\n  ssh_authorized_key:\n  - name: alice@laptop\n    user: root\n    type: ssh-ed25519\n    key: AAAAC3NzaC1lZDI1NTE5AAAAIGFsaWNl\n    options: [no-pty]\n    target: {p}\n  - name: ci\n    user: root\n    type: ssh-rsa\n    key: AAAAB3NzaC1yc2EAAAADAQABAAABAQci\n    target: {p}\n  line:\n  - name: note\n    path: {p}\n    line: \"# managed by homeostat\"\n",
            p = keys.display()
        ),
    );
    let out = run_converged(&graph, "0.5", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The old alice line is replaced where it was; the others are added in the order
    // their resources run (independent editors: no order between them).
    let text = std::fs::read_to_string(&keys).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        &lines[..2],
        [
            "# by hand",
            "no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGFsaWNl alice@laptop"
        ]
    );
    lines[2..].sort_unstable();
    assert_eq!(
        &lines[2..],
        [
            "# managed by homeostat",
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQci ci"
        ]
    );
    let again = run_converged(&graph, "0.5", &[]);
    assert!(
        stderr(&again).contains("0 changes, 0 failed"),
        "{}",
        stderr(&again)
    );
    // A new file is the user's, mode 0600 (sshd's StrictModes).
    std::fs::remove_file(&keys).unwrap();
    let out = run_converged(&graph, "0.5", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(&keys).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), 0);
}

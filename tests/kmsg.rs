//! The `kmsg` fact against the real kernel log: records are injected by writing to
//! `/dev/kmsg` (as root), and the chain downstream is checked through the file system
//! and the log. Every test uses its own marker, so concurrent tests and other kernel
//! messages do not interfere.

use std::path::Path;

use homeostat_tests::{Running, test_plugins, wait_content, wait_for, write_graph};

/// Write one record at `level` (0-7) from user space.
fn inject(level: u8, message: &str) {
    std::fs::write("/dev/kmsg", format!("<{level}>{message}\n"))
        .expect("write /dev/kmsg (as root)");
}

fn available() -> bool {
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .is_ok();
    if !ok {
        eprintln!("skipped: /dev/kmsg is not writable here (the tests run as root in CI)");
    }
    ok
}

fn marker(test: &str) -> String {
    format!("homeostat-{test}-{}", std::process::id())
}

fn start(dir: &Path, yaml: &str) -> Running {
    let g = write_graph(
        dir,
        "graph.yaml",
        &yaml.replace("{dir}", &dir.display().to_string()),
    );
    let plugins = test_plugins();
    Running::start(&g, &["--plugin-dir", plugins.to_str().unwrap()])
}

#[test]
fn a_matching_record_reaches_a_file_through_send_recv() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = marker("chain");
    let r = start(
        dir.path(),
        &format!(
            r#"
graph: kmsg-chain
resources:
  kmsg:
  - name: warn
    match: "^{m}: "
    level: warning
  file:
  - name: report
    path: {{dir}}/last-warning
edges:
- from: {{kind: kmsg, name: warn}}
  to: {{kind: file, name: report}}
  send: {{line: content}}
"#
        ),
    );
    r.wait_log(&["file[report]: create empty file"]);
    inject(6, &format!("{m}: informational, filtered out by level"));
    inject(4, &format!("{m}: disk almost full"));
    wait_content(
        &dir.path().join("last-warning"),
        &format!("{m}: disk almost full"),
    );
    inject(3, &format!("{m}: disk full"));
    wait_content(&dir.path().join("last-warning"), &format!("{m}: disk full"));
    assert_eq!(r.count_log(&["informational"]), 0);
}

#[test]
fn a_matching_record_notifies_and_counts() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = marker("notify");
    let r = start(
        dir.path(),
        &format!(
            r#"
graph: kmsg-notify
resources:
  kmsg:
  - name: oops
    match: "^{m} oops"
  steer:
  - name: react
    state: {{dir}}/react
    change: refresh
edges:
- from: {{kind: kmsg, name: oops}}
  to: {{kind: steer, name: react}}
  notify: true
  send: {{count: in}}
"#
        ),
    );
    r.wait_log(&["steer react end"]);
    inject(4, &format!("{m} oops 1"));
    r.wait_log(&["steer react start refresh=true in=1"]);
    inject(4, &format!("{m} unrelated"));
    inject(4, &format!("{m} oops 2"));
    r.wait_log(&["steer react start refresh=true in=2"]);
}

#[test]
fn since_boot_sees_records_written_before_the_start() {
    if !available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = marker("boot");
    inject(4, &format!("{m}: before start"));
    let yaml = |since: &str| {
        format!(
            r#"
graph: kmsg-boot
resources:
  kmsg:
  - name: old
    match: "^{m}:"
    since: {since}
  file:
  - name: seen
    path: {{dir}}/seen
edges:
- from: {{kind: kmsg, name: old}}
  to: {{kind: file, name: seen}}
  send: {{line: content}}
"#
        )
    };
    let r = start(dir.path(), &yaml("boot"));
    wait_content(&dir.path().join("seen"), &format!("{m}: before start"));
    drop(r);
    // With the default `since: now`, the old record is not seen.
    std::fs::remove_file(dir.path().join("seen")).unwrap();
    let r = start(dir.path(), &yaml("now"));
    r.wait_log(&["file[seen]: create empty file"]);
    let later = wait_for(|| {
        std::thread::sleep(std::time::Duration::from_millis(300));
        Some(std::fs::read_to_string(dir.path().join("seen")).unwrap_or_default())
    });
    assert_eq!(later.as_deref(), Some(""));
}

//! Check-apply scenarios against the in-memory host: every run also proves that the
//! calls stay inside the footprint `validate` declares, that noop reports exactly what
//! apply then does without mutating anything, and that a second apply finds nothing.

use homeostat_sdk::Error;

use crate::apply::{Report, check_apply};
use crate::memfs::{Kind, ME, MemFs};
use crate::params::{Params, Spec};

fn spec(json: &str) -> Spec {
    let p: Params = serde_json::from_str(json).unwrap();
    Spec::from_params(&p).unwrap()
}

fn run(fs: &MemFs, json: &str, apply: bool) -> Result<Report, Error> {
    let spec = spec(json);
    fs.grant(spec.declare().grants);
    check_apply(fs, &spec, apply)
}

/// Noop, then apply, then apply again; returns the change lines.
#[track_caller]
fn converge(fs: &MemFs, json: &str) -> Vec<String> {
    let before = fs.snapshot();
    let noop = run(fs, json, false).unwrap();
    assert_eq!(fs.snapshot(), before, "noop changed the file system");
    assert_eq!(
        *fs.log.borrow(),
        Vec::<String>::new(),
        "noop made mutating calls"
    );
    let applied = run(fs, json, true).unwrap();
    assert_eq!(
        (&noop.changes, noop.size),
        (&applied.changes, applied.size),
        "noop and apply disagree"
    );
    assert!(applied.diffs.is_empty(), "apply computed diffs");
    let again = run(fs, json, true).unwrap();
    assert_eq!(
        again.changes,
        Vec::<String>::new(),
        "not converged after one apply"
    );
    fs.log.borrow_mut().clear();
    applied.changes
}

/// The check fails (in noop and apply alike) without touching anything.
#[track_caller]
fn fails(fs: &MemFs, json: &str) -> Error {
    let before = fs.snapshot();
    let noop = run(fs, json, false).unwrap_err();
    let applied = run(fs, json, true).unwrap_err();
    assert_eq!(noop, applied);
    assert_eq!(
        fs.snapshot(),
        before,
        "a failing check changed the file system"
    );
    applied
}

fn mode(fs: &MemFs, path: &str) -> u32 {
    fs.get(path).unwrap().mode
}

#[test]
fn creates_a_file_with_content_and_attrs() {
    let fs = MemFs::new();
    fs.dirs("/etc");
    let json = r#"{"path": "/etc/motd", "content": "hello\n", "mode": "0640", "owner": "root", "group": "staff"}"#;
    assert_eq!(
        converge(&fs, json),
        ["create file (6 bytes, mode 0640, owner 0, group 50)"]
    );
    assert_eq!(fs.text("/etc/motd"), "hello\n");
    let node = fs.get("/etc/motd").unwrap();
    assert_eq!((node.mode, node.uid, node.gid), (0o640, 0, 50));
    assert_eq!(run(&fs, json, false).unwrap().size, Some(6));
}

#[test]
fn rewrites_content_keeping_unmanaged_attrs() {
    let fs = MemFs::new();
    fs.file("/etc/motd", "old", 0o600, 0);
    let changes = converge(&fs, r#"{"path": "/etc/motd", "content": "new!\n"}"#);
    assert_eq!(changes, ["content: 3 bytes -> 5 bytes"]);
    assert_eq!(fs.text("/etc/motd"), "new!\n");
    let node = fs.get("/etc/motd").unwrap();
    assert_eq!((node.mode, node.uid, node.gid), (0o600, 0, 0));
}

#[test]
fn content_and_attrs_are_written_in_one_call() {
    let fs = MemFs::new();
    fs.file("/etc/motd", "old", 0o600, 0);
    let json = r#"{"path": "/etc/motd", "content": "new", "mode": "u=rw,go=r", "owner": 1000}"#;
    run(&fs, json, true).unwrap();
    assert_eq!(*fs.log.borrow(), ["write /etc/motd"]);
    fs.log.borrow_mut().clear();
    let fs = MemFs::new();
    fs.file("/etc/motd", "old", 0o600, 0);
    let changes = converge(&fs, json);
    assert_eq!(
        changes,
        [
            "content: 3 bytes -> 3 bytes",
            "mode 0600 -> 0644",
            "owner 0 -> 1000"
        ]
    );
    let node = fs.get("/etc/motd").unwrap();
    assert_eq!((node.mode, node.uid, node.gid), (0o644, 1000, 0));
}

#[test]
fn only_attrs_differ() {
    let fs = MemFs::new();
    fs.file("/etc/motd", "same", 0o600, 0);
    let json = r#"{"path": "/etc/motd", "content": "same", "mode": "644", "group": "staff"}"#;
    run(&fs, json, true).unwrap();
    assert_eq!(*fs.log.borrow(), ["set_attrs /etc/motd"]);
    fs.file("/etc/motd", "same", 0o600, 0);
    fs.log.borrow_mut().clear();
    assert_eq!(converge(&fs, json), ["mode 0600 -> 0644", "group 0 -> 50"]);
}

#[test]
fn ensures_existence_without_touching_content() {
    let fs = MemFs::new();
    fs.dirs("/var/lib");
    assert_eq!(
        converge(&fs, r#"{"path": "/var/lib/flag"}"#),
        ["create empty file"]
    );
    assert_eq!(fs.text("/var/lib/flag"), "");
    fs.file("/var/lib/flag", "data", 0o644, ME);
    assert_eq!(
        converge(&fs, r#"{"path": "/var/lib/flag"}"#),
        Vec::<String>::new()
    );
    assert_eq!(fs.text("/var/lib/flag"), "data");
    assert_eq!(
        run(&fs, r#"{"path": "/var/lib/flag"}"#, false)
            .unwrap()
            .size,
        Some(4)
    );
}

#[test]
fn unknown_owner_is_a_param_error() {
    let fs = MemFs::new();
    fs.dirs("/etc");
    let e = fails(
        &fs,
        r#"{"path": "/etc/motd", "content": "x", "owner": "nobody-here"}"#,
    );
    assert_eq!(e.field.as_deref(), Some("owner"));
    assert!(
        e.message.contains("no user named `nobody-here`"),
        "{}",
        e.message
    );
    let e = fails(&fs, r#"{"path": "/etc/motd", "group": "nogroup-here"}"#);
    assert_eq!(e.field.as_deref(), Some("group"));
}

#[test]
fn missing_parent_directory_is_explained() {
    let fs = MemFs::new();
    let json = r#"{"path": "/nope/motd", "content": "x"}"#;
    assert_eq!(
        run(&fs, json, false).unwrap().changes,
        ["create file (1 byte)"]
    );
    let e = run(&fs, json, true).unwrap_err();
    assert!(
        e.message
            .contains("no such file or directory; if the directory /nope does not exist"),
        "{}",
        e.message
    );
    assert!(e.message.contains("`/nope/`"), "{}", e.message);
}

#[test]
fn only_replacing_a_directory_needs_force() {
    let fs = MemFs::new();
    fs.file("/srv/data/a", "1", 0o644, ME);
    let e = fails(&fs, r#"{"path": "/srv/data", "content": "x"}"#);
    assert!(
        e.message.contains("is a directory, not a file"),
        "{}",
        e.message
    );
    assert!(e.message.contains("`force: true`"), "{}", e.message);
    let changes = converge(
        &fs,
        r#"{"path": "/srv/data", "content": "x", "force": true}"#,
    );
    assert_eq!(changes, ["replace directory with file (1 byte)"]);
    assert_eq!(fs.text("/srv/data"), "x");
    assert_eq!(fs.get("/srv/data/a"), None);

    // A file in the way of a directory destroys no tree: no force needed.
    let changes = converge(&fs, r#"{"path": "/srv/data/", "mode": "0750"}"#);
    assert_eq!(changes, ["replace file with directory (mode 0750)"]);
    assert_eq!(fs.get("/srv/data").unwrap().kind, Kind::Dir);

    let e = fails(
        &fs,
        r#"{"path": "/srv/data", "symlink": true, "source": "/x"}"#,
    );
    assert!(
        e.message.contains("is a directory, not a symlink"),
        "{}",
        e.message
    );
    let changes = converge(
        &fs,
        r#"{"path": "/srv/data", "symlink": true, "source": "/x", "force": true}"#,
    );
    assert_eq!(changes, ["replace directory with symlink -> /x"]);

    // A symlink in the way (e.g. drift) is replaced without force, as in Puppet.
    let changes = converge(&fs, r#"{"path": "/srv/data", "content": "x"}"#);
    assert_eq!(changes, ["replace symlink with file (1 byte)"]);
}

#[test]
fn absent() {
    let fs = MemFs::new();
    fs.file("/tmp/a", "abc", 0o644, ME);
    assert_eq!(
        converge(&fs, r#"{"path": "/tmp/a", "state": "absent"}"#),
        ["remove file (3 bytes)"]
    );
    assert_eq!(fs.get("/tmp/a"), None);
    assert_eq!(
        converge(&fs, r#"{"path": "/tmp/a", "state": "absent"}"#),
        Vec::<String>::new()
    );

    fs.link("/tmp/l", "/etc/motd");
    assert_eq!(
        converge(&fs, r#"{"path": "/tmp/l", "state": "absent"}"#),
        ["remove symlink -> /etc/motd"]
    );

    fs.dirs("/tmp/empty");
    assert_eq!(
        converge(&fs, r#"{"path": "/tmp/empty/", "state": "absent"}"#),
        ["remove empty directory"]
    );

    fs.file("/tmp/full/a", "1", 0o644, ME)
        .file("/tmp/full/b/c", "2", 0o644, ME);
    let e = fails(&fs, r#"{"path": "/tmp/full/", "state": "absent"}"#);
    assert!(
        e.message
            .contains("with 2 entries in it; set `force: true`"),
        "{}",
        e.message
    );
    let changes = converge(
        &fs,
        r#"{"path": "/tmp/full/", "state": "absent", "force": true}"#,
    );
    assert_eq!(changes, ["remove directory and the 2 entries in it"]);
    assert!(fs.snapshot().keys().all(|k| !k.starts_with("/tmp/full")));
}

#[test]
fn copies_a_file_from_source() {
    let fs = MemFs::new();
    fs.file("/srv/files/run.sh", "#!/bin/sh\n", 0o755, 0)
        .dirs("/usr/local/bin");
    let json = r#"{"path": "/usr/local/bin/run", "source": "/srv/files/run.sh"}"#;
    assert_eq!(
        converge(&fs, json),
        ["create file from /srv/files/run.sh (10 bytes, mode 0755)"]
    );
    assert_eq!(fs.text("/usr/local/bin/run"), "#!/bin/sh\n");
    assert_eq!(mode(&fs, "/usr/local/bin/run"), 0o755);

    // Drift in content is repaired; the existing mode is kept when `mode` is unset.
    fs.file("/usr/local/bin/run", "tampered", 0o700, ME);
    assert_eq!(
        converge(&fs, json),
        ["content: 8 bytes -> 10 bytes from /srv/files/run.sh"]
    );
    assert_eq!(mode(&fs, "/usr/local/bin/run"), 0o700);
    assert_eq!(run(&fs, json, false).unwrap().size, Some(10));
}

#[test]
fn source_problems_name_the_param() {
    let fs = MemFs::new();
    fs.dirs("/etc").dirs("/srv/dir");
    let e = fails(&fs, r#"{"path": "/etc/a", "source": "/srv/missing"}"#);
    assert_eq!(e.field.as_deref(), Some("source"));
    assert!(e.message.contains("does not exist"), "{}", e.message);
    let e = fails(&fs, r#"{"path": "/etc/a", "source": "/srv/dir"}"#);
    assert!(
        e.message
            .contains("is a directory; to copy a directory tree"),
        "{}",
        e.message
    );
    let e = fails(
        &fs,
        r#"{"path": "/etc/a/", "source": "/srv/missing/", "recurse": true}"#,
    );
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

fn source_tree(fs: &MemFs) {
    fs.file("/srv/app/app.conf", "conf", 0o640, 0)
        .file("/srv/app/bin/run", "#!", 0o755, 0)
        .link("/srv/app/current", "bin/run");
    fs.put("/srv/app/fifo", Kind::Fifo, 0o644, 0);
    fs.dirs("/etc");
}

#[test]
fn copies_a_tree() {
    let fs = MemFs::new();
    source_tree(&fs);
    let json =
        r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "owner": "www-data"}"#;
    assert_eq!(
        converge(&fs, json),
        [
            "create directory (mode 0755, owner 33)",
            "/etc/app/app.conf: create file from /srv/app/app.conf (4 bytes, mode 0640, owner 33)",
            "/etc/app/bin: create directory (mode 0755, owner 33)",
            "/etc/app/bin/run: create file from /srv/app/bin/run (2 bytes, mode 0755, owner 33)",
            "/etc/app/current: create symlink -> bin/run (owner 33)",
        ]
    );
    assert_eq!(fs.text("/etc/app/bin/run"), "#!");
    assert_eq!(
        fs.get("/etc/app/current").unwrap().kind,
        Kind::Link("bin/run".into())
    );
    assert_eq!(fs.get("/etc/app/current").unwrap().uid, 33);
    assert_eq!(fs.get("/etc/app/fifo"), None);
    assert!(
        fs.warnings
            .borrow()
            .iter()
            .all(|w| w.contains("/srv/app/fifo is a special file"))
    );

    // Drift below the top is repaired and named by its path.
    fs.file("/etc/app/bin/run", "changed", 0o755, 33);
    fs.put("/etc/app/app.conf", Kind::File(b"conf".to_vec()), 0o640, 0);
    assert_eq!(
        converge(&fs, json),
        [
            "/etc/app/app.conf: owner 0 -> 33",
            "/etc/app/bin/run: content: 7 bytes -> 2 bytes from /srv/app/bin/run",
        ]
    );
    assert_eq!(fs.text("/etc/app/bin/run"), "#!");

    // Without purge, extra entries stay.
    fs.file("/etc/app/extra", "x", 0o644, ME);
    assert_eq!(converge(&fs, json), Vec::<String>::new());
}

#[test]
fn purge_removes_what_source_lacks() {
    let fs = MemFs::new();
    source_tree(&fs);
    fs.file("/etc/app/extra", "x", 0o644, ME)
        .file("/etc/app/bin/old", "y", 0o644, ME);
    let json = r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "purge": true}"#;
    let changes = converge(&fs, json);
    assert!(
        changes.contains(&"/etc/app/extra: remove file (not in source)".to_string()),
        "{changes:?}"
    );
    assert!(
        changes.contains(&"/etc/app/bin/old: remove file (not in source)".to_string()),
        "{changes:?}"
    );
    assert_eq!(fs.get("/etc/app/extra"), None);

    // Directories are purged only with force.
    fs.file("/etc/app/olddir/f", "z", 0o644, ME);
    let e = fails(&fs, json);
    assert!(
        e.message
            .contains("purge would remove the directory /etc/app/olddir"),
        "{}",
        e.message
    );
    let forced = r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "purge": true, "force": true}"#;
    assert_eq!(
        converge(&fs, forced),
        ["/etc/app/olddir: remove directory (not in source)"]
    );
    assert_eq!(fs.get("/etc/app/olddir/f"), None);
}

#[test]
fn tree_mode_follows_puppet() {
    let fs = MemFs::new();
    source_tree(&fs);
    let json = r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "mode": "0640"}"#;
    converge(&fs, json);
    assert_eq!(mode(&fs, "/etc/app"), 0o750);
    assert_eq!(mode(&fs, "/etc/app/bin"), 0o750);
    assert_eq!(mode(&fs, "/etc/app/bin/run"), 0o640);
    assert_eq!(mode(&fs, "/etc/app/current"), 0o777);
}

#[test]
fn recurse_without_source_manages_attrs_below() {
    let fs = MemFs::new();
    fs.file("/var/www/index.html", "hi", 0o600, 0)
        .file("/var/www/img/a.png", "png", 0o600, 0);
    fs.link("/var/www/latest", "index.html");
    let json = r#"{"path": "/var/www/", "recurse": true, "mode": "0644", "owner": "www-data"}"#;
    assert_eq!(
        converge(&fs, json),
        [
            "owner 0 -> 33",
            "/var/www/img: owner 0 -> 33",
            "/var/www/img/a.png: mode 0600 -> 0644",
            "/var/www/img/a.png: owner 0 -> 33",
            "/var/www/index.html: mode 0600 -> 0644",
            "/var/www/index.html: owner 0 -> 33",
            "/var/www/latest: owner 1000 -> 33",
        ]
    );
    assert_eq!(mode(&fs, "/var/www/img"), 0o755);
    assert_eq!(fs.get("/var/www/latest").unwrap().uid, 33);
    assert_eq!(fs.text("/var/www/index.html"), "hi");
}

#[test]
fn noop_on_a_missing_tree_does_not_list_it() {
    let fs = MemFs::new();
    source_tree(&fs);
    let json = r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true}"#;
    let report = run(&fs, json, false).unwrap();
    assert_eq!(report.changes.len(), 5);
    assert_eq!(fs.get("/etc/app"), None);
}

#[test]
fn symlinks() {
    let fs = MemFs::new();
    fs.dirs("/etc/nginx/sites-enabled");
    let json = r#"{"path": "/etc/nginx/sites-enabled/site", "symlink": true, "source": "../sites-available/site"}"#;
    assert_eq!(
        converge(&fs, json),
        ["create symlink -> ../sites-available/site"]
    );
    let node = fs.get("/etc/nginx/sites-enabled/site").unwrap();
    assert_eq!(node.kind, Kind::Link("../sites-available/site".into()));

    fs.link("/etc/nginx/sites-enabled/site", "/elsewhere");
    assert_eq!(
        converge(&fs, json),
        ["symlink target: /elsewhere -> ../sites-available/site"]
    );

    let owned =
        r#"{"path": "/etc/nginx/sites-enabled/site", "symlink": true, "source": "/x", "owner": 0}"#;
    assert_eq!(
        converge(&fs, owned),
        [
            "symlink target: ../sites-available/site -> /x",
            "owner 1000 -> 0"
        ]
    );
    assert_eq!(fs.get("/etc/nginx/sites-enabled/site").unwrap().uid, 0);

    // A regular file where the link belongs is replaced without force (Puppet's rule:
    // only a directory in the way needs it).
    fs.file("/etc/nginx/sites-enabled/site", "a file", 0o644, 0);
    assert_eq!(
        converge(&fs, json),
        ["replace file with symlink -> ../sites-available/site"]
    );
}

#[test]
fn symbolic_mode_on_existing_and_new() {
    let fs = MemFs::new();
    fs.file("/usr/local/bin/tool", "x", 0o644, 0);
    let json = r#"{"path": "/usr/local/bin/tool", "mode": "a+x"}"#;
    assert_eq!(converge(&fs, json), ["mode 0644 -> 0755"]);
    let json = r#"{"path": "/usr/local/bin/new", "mode": "u=rwx,go=rx", "content": ""}"#;
    assert_eq!(converge(&fs, json), ["create file (0 bytes, mode 0755)"]);
}

#[test]
fn schema_matches_the_params() {
    use homeostat_sdk::Resource;
    let schema: serde_json::Value = serde_json::from_str(crate::File::SCHEMA).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["required"], serde_json::json!(["path"]));
    let props = schema["properties"].as_object().unwrap();
    let names: Vec<&str> = props.keys().map(String::as_str).collect();
    let mut expected = [
        "content", "force", "group", "mode", "owner", "path", "purge", "recurse", "source",
        "state", "symlink",
    ];
    expected.sort();
    let mut names = names;
    names.sort();
    assert_eq!(names, expected);
    for (name, prop) in props {
        assert!(
            prop["description"].as_str().is_some_and(|d| d.len() > 20),
            "{name} lacks a description"
        );
        assert!(prop.get("type").is_some(), "{name} lacks a type");
    }
    // Every documented property deserialises.
    let all = r#"{"path": "/a/", "state": "exists", "source": "/b/", "mode": "0644", "owner": "root",
        "group": 0, "recurse": true, "purge": true, "force": true, "symlink": false}"#;
    spec(all);
    // The manifest embeds the schema in a TOML ''' string.
    assert!(!crate::File::SCHEMA.contains("'''"));
}

#[test]
fn symbolic_mode_on_copies_starts_from_the_source() {
    let fs = MemFs::new();
    source_tree(&fs);
    let json =
        r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "mode": "u=rwX,go=rX"}"#;
    converge(&fs, json);
    assert_eq!(mode(&fs, "/etc/app/bin/run"), 0o755);
    assert_eq!(mode(&fs, "/etc/app/app.conf"), 0o644);
    assert_eq!(mode(&fs, "/etc/app/bin"), 0o755);
    // Existing entries start from their own bits.
    fs.put("/etc/app/app.conf", Kind::File(b"conf".to_vec()), 0o700, 0);
    assert_eq!(
        converge(&fs, json),
        ["/etc/app/app.conf: mode 0700 -> 0755"]
    );
}

#[test]
fn noop_shows_a_unified_diff_of_text_content() {
    let fs = MemFs::new();
    fs.dirs("/etc");
    fs.put(
        "/etc/motd",
        Kind::File(b"hello\nworld\n".to_vec()),
        0o644,
        0,
    );
    let json = r#"{"path": "/etc/motd", "content": "hello\nthere\n", "mode": "0600"}"#;
    let report = run(&fs, json, false).unwrap();
    assert_eq!(
        report.changes,
        ["content: 12 bytes -> 12 bytes", "mode 0644 -> 0600"]
    );
    assert_eq!(
        report.diffs,
        [(
            0,
            "--- /etc/motd\n+++ /etc/motd\n@@ -1,2 +1,2 @@\n hello\n-world\n+there\n".to_string()
        )]
    );
    // A new file diffs against nothing; binary content gets no diff.
    let report = run(&fs, r#"{"path": "/etc/new", "content": "a\n"}"#, false).unwrap();
    assert_eq!(report.diffs.len(), 1);
    assert!(
        report.diffs[0].1.ends_with("@@ -0,0 +1 @@\n+a\n"),
        "{:?}",
        report.diffs
    );
    fs.put("/etc/bin", Kind::File(vec![0xff, 0xfe]), 0o644, 0);
    let report = run(&fs, r#"{"path": "/etc/bin", "content": "text\n"}"#, false).unwrap();
    assert_eq!(report.changes.len(), 1);
    assert!(report.diffs.is_empty());
}

/// What `describe` says is at a path is a resource that converges with no change.
#[test]
fn a_description_declares_the_entry_as_it_is() {
    let fs = MemFs::new();
    fs.dirs("/etc/app");
    fs.file("/etc/app/conf", "a = 1\n", 0o640, ME);
    let describe = |path: &str| {
        let p: Params = serde_json::from_value(serde_json::json!({ "path": path })).unwrap();
        fs.grant(Spec::from_params(&p).unwrap().declare().grants);
        crate::describe::describe(&fs, path).unwrap()
    };
    let d = describe("/etc/app/conf");
    assert_eq!(
        d,
        serde_json::json!({"path": "/etc/app/conf", "content": "a = 1\n", "mode": "0640",
                           "owner": ME, "group": ME})
    );
    assert_eq!(converge(&fs, &d.to_string()), Vec::<String>::new());
    let dir = describe("/etc/app");
    assert_eq!(dir["path"], "/etc/app/");
    assert_eq!(converge(&fs, &dir.to_string()), Vec::<String>::new());
    assert_eq!(
        describe("/etc/none"),
        serde_json::json!({"path": "/etc/none", "state": "absent"})
    );
    // Not text: described by its attributes only.
    fs.put("/etc/app/bin", Kind::File(vec![0xff, 0xfe]), 0o755, 0);
    let bin = describe("/etc/app/bin");
    assert!(bin.get("content").is_none(), "{bin}");
    assert_eq!(converge(&fs, &bin.to_string()), Vec::<String>::new());
    fs.link("/etc/app/link", "conf");
    let link = describe("/etc/app/link");
    assert_eq!(
        link,
        serde_json::json!({"path": "/etc/app/link", "symlink": true, "source": "conf"})
    );
    assert_eq!(converge(&fs, &link.to_string()), Vec::<String>::new());
}

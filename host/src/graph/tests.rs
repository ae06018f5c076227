//! Tests of the whole module: parse → check_params → build, including the conformance cases
//! in `tests/cases/` (read at compile time, so these tests and the fixtures cannot drift).

use std::path::Path;

use serde_json::json;

use super::*;

/// A catalog with a `file` kind shaped like the file plugin's (path/content/state/mode…) and
/// an `exec` kind.
fn catalog() -> SchemaCatalog {
    let mut c = SchemaCatalog::new();
    let file = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "path": {"type": "string", "minLength": 1},
            "content": {"type": "string"},
            "state": {"type": "string", "enum": ["exists", "absent"]},
            "mode": {"type": "string"},
            "source": {"type": "string"},
            "symlink": {"type": "boolean"},
            "owner": {"type": ["string", "integer"]},
            "env": {"type": "object", "additionalProperties": false,
                    "properties": {"a": {"type": "string"}}}
        },
        "required": ["path"],
        "additionalProperties": false
    });
    let exec = json!({
        "type": "object",
        "properties": {"cmd": {"type": "string"}, "shell": {"type": "string"}},
        "required": ["cmd"],
        "additionalProperties": false
    });
    c.insert("file", &file).unwrap_or_else(|e| panic!("{e}"));
    c.insert("exec", &exec).unwrap_or_else(|e| panic!("{e}"));
    c
}

/// parse → check_params → path autoedges (parent directories of `path`) → build, as
/// `homeostat validate` does; `then` looks at the built graph.
fn validate_with<T>(text: &str, then: impl FnOnce(&Graph<'_>) -> T) -> Result<T, GraphErrors> {
    let doc = parse(Path::new("graph.yaml"), text)?;
    check_params(&doc, &catalog())?;
    let paths: Vec<(Vec<String>, Vec<String>)> = doc
        .resources
        .iter()
        .map(|r| {
            let path = r
                .params
                .get("path")
                .and_then(|p| p.as_str())
                .filter(|_| r.kind == "file");
            let parent = path
                .and_then(|p| Path::new(p).parent())
                .map(|p| p.display().to_string());
            (
                path.map(str::to_owned).into_iter().collect(),
                parent.into_iter().collect(),
            )
        })
        .collect();
    let decls: Vec<(Vec<String>, &[String])> = paths
        .iter()
        .map(|(managed, deps)| (managed.clone(), &deps[..]))
        .collect();
    Ok(then(&build(&doc, &path_autoedges(&decls))?))
}

fn validate(text: &str) -> Result<(), GraphErrors> {
    validate_with(text, |_| ())
}

/// The resource index of each `(from, to)` pair, for [`build`]; pairs naming a resource
/// that is not declared are dropped.
fn indices(doc: &GraphDoc, pairs: &[(ResId, ResId)]) -> Vec<(usize, usize)> {
    let at = |id: &ResId| doc.resources.iter().position(|r| r.id() == *id);
    pairs
        .iter()
        .filter_map(|(a, b)| Some((at(a)?, at(b)?)))
        .collect()
}

fn errors_of(text: &str) -> String {
    match validate(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Every non-empty line of `expected` must appear in the error output.
fn expect_case(name: &str, text: &str, expected: &str) {
    let out = match validate(text) {
        Ok(_) => panic!("case {name}: the graph was accepted"),
        Err(e) => e.to_string(),
    };
    for line in expected.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            out.contains(line),
            "case {name}: output does not contain {line:?}; it was:\n{out}"
        );
    }
}

macro_rules! cases {
    ($($test:ident => $dir:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            expect_case(
                $dir,
                include_str!(concat!("../../../tests/cases/", $dir, "/graph.yaml")),
                include_str!(concat!("../../../tests/cases/", $dir, "/expected-error.txt")),
            );
        }
    )*};
}

cases! {
    case_yaml_malformed => "yaml-malformed",
    case_yaml_bomb => "yaml-bomb",
    case_yaml_deep => "yaml-deep",
    case_unknown_top_level_key => "unknown-top-level-key",
    case_unknown_meta_key => "unknown-meta-key",
    case_duplicate_resource_name => "duplicate-resource-name",
    case_duplicate_key => "duplicate-key",
    case_dangling_edge => "dangling-edge",
    case_cycle => "cycle",
    case_edge_unknown_key => "edge-unknown-key",
    case_limit_without_burst => "limit-without-burst",
    case_sema_zero => "sema-zero",
    case_empty_name => "empty-name",
    case_retry_negative => "retry-negative",
    case_unknown_kind => "unknown-kind",
    case_meta_limit_out_of_range => "meta-limit-out-of-range",
    case_meta_durations_out_of_range => "meta-durations-out-of-range",
    case_meta_not_whole_numbers => "meta-not-whole-numbers",
    case_meta_burst_zero_with_limit => "meta-burst-zero-with-limit",
    case_resource_name_control_character => "resource-name-control-character",
    case_resource_name_outside_charset => "resource-name-outside-charset",
    case_edge_name_control_character => "edge-name-control-character",
    case_file_mode_unquoted_decimal => "file-mode-unquoted-decimal",
    case_yaml_tab_indent => "yaml-tab-indent",
    case_duplicate_edge_name => "duplicate-edge-name",
}

#[test]
fn case_names_valid() {
    let text = include_str!("../../../tests/cases/names-valid/graph.yaml");
    let doc = parse(Path::new("graph.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = doc.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "/tmp/homeostat-names-valid/motd",
            "web server: config=main, v1.2+build_3",
            "shared-key",
            "getty@tty1.service",
            "mnt-my\\x2ddata.mount",
        ]
    );
}

#[test]
fn numbers_at_the_edges_of_their_ranges() {
    let meta = |m: &str| {
        parse(
            Path::new("g.yaml"),
            &format!("graph: g\nresources:\n  file:\n  - {{name: a, path: /a, meta: {m}}}\n"),
        )
        .map(|doc| doc.resources[0].meta.clone())
        .map_err(|e| e.to_string())
    };
    let ok = |m: &str| meta(m).unwrap_or_else(|e| panic!("{m}: {e}"));
    assert_eq!(ok("{limit: 0.001, burst: 1}").limit, Some(0.001));
    assert_eq!(ok("{limit: 1000000, burst: 1000000}").limit, Some(1e6));
    assert_eq!(ok("{limit: .inf, burst: 0}").limit, None);
    assert_eq!(ok("{delay: 86400000}").delay, 86_400_000);
    assert_eq!(ok("{poll: 86400}").poll, 86_400);
    assert_eq!(ok("{timeout: 0}").timeout, None);
    assert_eq!(ok("{timeout: 86400000}").timeout, Some(86_400_000));
    assert_eq!(ok("{cpu: 1, memory: 4096}").memory, Some(4096));
    assert_eq!(ok("{retry: 2147483647}").retry, i32::MAX);
    assert_eq!(ok("{sema: [\"a:1000000\"]}").sema[0].count, 1_000_000);
    for (m, want) in [
        ("{limit: 0.0009, burst: 1}", "found 0.0009"),
        ("{limit: 1000001, burst: 1}", "found 1000001"),
        ("{limit: 5e-324, burst: 1}", "found 5e-324"),
        ("{limit: -1, burst: 1}", "found -1"),
        (
            "{limit: \"2\", burst: 1}",
            "found `2`, a string (write numbers without quotes)",
        ),
        ("{burst: 1000001}", "must be at most 1000000"),
        ("{delay: 86400001}", "must be at most 86400000"),
        (
            "{delay: 1e3}",
            "must be a whole number from 0 to 86400000, found 1000.0",
        ),
        ("{delay: 0x10}", "found a string"),
        (
            "{delay: 010}",
            "`010`, a string (YAML keeps a number with a leading zero as text)",
        ),
        ("{poll: 86401}", "must be at most 86400"),
        ("{timeout: -1}", "must not be negative"),
        ("{cpu: 86400001}", "must be at most 86400000"),
        ("{memory: 0}", "must be at least 1, found 0"),
        (
            "{retry: 2147483648}",
            "is too large (2147483648, at most 2147483647)",
        ),
        ("{retry: -2}", "found -2"),
        ("{retry: .nan}", "found .nan"),
        (
            "{retry: -9223372036854775809}",
            "`-9223372036854775809`, which is too large",
        ),
        ("{sema: [\"a:1000001\"]}", "must be at most 1000000"),
        ("{sema: [\"a:-1\"]}", "a whole number from 1 to 1000000"),
    ] {
        let e = meta(m).err().unwrap_or_else(|| panic!("{m} accepted"));
        assert!(e.contains(want), "{m}: want {want:?} in {e}");
        assert!(e.starts_with("g.yaml:4:"), "{m}: located: {e}");
    }
}

#[test]
fn case_hello_valid() {
    let text = include_str!("../../../tests/cases/hello-valid/graph.yaml");
    validate_with(text, hello_valid_graph).unwrap_or_else(|e| panic!("{e}"));
    let doc = parse(Path::new("graph.yaml"), text).unwrap_or_else(|e| panic!("{e}"));
    let shared = doc
        .resources
        .iter()
        .find(|r| r.name == "shared")
        .unwrap_or_else(|| panic!("shared"));
    assert!(shared.exported);
    assert_eq!(shared.meta.export, ["*"]);
    assert_eq!(doc.collect[0].pattern, "/tmp/homeostat-hello-valid/");
    assert_eq!(issue_timeout(&doc), Some(10_000));
}

fn hello_valid_graph(g: &Graph<'_>) {
    assert_eq!(g.name(), "hello-valid");
    // The exported resource is not a vertex.
    assert_eq!(
        g.topo_order(),
        [
            ResId::new("file", "dir"),
            ResId::new("file", "motd"),
            ResId::new("file", "issue"),
        ]
    );
    let motd = g
        .get(&ResId::new("file", "motd"))
        .unwrap_or_else(|| panic!("motd"));
    assert_eq!(motd.meta.retry, 3);
    assert_eq!(motd.meta.limit, Some(2.5));
    assert_eq!(
        motd.meta.sema,
        [
            Semaphore {
                id: "io".into(),
                count: 1
            },
            Semaphore {
                id: "disk".into(),
                count: 2
            }
        ]
    );
    let issue = ResId::new("file", "issue");
    let preds: Vec<(String, bool, bool)> = g
        .predecessors(&issue)
        .map(|(d, e)| (d.name.clone(), e.notify, e.auto))
        .collect();
    assert_eq!(
        preds.len(),
        2,
        "explicit edge from motd and autoedge from dir: {preds:?}"
    );
    assert!(preds.contains(&("motd".into(), true, false)));
    assert!(preds.contains(&("dir".into(), false, true)));
    let succ: Vec<String> = g
        .successors(&ResId::new("file", "dir"))
        .map(|(d, _)| d.name.clone())
        .collect();
    assert_eq!(succ.len(), 2);
}

fn issue_timeout(doc: &GraphDoc) -> Option<u64> {
    doc.resources
        .iter()
        .find(|r| r.name == "issue")
        .and_then(|r| r.meta.timeout)
}

#[test]
fn locations_of_params() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - name: motd\n    path: /etc/motd\n    mode: \"0644\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &doc.resources[0];
    assert_eq!(r.loc.to_string(), "g.yaml:4:5");
    assert_eq!(r.loc_of(Some("mode")).to_string(), "g.yaml:6:5");
    assert_eq!(r.value_loc_of(Some("mode")).to_string(), "g.yaml:6:11");
    assert_eq!(r.loc_of(Some("mode.x")).to_string(), "g.yaml:6:5");
    assert_eq!(r.loc_of(Some("nope")).to_string(), "g.yaml:4:5");
    assert_eq!(r.loc_of(None).to_string(), "g.yaml:4:5");
    assert_eq!(r.params["mode"], json!("0644"));
    assert_eq!(r.meta, Meta::default());
}

#[test]
fn unquoted_leading_zero_mode_stays_a_string() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - {name: a, path: /a, mode: 0644, n: 10, f: 1.5, b: true}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = &doc.resources[0].params;
    assert_eq!(p["mode"], json!("0644"));
    assert_eq!(p["n"], json!(10));
    assert_eq!(p["f"], json!(1.5));
    assert_eq!(p["b"], json!(true));
}

#[test]
fn schema_errors_point_at_params() {
    let out = errors_of(
        "graph: g\nresources:\n  file:\n  - name: motd\n    pathh: /etc/motd\n    state: exist\n",
    );
    assert!(
        out.contains("graph.yaml:5:5: unknown param `pathh` for kind `file` in file[motd]; did you mean `path`?"),
        "{out}"
    );
    assert!(
        out.contains("graph.yaml:6:12: file[motd]: invalid param `state`"),
        "{out}"
    );
    assert!(
        out.contains("graph.yaml:4:5: file[motd] is missing required param `path`"),
        "{out}"
    );
    let out = errors_of(
        "graph: g\nresources:\n  file:\n  - name: m\n    path: /m\n    env: {a: x, b: y}\n",
    );
    assert!(
        out.contains("graph.yaml:6:10: file[m]: param `env` has unknown key(s) `b`"),
        "{out}"
    );
    let out = errors_of(
        "graph: g\nresources:\n  file:\n  - name: m\n    path: /m\n    mode: 644\n    symlink: yes\n",
    );
    assert!(
        out.contains("graph.yaml:6:11: file[m]: invalid param `mode`: 644 is not of type \"string\" (quote it to make it a string)"),
        "{out}"
    );
    assert!(
        out.contains("graph.yaml:7:14: file[m]: invalid param `symlink`: \"yes\" is not of type \"boolean\" (write `true` or `false`"),
        "{out}"
    );
}

#[test]
fn all_errors_reported_sorted() {
    let out = errors_of(
        "graph: g\nbogus: 1\nresources:\n  file:\n  - name: a\n    path: /a\n    meta: {retry: -5, noop: 1}\n  - path: /b\n",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("graph.yaml:2:1: unknown key `bogus`"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("graph.yaml:7:19: meta `retry`"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("graph.yaml:7:29: meta `noop`"),
        "{out}"
    );
    assert!(
        lines[3].starts_with("graph.yaml:8:5: this `file` resource has no `name:`"),
        "{out}"
    );
}

#[test]
fn structural_errors() {
    for (text, want) in [
        ("", "graph.yaml:1:1: the graph file is empty"),
        ("- a\n", "graph.yaml:1:1: a graph file must be a mapping"),
        ("resources: {}\n", "graph.yaml:1:1: missing `graph:`"),
        (
            "graph: [x]\n",
            "graph.yaml:1:8: `graph` (the graph's name) must be a string",
        ),
        (
            "graph: g\nresources:\n  file:\n  - name: 80\n    path: /a\n",
            "graph.yaml:4:11: `name` must be a string, found an integer (quote it",
        ),
        (
            "graph: g\nresources:\n  file:\n  - name: \"@@\"\n    path: /a\n",
            "graph.yaml:4:11: `name` is just the export marker",
        ),
        (
            "graph: g\nresources:\n  file:\n  - {name: a, path: /a, meta: {retryreset: true}}\n",
            "metaparam `retryreset` of file[a] is an mgmt metaparam",
        ),
        (
            "graph: g\nresources:\n  file:\n  - {name: a, path: /a, meta: {sema: [\"x:y\"]}}\n",
            "the count after `:` must be a whole number",
        ),
        (
            "graph: g\nedges:\n- {from: {kind: file}, to: {kind: file, name: b, nme: c}}\n",
            "graph.yaml:3:10: `from` of edge #1 needs `name`",
        ),
        (
            "graph: g\nedges:\n- {from: {kind: file}, to: {kind: file, name: b, nme: c}}\n",
            "graph.yaml:3:50: unknown key `nme` in `to` of edge #1; did you mean `name`?",
        ),
        (
            "graph: g\nedges:\n- name: e\n  from: {kind: file, name: a}\n",
            "graph.yaml:3:3: edge `e` needs `to`",
        ),
        (
            "graph: g\ncollect:\n- {kind: exec, hosts: []}\n",
            "graph.yaml:3:23: `hosts` of collect entry #1 is empty: it would collect nothing",
        ),
        (
            "graph: g\ncollect:\n- {kind: exec, hosts: web1}\n",
            "graph.yaml:3:23: `hosts` of collect entry #1 must be a list, found",
        ),
        (
            "graph: g\ncollect:\n- {kind: exec, hosts: [web1, \"\"]}\n",
            "graph.yaml:3:30: a host in `hosts` of collect entry #1",
        ),
        (
            "graph: g\ncollect:\n- {pattern: /x, kid: file}\n",
            "graph.yaml:3:17: unknown key `kid` in collect entry #1; did you mean `kind`?",
        ),
        (
            "graph: g\nresources:\n  file:\n  - {name: a, path: /a, x: .inf}\n",
            "graph.yaml:4:28: param `x`: inf cannot be passed",
        ),
        (
            "graph: g\nremote: 22\n",
            "graph.yaml:2:9: `remote` (an ssh:// URL) must be a string, found",
        ),
        (
            "graph: g\n---\ngraph: h\n",
            "graph.yaml:2:1: a graph file holds one YAML document",
        ),
        ("graph: !custom g\n", "unsupported YAML tag `!custom`"),
    ] {
        let out = match parse(Path::new("graph.yaml"), text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        };
        assert!(out.contains(want), "want {want:?} in:\n{out}");
    }
}

#[test]
fn meta_values() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nd: &d {retry: 2}\nresources:\n  file:\n  - name: a\n    path: /a\n    meta:\n      <<: *d\n      noop: true\n      delay: 5\n      poll: 7\n      limit: .inf\n      timeout: 0\n      rewatch: true\n      autoedge: false\n      hidden: true\n",
    );
    // `d` is an unknown top-level key, but the merge still works; check the message.
    let e = doc.err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.len(), 1, "{e}");
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - name: a\n    path: /a\n    meta:\n      noop: true\n      retry: 2\n      delay: 5\n      poll: 7\n      limit: .inf\n      timeout: 0\n      rewatch: true\n      autoedge: false\n      hidden: true\n      sensitive: true\n      tags: [web, \"db 2\"]\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = &doc.resources[0].meta;
    let want = Meta {
        noop: true,
        retry: 2,
        delay: 5,
        poll: 7,
        limit: None,
        timeout: None,
        rewatch: true,
        autoedge: false,
        hidden: true,
        sensitive: true,
        tags: vec!["web".into(), "db 2".into()],
        ..Meta::default()
    };
    assert_eq!(m, &want);
}

#[test]
fn unknown_kinds_and_collect() {
    let out = errors_of(
        "graph: g\nresources:\n  fiel:\n  - {name: a, path: /a}\ncollect:\n- {kind: exce}\n",
    );
    assert!(
        out.contains("graph.yaml:3:3: unknown resource kind `fiel`; did you mean `file`? (known kinds: exec, file)"),
        "{out}"
    );
    assert!(
        out.contains(
            "graph.yaml:6:10: cannot collect: unknown resource kind `exce`; did you mean `exec`?"
        ),
        "{out}"
    );
}

#[test]
fn edges_to_exported_or_missing_resources() {
    let out = errors_of(
        "graph: g\nresources:\n  file:\n  - {name: a, path: /a}\n  - {name: \"@@b\", path: /b}\nedges:\n- {from: {kind: file, name: a}, to: {kind: file, name: b}}\n- {from: {kind: fil, name: a}, to: {kind: exec, name: a}}\n",
    );
    assert!(
        out.contains("graph.yaml:7:37: `to` of edge #1 is file[b], an exported resource"),
        "{out}"
    );
    assert!(out.contains("graph.yaml:8:10: `from` of edge #2 refers to fil[a], which is not declared in this graph; did you mean file[a]?"), "{out}");
    assert!(out.contains("`to` of edge #2 refers to exec[a], which is not declared in this graph (no resource of kind `exec` is declared)"), "{out}");
}

#[test]
fn duplicate_edges_and_self_loops() {
    let out = errors_of(
        "graph: g\nresources:\n  file:\n  - {name: a, path: /a}\n  - {name: b, path: /b}\nedges:\n- {from: {kind: file, name: a}, to: {kind: file, name: b}}\n- {from: {kind: file, name: a}, to: {kind: file, name: b}}\n- {from: {kind: file, name: b}, to: {kind: file, name: b}}\n",
    );
    assert!(out.contains("graph.yaml:8:3: edge #2 repeats the edge file[a] -> file[b] already declared at graph.yaml:7:3"), "{out}");
    assert!(
        out.contains("graph.yaml:5:5: cycle: file[b] -> file[b] (file[b] at graph.yaml:5:5)"),
        "{out}"
    );
}

#[test]
fn autoedges_respect_meta_and_explicit_edges() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - {name: d, path: /d/}\n  - {name: a, path: /d/a}\n  - {name: b, path: /d/b, meta: {autoedge: false}}\n  - {name: c, path: /d/c}\nedges:\n- {from: {kind: file, name: d}, to: {kind: file, name: c}, notify: true}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let id = |n: &str| ResId::new("file", n);
    let auto = vec![
        (id("d"), id("a")),
        (id("d"), id("a")),
        (id("d"), id("b")),
        (id("d"), id("c")),
        (id("a"), id("a")),
        (id("x"), id("a")),
    ];
    let auto = indices(&doc, &auto);
    let g = build(&doc, &auto).unwrap_or_else(|e| panic!("{e}"));
    let edges: Vec<String> = g
        .edges()
        .map(|(a, b, e)| format!("{} {} {} {}", a.id(), b.id(), e.notify, e.auto))
        .collect();
    assert_eq!(
        edges,
        ["file[d] file[c] true false", "file[d] file[a] false true"]
    );
    assert_eq!(g.topo_order()[0], id("d"));
    assert_eq!(g.index_of(&id("b")).map(|_| ()), Some(()));
    assert!(g.contains(&id("b")));
    assert_eq!(g.predecessors(&id("zzz")).count(), 0);
}

#[test]
fn cycle_through_an_autoedge_says_so() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - {name: d, path: /d/}\n  - {name: a, path: /d/a}\nedges:\n- {from: {kind: file, name: a}, to: {kind: file, name: d}}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let auto = vec![(ResId::new("file", "d"), ResId::new("file", "a"))];
    let out = build(&doc, &indices(&doc, &auto))
        .err()
        .unwrap_or_else(|| panic!("accepted"))
        .to_string();
    assert!(
        out.starts_with("g.yaml:4:5: cycle: file[d] -> file[a] -> file[d] (file[d] at g.yaml:4:5, file[a] at g.yaml:5:5); the edge file[d] -> file[a] is added automatically"),
        "{out}"
    );
}

#[test]
fn topological_order_is_stable() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  file:\n  - {name: c, path: /c}\n  - {name: b, path: /b}\n  - {name: a, path: /a}\nedges:\n- {from: {kind: file, name: a}, to: {kind: file, name: c}}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let g = build(&doc, &[]).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = g.vertices().map(|r| r.name.clone()).collect();
    assert_eq!(names, ["b", "a", "c"]);
}

#[test]
fn huge_input_is_rejected() {
    let text = format!("graph: g\ncomment: \"{}\"\n", "x".repeat(yaml::MAX_BYTES));
    let out = parse(Path::new("g.yaml"), &text)
        .err()
        .unwrap_or_else(|| panic!("accepted"))
        .to_string();
    assert!(out.starts_with("g.yaml:1:1: graph file is"), "{out}");
}

#[test]
fn plugin_validate_errors_can_point_at_a_field() {
    let doc = parse(
        Path::new("g.yaml"),
        "graph: g\nresources:\n  exec:\n  - name: x\n    cmd: echo\n    shell: /bin/nope\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &doc.resources[0];
    let e = GraphError::Param {
        loc: r.value_loc_of(Some("shell")),
        message: format!("{}: `shell` /bin/nope does not exist", r.id()),
    };
    assert_eq!(
        e.to_string(),
        "g.yaml:6:12: exec[x]: `shell` /bin/nope does not exist"
    );
    assert_eq!(e.location().line, 6);
}

#[test]
fn long_cycles_are_abbreviated() {
    let mut text = String::from("graph: g\nresources:\n  file:\n");
    for i in 0..30 {
        text.push_str(&format!("  - {{name: r{i}, path: /r{i}}}\n"));
    }
    text.push_str("edges:\n");
    for i in 0..30 {
        text.push_str(&format!(
            "- {{from: {{kind: file, name: r{i}}}, to: {{kind: file, name: r{}}}}}\n",
            (i + 1) % 30
        ));
    }
    let out = errors_of(&text);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("graph.yaml:4:5: cycle: file[r0] -> file[r1] -> file[r2] -> file[r3] -> file[r4] -> file[r5] -> … (18 more) … -> file[r24]"),
        "{out}"
    );
    assert!(
        out.contains("file[r29] -> file[r0] (file[r0] at graph.yaml:4:5"),
        "{out}"
    );
}

#[test]
fn many_dangling_edges_are_all_reported() {
    let mut text = String::from("graph: g\nresources:\n  file:\n");
    for i in 0..2000 {
        text.push_str(&format!("  - {{name: r{i}, path: /r{i}}}\n"));
    }
    text.push_str("edges:\n");
    for i in 0..2000 {
        text.push_str(&format!(
            "- {{from: {{kind: file, name: r{i}}}, to: {{kind: file, name: x{i}}}}}\n"
        ));
    }
    let doc = parse(Path::new("g.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let e = check_params(&doc, &catalog())
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.len(), 2000);
    assert!(
        e.0[0].message().contains("did you mean file[r0]?"),
        "{}",
        e.0[0]
    );
    assert!(
        !e.0[1999].message().contains("did you mean"),
        "{}",
        e.0[1999]
    );
}

#[test]
fn long_lists_convert_in_order_with_every_error() {
    // Long enough to be converted on two threads: with `bad`, errors in both halves, and a
    // duplicate in the second half of a name from the first.
    let list = |bad: bool| {
        let mut text = String::from("graph: g\nresources:\n  file:\n");
        for i in 0..3000 {
            let name = match i {
                2500 if bad => "r7".to_owned(),
                _ => format!("r{i}"),
            };
            let retry = if bad && (i == 10 || i == 2900) {
                "x"
            } else {
                "1"
            };
            text.push_str(&format!(
                "  - {{name: {name}, path: /r{i}, meta: {{retry: {retry}}}}}\n"
            ));
        }
        text
    };
    let e = parse(Path::new("g.yaml"), &list(true))
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    let got: Vec<String> = e.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "g.yaml:14:43: meta `retry` of file[r10] must be -1 (retry forever) or a count of 0 \
             or more, found a string",
            "g.yaml:2504:6: duplicate resource file[r7]: a file named `r7` is already declared \
             at g.yaml:11:6",
            "g.yaml:2904:47: meta `retry` of file[r2900] must be -1 (retry forever) or a count \
             of 0 or more, found a string",
        ]
    );
    let doc = parse(Path::new("g.yaml"), &list(false)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = doc.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names.len(), 3000);
    assert_eq!(
        (names[0], names[1500], names[2999]),
        ("r0", "r1500", "r2999")
    );
}

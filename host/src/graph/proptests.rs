//! Property tests of the graph loader. Generated inputs go through the fuzzing oracle
//! ([`super::fuzzing::graph_loader`]), which never panics on any input and checks that
//! refused graphs have located errors and accepted ones have names and numbers in range:
//! graphs with hostile names, numbers and metaparams; arbitrary YAML structures; those
//! graphs with a tab, a stray byte or a cut; and raw bytes. Graphs valid by construction
//! must be accepted. Case counts are small so the suite stays fast; the `cargo fuzz`
//! target (`fuzz/`) runs the same oracle for as long as you like.

use std::fmt::Write;

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::fuzzing::{Outcome, graph_loader};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// A YAML double-quoted scalar holding `s` (JSON strings are valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("{e}"))
}

/// Numbers as YAML spells them, with every edge case of the metaparams' ranges.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "0", "-1", "1", "2", "-2", "1.5", "2.0", "1e-300", "1e30", "-1e30", ".nan", ".NaN",
            ".inf", "-.inf", "+.inf", "18446744073709551615", "18446744073709551616",
            "99999999999999999999999", "-9223372036854775809", "0644", "0o17", "0x10", "-0",
            "+5", "4096", "4097", "86400", "86401", "86400000", "86400001", "0.001",
            "0.0009", "1000000", "1000001", "2147483647", "2147483648", "4294967295",
            "4294967296", "5e-324", "1.7976931348623157e308", "1e", ".", "0.", "!!int 0o644",
            "!!float 1", "!!str 5", "\"7\"",
        ]).prop_map(str::to_owned),
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| format!("{f:e}")),
    ]
}

/// Names: mostly valid, sometimes with a control character, a bracket, a non-ASCII letter.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z][a-z0-9-]{0,6}",
        2 => "[ -~]{0,12}",
        2 => prop::sample::select(vec![
            "", "@@", "@@x", "a\nb", "a\u{1b}[31m", "café", "a[b]", "\t", "a\u{7f}", "a\0",
            "a\r", " ", "a\u{200b}b", "getty@tty1.service", "/etc/motd", "a:b=c,d+e",
            "mnt-my\\x2ddata.mount", "\u{202e}evil",
        ]).prop_map(str::to_owned),
        1 => any::<String>(),
    ]
}

/// Any scalar: a number, a quoted name, a plain word, a boolean or null.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        number(),
        name().prop_map(|n| quoted(&n)),
        "[a-z]{1,6}",
        prop::sample::select(vec!["true", "false", "null", "~", "yes", ""]).prop_map(str::to_owned),
    ]
}

/// A `meta:` flow mapping of known, mgmt-only and unknown keys with any values.
fn meta() -> impl Strategy<Value = String> {
    // Every key homeostat knows, one mgmt has and homeostat does not, a misspelling and
    // an empty key.
    let keys: Vec<&str> = super::doc::META_KEYS
        .iter()
        .copied()
        .chain(["retryreset", "retries", ""])
        .collect();
    let key = prop::sample::select(keys);
    let sema = prop::collection::vec(
        (name(), prop::option::of(number())).prop_map(|(id, count)| match count {
            Some(c) => quoted(&format!("{id}:{c}")),
            None => quoted(&id),
        }),
        0..3,
    )
    .prop_map(|items| format!("[{}]", items.join(", ")));
    let value = prop_oneof![4 => scalar(), 1 => sema];
    prop::collection::vec((key, value), 0..6).prop_map(|entries| {
        let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("{{{}}}", body.join(", "))
    })
}

/// One resource entry (block style, under a kind's list), with its name.
fn resource() -> impl Strategy<Value = (String, String)> {
    let path = prop_oneof![
        "/tmp/hs-prop/[a-z]{1,3}(/[a-z]{1,3}){0,2}/?",
        "[a-z/.]{0,8}",
        Just("/".to_owned()),
        Just("/tmp/hs-prop/../x".to_owned()),
    ];
    let mode = prop_oneof![
        number(),
        prop::sample::select(vec!["\"0644\"", "u=rw,go=r", "\"9999\"", "0o644", "0x1a4"])
            .prop_map(str::to_owned),
    ];
    (
        name(),
        prop::option::of(path),
        prop::option::of(prop::sample::select(vec![
            "exists", "absent", "running", "bogus",
        ])),
        prop::option::of(mode),
        prop::option::of(meta()),
        prop::option::of(("[a-z]{1,6}", scalar())),
    )
        .prop_map(|(name, path, state, mode, meta, extra)| {
            let mut s = format!("  - name: {}\n", quoted(&name));
            if let Some(p) = path {
                let _ = writeln!(s, "    path: {}", quoted(&p));
            }
            if let Some(st) = state {
                let _ = writeln!(s, "    state: {st}");
            }
            if let Some(m) = mode {
                let _ = writeln!(s, "    mode: {m}");
            }
            if let Some(m) = meta {
                let _ = writeln!(s, "    meta: {m}");
            }
            if let Some((k, v)) = extra {
                let _ = writeln!(s, "    {k}: {v}");
            }
            (name, s)
        })
}

/// A whole graph in mgmt's shape: resources of bundled and unknown kinds, edges between
/// names that mostly exist (and share names sometimes), and collects.
fn graph() -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec!["file", "file", "file", "exec", "svc", "fiel"]);
    let resources = prop::collection::vec((kind, resource()), 0..6);
    let edge = (
        prop::option::of(prop::sample::select(vec!["e1", "e2", "e1", "\"e\\n\""])),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
        prop::option::of(Just("{path: content}")),
    );
    (
        name(),
        resources,
        prop::collection::vec(edge, 0..4),
        prop::option::of(prop::sample::select(vec!["file", "svc", "nope"])),
    )
        .prop_map(|(graph_name, resources, edges, collect)| {
            let mut s = format!("graph: {}\nresources:\n", quoted(&graph_name));
            let mut names = Vec::new();
            for (kind, (name, text)) in &resources {
                let _ = write!(s, "  {kind}:\n{text}");
                names.push((*kind, name.clone()));
            }
            if !edges.is_empty() {
                s.push_str("edges:\n");
            }
            for (edge_name, from, to, notify, send) in edges {
                let endpoint = |i: prop::sample::Index| {
                    if names.is_empty() {
                        return "{kind: file, name: nobody}".to_owned();
                    }
                    let (k, n) = &names[i.index(names.len())];
                    format!("{{kind: {k}, name: {}}}", quoted(n))
                };
                s.push_str("- ");
                if let Some(n) = edge_name {
                    let _ = write!(s, "name: {n}\n  ");
                }
                let _ = writeln!(s, "from: {}\n  to: {}", endpoint(from), endpoint(to));
                if notify {
                    s.push_str("  notify: true\n");
                }
                if let Some(send) = send {
                    let _ = writeln!(s, "  send: {send}");
                }
            }
            if let Some(kind) = collect {
                let _ = write!(s, "collect:\n- {{kind: {kind}, pattern: /tmp/}}\n");
            }
            s
        })
}

/// Arbitrary YAML structures in flow style, keyed mostly by the graph format's own keys.
fn yaml_value() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        prop::sample::select(vec![
            "graph",
            "resources",
            "edges",
            "collect",
            "comment",
            "file",
            "exec",
            "name",
            "path",
            "meta",
            "from",
            "to",
            "kind",
            "send",
            "notify",
            "limit",
            "<<",
        ])
        .prop_map(str::to_owned),
        name().prop_map(|n| quoted(&n)),
    ];
    scalar().prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|entries| {
                let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

/// A graph valid by construction, and how many of its resources are vertices: unique
/// names using the whole name alphabet, distinct absolute paths (directories first, files
/// inside them after), metaparams at the edges of their ranges, edges only forwards.
fn valid_graph() -> impl Strategy<Value = (String, usize)> {
    let meta = prop::sample::select(vec![
        "{}",
        "{retry: -1, delay: 86400000}",
        "{retry: 2147483647, delay: 0, poll: 86400}",
        "{limit: 0.001, burst: 1}",
        "{limit: 1000000, burst: 1000000}",
        "{limit: .inf, burst: 0}",
        "{timeout: 0, cpu: 1, memory: 1}",
        "{timeout: 86400000, cpu: 86400000, memory: 4096}",
        "{sema: [\"io\", \"disk:1000000\"]}",
        "{noop: true, hidden: false, autoedge: false, rewatch: true, export: [\"*\"]}",
    ]);
    let name = "[a-zA-Z0-9][a-zA-Z0-9 _.:@/+=,\\\\-]{0,10}";
    let file = (
        name,
        prop::sample::select(vec![
            "",
            "    mode: 0644\n",
            "    mode: 0o750\n",
            "    mode: \"u=rw\"\n",
        ]),
        meta,
        any::<bool>(),
    );
    (
        prop::collection::vec(file, 1..8),
        prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(files, edges, exported_last)| {
            let mut s = String::from("graph: \"valid, by construction\"\nresources:\n  file:\n");
            let n = files.len();
            // Names made unique by their position; file `i` sits in directory `i - 1`.
            let names: Vec<String> = files
                .iter()
                .enumerate()
                .map(|(i, (name, ..))| format!("{i}-{}", name.trim_end()))
                .collect();
            for (i, (_, mode, meta, absent)) in files.iter().enumerate() {
                let exported = exported_last && i == n - 1 && n > 1;
                let dir = if i + 1 < n { "/" } else { "" };
                let path: String = (0..=i).map(|d| format!("/d{d}")).collect();
                let name = if exported {
                    format!("@@{}", names[i])
                } else {
                    names[i].clone()
                };
                let _ = writeln!(s, "  - name: {}\n    path: /tmp/hs-prop{path}{dir}", quoted(&name));
                if *absent && i + 1 == n {
                    s.push_str("    state: absent\n");
                } else {
                    s.push_str(mode);
                }
                let _ = writeln!(s, "    meta: {meta}");
            }
            let vertices = if exported_last && n > 1 { n - 1 } else { n };
            let mut seen = std::collections::HashSet::new();
            let mut edge_lines = String::new();
            for (a, b) in edges {
                let (a, b) = (a.index(vertices), b.index(vertices));
                if a < b && seen.insert((a, b)) {
                    let _ = write!(
                        edge_lines,
                        "- name: \"e {a}-{b}\"\n  from: {{kind: file, name: {}}}\n  to: {{kind: file, name: {}}}\n",
                        quoted(&names[a]),
                        quoted(&names[b])
                    );
                }
            }
            if !edge_lines.is_empty() {
                s.push_str("edges:\n");
                s.push_str(&edge_lines);
            }
            (s, vertices)
        })
}

/// `text` with `insert` put at a position picked by `at` (on a character boundary).
fn insert_at(text: &str, at: prop::sample::Index, insert: &[u8]) -> Vec<u8> {
    let boundaries: Vec<usize> = (0..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    let i = boundaries[at.index(boundaries.len())];
    let mut bytes = text.as_bytes()[..i].to_vec();
    bytes.extend_from_slice(insert);
    bytes.extend_from_slice(&text.as_bytes()[i..]);
    bytes
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn generated_graphs_never_panic(text in graph()) {
        graph_loader(text.as_bytes());
    }

    #[test]
    fn yaml_structures_never_panic(value in yaml_value(), top in any::<bool>()) {
        let text = if top { format!("graph: g\nresources: {value}\n") } else { value };
        graph_loader(text.as_bytes());
    }

    #[test]
    fn mutated_graphs_never_panic(
        text in graph(),
        at in any::<prop::sample::Index>(),
        insert in prop_oneof![
            Just(b"\t".to_vec()),
            Just(b"\n\t".to_vec()),
            Just(vec![0xFF]),
            Just(vec![0xC3]),
            Just(b"\0".to_vec()),
            Just(b": ".to_vec()),
            Just(b"&a *a".to_vec()),
            prop::collection::vec(any::<u8>(), 0..4),
        ],
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = insert_at(&text, at, &insert);
        if truncate {
            let keep = cut.index(bytes.len() + 1);
            bytes.truncate(keep);
        }
        graph_loader(&bytes);
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        graph_loader(&bytes);
    }

    #[test]
    fn valid_graphs_are_accepted((text, vertices) in valid_graph()) {
        match graph_loader(text.as_bytes()) {
            Outcome::Built(n) => prop_assert_eq!(n, vertices, "{}", text),
            other => prop_assert!(false, "refused:\n{}\n{:?}", text, other),
        }
    }
}

/// Inputs the fuzz target found, kept as regressions.
#[test]
fn fuzz_findings() {
    // A lone `\r` ends a line for YAML: the error's line is the 9th, not past the end.
    let e = match graph_loader(b"\n\r\r\r\r\r\r\r]\r\r") {
        Outcome::Unparsed(e) => e.to_string(),
        other => panic!("{other:?}"),
    };
    assert!(e.starts_with("graph.yaml:9:1: "), "{e}");
}

/// Every conformance case and example goes through the oracle too (they are the fuzz
/// target's seed corpus, see `fuzz/README.md`).
#[test]
fn conformance_cases_and_examples_hold_the_invariants() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in ["tests/cases", "examples"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap_or_else(|e| panic!("{dir}: {e}")) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let graph = if path.is_dir() {
                path.join("graph.yaml")
            } else {
                path
            };
            if graph.extension().is_some_and(|e| e == "yaml") && graph.is_file() {
                files.push(graph);
            }
        }
    }
    assert!(files.len() > 30, "found {} graphs", files.len());
    for f in files {
        let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let outcome = graph_loader(&bytes);
        let valid = !f.with_file_name("expected-error.txt").exists();
        if f.ends_with("graph.yaml") && valid {
            assert!(
                matches!(outcome, Outcome::Built(_)),
                "{}: {outcome:?}",
                f.display()
            );
        }
    }
}

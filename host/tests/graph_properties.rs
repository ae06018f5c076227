//! Property tests through the whole planner, with the bundled plugins loaded by
//! `Registry::load` (as `engine_in_process.rs` does): generated graphs (paths that nest,
//! collide and contradict each other, `state: absent`, `force`, `recurse`, copies,
//! symlinks, modes, metaparams, edges that may cycle) never make `plan::check_and_plan`
//! panic and are refused only with errors located inside the file, and a graph valid by
//! construction always plans. Case counts are small so the suite stays fast.

use std::cell::Cell;
use std::fmt::Write;
use std::path::Path;

use homeostat::graph::GraphErrors;
use homeostat::plan::{self, PlanError};
use homeostat::plugin::grants::Policy;
use homeostat::plugin::registry::Registry;
use homeostat::plugin::runtime::Runtime;
use homeostat::plugin::store::Limits;
use homeostat::sys::Services;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// A runtime with the bundled plugins, and a tokio runtime to plan on.
struct Planner {
    _runtime: Runtime,
    registry: Registry,
    tokio: tokio::runtime::Runtime,
}

impl Planner {
    fn new() -> Planner {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let _guard = tokio.enter();
        let runtime = Runtime::new(None, Limits::default(), Services::default()).expect("runtime");
        let registry = Registry::load(&runtime, &[], &Policy::default()).expect("bundled plugins");
        Planner {
            _runtime: runtime,
            registry,
            tokio,
        }
    }

    /// Parses and plans `text` as `graph.yaml`: the number of planned resources, or the
    /// errors, each checked to be located inside the file.
    fn plan(&self, text: &str) -> Result<usize, GraphErrors> {
        let path = Path::new("graph.yaml");
        let planned = self.tokio.block_on(async {
            let doc = plan::parse_text(path, text)?;
            plan::check_and_plan(doc, &self.registry).await
        });
        match planned {
            Ok(plan) => {
                let n = plan.resources.len();
                for e in &plan.edges {
                    assert!(e.from < n && e.to < n && e.from < e.to, "{e:?} in order");
                }
                Ok(n)
            }
            Err(PlanError::Graph(errors)) => {
                let lines = text.lines().count() + 1;
                for e in &errors {
                    let loc = e.location();
                    assert_eq!(&*loc.file, path, "{e}");
                    assert!(loc.line >= 1 && loc.column >= 1, "{e}");
                    assert!(
                        usize::try_from(loc.line).is_ok_and(|l| l <= lines),
                        "{e} in a {lines}-line file"
                    );
                }
                Err(errors)
            }
            Err(other) => panic!("not a graph error: {other}"),
        }
    }
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A YAML double-quoted scalar holding `s`.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Paths under `/tmp/hs-plan`: a small pool, so that resources nest, share paths and
/// copy from each other; plus a few invalid ones.
fn path() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "/tmp/hs-plan/a",
        "/tmp/hs-plan/a/",
        "/tmp/hs-plan/a/b",
        "/tmp/hs-plan/a/b/",
        "/tmp/hs-plan/a/b/c",
        "/tmp/hs-plan/d",
        "/tmp/hs-plan//d/./e",
        "/tmp/hs-plan/a/../x",
        "relative/path",
        "/",
        "",
    ])
    .prop_map(str::to_owned)
}

fn meta() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "    meta: {retry: -1, delay: 50}\n",
        "    meta: {limit: 0.001, burst: 1, sema: [\"io:2\"]}\n",
        "    meta: {sema: [\"io:3\"]}\n",
        "    meta: {limit: 1e-300, burst: 1}\n",
        "    meta: {timeout: 0, cpu: 86400000, memory: 4096, poll: 86400}\n",
        "    meta: {autoedge: false, hidden: true}\n",
        "    meta: {memory: 0}\n",
    ])
}

/// A `file` resource with any combination of its params.
fn file() -> impl Strategy<Value = String> {
    (
        path(),
        prop::option::of(prop::sample::select(vec!["exists", "absent"])),
        prop::option::of(prop::sample::select(vec![
            "0644", "0o750", "\"u=rw\"", "644", "\"9999\"",
        ])),
        any::<(bool, bool, bool)>(),
        prop::option::of(path()),
        prop::option::of(prop::sample::select(vec!["\"hi\\n\"", "42"])),
        meta(),
    )
        .prop_map(
            |(path, state, mode, (force, recurse, symlink), source, content, meta)| {
                let mut s = format!("    path: {}\n", quoted(&path));
                if let Some(state) = state {
                    let _ = writeln!(s, "    state: {state}");
                }
                if let Some(mode) = mode {
                    let _ = writeln!(s, "    mode: {mode}");
                }
                for (flag, on) in [("force", force), ("recurse", recurse), ("symlink", symlink)] {
                    if on {
                        let _ = writeln!(s, "    {flag}: true");
                    }
                }
                if let Some(source) = source {
                    let _ = writeln!(s, "    source: {}", quoted(&source));
                }
                if let Some(content) = content {
                    let _ = writeln!(s, "    content: {content}");
                }
                s.push_str(meta);
                s
            },
        )
}

/// A graph of `file` and `exec` resources with edges between them (cycles included).
fn graph() -> impl Strategy<Value = String> {
    let exec = prop::sample::select(vec![
        "    cmd: \"true\"\n",
        "    cmd: echo hi\n    shell: /bin/sh\n",
        "    cmd: \"true\"\n    creates: relative\n",
    ]);
    (
        prop::collection::vec(file(), 0..7),
        prop::collection::vec(exec, 0..3),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..5,
        ),
    )
        .prop_map(|(files, execs, edges)| {
            let mut s = String::from("graph: generated\nresources:\n");
            let mut ids = Vec::new();
            if !files.is_empty() {
                s.push_str("  file:\n");
            }
            for (i, body) in files.iter().enumerate() {
                let _ = write!(s, "  - name: f{i}\n{body}");
                ids.push(("file", format!("f{i}")));
            }
            if !execs.is_empty() {
                s.push_str("  exec:\n");
            }
            for (i, body) in execs.iter().enumerate() {
                let _ = write!(s, "  - name: x{i}\n{body}");
                ids.push(("exec", format!("x{i}")));
            }
            if !ids.is_empty() && !edges.is_empty() {
                s.push_str("edges:\n");
                for (a, b) in edges {
                    let (ka, na) = &ids[a.index(ids.len())];
                    let (kb, nb) = &ids[b.index(ids.len())];
                    let _ = writeln!(
                        s,
                        "- from: {{kind: {ka}, name: {na}}}\n  to: {{kind: {kb}, name: {nb}}}"
                    );
                }
            }
            s
        })
}

/// A graph valid by construction and its resource count: a chain of directories, a file
/// in each (some absent, some copies of the previous file when that one is not absent:
/// a copy runs before its source's removal, against the forward edges), forward edges
/// only.
fn valid_graph() -> impl Strategy<Value = (String, usize)> {
    (
        1usize..6,
        prop::collection::vec((any::<bool>(), any::<bool>(), meta()), 6),
        prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>()),
            0..6,
        ),
    )
        .prop_map(|(depth, files, edges)| {
            let mut s = String::from("graph: valid\nresources:\n  file:\n");
            let mut names = Vec::new();
            let mut dir = String::from("/tmp/hs-plan-valid");
            let mut previous: Option<String> = None;
            for (i, (absent, copy, meta)) in files.iter().take(depth).enumerate() {
                dir.push_str(&format!("/d{i}"));
                let _ = write!(s, "  - name: dir{i}\n    path: {dir}/\n    mode: 0755\n");
                names.push(format!("dir{i}"));
                let _ = write!(s, "  - name: file{i}\n    path: {dir}/f\n");
                // A bad metaparam (or a semaphore count that differs from another's)
                // would be refused: keep only the valid ones here.
                let meta = if ["1e-300", "memory: 0", "io:3"]
                    .iter()
                    .any(|b| meta.contains(b))
                {
                    ""
                } else {
                    meta
                };
                if *absent {
                    s.push_str("    state: absent\n");
                } else if let Some(source) = previous.as_ref().filter(|_| *copy) {
                    let _ = writeln!(s, "    source: {source}");
                } else {
                    s.push_str("    content: \"x\\n\"\n    mode: 0o640\n");
                }
                s.push_str(meta);
                names.push(format!("file{i}"));
                previous = (!*absent).then(|| format!("{dir}/f"));
            }
            let mut lines = String::new();
            let mut seen = std::collections::HashSet::new();
            for (a, b) in edges {
                let (a, b) = (a.index(names.len()), b.index(names.len()));
                if a < b && seen.insert((a, b)) {
                    let _ = writeln!(
                        lines,
                        "- from: {{kind: file, name: {}}}\n  to: {{kind: file, name: {}}}",
                        names[a], names[b]
                    );
                }
            }
            if !lines.is_empty() {
                s.push_str("edges:\n");
                s.push_str(&lines);
            }
            (s, names.len())
        })
}

#[test]
fn generated_graphs_plan_or_are_refused_with_located_errors() {
    let planner = Planner::new();
    let (accepted, refused) = (Cell::new(0), Cell::new(0));
    runner(96)
        .run(&graph(), |text| {
            let count = if planner.plan(&text).is_ok() {
                &accepted
            } else {
                &refused
            };
            count.set(count.get() + 1);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    // The generator makes both kinds (each is likelier than 1 in 10 per case).
    assert!(
        accepted.get() > 0 && refused.get() > 0,
        "{accepted:?} {refused:?}"
    );
}

#[test]
fn graphs_valid_by_construction_plan() {
    let planner = Planner::new();
    runner(48)
        .run(&valid_graph(), |(text, n)| {
            match planner.plan(&text) {
                Ok(planned) => prop_assert_eq!(planned, n, "{}", text),
                Err(e) => prop_assert!(false, "refused:\n{}\n{}", text, e),
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}

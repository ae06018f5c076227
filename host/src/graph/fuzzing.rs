//! The graph loader's oracle, shared by the `cargo fuzz` target (`fuzz/`, built with the
//! `fuzzing` feature) and the property tests: [`graph_loader`] takes any bytes through
//! everything `homeostat validate` does before the plugins' own `validate` (UTF-8, YAML,
//! shape, metaparams, names, kinds and params against the bundled kinds' schemas, edges,
//! path autoedges, cycles) and panics when something that must hold for every input does
//! not. A panic inside the loader is a finding by itself.

use std::path::Path;
use std::sync::OnceLock;

use super::{
    GraphDoc, GraphErrors, KindCatalog, Meta, SchemaCatalog, build, check_params, parse_bytes,
    path_autoedges,
};

/// The file name every location of [`graph_loader`] starts with.
pub const FILE: &str = "graph.yaml";

/// The params schemas of the bundled kinds, as their plugins publish them.
pub fn bundled_kinds() -> &'static SchemaCatalog {
    static KINDS: OnceLock<SchemaCatalog> = OnceLock::new();
    KINDS.get_or_init(|| {
        let mut catalog = SchemaCatalog::new();
        for (kind, schema) in [
            (
                "file",
                include_str!("../../../plugins/file/schema/file.json"),
            ),
            (
                "exec",
                include_str!("../../../plugins/exec/schema/exec.json"),
            ),
            ("svc", include_str!("../../../plugins/svc/schema/svc.json")),
            (
                "kmsg",
                include_str!("../../../plugins/kmsg/schema/kmsg.json"),
            ),
            (
                "provision",
                include_str!("../../../plugins/provision/schema/provision.json"),
            ),
        ] {
            let schema = serde_json::from_str(schema)
                .unwrap_or_else(|e| panic!("the {kind} schema is not JSON: {e}"));
            catalog
                .insert(kind, &schema)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        catalog
    })
}

/// What [`graph_loader`] found.
#[derive(Debug)]
pub enum Outcome {
    /// Refused while parsing (text, YAML, shape, numbers, names).
    Unparsed(GraphErrors),
    /// Parsed, refused by the kind or param checks.
    Unchecked(GraphErrors),
    /// Parsed and checked, refused while building the graph (edges, cycles).
    Unbuilt(GraphErrors),
    /// Accepted: a graph of this many vertices.
    Built(usize),
}

/// Loads `bytes` as a graph file named [`FILE`] against the bundled kinds and checks the
/// invariants of every outcome; panics when one does not hold.
pub fn graph_loader(bytes: &[u8]) -> Outcome {
    graph_loader_with(bytes, bundled_kinds())
}

/// [`graph_loader`] against any catalog of kinds.
pub fn graph_loader_with(bytes: &[u8], kinds: &dyn KindCatalog) -> Outcome {
    let path = Path::new(FILE);
    let doc = match parse_bytes(path, bytes) {
        Ok(doc) => doc,
        Err(e) => return Outcome::Unparsed(refused(bytes, e)),
    };
    accepted_doc(&doc);
    if let Err(e) = check_params(&doc, kinds) {
        return Outcome::Unchecked(refused(bytes, e));
    }
    // The autoedges `plan` derives from the file plugin's footprint: each `path`
    // depends on its parent directory.
    let paths: Vec<(Vec<&str>, Vec<&str>)> = doc
        .resources
        .iter()
        .map(|r| {
            let path = r.params.get("path").and_then(|p| p.as_str());
            let parent = path.and_then(|p| p.trim_end_matches('/').rsplit_once('/'));
            (
                path.into_iter().collect(),
                parent.map(|(dir, _)| dir).into_iter().collect(),
            )
        })
        .collect();
    let decls: Vec<(Vec<&str>, &[&str])> = paths
        .iter()
        .map(|(managed, deps)| (managed.clone(), &deps[..]))
        .collect();
    match build(&doc, &path_autoedges(&decls)) {
        Ok(graph) => {
            let n = graph.len();
            assert_eq!(graph.order().count(), n, "the order covers every vertex");
            Outcome::Built(n)
        }
        Err(e) => Outcome::Unbuilt(refused(bytes, e)),
    }
}

/// Every error of a refused input is located inside the file and says something.
fn refused(bytes: &[u8], errors: GraphErrors) -> GraphErrors {
    assert!(!errors.is_empty(), "an Err holds at least one error");
    // Lines as YAML counts them: `\n`, `\r\n`, and a lone `\r`.
    let lines = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')))
        .count()
        + 1;
    for e in &errors {
        let loc = e.location();
        assert_eq!(&*loc.file, Path::new(FILE));
        assert!(loc.line >= 1 && loc.column >= 1, "1-based: {e}");
        assert!(
            usize::try_from(loc.line).is_ok_and(|l| l <= lines + 1),
            "line {} of a {lines}-line file: {e}",
            loc.line
        );
        assert!(!e.message().is_empty(), "an error says what is wrong: {e}");
    }
    assert!(errors.to_string().starts_with(FILE));
    errors
}

/// What every parsed graph satisfies: names in their character set, numbers in range.
fn accepted_doc(doc: &GraphDoc) {
    let name_ok = |n: &str| !n.is_empty() && super::doc::bad_name_char(n).is_none();
    assert!(name_ok(&doc.name), "graph name {:?}", doc.name);
    for r in &doc.resources {
        assert!(name_ok(&r.name), "resource name {:?}", r.name);
        let m = &r.meta;
        assert!(m.retry >= -1, "retry {}", m.retry);
        assert!(m.delay <= Meta::MAX_MILLIS, "delay {}", m.delay);
        assert!(m.poll <= Meta::MAX_POLL_SECS, "poll {}", m.poll);
        assert!(
            m.timeout
                .is_none_or(|t| (1..=Meta::MAX_MILLIS).contains(&t))
        );
        assert!(m.cpu.is_none_or(|t| (1..=Meta::MAX_MILLIS).contains(&t)));
        assert!(
            m.memory
                .is_none_or(|t| (1..=Meta::MAX_MEMORY_MIB).contains(&t))
        );
        assert!(m.burst <= Meta::MAX_BURST, "burst {}", m.burst);
        if let Some(limit) = m.limit {
            assert!(
                (Meta::MIN_LIMIT..=Meta::MAX_LIMIT).contains(&limit),
                "limit {limit}"
            );
            assert!(m.burst >= 1, "a finite limit has a burst");
        }
        for s in &m.sema {
            assert!((1..=Meta::MAX_SEMA_COUNT).contains(&s.count), "sema {s:?}");
        }
    }
    for e in &doc.edges {
        assert!(name_ok(&e.from.name) && name_ok(&e.to.name), "edge {e:?}");
        if let Some(n) = &e.name {
            assert!(name_ok(n), "edge name {n:?}");
        }
    }
    let mut names: Vec<&str> = doc.edges.iter().filter_map(|e| e.name.as_deref()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "edge names are unique");
}

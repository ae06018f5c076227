//! Path-based autoedges: a resource depends on whoever manages the path it needs, or the
//! nearest directory above it.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// Normalises a path for comparison, component-wise: `/etc//foo/./` becomes `/etc/foo`.
/// Borrows when the path is already normal (the common case).
fn normalize(p: &str) -> Cow<'_, str> {
    let clean = !p.contains("//")
        && !p.contains("/./")
        && !p.ends_with("/.")
        && !p.starts_with("./")
        && (p.len() <= 1 || !p.ends_with('/'));
    if clean {
        return p.into();
    }
    let mut out = String::with_capacity(p.len());
    if p.starts_with('/') {
        out.push('/');
    }
    for c in p.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if !out.is_empty() && !out.ends_with('/') {
            out.push('/');
        }
        out.push_str(c);
    }
    if out.is_empty() {
        out.push('.');
    }
    out.into()
}

/// The parent of a normalised path (`/a/b` → `/a`, `/a` → `/`, `/` and `a` → none).
fn parent(p: &str) -> Option<&str> {
    match p.rfind('/') {
        Some(0) if p.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&p[..i]),
    }
}

/// For each path `P` that a resource `R` depends on, finds the resource managing the longest
/// path that is `P` itself or an ancestor directory of `P` (component-wise: `/etc/foo` is not
/// a parent of `/etc/foobar`) and returns the edge `(that resource, R)`. `R` never depends on
/// itself (its own paths are skipped and the search goes on upward), and each pair appears
/// once, in input order.
///
/// `decls` holds, per resource, the paths it manages and the paths it depends on; the edges
/// name resources by their index in `decls`. When two resources claim the same managed path
/// the first wins (the clash is reported elsewhere). Runs in O(total path components) with a
/// hash map and borrows every path, fine for tens of thousands of resources.
pub fn path_autoedges<M: AsRef<str>, D: AsRef<str>>(
    decls: &[(Vec<M>, &[D])],
) -> Vec<(usize, usize)> {
    let mut managers: HashMap<Cow<'_, str>, usize> = HashMap::with_capacity(decls.len());
    for (i, (managed, _)) in decls.iter().enumerate() {
        for p in managed {
            managers.entry(normalize(p.as_ref())).or_insert(i);
        }
    }
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let mut edges = Vec::new();
    for (r, (_, deps)) in decls.iter().enumerate() {
        for dep in deps.iter() {
            let dep = normalize(dep.as_ref());
            let mut cur = Some(dep.as_ref());
            while let Some(p) = cur {
                if let Some(&m) = managers.get(p)
                    && m != r
                {
                    if seen.insert((m, r)) {
                        edges.push((m, r));
                    }
                    break;
                }
                cur = parent(p);
            }
        }
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parent_of(path: &str) -> Vec<String> {
        Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .into_iter()
            .collect()
    }

    #[test]
    fn nearest_managed_ancestor() {
        let files = [
            ("etc", "/etc/"),
            ("foo", "/etc/foo/"),
            ("bar", "/etc/foo/a/b/bar"),
            ("foobar", "/etc/foobar"),
            ("x", "/srv/x"),
        ];
        let parents: Vec<Vec<String>> = files.iter().map(|(_, p)| parent_of(p)).collect();
        let decls: Vec<(Vec<&str>, &[String])> = files
            .iter()
            .zip(&parents)
            .map(|((_, path), parent)| (vec![*path], &parent[..]))
            .collect();
        let edges = path_autoedges(&decls);
        let got: Vec<String> = edges
            .iter()
            .map(|&(a, b)| format!("file[{}] -> file[{}]", files[a].0, files[b].0))
            .collect();
        assert_eq!(
            got,
            [
                "file[etc] -> file[foo]",
                "file[foo] -> file[bar]",
                "file[etc] -> file[foobar]",
            ]
        );
    }

    #[test]
    fn normal_forms() {
        for (raw, want) in [
            ("/etc/foo", "/etc/foo"),
            ("/etc/foo/", "/etc/foo"),
            ("/etc//foo/./", "/etc/foo"),
            ("/", "/"),
            ("//", "/"),
            ("a/b/", "a/b"),
            ("./a", "a"),
        ] {
            assert_eq!(normalize(raw), want, "{raw}");
        }
        assert_eq!(parent("/etc/foo"), Some("/etc"));
        assert_eq!(parent("/etc"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(parent("a/b"), Some("a"));
        assert_eq!(parent("a"), None);
    }

    #[test]
    fn never_to_itself_and_no_duplicates() {
        // file[d] manages /d; svc[s] manages /d/s and depends on paths at and below both.
        let decls: Vec<(Vec<&str>, &[&str])> = vec![
            (vec!["/d"], &[]),
            (vec!["/d/s"], &["/d/s", "/d/s/x", "/d/t"]),
        ];
        let edges = path_autoedges(&decls);
        assert_eq!(edges, [(0, 1)]);
    }
}

//! Path-based autoedges: a resource depends on whoever manages the path it needs, or the
//! nearest directory above it.

use std::collections::{HashMap, HashSet};

use super::ResId;

/// Normalises a path for comparison, component-wise: `/etc//foo/./` becomes `/etc/foo`.
/// Borrows when the path is already normal (the common case).
fn normalize(p: &str) -> std::borrow::Cow<'_, str> {
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
/// `decls` holds, per resource, the paths it manages and the paths it depends on; when two
/// resources claim the same managed path the first wins (the clash is reported elsewhere).
/// Runs in O(total path components) with a hash map, fine for tens of thousands of resources.
pub fn path_autoedges(decls: &[(ResId, Vec<String>, Vec<String>)]) -> Vec<(ResId, ResId)> {
    let mut managers: HashMap<std::borrow::Cow<'_, str>, usize> = HashMap::new();
    for (i, (_, managed, _)) in decls.iter().enumerate() {
        for p in managed {
            managers.entry(normalize(p)).or_insert(i);
        }
    }
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let mut edges = Vec::new();
    for (r, (id, _, deps)) in decls.iter().enumerate() {
        for dep in deps {
            let dep = normalize(dep);
            let mut cur = Some(dep.as_ref());
            while let Some(p) = cur {
                if let Some(&m) = managers.get(p)
                    && m != r
                {
                    if seen.insert((m, r)) {
                        edges.push((decls[m].0.clone(), id.clone()));
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

    fn file(name: &str, path: &str) -> (ResId, Vec<String>, Vec<String>) {
        let parent = Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .into_iter()
            .collect();
        (ResId::new("file", name), vec![path.to_owned()], parent)
    }

    #[test]
    fn nearest_managed_ancestor() {
        let decls = vec![
            file("etc", "/etc/"),
            file("foo", "/etc/foo/"),
            file("bar", "/etc/foo/a/b/bar"),
            file("foobar", "/etc/foobar"),
            file("x", "/srv/x"),
        ];
        let edges = path_autoedges(&decls);
        let got: Vec<String> = edges.iter().map(|(a, b)| format!("{a} -> {b}")).collect();
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
        let decls = vec![
            (ResId::new("file", "d"), vec!["/d".into()], vec![]),
            (
                ResId::new("svc", "s"),
                vec!["/d/s".into()],
                vec!["/d/s".into(), "/d/s/x".into(), "/d/t".into()],
            ),
        ];
        let edges = path_autoedges(&decls);
        assert_eq!(edges, [(ResId::new("file", "d"), ResId::new("svc", "s"))]);
    }
}

//! Property tests: the lexical footprint check agrees with where the syscalls land.
//!
//! Each case builds a small random tree in a temporary directory (directories, and
//! symlinks to some of them), a random footprint of write grants, and random paths to
//! write through it. For every write: a refused one changes nothing anywhere; an accepted
//! one was allowed by the lexical check, changed exactly one file, the one the kernel
//! resolves the path to, and went through no symlink the resource could have made (at or
//! below its write grants).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::testutil::*;

/// A tree: directory names nested by index (`parent` of each, `None` = the top), and
/// symlinks (by name, in a directory) to directories.
#[derive(Debug, Clone)]
struct Tree {
    /// For each directory `d{i}`: its parent directory's index.
    dirs: Vec<Option<usize>>,
    /// Symlinks `l{i}`: (the directory they are in, the directory they point to).
    links: Vec<(Option<usize>, usize)>,
}

fn trees() -> impl Strategy<Value = Tree> {
    (1usize..6).prop_flat_map(|n| {
        let dirs = (0..n)
            .map(|i| {
                if i == 0 {
                    Just(None).boxed()
                } else {
                    prop::option::of(0..i).boxed()
                }
            })
            .collect::<Vec<_>>();
        let links = prop::collection::vec((prop::option::of(0..n), 0..n), 0..4);
        (dirs, links).prop_map(|(dirs, links)| Tree { dirs, links })
    })
}

impl Tree {
    /// The path of directory `i` below `root`.
    fn dir(&self, root: &Path, i: usize) -> PathBuf {
        match self.dirs[i] {
            Some(p) => self.dir(root, p).join(format!("d{i}")),
            None => root.join(format!("d{i}")),
        }
    }

    fn parent(&self, root: &Path, at: Option<usize>) -> PathBuf {
        at.map_or_else(|| root.to_path_buf(), |d| self.dir(root, d))
    }

    fn build(&self, root: &Path) {
        for i in 0..self.dirs.len() {
            std::fs::create_dir_all(self.dir(root, i)).expect("mkdir");
        }
        for (i, (at, to)) in self.links.iter().enumerate() {
            os_symlink(
                self.dir(root, *to),
                self.parent(root, *at).join(format!("l{i}")),
            )
            .expect("symlink");
        }
    }

    /// Every name a path component can take.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = (0..self.dirs.len()).map(|i| format!("d{i}")).collect();
        names.extend((0..self.links.len()).map(|i| format!("l{i}")));
        names.push("f".into());
        names
    }
}

/// Every regular file below `dir`, with its content, found without following links.
fn snapshot(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        let meta = std::fs::symlink_metadata(&path).expect("lstat");
        if meta.is_dir() {
            snapshot(&path, out);
        } else if meta.is_file() {
            out.insert(path.clone(), std::fs::read(&path).expect("read"));
        }
    }
}

/// A write grant: a name (an index into the tree's names) in a directory of the tree
/// (`None`: the top), and whether it is recursive.
type GrantSpec = (Option<usize>, usize, bool);

/// A write: below which grant (an index), then which names, then whether the file `f`.
type WriteSpec = (usize, Vec<usize>, bool);

fn case() -> impl Strategy<Value = (Tree, Vec<GrantSpec>, Vec<WriteSpec>)> {
    trees().prop_flat_map(|t| {
        let names = t.names().len();
        let dirs = t.dirs.len();
        let grants =
            prop::collection::vec((prop::option::of(0..dirs), 0..names, any::<bool>()), 1..4);
        let writes = prop::collection::vec(
            (
                0usize..4,
                prop::collection::vec(0..names, 0..3),
                any::<bool>(),
            ),
            1..8,
        );
        (Just(t), grants, writes)
    })
}

async fn host_write(fp: &Footprint, path: &str) -> Result<(), super::FsError> {
    FsHost::new()
        .write(fp, path, b"x".to_vec(), Attrs::default(), &[])
        .await
}

fn join(root: &Path, names: &[String], parts: &[usize]) -> PathBuf {
    parts
        .iter()
        .fold(root.to_path_buf(), |p, &i| p.join(&names[i]))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn writes_land_where_the_path_leads_or_nowhere((t, grants, writes) in case()) {
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let dir = tempdir();
        let root = dir.path().join("t");
        std::fs::create_dir(&root).expect("mkdir");
        t.build(&root);
        let names = t.names();
        let fp = Footprint {
            paths: grants
                .iter()
                .map(|(dir, name, recursive)| {
                    let path = t.parent(&root, *dir).join(&names[*name]);
                    grant(path.to_str().expect("utf-8"), *recursive, true)
                })
                .collect(),
            ..Footprint::default()
        };
        let host = FsHost::new();
        for (n, (below, middle, file)) in writes.iter().enumerate() {
            // Mostly inside the footprint (a grant, or below it), sometimes beside it.
            let mut path = fp.paths[below % fp.paths.len()].path.clone();
            for &i in middle {
                path.push(&names[i]);
            }
            if *file {
                path.push("f");
            }
            let path = path.to_str().expect("utf-8").to_owned();
            let mut before = BTreeMap::new();
            snapshot(&root, &mut before);
            let content = format!("write {n}\n").into_bytes();
            let result = rt.block_on(host.write(&fp, &path, content.clone(), Attrs::default(), &[]));
            let mut after = BTreeMap::new();
            snapshot(&root, &mut after);
            match result {
                Err(_) => prop_assert_eq!(&before, &after, "a refused write changed nothing: {}", path),
                Ok(()) => {
                    prop_assert!(check(&fp, &path, true).is_ok(), "the lexical check allows {}", path);
                    let parent = Path::new(&path).parent().expect("parent");
                    let landed = std::fs::canonicalize(parent).expect("the parent resolves")
                        .join(Path::new(&path).file_name().expect("name"));
                    prop_assert_eq!(after.get(&landed), Some(&content), "{} landed at {:?}", path, landed);
                    let changed: Vec<&PathBuf> = after.iter()
                        .filter(|(p, c)| before.get(*p) != Some(*c))
                        .map(|(p, _)| p)
                        .collect();
                    prop_assert_eq!(changed, vec![&landed], "only that file changed");
                    // No symlink at or below a write grant was on the way.
                    for prefix in Path::new(&path).ancestors().skip(1) {
                        let is_link = std::fs::symlink_metadata(prefix).is_ok_and(|m| m.file_type().is_symlink());
                        let covered = fp.paths.iter().any(|g| {
                            prefix == g.path || (g.recursive && prefix.starts_with(&g.path))
                        });
                        prop_assert!(!(is_link && covered), "{} went through the granted link {}", path, prefix.display());
                    }
                }
            }
        }
    }

    #[test]
    fn writes_to_granted_paths_are_mostly_accepted(parts in prop::collection::vec(0usize..3, 1..3)) {
        // The property above is only as good as its accepted writes: a footprint granting
        // the whole tree takes every write whose parent exists and has no link on the way.
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let dir = tempdir();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("d0/d1")).expect("mkdir");
        let names = ["d0".to_string(), "d1".to_string(), "f".to_string()];
        let path = join(&root, &names, &parts);
        let fp = tree(&root);
        let result = rt.block_on(host_write(&fp, path.to_str().expect("utf-8")));
        let parent_is_dir = path.parent().is_some_and(Path::is_dir);
        let is_dir = path.is_dir();
        prop_assert_eq!(result.is_ok(), parent_is_dir && !is_dir, "{}", path.display());
    }
}

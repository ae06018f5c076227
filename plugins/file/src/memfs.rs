//! An in-memory [`Fs`] for native tests that behaves like the host where it matters:
//! it refuses every path outside the grants (as the host does with the footprint),
//! needs the parent directory to exist, replaces non-directories atomically, and logs
//! every mutating call so tests can check that noop mutates nothing.

use std::cell::RefCell;
use std::collections::BTreeMap;

use homeostat_sdk::fs::{Attrs, Error, ErrorCode, FileStat, FileType};

use crate::params::{Grant, parent, within};
use crate::sys::Fs;

/// uid and gid of entries the fake "process" creates.
pub const ME: u32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File(Vec<u8>),
    Dir,
    Link(String),
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Default)]
pub struct MemFs {
    nodes: RefCell<BTreeMap<String, Node>>,
    grants: RefCell<Vec<Grant>>,
    /// Mutating calls, e.g. `write /etc/motd`.
    pub log: RefCell<Vec<String>>,
    pub warnings: RefCell<Vec<String>>,
}

fn err(code: ErrorCode, message: String) -> Error {
    Error { code, message }
}

impl MemFs {
    /// A file system holding only `/`.
    pub fn new() -> MemFs {
        let fs = MemFs::default();
        fs.put("/", Kind::Dir, 0o755, 0);
        fs
    }

    pub fn put(&self, path: &str, kind: Kind, mode: u32, uid: u32) {
        let node = Node {
            kind,
            mode,
            uid,
            gid: uid,
        };
        self.nodes.borrow_mut().insert(path.to_string(), node);
    }

    /// Directories `path` and its missing parents, owned by root.
    pub fn dirs(&self, path: &str) -> &Self {
        if path != "/" {
            self.dirs(parent(path));
            if self.get(path).is_none() {
                self.put(path, Kind::Dir, 0o755, 0);
            }
        }
        self
    }

    pub fn file(&self, path: &str, content: &str, mode: u32, uid: u32) -> &Self {
        self.dirs(parent(path));
        self.put(path, Kind::File(content.as_bytes().to_vec()), mode, uid);
        self
    }

    pub fn link(&self, path: &str, target: &str) -> &Self {
        self.dirs(parent(path));
        self.put(path, Kind::Link(target.to_string()), 0o777, ME);
        self
    }

    pub fn get(&self, path: &str) -> Option<Node> {
        self.nodes.borrow().get(path).cloned()
    }

    pub fn text(&self, path: &str) -> String {
        match self.get(path).map(|n| n.kind) {
            Some(Kind::File(data)) => String::from_utf8(data).unwrap(),
            other => panic!("{path} is not a file: {other:?}"),
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Node> {
        self.nodes.borrow().clone()
    }

    pub fn grant(&self, grants: Vec<Grant>) {
        *self.grants.borrow_mut() = grants;
    }

    fn allowed(&self, path: &str, write: bool) -> Result<(), Error> {
        assert!(
            path.starts_with('/') && (path == "/" || !path.ends_with('/')),
            "unnormalised path {path}"
        );
        let ok = self.grants.borrow().iter().any(|g| {
            (g.path == path || (g.recursive && within(path, &g.path))) && (g.write || !write)
        });
        if ok {
            Ok(())
        } else {
            let what = if write { "write" } else { "read" };
            Err(err(
                ErrorCode::NotAllowed,
                format!("{what} {path}: outside the footprint"),
            ))
        }
    }

    fn parent_dir(&self, path: &str) -> Result<(), Error> {
        match self.get(parent(path)).map(|n| n.kind) {
            Some(Kind::Dir) => Ok(()),
            Some(_) => Err(err(ErrorCode::Other, format!("{path}: not a directory"))),
            None => Err(err(
                ErrorCode::NotFound,
                format!("{path}: no such file or directory"),
            )),
        }
    }

    fn children(&self, path: &str) -> Vec<String> {
        let prefix = if path == "/" {
            "/".to_string()
        } else {
            format!("{path}/")
        };
        self.nodes
            .borrow()
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .map(str::to_string)
            .collect()
    }

    fn file_data(&self, path: &str) -> Result<Vec<u8>, Error> {
        match self.get(path).map(|n| n.kind) {
            Some(Kind::File(data)) => Ok(data),
            Some(_) => Err(err(
                ErrorCode::WrongType,
                format!("{path}: not a regular file"),
            )),
            None => Err(err(ErrorCode::NotFound, format!("{path}: no such file"))),
        }
    }

    /// Atomic replace of a non-directory, as rename(2) does.
    fn replace(&self, path: &str, kind: Kind, mode: u32, attrs: Attrs) -> Result<(), Error> {
        self.parent_dir(path)?;
        if let Some(Node {
            kind: Kind::Dir, ..
        }) = self.get(path)
        {
            return Err(err(ErrorCode::WrongType, format!("{path}: is a directory")));
        }
        let uid = attrs.uid.unwrap_or(ME);
        let node = Node {
            kind,
            mode: attrs.mode.unwrap_or(mode),
            uid,
            gid: attrs.gid.unwrap_or(ME),
        };
        self.nodes.borrow_mut().insert(path.to_string(), node);
        Ok(())
    }

    fn logged(&self, line: String) {
        self.log.borrow_mut().push(line);
    }
}

impl Fs for MemFs {
    fn stat(&self, path: &str) -> Result<Option<FileStat>, Error> {
        self.allowed(path, false)?;
        Ok(self.get(path).map(|n| {
            let (file_type, size) = match &n.kind {
                Kind::File(data) => (FileType::File, data.len() as u64),
                Kind::Dir => (FileType::Directory, 4096),
                Kind::Link(target) => (FileType::Symlink, target.len() as u64),
                Kind::Fifo => (FileType::Other, 0),
            };
            FileStat {
                file_type,
                size,
                mode: n.mode,
                uid: n.uid,
                gid: n.gid,
            }
        }))
    }

    fn digest(&self, path: &str) -> Result<String, Error> {
        self.allowed(path, false)?;
        // Any injective function does for a fake digest.
        Ok(self
            .file_data(path)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect())
    }

    fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        self.allowed(path, false)?;
        self.file_data(path)
    }

    fn content_equals(&self, path: &str, data: &[u8]) -> Result<bool, Error> {
        self.allowed(path, false)?;
        match self.file_data(path) {
            Ok(have) => Ok(have == data),
            Err(e) if e.code == ErrorCode::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn write(&self, path: &str, data: &[u8], attrs: Attrs) -> Result<(), Error> {
        self.allowed(path, true)?;
        self.logged(format!("write {path}"));
        self.replace(path, Kind::File(data.to_vec()), 0o644, attrs)
    }

    fn copy(&self, source: &str, path: &str, attrs: Attrs) -> Result<(), Error> {
        self.allowed(source, false)?;
        self.allowed(path, true)?;
        self.logged(format!("copy {source} {path}"));
        let data = self.file_data(source)?;
        self.replace(path, Kind::File(data), 0o644, attrs)
    }

    fn symlink(&self, target: &str, path: &str) -> Result<(), Error> {
        self.allowed(path, true)?;
        self.logged(format!("symlink {target} {path}"));
        self.replace(
            path,
            Kind::Link(target.to_string()),
            0o777,
            Attrs::default(),
        )
    }

    fn read_link(&self, path: &str) -> Result<String, Error> {
        self.allowed(path, false)?;
        match self.get(path).map(|n| n.kind) {
            Some(Kind::Link(target)) => Ok(target),
            _ => Err(err(ErrorCode::WrongType, format!("{path}: not a symlink"))),
        }
    }

    fn mkdir(&self, path: &str, attrs: Attrs) -> Result<(), Error> {
        self.allowed(path, true)?;
        self.logged(format!("mkdir {path}"));
        self.parent_dir(path)?;
        if self.get(path).is_some() {
            return Err(err(ErrorCode::Other, format!("{path}: file exists")));
        }
        let node = Node {
            kind: Kind::Dir,
            mode: attrs.mode.unwrap_or(0o755),
            uid: attrs.uid.unwrap_or(ME),
            gid: attrs.gid.unwrap_or(ME),
        };
        self.nodes.borrow_mut().insert(path.to_string(), node);
        Ok(())
    }

    fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        self.allowed(path, true)?;
        self.logged(format!(
            "remove{} {path}",
            if recursive { " -r" } else { "" }
        ));
        if self.get(path).is_none() {
            return Ok(());
        }
        if !self.children(path).is_empty() {
            if !recursive {
                return Err(err(
                    ErrorCode::NotEmpty,
                    format!("{path}: directory not empty"),
                ));
            }
            // Removing a tree needs a grant on the whole tree.
            let tree = self
                .grants
                .borrow()
                .iter()
                .any(|g| g.recursive && g.write && within(path, &g.path));
            if !tree {
                return Err(err(
                    ErrorCode::NotAllowed,
                    format!("remove -r {path}: outside the footprint"),
                ));
            }
        }
        self.nodes.borrow_mut().retain(|k, _| !within(k, path));
        Ok(())
    }

    fn set_attrs(&self, path: &str, attrs: Attrs) -> Result<(), Error> {
        self.allowed(path, true)?;
        self.logged(format!("set_attrs {path}"));
        let mut nodes = self.nodes.borrow_mut();
        let Some(node) = nodes.get_mut(path) else {
            return Err(err(ErrorCode::NotFound, format!("{path}: no such file")));
        };
        if let (Kind::Link(_), Some(_)) = (&node.kind, attrs.mode) {
            return Err(err(
                ErrorCode::Other,
                format!("{path}: a symlink has no mode"),
            ));
        }
        node.mode = attrs.mode.unwrap_or(node.mode);
        node.uid = attrs.uid.unwrap_or(node.uid);
        node.gid = attrs.gid.unwrap_or(node.gid);
        Ok(())
    }

    fn read_dir(&self, path: &str) -> Result<Vec<String>, Error> {
        self.allowed(path, false)?;
        match self.get(path).map(|n| n.kind) {
            Some(Kind::Dir) => Ok(self.children(path)),
            Some(_) => Err(err(
                ErrorCode::WrongType,
                format!("{path}: not a directory"),
            )),
            None => Err(err(
                ErrorCode::NotFound,
                format!("{path}: no such directory"),
            )),
        }
    }

    fn user_id(&self, name: &str) -> Result<u32, Error> {
        match name {
            "root" => Ok(0),
            "www-data" => Ok(33),
            "alice" => Ok(ME),
            _ => Err(err(ErrorCode::UnknownId, format!("no user {name}"))),
        }
    }

    fn group_id(&self, name: &str) -> Result<u32, Error> {
        match name {
            "root" => Ok(0),
            "www-data" => Ok(33),
            "staff" => Ok(50),
            _ => Err(err(ErrorCode::UnknownId, format!("no group {name}"))),
        }
    }

    fn warn(&self, message: &str) {
        self.warnings.borrow_mut().push(message.to_string());
    }
}

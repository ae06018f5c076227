//! Check-apply: compare the entry at `path` (and, for trees, everything below it) with
//! the [`Spec`], record one line per difference, and repair only when `apply` is true.
//!
//! Each difference is checked before anything is changed, so noop and apply report the
//! same lines. Content is written together with its attributes in one atomic host call
//! (`write`/`copy`); `set_attrs` is used when only attributes differ. An unset `mode`,
//! `owner` or `group` is never changed on an existing entry: rewriting a file's content
//! keeps its current bits and ownership.

use std::collections::BTreeSet;

use homeostat_sdk::fs::{Attrs, Error as FsError, ErrorCode, FileStat, FileType};
use homeostat_sdk::{Error, Result};

use crate::mode::{MASK, show};
use crate::params::{Content, Id, Spec, Want, join, parent};
use crate::sys::Fs;

/// What one check-apply found (and, when applying, did).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One human-readable line per change, without the `kind[name]` prefix.
    pub changes: Vec<String>,
    /// Size in bytes of the regular file at `path` once in its declared state.
    pub size: Option<u64>,
    /// Unified diffs of text content, by index into `changes` (noop only).
    pub diffs: Vec<(usize, String)>,
}

/// Largest content (either side) shown as a diff; larger files get the summary only.
const MAX_DIFF_BYTES: usize = 256 << 10;

/// A unified diff of `old` → `new` under `---`/`+++` headers naming `path`, or `None`
/// when either side is not UTF-8 text or too large to be worth showing.
pub fn text_diff(path: &str, old: Option<&[u8]>, new: &[u8]) -> Option<String> {
    if old.map_or(0, <[u8]>::len).max(new.len()) > MAX_DIFF_BYTES {
        return None;
    }
    let old = std::str::from_utf8(old.unwrap_or_default()).ok()?;
    let new = std::str::from_utf8(new).ok()?;
    let diff = similar::TextDiff::from_lines(old, new);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string();
    Some(text)
}

/// Compare the system with `spec` and, when `apply`, repair it.
pub fn check_apply<F: Fs>(fs: &F, spec: &Spec, apply: bool) -> Result<Report> {
    // Resolve names first: an unknown user must fail before anything is touched.
    let uid = resolve(fs, "owner", spec.owner.as_ref())?;
    let gid = resolve(fs, "group", spec.group.as_ref())?;
    let mut run = Run {
        fs,
        spec,
        apply,
        uid,
        gid,
        report: Report::default(),
    };
    let path = spec.path.as_str();
    let done = match &spec.want {
        Want::Absent => run.absent(path),
        Want::File(content) => run.top_file(path, content),
        Want::Directory {
            source,
            recurse,
            purge,
        } => run.top_dir(path, source.as_deref(), *recurse, *purge),
        Want::Symlink { target } => match fs.stat(path) {
            Ok(st) => run.link(path, st, target),
            Err(e) => Err(e.into()),
        },
    };
    match done {
        Ok(()) => Ok(run.report),
        Err(e) => Err(with_partial(e, &run.report.changes, apply)),
    }
}

/// Most changes named in the error of a check-apply that failed half-way.
const PARTIAL_LISTED: usize = 16;

/// `e`, saying what had been done before it when a repair failed half-way (a tree whose
/// copy or purge fails on one entry): the error is all the host gets of a failed
/// check-apply, and the changes already made must not go unreported. Each change is
/// noted just before it is made, so the last one noted is most likely the one that
/// failed: with one change noted, nothing was made.
fn with_partial(e: Error, changes: &[String], apply: bool) -> Error {
    if !apply || changes.len() < 2 {
        return e;
    }
    let shown: Vec<&str> = changes
        .iter()
        .take(PARTIAL_LISTED)
        .map(String::as_str)
        .collect();
    let more = changes.len().saturating_sub(PARTIAL_LISTED);
    let more = if more > 0 {
        format!("; and {more} more")
    } else {
        String::new()
    };
    Error {
        message: format!(
            "{}; before it failed, this check-apply had made {} changes (the last one named \
             may be the one that failed): {}{more}",
            e.message,
            changes.len() - 1,
            shown.join("; ")
        ),
        field: e.field,
    }
}

fn resolve<F: Fs>(fs: &F, field: &str, id: Option<&Id>) -> Result<Option<u32>> {
    let name = match id {
        None => return Ok(None),
        Some(Id::Num(n)) => return Ok(Some(*n)),
        Some(Id::Name(name)) => name,
    };
    let (kind, found) = match field {
        "owner" => ("user", fs.user_id(name)),
        _ => ("group", fs.group_id(name)),
    };
    found.map(Some).map_err(|e| match e.code {
        ErrorCode::UnknownId => Error::param(
            field,
            format!("there is no {kind} named `{name}` on this host; create it first, or give a numeric id"),
        ),
        _ => Error::param(field, format!("cannot look up the {kind} `{name}`: {}", e.message)),
    })
}

/// Where a copied file's content comes from.
struct Source {
    path: String,
    /// `None` when the source is a symlink (followed by the host).
    size: Option<u64>,
    /// Permission bits a new copy gets when `mode` is unset.
    mode: Option<u32>,
}

/// The content a regular file should have.
enum Body<'a> {
    Keep,
    Inline(&'a [u8]),
    Copy(Source),
}

/// One check-apply in progress.
struct Run<'a, F> {
    fs: &'a F,
    spec: &'a Spec,
    apply: bool,
    /// `owner` and `group`, resolved.
    uid: Option<u32>,
    gid: Option<u32>,
    report: Report,
}

impl<F: Fs> Run<'_, F> {
    /// Record a change; entries below `path` are named by their own path.
    fn note(&mut self, at: &str, what: impl Into<String>) {
        let what = what.into();
        let line = if at == self.spec.path {
            what
        } else {
            format!("{at}: {what}")
        };
        self.report.changes.push(line);
    }

    fn absent(&mut self, path: &str) -> Result<()> {
        let Some(st) = self.fs.stat(path)? else {
            return Ok(());
        };
        let mut recursive = false;
        let what = match st.file_type {
            FileType::Directory => {
                let n = self.fs.read_dir(path)?.len();
                if n == 0 {
                    "remove empty directory".to_string()
                } else if self.spec.force {
                    recursive = true;
                    format!("remove directory and the {} in it", entries(n))
                } else {
                    return Err(Error::new(format!(
                        "{path} is a directory with {} in it; set `force: true` to remove it \
                         with everything below it",
                        entries(n)
                    )));
                }
            }
            FileType::Symlink => format!("remove symlink -> {}", self.fs.read_link(path)?),
            FileType::File => format!("remove file ({})", bytes(st.size)),
            FileType::Other => "remove special file".to_string(),
        };
        self.note(path, what);
        if self.apply {
            self.fs.remove(path, recursive)?;
        }
        Ok(())
    }

    fn top_file(&mut self, path: &str, content: &Content) -> Result<()> {
        let body = match content {
            Content::Keep => Body::Keep,
            Content::Inline(text) => Body::Inline(text.as_bytes()),
            Content::Source(src) => Body::Copy(self.source_file(src)?),
        };
        let st = self.fs.stat(path)?;
        self.file(path, st, &body)
    }

    fn source_file(&mut self, src: &str) -> Result<Source> {
        let Some(st) = self.fs.stat(src)? else {
            return Err(Error::param(
                "source",
                format!("the source {src} does not exist"),
            ));
        };
        let path = src.to_string();
        match st.file_type {
            FileType::File => Ok(Source {
                path,
                size: Some(st.size),
                mode: Some(st.mode & MASK),
            }),
            FileType::Symlink => Ok(Source {
                path,
                size: None,
                mode: None,
            }),
            FileType::Directory => Err(Error::param(
                "source",
                format!(
                    "the source {src} is a directory; to copy a directory tree, end both `path` \
                     and `source` with `/` and set `recurse: true`"
                ),
            )),
            FileType::Other => Err(Error::param(
                "source",
                format!("the source {src} is not a regular file"),
            )),
        }
    }

    /// A regular file at `at` (currently `st`) with `body`.
    fn file(&mut self, at: &str, st: Option<FileStat>, body: &Body) -> Result<()> {
        let new_size = match body {
            Body::Keep => None,
            Body::Inline(data) => Some(data.len() as u64),
            Body::Copy(src) => src.size,
        };
        let st = match st {
            Some(st) if st.file_type == FileType::File => st,
            other => return self.create_file(at, other, body, new_size),
        };
        let (notes, set) = self.attr_diff(&st, false);
        let rewrite = match body {
            Body::Keep => None,
            Body::Inline(data) => (!self.fs.content_equals(at, data)?).then(|| {
                format!(
                    "content: {} -> {}",
                    bytes(st.size),
                    bytes(data.len() as u64)
                )
            }),
            Body::Copy(src) => {
                let (theirs, ours) = (self.fs.digest(&src.path)?, self.fs.digest(at)?);
                (theirs != ours).then(|| match src.size {
                    Some(n) => format!(
                        "content: {} -> {} from {}",
                        bytes(st.size),
                        bytes(n),
                        src.path
                    ),
                    None => format!("content: {} -> content of {}", bytes(st.size), src.path),
                })
            }
        };
        if at == self.spec.path {
            self.report.size = if rewrite.is_some() {
                new_size
            } else {
                Some(st.size)
            };
        }
        let Some(what) = rewrite else {
            return self.set_attrs(at, notes, set);
        };
        self.note(at, what);
        if !self.apply {
            self.diff(at, Some(&st), body)?;
        }
        for n in notes {
            self.note(at, n);
        }
        if self.apply {
            // A replaced file is a new inode: carry over what is not managed.
            let attrs = Attrs {
                mode: Some(set.mode.unwrap_or(st.mode & MASK)),
                uid: Some(set.uid.unwrap_or(st.uid)),
                gid: Some(set.gid.unwrap_or(st.gid)),
            };
            self.put(at, body, attrs, false)?;
        }
        Ok(())
    }

    fn create_file(
        &mut self,
        at: &str,
        old: Option<FileStat>,
        body: &Body,
        size: Option<u64>,
    ) -> Result<()> {
        let replacing = old
            .as_ref()
            .map(|st| self.make_way(at, st, "file"))
            .transpose()?;
        // A copy starts from the source's bits (what `cp` gives), which a symbolic
        // mode then adjusts.
        let base = match body {
            Body::Copy(src) => src.mode,
            _ => None,
        };
        let mode = self
            .spec
            .mode
            .as_ref()
            .map(|m| m.target(base, false))
            .or(base);
        let attrs = Attrs {
            mode,
            uid: self.uid,
            gid: self.gid,
        };
        let (noun, from) = match body {
            Body::Keep => ("empty file", String::new()),
            Body::Inline(_) => ("file", String::new()),
            Body::Copy(src) => ("file", format!(" from {}", src.path)),
        };
        let details = describe(size, &attrs);
        self.note(
            at,
            match replacing {
                None => format!("create {noun}{from}{details}"),
                Some(old) => format!("replace {old} with {noun}{from}{details}"),
            },
        );
        if !self.apply && replacing.is_none() {
            self.diff(at, None, body)?;
        }
        if at == self.spec.path {
            self.report.size = size.or(matches!(body, Body::Keep).then_some(0));
        }
        if self.apply {
            if old.is_some_and(|st| st.file_type == FileType::Directory) {
                self.fs.remove(at, true)?;
            }
            self.put(at, body, attrs, true)?;
        }
        Ok(())
    }

    /// Attach a diff of the regular file `at` (`old` = its stat, `None` when it does not
    /// exist yet) against `body` to the change just noted. Noop only: it reads both sides.
    fn diff(&mut self, at: &str, old: Option<&FileStat>, body: &Body) -> Result<()> {
        let too_big = |n: u64| n > MAX_DIFF_BYTES as u64;
        if old.is_some_and(|st| too_big(st.size)) {
            return Ok(());
        }
        let new = match body {
            Body::Keep => return Ok(()),
            Body::Inline(data) => data.to_vec(),
            Body::Copy(src) if src.size.is_some_and(too_big) => return Ok(()),
            Body::Copy(src) => self.fs.read(&src.path)?,
        };
        let old = old.map(|_| self.fs.read(at)).transpose()?;
        if let Some(d) = text_diff(at, old.as_deref(), &new) {
            let index = self.report.changes.len() - 1;
            self.report.diffs.push((index, d));
        }
        Ok(())
    }

    /// Atomically replace `at` with a regular file holding `body`.
    fn put(&self, at: &str, body: &Body, attrs: Attrs, creating: bool) -> Result<()> {
        let done = match body {
            Body::Keep => self.fs.write(at, b"", attrs),
            Body::Inline(data) => self.fs.write(at, data, attrs),
            Body::Copy(src) => self.fs.copy(&src.path, at, attrs),
        };
        done.map_err(|e| {
            if creating {
                create_error(at, e)
            } else {
                e.into()
            }
        })
    }

    fn top_dir(
        &mut self,
        path: &str,
        source: Option<&str>,
        recurse: bool,
        purge: bool,
    ) -> Result<()> {
        let src_mode = match source {
            None => None,
            Some(src) => match self.fs.stat(src)? {
                None => {
                    return Err(Error::param(
                        "source",
                        format!("the source directory {src}/ does not exist"),
                    ));
                }
                Some(st) if st.file_type == FileType::Directory => Some(st.mode & MASK),
                Some(st) => {
                    let what = type_name(st.file_type);
                    return Err(Error::param(
                        "source",
                        format!("the source {src} is a {what}, not a directory"),
                    ));
                }
            },
        };
        let st = self.fs.stat(path)?;
        let listable = self.dir(path, st, src_mode)?;
        if !recurse {
            return Ok(());
        }
        match source {
            Some(src) => self.sync(src, path, listable, purge),
            None if listable && self.manages_attrs() => self.walk(path),
            None => Ok(()),
        }
    }

    /// A directory at `at` (currently `st`); `src_mode` is the mode a new copy takes when
    /// `mode` is unset. Returns whether `at` is now a directory that can be listed (false
    /// in noop when it would have been created).
    fn dir(&mut self, at: &str, st: Option<FileStat>, src_mode: Option<u32>) -> Result<bool> {
        if let Some(st) = st
            && st.file_type == FileType::Directory
        {
            self.fix_attrs(at, &st, true)?;
            return Ok(true);
        }
        let replacing = st
            .as_ref()
            .map(|st| self.make_way(at, st, "directory"))
            .transpose()?;
        let mode = self
            .spec
            .mode
            .as_ref()
            .map(|m| m.target(src_mode, true))
            .or(src_mode);
        let attrs = Attrs {
            mode,
            uid: self.uid,
            gid: self.gid,
        };
        let details = describe(None, &attrs);
        self.note(
            at,
            match replacing {
                None => format!("create directory{details}"),
                Some(old) => format!("replace {old} with directory{details}"),
            },
        );
        if !self.apply {
            return Ok(false);
        }
        if replacing.is_some() {
            self.fs.remove(at, false)?;
        }
        self.fs.mkdir(at, attrs).map_err(|e| create_error(at, e))?;
        Ok(true)
    }

    /// Make the tree at `dst` a copy of the tree at `src`; `listable` says whether `dst`
    /// exists as a directory yet.
    fn sync(&mut self, src: &str, dst: &str, listable: bool, purge: bool) -> Result<()> {
        let names = self.fs.read_dir(src)?;
        let existing = if listable {
            self.fs.read_dir(dst)?
        } else {
            Vec::new()
        };
        let present: BTreeSet<&str> = existing.iter().map(String::as_str).collect();
        for name in &names {
            let (s, d) = (join(src, name), join(dst, name));
            let Some(s_st) = self.fs.stat(&s)? else {
                continue; // removed since it was listed; the watch will bring us back
            };
            let d_st = if present.contains(name.as_str()) {
                self.fs.stat(&d)?
            } else {
                None
            };
            match s_st.file_type {
                FileType::Directory => {
                    let ok = self.dir(&d, d_st, Some(s_st.mode & MASK))?;
                    self.sync(&s, &d, ok, purge)?;
                }
                FileType::File => {
                    let source = Source {
                        path: s,
                        size: Some(s_st.size),
                        mode: Some(s_st.mode & MASK),
                    };
                    self.file(&d, d_st, &Body::Copy(source))?;
                }
                FileType::Symlink => {
                    let target = self.fs.read_link(&s)?;
                    self.link(&d, d_st, &target)?;
                }
                FileType::Other => {
                    self.fs.warn(&format!(
                        "{s} is a special file (fifo, socket or device) and is not copied"
                    ));
                }
            }
        }
        if !purge {
            return Ok(());
        }
        let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        for name in existing.iter().filter(|n| !wanted.contains(n.as_str())) {
            let d = join(dst, name);
            let Some(st) = self.fs.stat(&d)? else {
                continue;
            };
            let is_dir = st.file_type == FileType::Directory;
            if is_dir && !self.spec.force {
                return Err(Error::new(format!(
                    "purge would remove the directory {d}, which is not in {src}/; set \
                     `force: true` to let purge remove directories"
                )));
            }
            self.note(
                &d,
                format!("remove {} (not in source)", type_name(st.file_type)),
            );
            if self.apply {
                self.fs.remove(&d, is_dir)?;
            }
        }
        Ok(())
    }

    /// Apply `mode`, `owner` and `group` to everything below the directory `dir`.
    fn walk(&mut self, dir: &str) -> Result<()> {
        for name in self.fs.read_dir(dir)? {
            let at = join(dir, &name);
            let Some(st) = self.fs.stat(&at)? else {
                continue;
            };
            let is_dir = st.file_type == FileType::Directory;
            self.fix_attrs(&at, &st, is_dir)?;
            if is_dir {
                self.walk(&at)?;
            }
        }
        Ok(())
    }

    /// A symlink at `at` (currently `st`) pointing to `target`.
    fn link(&mut self, at: &str, st: Option<FileStat>, target: &str) -> Result<()> {
        if let Some(st) = st
            && st.file_type == FileType::Symlink
        {
            let current = self.fs.read_link(at)?;
            let (notes, set) = self.attr_diff(&st, false);
            if current == target {
                return self.set_attrs(at, notes, set);
            }
            self.note(at, format!("symlink target: {current} -> {target}"));
            for n in notes {
                self.note(at, n);
            }
            if self.apply {
                self.fs.symlink(target, at)?;
                self.own_link(at)?;
            }
            return Ok(());
        }
        let replacing = st
            .as_ref()
            .map(|st| self.make_way(at, st, "symlink"))
            .transpose()?;
        let details = describe(
            None,
            &Attrs {
                mode: None,
                uid: self.uid,
                gid: self.gid,
            },
        );
        self.note(
            at,
            match replacing {
                None => format!("create symlink -> {target}{details}"),
                Some(old) => format!("replace {old} with symlink -> {target}{details}"),
            },
        );
        if self.apply {
            // The host's symlink replaces anything but a directory atomically.
            if st.is_some_and(|st| st.file_type == FileType::Directory) {
                self.fs.remove(at, true)?;
            }
            self.fs
                .symlink(target, at)
                .map_err(|e| create_error(at, e))?;
            self.own_link(at)?;
        }
        Ok(())
    }

    /// Give a freshly made symlink the declared ownership.
    fn own_link(&self, at: &str) -> Result<()> {
        if self.uid.is_some() || self.gid.is_some() {
            self.fs.set_attrs(
                at,
                Attrs {
                    mode: None,
                    uid: self.uid,
                    gid: self.gid,
                },
            )?;
        }
        Ok(())
    }

    /// Differences between the declared attributes and `st`, as change lines and the
    /// attrs that would fix them (only the differing fields are set).
    fn attr_diff(&self, st: &FileStat, is_dir: bool) -> (Vec<String>, Attrs) {
        let mut notes = Vec::new();
        let mut set = Attrs::default();
        let current = st.mode & MASK;
        if st.file_type != FileType::Symlink
            && let Some(mode) = &self.spec.mode
        {
            let want = mode.target(Some(current), is_dir);
            if want != current {
                notes.push(format!("mode {} -> {}", show(current), show(want)));
                set.mode = Some(want);
            }
        }
        if let Some(uid) = self.uid
            && uid != st.uid
        {
            notes.push(format!("owner {} -> {uid}", st.uid));
            set.uid = Some(uid);
        }
        if let Some(gid) = self.gid
            && gid != st.gid
        {
            notes.push(format!("group {} -> {gid}", st.gid));
            set.gid = Some(gid);
        }
        (notes, set)
    }

    fn fix_attrs(&mut self, at: &str, st: &FileStat, is_dir: bool) -> Result<()> {
        let (notes, set) = self.attr_diff(st, is_dir);
        self.set_attrs(at, notes, set)
    }

    fn set_attrs(&mut self, at: &str, notes: Vec<String>, set: Attrs) -> Result<()> {
        if notes.is_empty() {
            return Ok(());
        }
        for n in notes {
            self.note(at, n);
        }
        if self.apply {
            self.fs.set_attrs(at, set)?;
        }
        Ok(())
    }

    fn manages_attrs(&self) -> bool {
        self.spec.mode.is_some() || self.uid.is_some() || self.gid.is_some()
    }

    /// Allow replacing the existing entry `st` by a `want`; returns the name of what is
    /// replaced. As in Puppet, only destroying a directory needs `force`: a file or
    /// symlink in the way is ordinary drift (e.g. someone replaced a managed file by a
    /// link) and is repaired like any other.
    fn make_way(&self, at: &str, st: &FileStat, want: &str) -> Result<&'static str> {
        let old = type_name(st.file_type);
        if self.spec.force || st.file_type != FileType::Directory {
            return Ok(old);
        }
        Err(Error::new(format!(
            "{at} is a directory, not a {want}; set `force: true` to replace the directory \
             with everything in it"
        )))
    }
}

fn create_error(at: &str, e: FsError) -> Error {
    if e.code != ErrorCode::NotFound {
        return e.into();
    }
    let dir = parent(at);
    Error::new(format!(
        "{}; if the directory {dir} does not exist, create it first, for example with a \
         `file` resource whose path is `{dir}/` (it is ordered before this one automatically)",
        e.message
    ))
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::File => "file",
        FileType::Directory => "directory",
        FileType::Symlink => "symlink",
        FileType::Other => "special file",
    }
}

fn bytes(n: u64) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

fn entries(n: usize) -> String {
    if n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
    }
}

/// ` (14 bytes, mode 0644, owner 0)` for what is known about a new entry.
fn describe(size: Option<u64>, attrs: &Attrs) -> String {
    let mut parts = Vec::new();
    if let Some(n) = size {
        parts.push(bytes(n));
    }
    if let Some(m) = attrs.mode {
        parts.push(format!("mode {}", show(m)));
    }
    if let Some(uid) = attrs.uid {
        parts.push(format!("owner {uid}"));
    }
    if let Some(gid) = attrs.gid {
        parts.push(format!("group {gid}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod partial_tests {
    use super::*;

    #[test]
    fn a_repair_that_fails_half_way_says_what_it_did() {
        let e = || Error::new("cannot write /etc/app/b: No space left on device");
        let changes: Vec<String> = (0..20).map(|i| format!("/etc/app/{i}: create")).collect();
        let told = with_partial(e(), &changes, true).message;
        assert!(
            told.starts_with(
                "cannot write /etc/app/b: No space left on device; before it failed, this \
                 check-apply had made 19 changes"
            ) && told.contains("/etc/app/0: create; /etc/app/1: create")
                && told.contains("/etc/app/15: create; and 4 more"),
            "{told}"
        );
        // A check (noop) changed nothing; a failure before any change has nothing to add.
        assert_eq!(with_partial(e(), &changes, false), e());
        assert_eq!(with_partial(e(), &changes[..1], true), e());
    }
}

//! The params of a `file` resource as they arrive (JSON), and [`Spec`], the checked
//! form that validate and check-apply work from. Everything here is pure: no host calls,
//! so it runs in `validate` and in native unit tests.
//!
//! Paths are normalised once here (`//` and `.` collapsed, trailing `/` dropped after
//! noting that it means "directory"); every host call, grant, watch and dependency uses
//! the normalised form.

use serde::Deserialize;

use homeostat_sdk::{Error, Result};

use crate::mode::Mode;

/// The params exactly as the graph gives them (see `schema/file.json`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Params {
    pub path: String,
    #[serde(default)]
    pub state: State,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub owner: Option<IdParam>,
    #[serde(default)]
    pub group: Option<IdParam>,
    #[serde(default)]
    pub recurse: bool,
    #[serde(default)]
    pub purge: bool,
    #[serde(default)]
    pub force: bool,
    #[serde(default)]
    pub symlink: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Exists,
    Absent,
}

/// `owner`/`group` as written: a name, or a numeric id (as a number or a string of digits).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IdParam {
    Number(u64),
    Text(String),
}

/// A user or group, resolved to a number at check time when it is a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Id {
    Num(u32),
    Name(String),
}

/// What the params ask for, checked and normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Absolute, normalised, without a trailing `/`.
    pub path: String,
    pub want: Want,
    pub mode: Option<Mode>,
    pub owner: Option<Id>,
    pub group: Option<Id>,
    /// Replace an entry of another type (and remove non-empty directories).
    pub force: bool,
}

/// The kind of entry wanted at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Absent,
    File(Content),
    Directory {
        /// A directory to copy the tree from (normalised, no trailing `/`).
        source: Option<String>,
        recurse: bool,
        purge: bool,
    },
    Symlink {
        /// The link's target, verbatim (may be relative).
        target: String,
    },
}

/// Where a regular file's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Not managed: the file must exist (created empty when missing).
    Keep,
    Inline(String),
    /// Copy of the regular file at this (normalised) path.
    Source(String),
}

impl Spec {
    /// Check the params; every error names the param it is about.
    pub fn from_params(p: &Params) -> Result<Spec> {
        let (path, is_dir) = parse_path("path", &p.path)?;
        let mode = p.mode.as_deref().map(Mode::parse).transpose()?;
        let owner = p.owner.as_ref().map(|v| parse_id("owner", v)).transpose()?;
        let group = p.group.as_ref().map(|v| parse_id("group", v)).transpose()?;
        if p.content.is_some() && p.source.is_some() {
            return Err(Error::param(
                "content",
                "`content` and `source` are mutually exclusive: keep `content` to write the \
                 text given here, or `source` to copy another file",
            ));
        }
        let want = match p.state {
            State::Absent => absent(p)?,
            State::Exists if p.symlink => symlink(p, is_dir)?,
            State::Exists if is_dir => directory(p, &path)?,
            State::Exists => file(p, &path)?,
        };
        if let Want::Symlink { .. } = want
            && mode.is_some()
        {
            return Err(Error::param(
                "mode",
                "a symlink has no mode of its own (Linux ignores it); remove `mode`",
            ));
        }
        Ok(Spec {
            path,
            want,
            mode,
            owner,
            group,
            force: p.force,
        })
    }

    /// Whether the resource manages a whole tree below `path` (recursive grant and watch).
    pub fn is_tree(&self) -> bool {
        matches!(self.want, Want::Directory { recurse: true, .. })
    }

    /// What `validate` declares: footprint, watches and dependencies.
    pub fn declare(&self) -> Declared {
        let mut d = Declared::default();
        // `force` may remove a whole directory that stands where the entry should be.
        // `absent` claims the whole tree too: nothing may exist at or below `path`, so
        // the host refuses another resource managing a path inside it (a contradiction
        // that would otherwise fail at every check-apply) as it refuses one inside a
        // recursive tree. Without `force` the plugin still removes only an empty directory.
        let tree = self.is_tree() || self.force || self.want == Want::Absent;
        d.grants.push(Grant {
            path: self.path.clone(),
            recursive: tree,
            write: true,
        });
        d.watches.push(Watch {
            path: self.path.clone(),
            recursive: self.is_tree(),
        });
        d.depends.push(parent(&self.path).to_string());
        match &self.want {
            Want::File(Content::Source(src)) => d.read_source(src, false),
            Want::Directory {
                source: Some(src), ..
            } => d.read_source(src, true),
            Want::Symlink { target } if target.starts_with('/') => {
                // Not read, so neither granted nor watched; but whoever manages the
                // target should run first.
                d.depends.push(normalise_lossy(target));
            }
            _ => {}
        }
        d
    }
}

/// A path the resource may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub path: String,
    pub recursive: bool,
    pub write: bool,
}

/// A path whose changes re-trigger check-apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    pub path: String,
    pub recursive: bool,
}

/// Everything `validate` returns, in plain types (converted to the SDK's `Info` in lib.rs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub grants: Vec<Grant>,
    pub watches: Vec<Watch>,
    /// Paths whose managing resources this one depends on.
    pub depends: Vec<String>,
}

impl Declared {
    /// A copy source: read it (the whole tree for a directory), watch it, and run after
    /// whoever manages it.
    fn read_source(&mut self, src: &str, tree: bool) {
        self.grants.push(Grant {
            path: src.to_string(),
            recursive: tree,
            write: false,
        });
        self.watches.push(Watch {
            path: src.to_string(),
            recursive: tree,
        });
        self.depends.push(src.to_string());
    }
}

fn absent(p: &Params) -> Result<Want> {
    let useless = [
        ("content", p.content.is_some()),
        ("source", p.source.is_some()),
        ("symlink", p.symlink),
        ("mode", p.mode.is_some()),
        ("owner", p.owner.is_some()),
        ("group", p.group.is_some()),
        ("purge", p.purge),
    ];
    if let Some((name, _)) = useless.iter().find(|(_, set)| *set) {
        return Err(Error::param(
            name,
            format!("`{name}` has no effect with `state: absent`; remove it"),
        ));
    }
    if p.recurse {
        return Err(Error::param(
            "recurse",
            "`recurse` has no effect with `state: absent`; to remove a directory together with \
             everything in it, set `force: true` instead",
        ));
    }
    Ok(Want::Absent)
}

fn symlink(p: &Params, is_dir: bool) -> Result<Want> {
    if is_dir {
        return Err(Error::param(
            "path",
            "a symlink's path must not end with `/`; remove the trailing `/` (the link may \
             still point to a directory)",
        ));
    }
    if p.content.is_some() {
        return Err(Error::param(
            "content",
            "a symlink has no content; remove `content`",
        ));
    }
    for (name, set) in [("recurse", p.recurse), ("purge", p.purge)] {
        if set {
            return Err(Error::param(
                name,
                format!("`{name}` does not apply to a symlink; remove it"),
            ));
        }
    }
    let Some(target) = &p.source else {
        return Err(Error::param(
            "symlink",
            "`symlink: true` needs `source`: the path the link points to",
        ));
    };
    if target.is_empty() || target.contains('\0') {
        return Err(Error::param(
            "source",
            "the symlink target is empty or contains a NUL byte",
        ));
    }
    Ok(Want::Symlink {
        target: target.clone(),
    })
}

fn directory(p: &Params, path: &str) -> Result<Want> {
    if p.content.is_some() {
        return Err(Error::param(
            "content",
            "a directory has no content: remove `content`, or remove the trailing `/` from \
             `path` to manage a file",
        ));
    }
    let source = match &p.source {
        None => None,
        Some(raw) => {
            let (src, src_is_dir) = parse_path("source", raw)?;
            if !src_is_dir {
                return Err(Error::param(
                    "source",
                    format!(
                        "`path` is a directory (it ends with `/`), so `source` must be one too: \
                         write `{src}/`"
                    ),
                ));
            }
            if !p.recurse {
                return Err(Error::param(
                    "recurse",
                    format!("copying the directory `{src}/` needs `recurse: true`"),
                ));
            }
            if within(&src, path) || within(path, &src) {
                return Err(Error::param(
                    "source",
                    format!(
                        "`source` ({src}/) and `path` ({path}/) overlap; copy between separate trees"
                    ),
                ));
            }
            Some(src)
        }
    };
    if p.purge && source.is_none() {
        return Err(Error::param(
            "purge",
            "`purge` removes entries that are not in `source`, so it needs `source` (a \
             directory) and `recurse: true`",
        ));
    }
    Ok(Want::Directory {
        source,
        recurse: p.recurse,
        purge: p.purge,
    })
}

fn file(p: &Params, path: &str) -> Result<Want> {
    for name in ["recurse", "purge"] {
        let set = if name == "recurse" {
            p.recurse
        } else {
            p.purge
        };
        if set {
            return Err(Error::param(
                name,
                format!(
                    "`{name}` applies to directories: end `path` with `/` to manage a directory"
                ),
            ));
        }
    }
    let content = match (&p.content, &p.source) {
        (Some(text), _) => Content::Inline(text.clone()),
        (None, Some(raw)) => {
            let (src, src_is_dir) = parse_path("source", raw)?;
            if src_is_dir {
                return Err(Error::param(
                    "source",
                    "`source` ends with `/` (a directory) but `path` is a file; to copy a \
                     directory tree end `path` with `/` too and set `recurse: true`",
                ));
            }
            if src == path {
                return Err(Error::param(
                    "source",
                    "`source` and `path` are the same file",
                ));
            }
            Content::Source(src)
        }
        (None, None) => Content::Keep,
    };
    Ok(Want::File(content))
}

/// Check an absolute path param and normalise it; the bool is "ends with `/`".
pub fn parse_path(field: &str, raw: &str) -> Result<(String, bool)> {
    let example = if field == "source" {
        "/srv/files/motd"
    } else {
        "/etc/motd"
    };
    if raw.is_empty() {
        return Err(Error::param(
            field,
            format!(
                "`{field}` is empty; give an absolute path such as {example} (end it with `/` for a directory)"
            ),
        ));
    }
    if raw.contains('\0') {
        return Err(Error::param(
            field,
            format!("`{field}` contains a NUL byte"),
        ));
    }
    if !raw.starts_with('/') {
        return Err(Error::param(
            field,
            format!("`{raw}` is a relative path; `{field}` must be absolute, such as {example}"),
        ));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::param(
                    field,
                    format!("`{raw}` contains `..`; write the path without it"),
                ));
            }
            _ => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(Error::param(
            field,
            format!("`{field}` cannot be the root directory `/`"),
        ));
    }
    Ok((format!("/{}", parts.join("/")), raw.ends_with('/')))
}

/// Normalise an absolute path that need not be valid as a param (a symlink target).
fn normalise_lossy(raw: &str) -> String {
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn parse_id(field: &str, v: &IdParam) -> Result<Id> {
    let kind = if field == "owner" { "user" } else { "group" };
    let too_big = || {
        Error::param(
            field,
            format!("`{field}` is larger than the largest {kind} id, 4294967295"),
        )
    };
    match v {
        IdParam::Number(n) => u32::try_from(*n).map(Id::Num).map_err(|_| too_big()),
        IdParam::Text(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<u32>().map(Id::Num).map_err(|_| too_big())
        }
        IdParam::Text(s)
            if s.is_empty() || s.contains(|c: char| c == ':' || c == '/' || c.is_whitespace()) =>
        {
            Err(Error::param(
                field,
                format!("`{s}` is not a valid {kind} name; give a {kind} name or a numeric id"),
            ))
        }
        IdParam::Text(s) => Ok(Id::Name(s.clone())),
    }
}

/// The directory holding `path` (normalised, not `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `path` is `dir` or below it.
pub fn within(path: &str, dir: &str) -> bool {
    path == dir
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// `dir/name`.
pub fn join(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Params {
        serde_json::from_str(json).unwrap()
    }

    fn spec(json: &str) -> Spec {
        Spec::from_params(&params(json)).unwrap()
    }

    fn err(json: &str) -> Error {
        Spec::from_params(&params(json)).unwrap_err()
    }

    #[track_caller]
    fn err_on(json: &str, field: &str, needle: &str) {
        let e = err(json);
        assert_eq!(e.field.as_deref(), Some(field), "{json}: {}", e.message);
        assert!(
            e.message.contains(needle),
            "{json}: `{}` lacks `{needle}`",
            e.message
        );
    }

    #[test]
    fn defaults_to_an_existing_file() {
        let s = spec(r#"{"path": "/etc/motd"}"#);
        assert_eq!(s.path, "/etc/motd");
        assert_eq!(s.want, Want::File(Content::Keep));
        assert_eq!(
            (s.mode, s.owner, s.group, s.force),
            (None, None, None, false)
        );
    }

    #[test]
    fn paths_are_checked_and_normalised() {
        assert_eq!(spec(r#"{"path": "//etc/./motd"}"#).path, "/etc/motd");
        let s = spec(r#"{"path": "/srv/www/"}"#);
        assert_eq!(s.path, "/srv/www");
        assert!(matches!(
            s.want,
            Want::Directory {
                source: None,
                recurse: false,
                purge: false
            }
        ));
        err_on(r#"{"path": ""}"#, "path", "is empty");
        err_on(r#"{"path": "etc/motd"}"#, "path", "relative path");
        err_on(r#"{"path": "/etc/../motd"}"#, "path", "`..`");
        err_on(r#"{"path": "/"}"#, "path", "root directory");
        err_on(r#"{"path": "/x\u0000y"}"#, "path", "NUL");
    }

    #[test]
    fn content_and_source_exclude_each_other() {
        err_on(
            r#"{"path": "/a", "content": "x", "source": "/b"}"#,
            "content",
            "mutually exclusive",
        );
        err_on(
            r#"{"path": "/a/", "content": "x"}"#,
            "content",
            "directory has no content",
        );
    }

    #[test]
    fn file_source() {
        let s = spec(r#"{"path": "/etc/a.conf", "source": "/srv/a.conf"}"#);
        assert_eq!(s.want, Want::File(Content::Source("/srv/a.conf".into())));
        err_on(r#"{"path": "/a", "source": "srv"}"#, "source", "relative");
        err_on(
            r#"{"path": "/a", "source": "/srv/"}"#,
            "source",
            "end `path` with `/`",
        );
        err_on(r#"{"path": "/a", "source": "/a"}"#, "source", "same file");
        err_on(
            r#"{"path": "/a", "recurse": true}"#,
            "recurse",
            "applies to directories",
        );
        err_on(
            r#"{"path": "/a", "purge": true}"#,
            "purge",
            "applies to directories",
        );
    }

    #[test]
    fn directory_source_needs_recurse_and_slashes() {
        let s =
            spec(r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true, "purge": true}"#);
        let want = Want::Directory {
            source: Some("/srv/app".into()),
            recurse: true,
            purge: true,
        };
        assert_eq!(s.want, want);
        err_on(
            r#"{"path": "/etc/app/", "source": "/srv/app/"}"#,
            "recurse",
            "needs `recurse: true`",
        );
        err_on(
            r#"{"path": "/etc/app/", "source": "/srv/app", "recurse": true}"#,
            "source",
            "write `/srv/app/`",
        );
        err_on(
            r#"{"path": "/etc/app/", "recurse": true, "purge": true}"#,
            "purge",
            "needs `source`",
        );
        err_on(
            r#"{"path": "/srv/app/x/", "source": "/srv/app/", "recurse": true}"#,
            "source",
            "overlap",
        );
        err_on(
            r#"{"path": "/srv/", "source": "/srv/app/", "recurse": true}"#,
            "source",
            "overlap",
        );
        // Sibling prefixes are not overlaps.
        spec(r#"{"path": "/srv/app2/", "source": "/srv/app/", "recurse": true}"#);
    }

    #[test]
    fn symlinks() {
        let s =
            spec(r#"{"path": "/usr/bin/vi", "symlink": true, "source": "vim.basic", "owner": 0}"#);
        assert_eq!(
            s.want,
            Want::Symlink {
                target: "vim.basic".into()
            }
        );
        err_on(
            r#"{"path": "/a", "symlink": true}"#,
            "symlink",
            "needs `source`",
        );
        err_on(
            r#"{"path": "/a/", "symlink": true, "source": "/b"}"#,
            "path",
            "must not end with `/`",
        );
        err_on(
            r#"{"path": "/a", "symlink": true, "source": "/b", "mode": "0644"}"#,
            "mode",
            "no mode",
        );
        err_on(
            r#"{"path": "/a", "symlink": true, "source": "/b", "recurse": true}"#,
            "recurse",
            "symlink",
        );
        err_on(
            r#"{"path": "/a", "symlink": true, "source": ""}"#,
            "source",
            "empty",
        );
    }

    #[test]
    fn absent_rejects_what_it_would_ignore() {
        assert_eq!(
            spec(r#"{"path": "/a", "state": "absent", "force": true}"#).want,
            Want::Absent
        );
        err_on(
            r#"{"path": "/a", "state": "absent", "content": ""}"#,
            "content",
            "no effect",
        );
        err_on(
            r#"{"path": "/a", "state": "absent", "mode": "0644"}"#,
            "mode",
            "no effect",
        );
        err_on(
            r#"{"path": "/a/", "state": "absent", "recurse": true}"#,
            "recurse",
            "force: true",
        );
    }

    #[test]
    fn owner_and_group() {
        let s = spec(r#"{"path": "/a", "owner": "www-data", "group": 33}"#);
        assert_eq!(s.owner, Some(Id::Name("www-data".into())));
        assert_eq!(s.group, Some(Id::Num(33)));
        assert_eq!(
            spec(r#"{"path": "/a", "owner": "1000"}"#).owner,
            Some(Id::Num(1000))
        );
        err_on(r#"{"path": "/a", "owner": 4294967296}"#, "owner", "larger");
        err_on(
            r#"{"path": "/a", "group": "99999999999"}"#,
            "group",
            "larger",
        );
        err_on(
            r#"{"path": "/a", "owner": ""}"#,
            "owner",
            "not a valid user name",
        );
        err_on(
            r#"{"path": "/a", "group": "a b"}"#,
            "group",
            "not a valid group name",
        );
    }

    #[test]
    fn mode_errors_name_the_param() {
        err_on(
            r#"{"path": "/a", "mode": "9999"}"#,
            "mode",
            "not a valid mode",
        );
    }

    fn grant(path: &str, recursive: bool, write: bool) -> Grant {
        Grant {
            path: path.into(),
            recursive,
            write,
        }
    }

    fn watch(path: &str, recursive: bool) -> Watch {
        Watch {
            path: path.into(),
            recursive,
        }
    }

    #[test]
    fn declares_file_footprint() {
        let d = spec(r#"{"path": "/etc/motd", "content": "hi"}"#).declare();
        assert_eq!(d.grants, [grant("/etc/motd", false, true)]);
        assert_eq!(d.watches, [watch("/etc/motd", false)]);
        assert_eq!(d.depends, ["/etc"]);

        let d = spec(r#"{"path": "/motd", "source": "/srv/motd", "force": true}"#).declare();
        assert_eq!(
            d.grants,
            [grant("/motd", true, true), grant("/srv/motd", false, false)]
        );
        assert_eq!(
            d.watches,
            [watch("/motd", false), watch("/srv/motd", false)]
        );
        assert_eq!(d.depends, ["/", "/srv/motd"]);
    }

    #[test]
    fn declares_tree_footprint() {
        let d = spec(r#"{"path": "/etc/app/", "source": "/srv/app/", "recurse": true}"#).declare();
        assert_eq!(
            d.grants,
            [
                grant("/etc/app", true, true),
                grant("/srv/app", true, false)
            ]
        );
        assert_eq!(
            d.watches,
            [watch("/etc/app", true), watch("/srv/app", true)]
        );
        assert_eq!(d.depends, ["/etc", "/srv/app"]);

        let d = spec(r#"{"path": "/var/www/", "owner": "www-data", "recurse": true}"#).declare();
        assert_eq!(d.grants, [grant("/var/www", true, true)]);
        assert_eq!(d.watches, [watch("/var/www", true)]);

        let d = spec(r#"{"path": "/var/www/"}"#).declare();
        assert_eq!(d.grants, [grant("/var/www", false, true)]);
        assert_eq!(d.watches, [watch("/var/www", false)]);
    }

    #[test]
    fn absent_declares_the_whole_tree() {
        for params in [
            r#"{"path": "/etc/app/", "state": "absent"}"#,
            r#"{"path": "/etc/app", "state": "absent"}"#,
            r#"{"path": "/etc/app/", "state": "absent", "force": true}"#,
        ] {
            let d = spec(params).declare();
            assert_eq!(d.grants, [grant("/etc/app", true, true)], "{params}");
            assert_eq!(d.watches, [watch("/etc/app", false)], "{params}");
            assert_eq!(d.depends, ["/etc"], "{params}");
        }
    }

    #[test]
    fn declares_symlink_footprint() {
        let d = spec(r#"{"path": "/etc/a", "symlink": true, "source": "/etc//b"}"#).declare();
        assert_eq!(d.grants, [grant("/etc/a", false, true)]);
        assert_eq!(d.watches, [watch("/etc/a", false)]);
        assert_eq!(d.depends, ["/etc", "/etc/b"]);
        let d = spec(r#"{"path": "/etc/a", "symlink": true, "source": "b"}"#).declare();
        assert_eq!(d.depends, ["/etc"]);
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/etc/motd"), "/etc");
        assert_eq!(parent("/motd"), "/");
        assert!(within("/a/b", "/a"));
        assert!(within("/a", "/a"));
        assert!(!within("/ab", "/a"));
        assert_eq!(join("/a", "b"), "/a/b");
    }
}

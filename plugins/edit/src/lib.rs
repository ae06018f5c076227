//! The bundled editing kinds: `line` (one line of a text file, Puppet's `file_line`),
//! `ini` (one key of an ini section, Ansible's `ini_file`) and `ssh_authorized_key` (one
//! key in a user's `authorized_keys`, Puppet's `ssh_authorized_key`).
//!
//! Both edit *part* of a file ([`Resource::EDITS`]): any number of `line` and `ini`
//! resources (and third-party editing kinds) may name one file, beside at most one
//! `file` resource that manages its existence and attributes but not its content. The
//! host runs their check-applies on a file one at a time, each reading what the ones
//! before it wrote, and writes the file once for all of them (see docs/resources/line.md
//! and the plugin guide's "Editing part of a file"). Each resource reads and writes only
//! its file, through the host's `fs`.
//!
//! The edits themselves are pure functions ([`line::Line::edit`], [`ini::edit`]),
//! unit-tested natively (`cargo test --target x86_64-unknown-linux-gnu`).

use homeostat_sdk::{CheckApply, Error, Info, Outcome, Resource, ResourceId, Result, fs};

pub mod authkey;
pub mod ini;
pub mod line;

/// The declaration both kinds make: they write and watch their file, and depend on
/// whoever manages it (a `file` resource) or its directory.
fn info(path: &str) -> Result<Info> {
    if !path.starts_with('/') {
        return Err(Error::param(
            "path",
            format!("`{path}` is not an absolute path"),
        ));
    }
    Ok(Info::new()
        .write_path(path)
        .watch_path(path)
        .depends_on_path(path))
}

/// The text of `path`, or `None` when it does not exist.
fn read_text(path: &str) -> Result<Option<String>> {
    match fs::read_opt(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            Error::new(format!(
                "{path} is not UTF-8 text, which this kind does not edit"
            ))
        }),
    }
}

/// Check `path` against `edit` and, when applying, write what it returns. `create`: a
/// missing file is edited as an empty one (else it is an error, unless `absent` asks
/// for nothing to be there).
fn check_apply_text(
    path: &str,
    create: bool,
    absent: bool,
    ctx: &CheckApply,
    attrs: fs::Attrs,
    edit: impl FnOnce(&str) -> Result<Option<(String, String)>>,
) -> Result<Outcome> {
    let mut out = Outcome::new();
    let current = read_text(path)?;
    let text = match &current {
        Some(t) => t.as_str(),
        None if absent => return Ok(out),
        None if !create => {
            return Err(Error::new(format!(
                "{path} does not exist: set `create: true`, or declare it with a `file` resource"
            )));
        }
        None => "",
    };
    let Some((new, what)) = edit(text)? else {
        return Ok(out);
    };
    out.change(if current.is_some() {
        what
    } else {
        format!("{what} (create the file)")
    });
    if ctx.apply {
        fs::write(path, new.as_bytes(), attrs)?;
    }
    Ok(out)
}

/// The `line` kind.
pub struct LineKind;

impl Resource for LineKind {
    const KIND: &'static str = "line";
    const SCHEMA: &'static str = include_str!("../schema/line.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = line::Params;

    fn validate(_: &ResourceId, p: &line::Params) -> Result<Info> {
        line::Line::new(p).map_err(|(field, why)| Error::param(field, why))?;
        info(&p.path)
    }

    fn check_apply(_: &ResourceId, p: &line::Params, ctx: &CheckApply) -> Result<Outcome> {
        let l = line::Line::new(p).map_err(|(field, why)| Error::param(field, why))?;
        let absent = p.state == line::State::Absent;
        check_apply_text(&p.path, p.create, absent, ctx, fs::Attrs::new(), |text| {
            l.edit(text).map_err(Error::new)
        })
    }
}

/// The `ini` kind.
pub struct IniKind;

impl Resource for IniKind {
    const KIND: &'static str = "ini";
    const SCHEMA: &'static str = include_str!("../schema/ini.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = ini::Params;

    fn validate(_: &ResourceId, p: &ini::Params) -> Result<Info> {
        ini::check(p).map_err(|(field, why)| Error::param(field, why))?;
        info(&p.path)
    }

    fn check_apply(_: &ResourceId, p: &ini::Params, ctx: &CheckApply) -> Result<Outcome> {
        let absent = p.state == ini::State::Absent;
        check_apply_text(&p.path, p.create, absent, ctx, fs::Attrs::new(), |text| {
            Ok(ini::edit(text, p))
        })
    }
}

/// The `ssh_authorized_key` kind.
pub struct AuthorizedKey;

impl Resource for AuthorizedKey {
    const KIND: &'static str = "ssh_authorized_key";
    const SCHEMA: &'static str = include_str!("../schema/ssh_authorized_key.json");
    const CLEANUP: bool = false;
    const EDITS: bool = true;
    type Params = authkey::Params;

    fn validate(id: &ResourceId, p: &authkey::Params) -> Result<Info> {
        authkey::check(p, &id.name).map_err(|(field, why)| Error::param(field, why))?;
        info(&authkey::target(p))
    }

    fn check_apply(id: &ResourceId, p: &authkey::Params, ctx: &CheckApply) -> Result<Outcome> {
        let path = authkey::target(p);
        let absent = p.state == line::State::Absent;
        // sshd's StrictModes: a new file is the user's and nobody else's (an existing
        // file's owner and mode are a `file` resource's to manage).
        let attrs = match fs::stat(&path)? {
            Some(_) => fs::Attrs::new(),
            None => fs::Attrs::new()
                .mode(0o600)
                .uid(fs::user_id(&p.user).map_err(|e| {
                    Error::param(
                        "user",
                        format!("cannot find user `{}`: {}", p.user, e.message),
                    )
                })?),
        };
        check_apply_text(&path, true, absent, ctx, attrs, |text| {
            Ok(authkey::edit(text, p, &id.name))
        })
    }
}

homeostat_sdk::export_resource!(LineKind, IniKind, AuthorizedKey; capabilities = ["fs"]);

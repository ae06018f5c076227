//! The bundled `file` resource: a regular file, a directory (optionally a whole tree
//! copied from a source directory) or a symlink at one absolute path, with its content,
//! mode and ownership — or the absence of anything at that path.
//!
//! It owns the meaning of the `file` params (`schema/file.json`, `docs/resources/file.md`)
//! and nothing else: every file-system access goes through the host's `fs` interface,
//! confined to the footprint declared in `validate`. The modules split that work so
//! everything but the host calls can be tested natively:
//!
//! - [`params`]: params → checked [`params::Spec`], and what `validate` declares
//!   (footprint, watches, dependencies). Pure.
//! - [`mode`]: octal and symbolic modes. Pure.
//! - [`apply`]: check-apply against any [`sys::Fs`]; compares first, mutates only when
//!   applying.
//! - [`describe`]: what is at a path, as the params declaring it (`homeostat resource`).
//! - [`sys`]: the `Fs` trait and its implementation by the host.

pub mod apply;
pub mod describe;
pub mod mode;
pub mod params;
pub mod sys;

#[cfg(test)]
mod memfs;
#[cfg(test)]
mod tests;

use homeostat_sdk::{CheckApply, Info, Outcome, Resource, ResourceId, Result};

use params::{Declared, Params, Spec};

/// The `file` kind.
pub struct File;

impl Resource for File {
    /// Nothing to release: the host skips `cleanup` calls.
    const CLEANUP: bool = false;
    // A `collect:` pattern is the directory a collected file is placed in (mgmt's meaning).
    const COLLECT_DIR: Option<&'static str> = Some("path");
    const REMOVES_WHEN: Option<(&'static str, &'static str)> = Some(("state", "absent"));
    const CONTENT_PARAMS: &'static [&'static str] = &["content", "source", "symlink"];
    // `homeostat resource file /etc/hosts` describes the file at that path.
    const NAME_PARAM: Option<&'static str> = Some("path");
    const KIND: &'static str = "file";
    const SCHEMA: &'static str = include_str!("../schema/file.json");
    type Params = Params;
    const SENDS: &'static [(&'static str, &'static str)] =
        &[("path", "string"), ("size", "integer")];

    fn validate(_: &ResourceId, p: &Params) -> Result<Info> {
        Ok(info(Spec::from_params(p)?.declare()))
    }

    fn check_apply(_: &ResourceId, p: &Params, ctx: &CheckApply) -> Result<Outcome> {
        let spec = Spec::from_params(p)?;
        let report = apply::check_apply(&sys::Host, &spec, ctx.apply)?;
        let mut out = Outcome::new();
        let mut diffs = report.diffs.into_iter().peekable();
        for (i, change) in report.changes.into_iter().enumerate() {
            match diffs.next_if(|(at, _)| *at == i) {
                Some((_, diff)) => out.change_with_diff(change, diff),
                None => out.change(change),
            }
        }
        out.send("path", &spec.path);
        if let Some(size) = report.size {
            out.send("size", size);
        }
        Ok(out)
    }

    fn describe(_: &ResourceId, p: &Params) -> Result<serde_json::Value> {
        describe::describe(&sys::Host, &p.path)
    }
}

fn info(d: Declared) -> Info {
    let mut info = Info::new();
    for g in &d.grants {
        info = match (g.recursive, g.write) {
            (false, false) => info.read_path(&g.path),
            (true, false) => info.read_tree(&g.path),
            (false, true) => info.write_path(&g.path),
            (true, true) => info.write_tree(&g.path),
        };
    }
    for w in &d.watches {
        info = if w.recursive {
            info.watch_tree(&w.path)
        } else {
            info.watch_path(&w.path)
        };
    }
    for dep in &d.depends {
        info = info.depends_on_path(dep);
    }
    info
}

homeostat_sdk::export_resource!(File; capabilities = ["fs"]);

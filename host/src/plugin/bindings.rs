//! The only module that runs `bindgen!`: the host side of `homeostat:resource@0.1.0`.
//!
//! It implements the generated host traits (`log`, `fs`) for [`HostState`] by
//! delegating to the capability modules, and converts between generated types and the
//! engine's own ([`ResourceInfo`], [`CheckOutcome`], [`PluginError`]). Generated types
//! never leave this module: everything public here is a plain engine type.

use std::path::PathBuf;

use crate::plugin::capabilities::fs as fscap;
use crate::plugin::runtime::HostState;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/v0.1",
        world: "resource-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

use generated::homeostat::resource::{
    fs as wfs, kmsg as wkmsg, log as wlog, state as wstate, types as wt,
};
pub(crate) use generated::{ResourcePlugin, ResourcePluginPre};

/// A resource's identity as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    pub kind: String,
    pub name: String,
}

impl From<&ResourceRef> for wt::ResourceId {
    fn from(r: &ResourceRef) -> Self {
        wt::ResourceId {
            kind: r.kind.clone(),
            name: r.name.clone(),
        }
    }
}

/// An expected failure reported by the plugin (a WIT `error` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    pub message: String,
    /// The param it is about, if the plugin said so.
    pub field: Option<String>,
}

impl From<wt::Error> for PluginError {
    fn from(e: wt::Error) -> Self {
        PluginError {
            message: e.message,
            field: e.field,
        }
    }
}

/// Something that may change a resource's state and should wake it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    Path {
        path: PathBuf,
        recursive: bool,
    },
    Interval {
        ms: u32,
    },
    /// Every new kernel log record.
    Kmsg,
}

/// What `validate` returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub footprint: fscap::Footprint,
    pub watch: Vec<WatchItem>,
    /// Paths whose managing resource this one depends on (autoedges).
    pub depends_on_paths: Vec<String>,
}

impl From<wt::ResourceInfo> for ResourceInfo {
    fn from(i: wt::ResourceInfo) -> Self {
        ResourceInfo {
            footprint: fscap::Footprint {
                paths: i
                    .footprint
                    .paths
                    .into_iter()
                    .map(|g| fscap::PathGrant {
                        path: PathBuf::from(g.path),
                        recursive: g.recursive,
                        write: g.write,
                    })
                    .collect(),
            },
            watch: i
                .watch
                .into_iter()
                .map(|w| match w {
                    wt::WatchItem::Path(p) => WatchItem::Path {
                        path: PathBuf::from(p.path),
                        recursive: p.recursive,
                    },
                    wt::WatchItem::Interval(ms) => WatchItem::Interval { ms },
                    wt::WatchItem::Kmsg => WatchItem::Kmsg,
                })
                .collect(),
            depends_on_paths: i
                .depends
                .into_iter()
                .map(|d| match d {
                    wt::Dependency::Path(p) => p,
                })
                .collect(),
        }
    }
}

/// What one check-apply found and did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CheckOutcome {
    /// Already in the declared state.
    pub ok: bool,
    /// One entry per change made (or that would be made in noop).
    pub changes: Vec<Change>,
    /// Published values: name and JSON text.
    pub sends: Vec<(String, String)>,
}

/// One change a check-apply made or would make.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// One line, e.g. `mode 0644 -> 0600`.
    pub summary: String,
    /// A unified diff of text content, when the plugin could show one.
    pub diff: Option<String>,
}

impl From<wt::CheckResult> for CheckOutcome {
    fn from(r: wt::CheckResult) -> Self {
        CheckOutcome {
            ok: r.ok && r.changes.is_empty(),
            changes: r
                .changes
                .into_iter()
                .map(|c| Change {
                    summary: c.summary,
                    diff: c.diff,
                })
                .collect(),
            sends: r.sends,
        }
    }
}

impl wt::Host for HostState {}

impl wstate::Host for HostState {
    async fn get(&mut self) -> wasmtime::Result<Option<String>> {
        Ok(self.state_get())
    }
    async fn set(&mut self, value: String) -> wasmtime::Result<()> {
        self.state_set(value);
        Ok(())
    }
}

impl wkmsg::Host for HostState {
    async fn read(&mut self, after: Option<u64>) -> wasmtime::Result<Result<wkmsg::Batch, String>> {
        Ok(self
            .kmsg_access()
            .and_then(|()| crate::watch::kmsg::global())
            .and_then(|k| k.read(after))
            .map(|b| wkmsg::Batch {
                records: b.records.into_iter().map(|r| r.text.to_string()).collect(),
                missed: b.missed,
            }))
    }
    async fn start_seq(&mut self) -> wasmtime::Result<Result<Option<u64>, String>> {
        Ok(self
            .kmsg_access()
            .and_then(|()| crate::watch::kmsg::global())
            .map(|k| k.start_seq()))
    }
}

impl wlog::Host for HostState {
    async fn log(&mut self, level: wlog::Level, message: String) -> wasmtime::Result<()> {
        let who = self.who();
        match level {
            wlog::Level::Trace => tracing::trace!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Debug => tracing::debug!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Info => tracing::info!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Warn => tracing::warn!(target: "homeostat::plugin", "{who}: {message}"),
            wlog::Level::Error => tracing::error!(target: "homeostat::plugin", "{who}: {message}"),
        }
        Ok(())
    }
}

fn err_out(e: fscap::FsError) -> wfs::Error {
    use fscap::ErrorCode as C;
    let code = match e.code {
        C::NotAllowed => wfs::ErrorCode::NotAllowed,
        C::NotFound => wfs::ErrorCode::NotFound,
        C::PermissionDenied => wfs::ErrorCode::PermissionDenied,
        C::WrongType => wfs::ErrorCode::WrongType,
        C::NotEmpty => wfs::ErrorCode::NotEmpty,
        C::UnknownId => wfs::ErrorCode::UnknownId,
        C::Other => wfs::ErrorCode::Other,
    };
    wfs::Error {
        code,
        message: e.message,
    }
}

fn attrs_in(a: wfs::Attrs) -> fscap::Attrs {
    fscap::Attrs {
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
    }
}

fn stat_out(s: fscap::FileStat) -> wfs::FileStat {
    wfs::FileStat {
        file_type: match s.file_type {
            fscap::FileType::File => wfs::FileType::File,
            fscap::FileType::Directory => wfs::FileType::Directory,
            fscap::FileType::Symlink => wfs::FileType::Symlink,
            fscap::FileType::Other => wfs::FileType::Other,
        },
        size: s.size,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
    }
}

type FsResult<T> = wasmtime::Result<Result<T, wfs::Error>>;

/// Every `fs` call first checks that the plugin was granted `fs`, then runs against
/// the footprint of the resource being called.
macro_rules! fs_call {
    ($self:ident, |$fs:ident, $fp:ident| $body:expr) => {{
        let ($fs, $fp) = match $self.fs_access() {
            Ok(v) => v,
            Err(e) => return Ok(Err(err_out(e))),
        };
        Ok($body.await.map_err(err_out))
    }};
}

impl wfs::Host for HostState {
    async fn stat(&mut self, path: String) -> FsResult<Option<wfs::FileStat>> {
        fs_call!(self, |fs, fp| async {
            fs.stat(&fp, &path).await.map(|o| o.map(stat_out))
        })
    }
    async fn read(&mut self, path: String) -> FsResult<Vec<u8>> {
        fs_call!(self, |fs, fp| fs.read(&fp, &path))
    }
    async fn digest(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.digest(&fp, &path))
    }
    async fn content_equals(&mut self, path: String, data: Vec<u8>) -> FsResult<bool> {
        fs_call!(self, |fs, fp| fs.content_equals(&fp, &path, &data))
    }
    async fn write(&mut self, path: String, data: Vec<u8>, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.write(&fp, &path, data, attrs_in(attrs)))
    }
    async fn copy(&mut self, source: String, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.copy(&fp, &source, &path, attrs_in(attrs)))
    }
    async fn symlink(&mut self, target: String, path: String) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.symlink(&fp, &target, &path))
    }
    async fn read_link(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.read_link(&fp, &path))
    }
    async fn mkdir(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.mkdir(&fp, &path, attrs_in(attrs)))
    }
    async fn remove(&mut self, path: String, recursive: bool) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.remove(&fp, &path, recursive))
    }
    async fn set_attrs(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        fs_call!(self, |fs, fp| fs.set_attrs(&fp, &path, attrs_in(attrs)))
    }
    async fn read_dir(&mut self, path: String) -> FsResult<Vec<String>> {
        fs_call!(self, |fs, fp| fs.read_dir(&fp, &path))
    }
    async fn user_id(&mut self, name: String) -> FsResult<u32> {
        fs_call!(self, |fs, _fp| fs.user_id(&name))
    }
    async fn group_id(&mut self, name: String) -> FsResult<u32> {
        fs_call!(self, |fs, _fp| fs.group_id(&name))
    }
}

//! `fs` (0.1): files within the calling resource's footprint, for plugins granted `fs`;
//! the work is [`crate::sys::fs::FsHost`]'s.

use wasmtime::component::Linker;

use super::wit::fs as wfs;
use super::wit::{Data, host};
use crate::plugin::grants::Capability;
use crate::plugin::store::{HostState, Refused};
use crate::sys::fs::{Attrs, ErrorCode, FileStat, FileType, FsError};

pub(super) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    wfs::add_to_linker::<HostState, Data>(linker, host)
}

fn refused(e: Refused) -> wfs::Error {
    wfs::Error {
        code: wfs::ErrorCode::NotAllowed,
        message: e.to_string(),
    }
}

fn err_out(e: FsError) -> wfs::Error {
    use ErrorCode as C;
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

fn attrs_in(a: wfs::Attrs) -> Attrs {
    Attrs {
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
    }
}

fn stat_out(s: FileStat) -> wfs::FileStat {
    wfs::FileStat {
        file_type: match s.file_type {
            FileType::File => wfs::FileType::File,
            FileType::Directory => wfs::FileType::Directory,
            FileType::Symlink => wfs::FileType::Symlink,
            FileType::Other => wfs::FileType::Other,
        },
        size: s.size,
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
    }
}

type FsResult<T> = wasmtime::Result<Result<T, wfs::Error>>;

/// Every `fs` call first checks that the plugin was granted `fs`, then runs against
/// the footprint of the resource being called (and, for writes, with its path watches).
macro_rules! fs_call {
    ($self:ident, |$fs:ident, $fp:ident, $own:ident| $body:expr) => {{
        let $fp = match $self.granted(Capability::Fs) {
            Ok(fp) => fp,
            Err(e) => return Ok(Err(refused(e))),
        };
        let ($fs, $own) = ($self.sys().fs.clone(), $self.own().clone());
        Ok($body.await.map_err(err_out))
    }};
    ($self:ident, |$fs:ident, $fp:ident| $body:expr) => {
        fs_call!($self, |$fs, $fp, _own| $body)
    };
}

/// `run --diff`: the host diffs the text files a check-apply writes, whatever the plugin
/// reports (the engine logs them below the change's line; see `engine::vertex`).
impl HostState {
    /// What a write of `path` is to be diffed against (see `FsHost::diff_base`), when
    /// `--diff` is on and this is a check-apply. (The state is not held across the read:
    /// it is not `Sync`.)
    fn diff_base(&self, path: &str) -> impl Future<Output = Option<Option<Vec<u8>>>> + use<> {
        let fs = self.sys().fs.clone();
        let wanted = fs.diffs_shown()
            && matches!(
                self.call,
                crate::plugin::store::CallPhase::CheckApply { .. }
            );
        let fp = wanted.then(|| self.granted(Capability::Fs).ok()).flatten();
        let path = path.to_string();
        async move { fs.diff_base(&*fp?, &path).await }
    }

    /// Keep the diff of a write of `path` for the check-apply's outcome.
    fn note_diff(&mut self, path: &str, old: Option<&[u8]>, new: &[u8]) {
        if let Some(diff) = crate::sys::text::unified_diff(path, old, new) {
            self.written.push(diff);
        }
    }
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
    async fn read_at(&mut self, path: String, offset: u64, len: u32) -> FsResult<Vec<u8>> {
        fs_call!(self, |fs, fp| fs.read_at(&fp, &path, offset, len))
    }
    async fn digest(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.digest(&fp, &path))
    }
    async fn content_equals(&mut self, path: String, data: Vec<u8>) -> FsResult<bool> {
        fs_call!(self, |fs, fp| fs.content_equals(&fp, &path, &data))
    }
    async fn write(&mut self, path: String, data: Vec<u8>, attrs: wfs::Attrs) -> FsResult<()> {
        let base = match self.sys().fs.diffs_shown() {
            true => self.diff_base(&path).await,
            false => None,
        };
        let new = base.is_some().then(|| data.clone());
        let done = fs_call!(self, |fs, fp, own| fs.write(
            &fp,
            &path,
            data,
            attrs_in(attrs),
            &own
        ));
        if let (Some(old), Some(new), Ok(Ok(()))) = (base, new, &done) {
            self.note_diff(&path, old.as_deref(), &new);
        }
        // A shared file's edits are only staged: written with the others' later.
        if !self
            .granted(Capability::Fs)
            .is_ok_and(|fp| crate::sys::fs::stages(&fp, &path))
        {
            self.landed(&done, || format!("wrote {path}"));
        }
        done
    }
    async fn copy(&mut self, source: String, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        let base = match self.sys().fs.diffs_shown() {
            true => self.diff_base(&path).await,
            false => None,
        };
        let new = match &base {
            Some(_) => self.diff_base(&source).await.flatten(),
            None => None,
        };
        let done = fs_call!(self, |fs, fp, own| fs.copy(
            &fp,
            &source,
            &path,
            attrs_in(attrs),
            &own
        ));
        if let (Some(old), Some(new), Ok(Ok(()))) = (base, new, &done) {
            self.note_diff(&path, old.as_deref(), &new);
        }
        self.landed(&done, || format!("copied {source} to {path}"));
        done
    }
    async fn symlink(&mut self, target: String, path: String) -> FsResult<()> {
        let done = fs_call!(self, |fs, fp| fs.symlink(&fp, &target, &path));
        self.landed(&done, || format!("linked {path} -> {target}"));
        done
    }
    async fn read_link(&mut self, path: String) -> FsResult<String> {
        fs_call!(self, |fs, fp| fs.read_link(&fp, &path))
    }
    async fn mkdir(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        let done = fs_call!(self, |fs, fp| fs.mkdir(&fp, &path, attrs_in(attrs)));
        self.landed(&done, || format!("made directory {path}"));
        done
    }
    async fn remove(&mut self, path: String, recursive: bool) -> FsResult<()> {
        let done = fs_call!(self, |fs, fp| fs.remove(&fp, &path, recursive));
        self.landed(&done, || format!("removed {path}"));
        done
    }
    async fn set_attrs(&mut self, path: String, attrs: wfs::Attrs) -> FsResult<()> {
        let done = fs_call!(self, |fs, fp| fs.set_attrs(&fp, &path, attrs_in(attrs)));
        self.landed(&done, || format!("set the attributes of {path}"));
        done
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

//! [`Fs`]: the host's file-system interface as a trait, so that check-apply can run
//! against the real host ([`Host`], inside the component) or an in-memory fake (tests).

use homeostat_sdk::fs::{self, Attrs, Error, FileStat};

/// The calls of the WIT `fs` interface the `file` resource uses, plus a warning log.
pub trait Fs {
    fn stat(&self, path: &str) -> Result<Option<FileStat>, Error>;
    fn digest(&self, path: &str) -> Result<String, Error>;
    fn read(&self, path: &str) -> Result<Vec<u8>, Error>;
    fn content_equals(&self, path: &str, data: &[u8]) -> Result<bool, Error>;
    fn write(&self, path: &str, data: &[u8], attrs: Attrs) -> Result<(), Error>;
    fn copy(&self, source: &str, path: &str, attrs: Attrs) -> Result<(), Error>;
    fn symlink(&self, target: &str, path: &str) -> Result<(), Error>;
    fn read_link(&self, path: &str) -> Result<String, Error>;
    fn mkdir(&self, path: &str, attrs: Attrs) -> Result<(), Error>;
    fn remove(&self, path: &str, recursive: bool) -> Result<(), Error>;
    fn set_attrs(&self, path: &str, attrs: Attrs) -> Result<(), Error>;
    fn read_dir(&self, path: &str) -> Result<Vec<String>, Error>;
    fn user_id(&self, name: &str) -> Result<u32, Error>;
    fn group_id(&self, name: &str) -> Result<u32, Error>;
    fn warn(&self, message: &str);
}

/// The host, through the SDK's imports. Only callable inside the component.
pub struct Host;

impl Fs for Host {
    fn stat(&self, path: &str) -> Result<Option<FileStat>, Error> {
        fs::stat(path)
    }
    fn digest(&self, path: &str) -> Result<String, Error> {
        fs::digest(path)
    }
    fn read(&self, path: &str) -> Result<Vec<u8>, Error> {
        fs::read(path)
    }
    fn content_equals(&self, path: &str, data: &[u8]) -> Result<bool, Error> {
        fs::content_equals(path, data)
    }
    fn write(&self, path: &str, data: &[u8], attrs: Attrs) -> Result<(), Error> {
        fs::write(path, data, attrs)
    }
    fn copy(&self, source: &str, path: &str, attrs: Attrs) -> Result<(), Error> {
        fs::copy(source, path, attrs)
    }
    fn symlink(&self, target: &str, path: &str) -> Result<(), Error> {
        fs::symlink(target, path)
    }
    fn read_link(&self, path: &str) -> Result<String, Error> {
        fs::read_link(path)
    }
    fn mkdir(&self, path: &str, attrs: Attrs) -> Result<(), Error> {
        fs::mkdir(path, attrs)
    }
    fn remove(&self, path: &str, recursive: bool) -> Result<(), Error> {
        fs::remove(path, recursive)
    }
    fn set_attrs(&self, path: &str, attrs: Attrs) -> Result<(), Error> {
        fs::set_attrs(path, attrs)
    }
    fn read_dir(&self, path: &str) -> Result<Vec<String>, Error> {
        fs::read_dir(path)
    }
    fn user_id(&self, name: &str) -> Result<u32, Error> {
        fs::user_id(name)
    }
    fn group_id(&self, name: &str) -> Result<u32, Error> {
        fs::group_id(name)
    }
    fn warn(&self, message: &str) {
        homeostat_sdk::log::warn(message)
    }
}

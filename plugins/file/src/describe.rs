//! `describe` (`homeostat resource file PATH`): what is at a path, as the params of a
//! `file` resource that declares it as it is. Against any [`Fs`], so it is tested
//! natively with the in-memory host.

use homeostat_sdk::fs::FileType;
use homeostat_sdk::{Error, Result};
use serde_json::{Map, Value, json};

use crate::sys::Fs;

/// The largest content written out: a bigger file (or one that is not UTF-8 text) is
/// described by its attributes only, which a graph may declare without its content.
pub const MAX_CONTENT: u64 = 64 << 10;

/// The params of a `file` resource declaring what is at `path` now.
pub fn describe(fs: &impl Fs, path: &str) -> Result<Value> {
    let bare = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let Some(st) = fs.stat(bare)? else {
        return Ok(json!({"path": path, "state": "absent"}));
    };
    let attrs = |p: &mut Map<String, Value>| {
        p.insert("mode".into(), format!("{:04o}", st.mode & 0o7777).into());
        p.insert("owner".into(), st.uid.into());
        p.insert("group".into(), st.gid.into());
    };
    let mut p = Map::new();
    match st.file_type {
        FileType::Symlink => {
            p.insert("path".into(), bare.into());
            p.insert("symlink".into(), true.into());
            p.insert("source".into(), fs.read_link(bare)?.into());
        }
        FileType::Directory => {
            p.insert("path".into(), format!("{bare}/").into());
            attrs(&mut p);
        }
        FileType::File => {
            p.insert("path".into(), bare.into());
            if st.size <= MAX_CONTENT
                && let Ok(text) = String::from_utf8(fs.read(bare)?)
            {
                p.insert("content".into(), text.into());
            }
            attrs(&mut p);
        }
        FileType::Other => {
            return Err(Error::new(format!(
                "{bare} is a special file (fifo, socket or device), which the file kind \
                 does not manage"
            )));
        }
    }
    Ok(Value::Object(p))
}

//! Removing what a killed homeostat left behind: the named staging files
//! (`.NAME.homeostat-…`, see [`crate::sys::temp_name`]) of writes that were cut short. A
//! `kill -9` at any moment leaves every managed file wholly old or wholly new (see
//! `commit`), and at most such a staging file beside it (a new file's staging file is
//! unnamed and vanishes with the process).
//!
//! Only staging files of names the graph writes are removed, and only in the directories
//! it writes into: beside each exact write grant (a staging file for that very name), and
//! directly in each recursively granted directory. A directory reached through a symlink is
//! skipped, never followed. It runs once, before the first check-apply, so no write of
//! this process can be in flight.

use std::collections::{HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::stat::{FileType, kind_of};
use super::walk::Managed;
use crate::sys::temp_name;

/// What a sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Staging files removed.
    pub removed: Vec<PathBuf>,
    /// Directories that could not be read or files that could not be removed, with why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Which names' staging files to remove in one directory.
#[derive(Default)]
struct Dir<'a> {
    /// The names the graph writes there, as their staging names keep them
    /// ([`temp_name::kept_of`]).
    names: HashSet<&'a [u8]>,
    /// The graph writes everything directly in it (a recursive grant).
    all: bool,
}

/// Removes the staging files left beside the paths `managed` writes (see the module docs).
pub(super) fn sweep(managed: &Managed) -> Swept {
    let mut dirs: HashMap<&Path, Dir> = HashMap::new();
    for (path, recursive) in managed.grants() {
        if recursive {
            dirs.entry(path).or_default().all = true;
        }
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            dirs.entry(parent)
                .or_default()
                .names
                .insert(temp_name::kept_of(name.as_bytes()));
        }
    }
    let mut swept = Swept::default();
    for (dir, wanted) in dirs {
        sweep_dir(dir, &wanted, &mut swept);
    }
    swept
}

fn sweep_dir(dir: &Path, wanted: &Dir, swept: &mut Swept) {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let fd = match rustix::fs::openat2(rustix::fs::CWD, dir, flags, Mode::empty(), resolve) {
        Ok(fd) => fd,
        // Not there yet, or reached through a link (skipped, not followed).
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return,
        // No `openat2`: the same without following the last component.
        Err(Errno::NOSYS) => match rustix::fs::open(dir, flags | OFlags::NOFOLLOW, Mode::empty()) {
            Ok(fd) => fd,
            Err(_) => return,
        },
        Err(err) => {
            swept.failed.push((dir.to_path_buf(), err.to_string()));
            return;
        }
    };
    // Only staging-file names are kept: a directory of ten thousand managed files has
    // ten thousand other names, read at every start.
    let names: Vec<CString> = match rustix::io::dup(&fd)
        .and_then(rustix::fs::Dir::new)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| temp_name::is_temp_name(e.file_name().to_bytes()))
                .map(|e| e.file_name().to_owned())
                .collect()
        }) {
        Ok(names) => names,
        Err(err) => {
            swept.failed.push((dir.to_path_buf(), err.to_string()));
            return;
        }
    };
    for name in names {
        let name_bytes = name.to_bytes();
        let ours = wanted.all
            || temp_name::target_of(name_bytes).is_some_and(|t| wanted.names.contains(t));
        if !ours {
            continue;
        }
        // A staging file is a regular file; anything else of that name is not ours.
        let regular = rustix::fs::statat(&fd, &name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| kind_of(&st) == FileType::File);
        if !regular {
            continue;
        }
        let path = dir.join(OsStr::from_bytes(name.to_bytes()));
        match rustix::fs::unlinkat(&fd, &name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => swept.removed.push(path),
            Err(err) => swept.failed.push((path, err.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fs::testutil::*;

    #[test]
    fn only_staging_files_of_managed_names_in_managed_directories_go() {
        let dir = tempdir();
        let d = dir.path();
        std::fs::create_dir(d.join("tree")).expect("mkdir");
        for name in [
            "motd",
            ".motd.homeostat-0123456789ab", // left by a killed write of motd: goes
            ".other.homeostat-0123456789ab", // not a name the graph writes: stays
            ".motd.homeostat-0123",         // not the rule's shape: stays
            "tree/.x.homeostat-00000000000f", // in a recursively managed directory: goes
        ] {
            std::fs::write(d.join(name), "x").expect("write");
        }
        // A directory with the rule's name is not a staging file.
        std::fs::create_dir(d.join(".motd.homeostat-aaaaaaaaaaaa")).expect("mkdir");
        let managed = managed_by(
            "file[motd]",
            &[
                grant(&at(d, "motd"), false, true),
                grant(&at(d, "tree"), true, true),
                grant(&at(d, "read-only"), false, false),
            ],
        );
        let mut swept = sweep(&managed);
        // Directories are swept in no particular order.
        swept.removed.sort();
        assert_eq!(
            swept.removed,
            vec![
                d.join(".motd.homeostat-0123456789ab"),
                d.join("tree/.x.homeostat-00000000000f")
            ]
        );
        assert_eq!(swept.failed, vec![]);
        assert_eq!(
            entries(d),
            [
                ".motd.homeostat-0123",
                ".motd.homeostat-aaaaaaaaaaaa",
                ".other.homeostat-0123456789ab",
                "motd",
                "tree"
            ]
        );
    }

    #[test]
    fn a_directory_reached_through_a_link_is_skipped() {
        let dir = tempdir();
        let d = dir.path();
        std::fs::create_dir(d.join("real")).expect("mkdir");
        std::fs::write(d.join("real/.f.homeostat-0123456789ab"), "x").expect("write");
        os_symlink(d.join("real"), d.join("link")).expect("symlink");
        let managed = managed_by("file[f]", &[grant(&at(d, "link/f"), false, true)]);
        assert_eq!(sweep(&managed), Swept::default());
        assert!(d.join("real/.f.homeostat-0123456789ab").exists());
    }
}

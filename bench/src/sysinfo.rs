//! What the numbers were measured on: CPUs, kernel, the work directory's filesystem and
//! the homeostat revision.

use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

/// The filesystem a directory is on.
pub struct FsInfo {
    /// statfs `f_type`.
    pub magic: i64,
    /// Name from /proc/self/mountinfo (e.g. `ext4`), else from the magic number.
    pub name: String,
}

impl FsInfo {
    /// In-memory filesystems: writes and fsync cost nothing there, so numbers measured
    /// on them say little about a real machine.
    pub fn in_memory(&self) -> bool {
        const TMPFS: i64 = 0x0102_1994;
        const RAMFS: i64 = 0x8584_58f6;
        self.magic == TMPFS || self.magic == RAMFS
    }
}

pub fn fs_info(dir: &Path) -> io::Result<FsInfo> {
    let mut cpath = dir.as_os_str().as_bytes().to_vec();
    cpath.push(0);
    // SAFETY: zeroed statfs is a valid out-value; `cpath` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a `statfs` to fill.
    if unsafe { libc::statfs(cpath.as_ptr().cast(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let magic = st.f_type as i64;
    let name = match mount_of(dir) {
        Some((fstype, source)) if fstype == "ext4" && !has_journal(&source) => {
            "ext4, no journal".to_string()
        }
        Some((fstype, _)) => fstype,
        None => magic_name(magic).to_string(),
    };
    Ok(FsInfo { magic, name })
}

fn magic_name(magic: i64) -> &'static str {
    match magic {
        0xef53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1994 => "tmpfs",
        0x8584_58f6 => "ramfs",
        0x794c_7630 => "overlayfs",
        0xf2f5_2010 => "f2fs",
        0x2fc1_2fc1 => "zfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x0102_1997 => "9p",
        _ => "unknown",
    }
}

/// The filesystem type and source device of the mount holding `dir`: the longest mount
/// point that is a prefix of its canonical path.
fn mount_of(dir: &Path) -> Option<(String, String)> {
    let dir = fs::canonicalize(dir).ok()?;
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut best: Option<(usize, String, String)> = None;
    for line in mountinfo.lines() {
        // id parent major:minor root mountpoint options [optional...] - fstype source super
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mount_point) = fields.get(4) else {
            continue;
        };
        let mount_point = mount_point.replace("\\040", " ");
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(fstype), Some(source)) = (fields.get(dash + 1), fields.get(dash + 2)) else {
            continue;
        };
        if dir.starts_with(&mount_point)
            && best
                .as_ref()
                .is_none_or(|(len, ..)| mount_point.len() >= *len)
        {
            best = Some((mount_point.len(), fstype.to_string(), source.to_string()));
        }
    }
    best.map(|(_, fstype, source)| (fstype, source))
}

/// Whether the ext4 filesystem on `source` (e.g. `/dev/vda`) has a journal: ext4 lists
/// itself in /proc/fs/ext4/DEVICE, jbd2 each journal in /proc/fs/jbd2/DEVICE-INODE.
/// When ext4 does not list the device, we cannot tell, and say yes.
fn has_journal(source: &str) -> bool {
    let device = fs::canonicalize(source).unwrap_or_else(|_| source.into());
    let Some(device) = device.file_name().map(|d| d.to_string_lossy().into_owned()) else {
        return true;
    };
    if !Path::new("/proc/fs/ext4").join(&device).is_dir() {
        return true;
    }
    let prefix = format!("{device}-");
    fs::read_dir("/proc/fs/jbd2")
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        })
        .unwrap_or(false)
}

pub fn nproc() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

pub fn kernel() -> String {
    // SAFETY: zeroed utsname is a valid out-value.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: a `utsname` to fill.
    if unsafe { libc::uname(&mut uts) } != 0 {
        return "unknown kernel".into();
    }
    // SAFETY: uname NUL-terminates its fields.
    let field = |f: &[libc::c_char]| {
        // SAFETY: `uname` filled the field with a NUL-terminated string.
        unsafe { CStr::from_ptr(f.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    format!(
        "{} {} {}",
        field(&uts.sysname),
        field(&uts.release),
        field(&uts.machine)
    )
}

/// The 1-minute load average: other work on the machine skews every number.
pub fn loadavg() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn cpu_model() -> Option<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = cpuinfo.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

pub fn mem_total_gib() -> Option<f64> {
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0 / 1024.0)
}

/// `git rev-parse --short HEAD` in `repo`, with `+dirty` when the work tree differs from it
/// (untracked files included: they may be in the binary); None when git or the repository is not there.
pub fn git_revision(repo: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let mut rev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dirty = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["status", "--porcelain"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if dirty {
        rev.push_str("+dirty");
    }
    Some(rev)
}

/// Flush dirty data of the filesystem holding `dir`, so writeback left by one
/// measurement does not land inside the next one. (It drops no cache.)
pub fn syncfs(dir: &Path) -> io::Result<()> {
    let file = fs::File::open(dir)?;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor.
    if unsafe { libc::syncfs(file.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

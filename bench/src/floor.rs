//! The native floor: the least work any tool must do for the workload, run as a child
//! process of the benchmark (`homeostat-bench floor-create|floor-check DIR N`) so that
//! process start and exit are counted as they are for homeostat.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use crate::sysinfo;
use crate::workload::{self, CONTENT_LEN, MODE};

/// How `floor-create` makes its files durable.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flush {
    /// Not at all: the bare syscall cost.
    None,
    /// `fsync` each temporary file before its rename (`--durable`): what durability costs
    /// without group commit.
    EachFile,
    /// Write every temporary file, one `syncfs`, rename them all, one `fsync` of the
    /// directory (`--grouped`): the least any tool can do to have every file's data on disk
    /// before its rename and every name on disk at the end.
    Grouped,
}

impl Flush {
    /// The `floor-create` flag that selects it.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Flush::None => None,
            Flush::EachFile => Some("--durable"),
            Flush::Grouped => Some("--grouped"),
        }
    }
}

/// `floor-create DIR N [--durable|--grouped]` and `floor-check DIR N`: do the work, print
/// the in-process time in nanoseconds on stdout, exit 0; or print an error, exit 1.
pub fn main(cmd: &str, args: &[String]) -> ExitCode {
    let (dir, n, flush) = match parse(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!(
                "homeostat-bench {cmd}: {e}\nusage: homeostat-bench {cmd} DIR N [--durable|--grouped]"
            );
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let result = match cmd {
        "floor-create" => create(dir, n, flush),
        _ => check(dir, n),
    };
    let elapsed = started.elapsed();
    match result {
        Ok(()) => {
            println!("{}", elapsed.as_nanos());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("homeostat-bench {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> Result<(&Path, usize, Flush), String> {
    let mut positional = Vec::new();
    let mut flush = Flush::None;
    for arg in args {
        match arg.as_str() {
            "--durable" => flush = Flush::EachFile,
            "--grouped" => flush = Flush::Grouped,
            _ => positional.push(arg),
        }
    }
    let [dir, n] = positional[..] else {
        return Err("expected DIR and N".into());
    };
    let n = n
        .parse()
        .map_err(|_| format!("N must be a number, not {n:?}"))?;
    Ok((Path::new(dir), n, flush))
}

/// For each file: create a temporary file beside it, write the content, fchmod, (fsync
/// with [`Flush::EachFile`]), close, rename over the final name. This is the atomic
/// replacement a careful tool does for a wrong file; a tool that knows the file is missing
/// could skip the rename, but only after a check this floor does not pay for either. With
/// [`Flush::Grouped`] the renames wait for one `syncfs` after all the writes, and one
/// `fsync` of the directory makes the names durable.
fn create(dir: &Path, n: usize, flush: Flush) -> io::Result<()> {
    let mut staged = Vec::new();
    for i in 0..n {
        let name = workload::name(i);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(workload::content(i).as_bytes())?;
        file.set_permissions(fs::Permissions::from_mode(MODE))?;
        if flush == Flush::EachFile {
            file.sync_all()?;
        }
        drop(file);
        if flush == Flush::Grouped {
            staged.push((tmp, name));
        } else {
            fs::rename(&tmp, dir.join(&name))?;
        }
    }
    if flush == Flush::Grouped {
        sysinfo::syncfs(dir)?;
        for (tmp, name) in staged {
            fs::rename(&tmp, dir.join(&name))?;
        }
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// For each file: lstat (type, mode, size), open, read, compare, close. Fails on the
/// first file that is not in its declared state: the floor also checks homeostat's work.
fn check(dir: &Path, n: usize) -> io::Result<()> {
    let mut buf = [0u8; CONTENT_LEN + 1];
    for i in 0..n {
        if !workload::is_correct(dir, i, &mut buf)? {
            return Err(io::Error::other(format!(
                "{} is not in its declared state",
                workload::path(dir, i).display()
            )));
        }
    }
    Ok(())
}

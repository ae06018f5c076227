//! The mount table as an event source. A mount over (or under) a watched directory changes
//! what a path means without any inotify event: the watch stays on the covered directory,
//! and the files the graph manages are now somewhere else. A thread waits on
//! `/proc/self/mountinfo` (the kernel marks it readable with `POLLPRI` whenever the mount
//! table of homeostat's namespace changes), compares the table with the one before, and
//! hands the mount points that appeared or went to the control thread, which re-checks
//! and re-arms the watches at and below them and wakes their subscribers.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::routes::{Cmd, Shared};
use crate::sys::proc_poll::{CHECK_CLOSED, wait_signalled};

/// One mount: its id and where it is mounted.
type Mount = (u64, PathBuf);

/// Starts the thread; it ends when the hub closes. Without `/proc` (or another failure to
/// read the table) there is no thread, and a warning says mounts are not watched.
pub(super) fn watch(shared: Arc<Shared>) {
    let start = File::open("/proc/self/mountinfo").and_then(|mut f| {
        let table = read_table(&mut f)?;
        Ok((f, table))
    });
    let (file, table) = match start {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(
                "cannot watch the mount table (/proc/self/mountinfo: {e}); a new mount over a managed directory is noticed only on its next event"
            );
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("homeostat-mounts".into())
        .spawn(move || run(&shared, file, table));
    if let Err(e) = spawned {
        tracing::warn!("cannot start the mount table watcher: {e}");
    }
}

fn run(shared: &Shared, mut file: File, mut table: BTreeSet<Mount>) {
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        match wait_signalled(&file, CHECK_CLOSED) {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                tracing::warn!("the mount table watcher stopped: {e}");
                return;
            }
        }
        let now = match read_table(&mut file) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("the mount table watcher stopped: {e}");
                return;
            }
        };
        let changed: BTreeSet<PathBuf> = table
            .symmetric_difference(&now)
            .map(|(_, point)| point.clone())
            .collect();
        table = now;
        if !changed.is_empty() {
            tracing::debug!(points = ?changed, "mount table changed");
            if !shared.send(Cmd::Mounts(changed.into_iter().collect())) {
                return;
            }
        }
    }
}

/// The table from the start of `file`.
fn read_table(file: &mut File) -> io::Result<BTreeSet<Mount>> {
    file.rewind()?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(parse(&text))
}

/// `mountinfo` lines: `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS ...`, the mount point
/// with spaces, tabs, newlines and backslashes written as `\040`, `\011`, `\012`, `\134`.
fn parse(text: &str) -> BTreeSet<Mount> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let id = fields.next()?.parse().ok()?;
            let point = fields.nth(3)?;
            Some((id, PathBuf::from(unescape(point))))
        })
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(code) = bytes
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_give_ids_and_unescaped_points() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    bad line\n";
        let table = parse(text);
        assert_eq!(
            table,
            BTreeSet::from([
                (22, PathBuf::from("/proc")),
                (36, PathBuf::from("/mnt/with space"))
            ])
        );
        assert_eq!(unescape(r"a\134b\011c\01"), "a\\b\tc\\01");
    }
}

//! The names of homeostat's own staging files: `.NAME.homeostat-` and 12 hex digits,
//! beside the file `NAME` they will replace. The `fs` service creates them
//! ([`crate::sys::fs`]); the watch hub ignores them ([`crate::sys::inotify`]): the rename
//! that puts one in place is reported under the target's name.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Suffix of a staging file's name before its 12 hex digits.
const SUFFIX: &[u8] = b".homeostat-";

/// How many bytes of the target's name are kept in a staging name (NAME_MAX is 255).
const KEEP: usize = 200;

/// Whether `name` (one path component) has the shape of [`fresh`]'s names.
pub fn is_temp_name(name: &[u8]) -> bool {
    let Some(stem) = name.len().checked_sub(12).map(|at| &name[..at]) else {
        return false;
    };
    name.first() == Some(&b'.')
        && stem.ends_with(SUFFIX)
        && stem.len() > SUFFIX.len() + 1
        && name[name.len() - 12..]
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The target name a staging name was made for (`.motd.homeostat-…` → `motd`), when
/// `name` is one; cut at [`fresh`]'s limit for long names.
pub fn target_of(name: &[u8]) -> Option<&[u8]> {
    if !is_temp_name(name) {
        return None;
    }
    Some(&name[1..name.len() - 12 - SUFFIX.len()])
}

/// Whether `name` is a staging name made for the file name `target`.
pub fn is_staging_for(name: &[u8], target: &[u8]) -> bool {
    target_of(name) == Some(kept_of(target))
}

/// What of the file name `target` its staging names keep ([`target_of`] gives it back): a
/// long name is cut so that the staging name still fits in `NAME_MAX`.
pub fn kept_of(target: &[u8]) -> &[u8] {
    &target[..target.len().min(KEEP)]
}

/// `.TARGET.homeostat-XXXXXXXXXXXX` for the file name `target`, unique within the process
/// and very likely across.
pub fn fresh(target: &[u8]) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // Looked up once: `getpid` is a syscall, and a cold run of 10 000 files made 10 000.
    static PID: OnceLock<u64> = OnceLock::new();
    let pid = *PID.get_or_init(|| u64::from(std::process::id()));
    let mut x = nanos ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ pid.rotate_left(40);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let keep = &target[..target.len().min(KEEP)];
    let mut name = Vec::with_capacity(keep.len() + 32);
    name.push(b'.');
    name.extend_from_slice(keep);
    name.extend_from_slice(SUFFIX);
    name.extend_from_slice(format!("{:012x}", x & 0xffff_ffff_ffff).as_bytes());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_names_have_the_shape_and_differ() {
        let a = fresh(b"motd");
        let b = fresh(b"motd");
        assert_ne!(a, b);
        assert!(a.starts_with(b".motd.homeostat-"), "{a:?}");
        assert!(is_temp_name(&a) && is_temp_name(&b));
        let long = fresh(&[b'x'; 255]);
        assert!(long.len() <= 255 && is_temp_name(&long), "{}", long.len());
        assert!(!is_temp_name(b"x.homeostat-0123456789ab"));
        assert!(!is_temp_name(b".homeostat-0123456789ab"));
        assert!(!is_temp_name(b".x.homeostat-0123456789ag"));
        assert!(!is_temp_name(b".x.homeostat-0123456789"));
        assert_eq!(target_of(&a), Some(&b"motd"[..]));
        assert_eq!(target_of(&long), Some(&[b'x'; KEEP][..]));
        assert_eq!(target_of(b"motd"), None);
        assert!(is_staging_for(&a, b"motd") && !is_staging_for(&a, b"mot"));
        assert!(is_staging_for(&long, &[b'x'; 255]));
    }
}

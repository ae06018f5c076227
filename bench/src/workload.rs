//! The workload both sides work on: N `file` resources `DIR/f00000`.. with 64 bytes of
//! content unique to each file and mode 0644, and the graph YAML that declares them.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The declared permission bits of every file.
pub const MODE: u32 = 0o644;

/// Length of every file's declared content.
pub const CONTENT_LEN: usize = 64;

/// The name of file `i`, both as a resource name and as a file name in the directory.
pub fn name(i: usize) -> String {
    format!("f{i:05}")
}

/// The path of file `i` in `dir`.
pub fn path(dir: &Path, i: usize) -> PathBuf {
    dir.join(name(i))
}

/// The declared content of file `i`: 64 bytes, unique per file, ending in a newline.
pub fn content(i: usize) -> String {
    let a = splitmix64(i as u64);
    let b = splitmix64(a);
    let text = format!("bench file {i:05}: content {a:016x} {b:016x} end\n");
    debug_assert_eq!(text.len(), CONTENT_LEN, "{text:?}");
    text
}

/// The graph that declares files `0..n` in `dir`.
pub fn graph_yaml(dir: &Path, n: usize) -> String {
    let dir = dir.to_string_lossy();
    let mut yaml = String::with_capacity(64 + n * (CONTENT_LEN + dir.len() + 64));
    yaml.push_str("graph: bench\nresources:\n  file:\n");
    for i in 0..n {
        let name = name(i);
        let path = yaml_quote(&format!("{dir}/{name}"));
        let content = yaml_quote(&content(i));
        // Writing into a String cannot fail.
        let _ = write!(
            yaml,
            "  - name: {name}\n    path: {path}\n    content: {content}\n    mode: \"0644\"\n"
        );
    }
    yaml
}

/// A YAML double-quoted scalar holding `s`.
fn yaml_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// SplitMix64: a tiny deterministic generator, for unique content and drift targets.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Whether file `i` in `dir` is in its declared state (regular file, mode, content),
/// using the fewest syscalls: lstat, open, one read, close. `buf` is reused across
/// calls and must hold at least `CONTENT_LEN + 1` bytes.
pub fn is_correct(dir: &Path, i: usize, buf: &mut [u8]) -> io::Result<bool> {
    let path = path(dir, i);
    let meta = match fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_file()
        || meta.mode() & 0o7777 != MODE
        || meta.len() != CONTENT_LEN as u64
    {
        return Ok(false);
    }
    let want = content(i);
    // The size matched, so one read fills the buffer unless the file changed since.
    let got = fs::File::open(&path)?.read(buf)?;
    Ok(&buf[..got] == want.as_bytes())
}

/// Whether file `i` holds its declared content (mode not checked): what the drift loop
/// waits for after it changed the content only.
pub fn has_content(dir: &Path, i: usize) -> io::Result<bool> {
    match fs::read(path(dir, i)) {
        Ok(bytes) => Ok(bytes == content(i).as_bytes()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The files of `0..n` in `dir` that are not in their declared state: count and the
/// first one, with what is wrong with it.
pub fn verify(dir: &Path, n: usize) -> io::Result<Option<(usize, String)>> {
    let mut buf = [0u8; CONTENT_LEN + 1];
    let mut wrong = 0;
    let mut first = None;
    for i in 0..n {
        if !is_correct(dir, i, &mut buf)? {
            wrong += 1;
            if first.is_none() {
                first = Some(describe(&path(dir, i), i));
            }
        }
    }
    Ok(first.map(|f| (wrong, f)))
}

/// What differs between file `i` and its declaration, for error messages.
fn describe(path: &Path, i: usize) -> String {
    match fs::symlink_metadata(path) {
        Err(e) => format!("{}: {e}", path.display()),
        Ok(meta) if !meta.file_type().is_file() => {
            format!("{}: not a regular file", path.display())
        }
        Ok(meta) if meta.permissions().mode() & 0o7777 != MODE => {
            format!(
                "{}: mode {:04o}, declared {MODE:04o}",
                path.display(),
                meta.mode() & 0o7777
            )
        }
        Ok(_) => match fs::read(path) {
            Ok(bytes) => format!(
                "{}: content {:?}, declared {:?}",
                path.display(),
                String::from_utf8_lossy(&bytes),
                content(i)
            ),
            Err(e) => format!("{}: {e}", path.display()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_64_bytes_and_unique() {
        let all: std::collections::HashSet<String> = (0..10_000).map(content).collect();
        assert_eq!(all.len(), 10_000);
        assert!(
            all.iter()
                .all(|c| c.len() == CONTENT_LEN && c.ends_with('\n'))
        );
    }

    #[test]
    fn graph_shape() {
        let yaml = graph_yaml(Path::new("/tmp/x \"y\""), 2);
        assert!(yaml.starts_with("graph: bench\nresources:\n  file:\n  - name: f00000\n"));
        assert!(yaml.contains("    path: \"/tmp/x \\\"y\\\"/f00001\"\n"));
        assert!(yaml.contains("    content: \"bench file 00001: content "));
        assert!(yaml.contains(" end\\n\"\n    mode: \"0644\"\n"));
    }
}

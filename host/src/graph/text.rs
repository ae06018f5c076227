//! The bytes of a graph file → its text. A graph must be UTF-8; when it is not, the error
//! names the first bad byte: its value, its byte offset, and its line and column, so that
//! a stray Latin-1 `é` or a file saved as UTF-16 is found at once.

use std::path::Path;
use std::sync::Arc;

use super::error::{GraphError, GraphErrors, Location};

/// `bytes` as text, or a located error at the first byte that is not UTF-8.
pub fn decode<'b>(path: &Path, bytes: &'b [u8]) -> Result<&'b str, GraphError> {
    std::str::from_utf8(bytes).map_err(|e| not_utf8(path, bytes, e))
}

/// Like [`decode`], taking the bytes and returning them as a `String` without a copy.
pub fn decode_owned(path: &Path, bytes: Vec<u8>) -> Result<String, GraphError> {
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))
}

/// Parses the bytes of a graph file: [`decode`], then [`parse`](super::parse).
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<super::GraphDoc, GraphErrors> {
    super::parse(path, decode(path, bytes)?)
}

fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> GraphError {
    let offset = e.valid_up_to();
    // Everything before the bad byte is valid UTF-8, so columns count characters there.
    let before = bytes.get(..offset).unwrap_or_default();
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = std::str::from_utf8(&before[line_start..]).map_or(0, |s| s.chars().count()) + 1;
    let byte = bytes.get(offset).copied().unwrap_or_default();
    let utf16 = if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        " (it looks like UTF-16)"
    } else {
        ""
    };
    GraphError::Yaml {
        loc: Location {
            file: Arc::from(path),
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        },
        message: format!(
            "the graph file is not UTF-8{utf16}: byte 0x{byte:02X} at byte offset {offset} \
             (line {line}, column {column}) is not part of a UTF-8 character; save the file \
             as UTF-8"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(bytes: &[u8]) -> String {
        match decode(Path::new("g.yaml"), bytes) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn names_offset_line_and_column_of_the_first_bad_byte() {
        assert_eq!(
            error(b"graph: g\nresources:\n  file:\n  - name: caf\xE9\n"),
            "g.yaml:4:14: the graph file is not UTF-8: byte 0xE9 at byte offset 41 (line 4, \
             column 14) is not part of a UTF-8 character; save the file as UTF-8"
        );
        // Columns count characters: `é` before the bad byte is one column.
        let e = error(&["a: é\u{1F600}\n".as_bytes(), &[0xFF]].concat());
        assert!(e.starts_with("g.yaml:2:1:"), "{e}");
        let e = error(&["x: \"é".as_bytes(), &[0xC3]].concat());
        assert!(e.starts_with("g.yaml:1:6: "), "{e}");
        assert!(
            e.contains("byte 0xC3 at byte offset 6 (line 1, column 6)"),
            "{e}"
        );
        assert!(error(b"\xFF\xFEg\0r\0").contains("UTF-16"));
        assert!(error(b"\x80").starts_with("g.yaml:1:1: "));
        assert_eq!(
            decode(Path::new("g.yaml"), "graph: é\n".as_bytes()).ok(),
            Some("graph: é\n")
        );
        assert_eq!(
            decode_owned(Path::new("g.yaml"), b"ok".to_vec())
                .ok()
                .as_deref(),
            Some("ok")
        );
    }
}

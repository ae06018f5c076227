//! Netascii encoding for RRQs in `netascii` mode (RFC 1350 via RFC 764): the file is
//! sent with every LF as CR LF and every bare CR as CR NUL, so a Unix text file arrives
//! with network line ends. Only encoding: the server never receives files.
//!
//! The encoded length differs from the file's, so a netascii transfer reads the file
//! sequentially ([`Encoder`] keeps the raw offset) and does not acknowledge `tsize`.

use crate::files::{FileError, FileSource, RelPath};

/// How much raw file is read per refill.
const CHUNK: usize = 4096;

/// Sequential netascii encoder over one file.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    /// Offset in the file of the first byte after `raw`.
    offset: u64,
    /// Raw bytes read but not yet encoded, from `pos`.
    raw: Vec<u8>,
    pos: usize,
    /// The second byte of a pair that did not fit into the previous block.
    pending: Option<u8>,
    /// The file has been read to its end.
    eof: bool,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append up to `want` encoded bytes to `out`; fewer only at the end of the file.
    pub fn fill<S: FileSource + ?Sized>(
        &mut self,
        src: &S,
        path: &RelPath,
        out: &mut Vec<u8>,
        want: usize,
    ) -> Result<(), FileError> {
        let mut left = want;
        while left > 0 {
            if let Some(b) = self.pending.take() {
                out.push(b);
                left -= 1;
                continue;
            }
            if self.pos == self.raw.len() {
                if self.eof {
                    break;
                }
                self.raw.resize(CHUNK, 0);
                let n = src.read_at(path, self.offset, &mut self.raw)?;
                self.raw.truncate(n);
                self.pos = 0;
                self.offset += n as u64;
                self.eof = n == 0;
                continue;
            }
            let b = self.raw[self.pos];
            self.pos += 1;
            match b {
                b'\n' => {
                    out.push(b'\r');
                    self.pending = Some(b'\n');
                }
                b'\r' => {
                    out.push(b'\r');
                    self.pending = Some(0);
                }
                _ => out.push(b),
            }
            left -= 1;
        }
        Ok(())
    }
}

/// Netascii back to local text (tests only: checks the encoder round-trips).
#[cfg(test)]
pub fn decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\r', Some(b'\n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\r', Some(0)) => {
                out.push(b'\r');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::{MemFiles, confine};
    use crate::testutil::Lcg;

    fn encode_in_blocks(content: &[u8], block: usize) -> Vec<Vec<u8>> {
        let mut m = MemFiles::new();
        m.insert("f", content.to_vec()).unwrap();
        let p = confine("f").unwrap();
        let mut e = Encoder::new();
        let mut blocks = Vec::new();
        loop {
            let mut out = Vec::new();
            e.fill(&m, &p, &mut out, block).unwrap();
            let last = out.len() < block;
            blocks.push(out);
            if last {
                return blocks;
            }
        }
    }

    #[test]
    fn line_ends_become_crlf_and_cr_becomes_cr_nul() {
        let blocks = encode_in_blocks(b"a\nb\rc\r\n", 512);
        assert_eq!(blocks, vec![b"a\r\nb\r\0c\r\0\r\n".to_vec()]);
    }

    #[test]
    fn a_pair_split_across_blocks_is_carried_over() {
        // "a\n" encodes to 3 bytes; with 2-byte blocks the LF goes into the next block.
        let blocks = encode_in_blocks(b"a\n", 2);
        assert_eq!(blocks, vec![b"a\r".to_vec(), b"\n".to_vec()]);
        // Exactly full last block: an empty block ends the transfer.
        let blocks = encode_in_blocks(b"ab", 2);
        assert_eq!(blocks, vec![b"ab".to_vec(), vec![]]);
    }

    #[test]
    fn random_text_round_trips_at_any_block_size() {
        let mut rng = Lcg(7);
        for _ in 0..200 {
            let content: Vec<u8> = rng
                .bytes(10_000)
                .into_iter()
                .map(|b| [b'\n', b'\r', b'x', 0][b as usize % 4])
                .collect();
            let block = 1 + rng.next() as usize % 700;
            let blocks = encode_in_blocks(&content, block);
            assert!(blocks[..blocks.len() - 1].iter().all(|b| b.len() == block));
            assert_eq!(decode(&blocks.concat()), content);
        }
    }
}

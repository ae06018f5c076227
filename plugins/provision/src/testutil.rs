//! Helpers shared by the unit tests.

/// A small linear congruential generator (Knuth's MMIX constants): random enough for
/// fuzz-ish tests and reproducible, since every test names its seed.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 31 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    /// A random byte string of 0..=max_len bytes.
    pub fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let len = self.next() as usize % (max_len + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }
}

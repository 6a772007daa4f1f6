//! The trace hash: FNV-1a's shape (xor a value in, multiply) taken a 64-bit word at a time
//! instead of a byte at a time, with a shift folding the high half back after each multiply, so
//! a run is fingerprinted without formatting or storing any text on the hot path, at one
//! multiply per word. A fingerprint only: same events, same hash; it is no defence against a
//! chosen collision.

/// An incremental word-wise hash.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    /// An odd 64-bit constant with well spread bits (the golden ratio's), so every bit of a
    /// word reaches the high half in one multiply; the shift then brings it back to the low half.
    const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

    /// The empty hash.
    pub fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    /// Mixes one word in.
    #[inline]
    pub fn write(&mut self, word: u64) {
        let h = (self.0 ^ word).wrapping_mul(Self::MULTIPLIER);
        self.0 = h ^ (h >> 32);
    }

    /// Mixes several words in.
    #[inline]
    pub fn write_all(&mut self, words: &[u64]) {
        for &w in words {
            self.write(w);
        }
    }

    /// Mixes bytes in: eight at a time as little-endian words, the last few zero-padded, then
    /// the length (so trailing zero bytes still change the hash).
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.write(u64::from_le_bytes(word));
        }
        self.write(bytes.len() as u64);
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of a byte string, on its own.
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.write_bytes(bytes);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_position_and_the_length_change_the_hash() {
        let base = vec![7u8; 21];
        let h = hash_bytes(&base);
        for i in 0..base.len() {
            let mut other = base.clone();
            other[i] ^= 1;
            assert_ne!(hash_bytes(&other), h, "byte {i}");
        }
        // Zero padding of the last word is told apart from real zero bytes.
        assert_ne!(hash_bytes(&[1, 0]), hash_bytes(&[1]));
        assert_ne!(hash_bytes(&[]), hash_bytes(&[0]));
    }

    #[test]
    fn order_of_words_matters_and_high_bits_reach_low_bits() {
        let (mut a, mut b) = (Fnv::new(), Fnv::new());
        a.write_all(&[1, 2]);
        b.write_all(&[2, 1]);
        assert_ne!(a.finish(), b.finish());
        let (mut x, mut y) = (Fnv::new(), Fnv::new());
        x.write(1 << 63);
        y.write(0);
        assert_ne!(x.finish() & 0xffff_ffff, y.finish() & 0xffff_ffff);
    }
}

//! The trace hash: FNV-1a over 64-bit words of every event, so a run is fingerprinted without
//! formatting or storing any text on the hot path.

/// An incremental FNV-1a hash.
#[derive(Clone, Copy, Debug)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Fnv {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// The empty hash.
    pub fn new() -> Fnv {
        Fnv(Self::OFFSET)
    }

    /// Mixes one word in, byte by byte.
    pub fn write(&mut self, word: u64) {
        for byte in word.to_le_bytes() {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    /// Mixes several words in.
    pub fn write_all(&mut self, words: &[u64]) {
        for &w in words {
            self.write(w);
        }
    }

    /// Mixes bytes in.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
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

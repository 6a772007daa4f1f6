//! The search's cache, and the hashing it rests on: the linearized set as a bitset with a
//! Zobrist hash and a short canonical form, and an open-addressing table of explored
//! configurations. Depends on nothing.

use std::hash::{Hash, Hasher};

/// "No entry" in the table and in its lists.
const NIL: u32 = u32::MAX;

/// splitmix64's finalizer: spreads every input bit over the output.
pub(super) fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The Zobrist key of bit `rank`: the hash of a set is the xor of its members' keys.
fn zobrist(rank: usize) -> u64 {
    mix((rank as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// FNV-1a over 64-bit words, for hashing model states: deterministic, no seed.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        mix(self.0)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0 ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }

    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }

    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

/// A deterministic 64-bit hash (FNV-1a over words, then mixed), for `Model::shape`.
pub fn fingerprint<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    value.hash(&mut hasher);
    hasher.finish()
}

/// The set of linearized operations, by rank, with what the cache needs kept up to date: a
/// Zobrist hash, and a canonical short form (`lo` leading all-ones words, then the words up to
/// the last non-zero one). Histories are mostly linearized in call order, so the short form
/// stays a few words long however long the partition.
pub(super) struct Bits {
    words: Vec<u64>,
    /// Invariant: `words[..lo]` are all ones and `words[lo]` is not.
    lo: usize,
    /// Invariant: `words[hi..]` are all zero (`hi` may overshoot until `canonical` trims it).
    hi: usize,
    /// The Zobrist hash of the set.
    pub(super) hash: u64,
}

impl Bits {
    pub(super) fn new(len: usize) -> Bits {
        Bits {
            words: vec![0; len.div_ceil(64)],
            lo: 0,
            hi: 0,
            hash: 0,
        }
    }

    pub(super) fn set(&mut self, rank: usize) {
        let (word, bit) = (rank / 64, 1u64 << (rank % 64));
        assert!(
            self.words[word] & bit == 0,
            "operation {rank} linearized twice"
        );
        self.words[word] |= bit;
        self.hash ^= zobrist(rank);
        self.hi = self.hi.max(word + 1);
        while self.lo < self.words.len() && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
    }

    pub(super) fn clear(&mut self, rank: usize) {
        let (word, bit) = (rank / 64, 1u64 << (rank % 64));
        assert!(
            self.words[word] & bit != 0,
            "operation {rank} was not linearized"
        );
        self.words[word] &= !bit;
        self.hash ^= zobrist(rank);
        self.lo = self.lo.min(word);
    }

    /// The canonical short form: equal sets give equal forms.
    pub(super) fn canonical(&mut self) -> (usize, &[u64]) {
        while self.hi > self.lo && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
        self.hi = self.hi.max(self.lo);
        (self.lo, &self.words[self.lo..self.hi])
    }
}

/// The configurations explored with the same returned operations linearized and states of the
/// same shapes (`Model::shape`).
struct MemoEntry {
    hash: u64,
    /// The returned operations' set, in `Bits::canonical` form: `lo`, then `words[start..][..len]`.
    lo: usize,
    start: usize,
    len: usize,
    /// The states' shapes, sorted: `words[shapes..][..shapes_len]`.
    shapes: usize,
    shapes_len: usize,
    /// The first of them (a list through `Explored::next`).
    first: u32,
}

/// One explored configuration: its linearized unreturned operations
/// (`unreturned_words[start..][..width]`) and its states.
struct Explored {
    start: usize,
    states: usize,
    next: u32,
    /// Fully explored (it failed), not just entered.
    finished: bool,
}

/// The cache: an open-addressing table (linear probing) over entries whose words live in
/// arenas.
///
/// A configuration is pruned if it was entered before (it failed, or is being explored), or if
/// one that failed had the same returned operations linearized, a subset of its unreturned
/// ones, and states that dominate its own: operations that never returned constrain nothing,
/// so the configuration with fewer of them linearized can do all the other can (it may leave
/// the rest out), and dominating states allow all the others allow.
pub(super) struct Memo<S> {
    /// Entry numbers; `NIL` is a free slot. Invariant: at most half full.
    slots: Vec<u32>,
    entries: Vec<MemoEntry>,
    words: Vec<u64>,
    explored: Vec<Explored>,
    unreturned_words: Vec<u64>,
    states: Vec<Vec<S>>,
    /// Words per unreturned-operation set.
    width: usize,
}

/// A configuration, as the cache keys it.
pub(super) struct Config<'c, S> {
    pub(super) hash: u64,
    /// `Bits::canonical` of the returned operations linearized.
    pub(super) known: (usize, &'c [u64]),
    /// The states' shapes, sorted and deduplicated.
    pub(super) shapes: &'c [u64],
    pub(super) unreturned: &'c [u64],
    pub(super) states: &'c [S],
}

impl<S: Clone + Eq> Memo<S> {
    pub(super) fn new(width: usize) -> Memo<S> {
        Memo {
            slots: vec![NIL; 1024],
            entries: Vec::new(),
            words: Vec::new(),
            explored: Vec::new(),
            unreturned_words: Vec::new(),
            states: Vec::new(),
            width,
        }
    }

    /// Records `config` and returns its number for `finish`, or `None` if it is pruned.
    /// `dominates(a, b)`: state `a` allows all `b` allows.
    pub(super) fn insert(
        &mut self,
        config: &Config<'_, S>,
        dominates: impl Fn(&S, &S) -> bool,
    ) -> Option<u32> {
        assert_eq!(config.unreturned.len(), self.width, "unreturned set width");
        if (self.entries.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut slot = config.hash as usize & mask;
        while self.slots[slot] != NIL {
            let at = self.slots[slot] as usize;
            if self.matches(&self.entries[at], config) {
                if self.prunes(self.entries[at].first, config, dominates) {
                    return None;
                }
                let first = self.push_explored(config, self.entries[at].first);
                self.entries[at].first = first;
                return Some(first);
            }
            slot = (slot + 1) & mask;
        }
        let at = u32::try_from(self.entries.len()).expect("cache holds fewer than 2^32 entries");
        assert!(at != NIL, "cache full");
        self.slots[slot] = at;
        let first = self.push_explored(config, NIL);
        let (lo, tail) = config.known;
        self.entries.push(MemoEntry {
            hash: config.hash,
            lo,
            start: self.words.len(),
            len: tail.len(),
            shapes: self.words.len() + tail.len(),
            shapes_len: config.shapes.len(),
            first,
        });
        self.words.extend_from_slice(tail);
        self.words.extend_from_slice(config.shapes);
        Some(first)
    }

    fn matches(&self, entry: &MemoEntry, config: &Config<'_, S>) -> bool {
        let (lo, tail) = config.known;
        entry.hash == config.hash
            && entry.lo == lo
            && self.words[entry.start..entry.start + entry.len] == *tail
            && self.words[entry.shapes..entry.shapes + entry.shapes_len] == *config.shapes
    }

    /// True if a configuration on the list from `at` makes `config` pointless.
    fn prunes(
        &self,
        mut at: u32,
        config: &Config<'_, S>,
        dominates: impl Fn(&S, &S) -> bool,
    ) -> bool {
        while at != NIL {
            let explored = &self.explored[at as usize];
            let unreturned = &self.unreturned_words[explored.start..explored.start + self.width];
            let states = &self.states[explored.states];
            if unreturned == config.unreturned && states == config.states {
                return true;
            }
            let subset = (unreturned.iter().zip(config.unreturned)).all(|(s, u)| s & !u == 0);
            if explored.finished
                && subset
                && (config.states.iter()).all(|b| states.iter().any(|a| dominates(a, b)))
            {
                return true;
            }
            at = explored.next;
        }
        false
    }

    fn push_explored(&mut self, config: &Config<'_, S>, next: u32) -> u32 {
        let at = u32::try_from(self.explored.len()).expect("cache holds fewer than 2^32 sets");
        assert!(at != NIL, "cache full");
        self.explored.push(Explored {
            start: self.unreturned_words.len(),
            states: self.states.len(),
            next,
            finished: false,
        });
        self.unreturned_words.extend_from_slice(config.unreturned);
        self.states.push(config.states.to_vec());
        at
    }

    /// Marks configuration `at` (from `insert`) fully explored.
    pub(super) fn finish(&mut self, at: u32) {
        self.explored[at as usize].finished = true;
    }

    fn grow(&mut self) {
        let len = self.slots.len() * 2;
        let mask = len - 1;
        self.slots = vec![NIL; len];
        for (at, entry) in self.entries.iter().enumerate() {
            let mut slot = entry.hash as usize & mask;
            while self.slots[slot] != NIL {
                slot = (slot + 1) & mask;
            }
            self.slots[slot] = at as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_canonical_form_ignores_history_of_changes() {
        let mut a = Bits::new(200);
        let mut b = Bits::new(200);
        for rank in 0..130 {
            a.set(rank);
        }
        a.set(150);
        a.clear(150);
        a.clear(3);
        for rank in (0..130).rev().filter(|&r| r != 3) {
            b.set(rank);
        }
        assert_eq!(a.hash, b.hash);
        let (lo_a, tail_a) = a.canonical();
        let (lo_a, tail_a) = (lo_a, tail_a.to_vec());
        assert_eq!((lo_a, tail_a.as_slice()), b.canonical());
        assert_eq!(lo_a, 0);
    }
}

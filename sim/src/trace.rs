//! The trace hash: FNV-1a over 64-bit words of every event (the checker crate owns the hash, since
//! the Raft safety checker folds every state change it sees into the same kind of fingerprint).

pub use checker::fnv::{Fnv, hash_bytes};

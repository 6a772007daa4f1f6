//! The one durable-storage trait the log is written against.
//!
//! Depends on nothing else in the crate.

/// One append-only file of durable bytes. A write is durable only after `sync` returns Ok.
pub trait Disk {
    /// Every byte written so far (synced or not), as this node reads it back.
    fn read_all(&self) -> std::io::Result<Vec<u8>>;
    /// Appends bytes at the end (not durable until `sync`).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Cuts the file to `len` bytes (used by recovery to drop a torn tail); durable after `sync`.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    /// Makes every earlier append and truncate durable.
    fn sync(&mut self) -> impl std::future::Future<Output = std::io::Result<()>>;
    /// Replaces the whole content with `bytes` (log compaction), atomically: after a crash the
    /// disk holds either what it held before (as far as it was synced) or exactly `bytes`,
    /// never a mixture. Durable once it returns Ok.
    fn rewrite(&mut self, bytes: &[u8]) -> impl std::future::Future<Output = std::io::Result<()>>;
}

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

    /// A new content made by [`Disk::stage`], written and synced beside the file, not in place.
    type Staged: Send + 'static;
    /// Starts a [`Disk::rewrite`] in two halves, for a new content whose first bytes take long
    /// to make (a whole snapshot): `build` makes them, and they are written beside the file and
    /// synced, away from the caller's task where the world has somewhere else to run them (the
    /// production disk: a blocking-pool thread; the simulator's: a sync's virtual time). The
    /// future borrows nothing, so the caller goes on appending to and syncing the file while it
    /// runs. The file is untouched until [`Disk::install_staged`]: a crash meanwhile leaves it
    /// as it was. `build`'s second value is handed back with the staged content.
    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl std::future::Future<Output = std::io::Result<(Self::Staged, T)>> + 'static + use<Self, T, B>;
    /// Appends `tail` to a staged content, syncs it and puts it in place of the file
    /// atomically, as [`Disk::rewrite`] does (the unsynced writes to the old file go with it).
    fn install_staged(
        &mut self,
        staged: Self::Staged,
        tail: &[u8],
    ) -> impl std::future::Future<Output = std::io::Result<()>>;
}

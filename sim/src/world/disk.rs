//! The simulated disk: the engine's `MemDisk` (durable and pending bytes, harness-owned so it
//! survives a node's restart) plus a sync that takes virtual time, so a crash can land while
//! writes are still unsynced, and the disk faults the nemesis turns on ([`DiskFaults`]).

use std::sync::{Arc, Mutex, MutexGuard};

use engine::log::{Disk, MemDisk};

use super::SimClock;

/// The faults of one node's disk that act while the node runs, harness-owned (kept across the
/// node's restarts) and set by the nemesis. The faults at rest (corruption, misdirected and
/// lost writes) act on the `MemDisk` directly.
#[derive(Clone, Debug, Default)]
pub struct DiskFaults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    /// `fsync-error`: the next sync (or atomic rewrite) fails.
    fail_next_sync: bool,
    /// `fsync-stall`: every sync waits until this time (ms).
    stall_until_ms: u64,
    /// `disk-slow`: until this time, every sync takes `slow_extra_ms` more.
    slow_until_ms: u64,
    slow_extra_ms: u64,
    /// `disk-full`: until this time, every write fails with "no space".
    full_until_ms: u64,
    /// An injected fault failed an operation since the node's last start: its loop ending
    /// with a disk error is the fault's doing, not a bug.
    failed: bool,
    /// When the log sync now pending began (`Disk::sync` only), for the rule that a leader
    /// whose sync hangs gives way; `None` when none is pending.
    sync_since_ms: Option<u64>,
}

impl DiskFaults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.inner.lock().expect("disk faults lock poisoned")
    }

    /// `fsync-error`: the next sync fails.
    pub fn fail_next_sync(&self) {
        self.lock().fail_next_sync = true;
    }

    /// `fsync-stall`: syncs hang until `until_ms`.
    pub fn stall_until(&self, until_ms: u64) {
        let mut s = self.lock();
        s.stall_until_ms = s.stall_until_ms.max(until_ms);
    }

    /// `disk-slow`: syncs take `extra_ms` more until `until_ms`.
    pub fn slow_until(&self, until_ms: u64, extra_ms: u64) {
        let mut s = self.lock();
        s.slow_until_ms = until_ms;
        s.slow_extra_ms = extra_ms;
    }

    /// `disk-full`: writes fail until `until_ms`.
    pub fn full_until(&self, until_ms: u64) {
        let mut s = self.lock();
        s.full_until_ms = s.full_until_ms.max(until_ms);
    }

    /// Ends every fault (the disk is replaced or recovers).
    pub fn heal(&self) {
        let mut s = self.lock();
        let (failed, sync_since_ms) = (s.failed, s.sync_since_ms);
        *s = FaultState {
            failed,
            sync_since_ms,
            ..FaultState::default()
        };
    }

    /// True if an injected fault failed an operation since [`DiskFaults::restarted`].
    pub fn failed(&self) -> bool {
        self.lock().failed
    }

    /// A new life of the node: forget earlier failures (and a sync its crash cut short).
    pub fn restarted(&self) {
        let mut s = self.lock();
        s.failed = false;
        s.sync_since_ms = None;
    }

    /// When the log sync now pending began, if one is.
    pub fn sync_pending_since(&self) -> Option<u64> {
        self.lock().sync_since_ms
    }

    /// True while syncs hang (`fsync-stall`) or writes fail (`disk-full`) at `now_ms`: the
    /// node cannot make anything durable, so it can neither vote nor lead a commit.
    pub fn unusable(&self, now_ms: u64) -> bool {
        let s = self.lock();
        now_ms < s.stall_until_ms || now_ms < s.full_until_ms
    }

    /// How long a sync waits beyond its own time at `now_ms`, and whether it fails.
    fn on_sync(&self, now_ms: u64) -> (u64, bool) {
        Self::sync_faults(&mut self.lock(), now_ms)
    }

    /// A log sync begins at `now_ms` (pending from then on): `on_sync` under the same lock.
    fn on_log_sync(&self, now_ms: u64) -> (u64, bool) {
        let mut s = self.lock();
        s.sync_since_ms = Some(now_ms);
        Self::sync_faults(&mut s, now_ms)
    }

    fn sync_faults(s: &mut FaultState, now_ms: u64) -> (u64, bool) {
        let mut wait = s.stall_until_ms.saturating_sub(now_ms);
        if now_ms < s.slow_until_ms {
            wait += s.slow_extra_ms;
        }
        let fail = std::mem::take(&mut s.fail_next_sync);
        s.failed |= fail;
        (wait, fail)
    }

    /// Whether a write at `now_ms` fails for lack of space.
    fn on_write(&self, now_ms: u64) -> bool {
        let mut s = self.lock();
        let full = now_ms < s.full_until_ms;
        s.failed |= full;
        full
    }
}

/// One node's disk as the node sees it.
pub struct SimDisk {
    mem: MemDisk,
    clock: SimClock,
    /// How long each `sync` takes, drawn by the harness per node life.
    sync_ms: u64,
    faults: DiskFaults,
}

impl SimDisk {
    /// A disk over `mem` whose syncs take `sync_ms` of virtual time, with `faults`.
    pub fn new(mem: MemDisk, clock: SimClock, sync_ms: u64, faults: DiskFaults) -> SimDisk {
        SimDisk {
            mem,
            clock,
            sync_ms,
            faults,
        }
    }

    /// A sync's time, stalls and slowness included; an error if the fault says it fails.
    async fn sync_time(clock: &SimClock, sync_ms: u64, faults: &DiskFaults) -> std::io::Result<()> {
        SimDisk::wait_sync(clock, sync_ms, faults.on_sync(clock.now_ms())).await
    }

    /// Waits out a sync whose faults (`extra` ms, and whether it fails) are drawn.
    async fn wait_sync(
        clock: &SimClock,
        sync_ms: u64,
        (extra, fail): (u64, bool),
    ) -> std::io::Result<()> {
        if sync_ms + extra > 0 {
            clock.sleep_ms(sync_ms + extra).await;
        }
        if fail {
            return Err(std::io::Error::other("injected fsync error (EIO)"));
        }
        Ok(())
    }

    fn full(&self) -> std::io::Result<()> {
        if self.faults.on_write(self.clock.now_ms()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "injected disk full (ENOSPC)",
            ));
        }
        Ok(())
    }
}

impl Disk for SimDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        self.mem.read_all()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.full()?;
        self.mem.append(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.mem.truncate(len)
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        // Pending from now on, and the sync's faults drawn, under one lock.
        let faults = self.faults.on_log_sync(self.clock.now_ms());
        let synced = SimDisk::wait_sync(&self.clock, self.sync_ms, faults).await;
        self.faults.lock().sync_since_ms = None;
        synced?;
        self.mem.sync().await
    }

    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Writing the new file and syncing it take a sync's time; a crash meanwhile keeps the
        // old file.
        self.full()?;
        SimDisk::sync_time(&self.clock, self.sync_ms, &self.faults).await?;
        self.mem.rewrite(bytes).await
    }

    type Staged = Vec<u8>;

    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl std::future::Future<Output = std::io::Result<(Vec<u8>, T)>> + 'static + use<T, B>
    {
        // Writing and syncing the new file's bulk take a sync's time, while the node goes on;
        // a crash meanwhile drops the staged bytes with the node and keeps the old file.
        let (clock, sync_ms, faults) = (self.clock.clone(), self.sync_ms, self.faults.clone());
        let full = self.full();
        let staging = self.mem.stage(build);
        async move {
            full?;
            SimDisk::sync_time(&clock, sync_ms, &faults).await?;
            staging.await
        }
    }

    async fn install_staged(&mut self, staged: Vec<u8>, tail: &[u8]) -> std::io::Result<()> {
        // The tail's write and sync, then the rename.
        self.full()?;
        SimDisk::sync_time(&self.clock, self.sync_ms, &self.faults).await?;
        self.mem.install_staged(staged, tail).await
    }
}

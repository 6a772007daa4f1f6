//! The simulated disk: the engine's `MemDisk` (durable and pending bytes, harness-owned so it
//! survives a node's restart) plus a sync that takes virtual time, so a crash can land while
//! writes are still unsynced.

use engine::log::{Disk, MemDisk};

use super::SimClock;

/// One node's disk as the node sees it.
pub struct SimDisk {
    mem: MemDisk,
    clock: SimClock,
    /// How long each `sync` takes, drawn by the harness per node life.
    sync_ms: u64,
}

impl SimDisk {
    /// A disk over `mem` whose syncs take `sync_ms` of virtual time.
    pub fn new(mem: MemDisk, clock: SimClock, sync_ms: u64) -> SimDisk {
        SimDisk {
            mem,
            clock,
            sync_ms,
        }
    }
}

impl Disk for SimDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        self.mem.read_all()
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mem.append(bytes)
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.mem.truncate(len)
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        if self.sync_ms > 0 {
            self.clock.sleep_ms(self.sync_ms).await;
        }
        self.mem.sync().await
    }

    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Writing the new file and syncing it take a sync's time; a crash meanwhile keeps the
        // old file.
        if self.sync_ms > 0 {
            self.clock.sleep_ms(self.sync_ms).await;
        }
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
        let (clock, sync_ms) = (self.clock.clone(), self.sync_ms);
        let staging = self.mem.stage(build);
        async move {
            if sync_ms > 0 {
                clock.sleep_ms(sync_ms).await;
            }
            staging.await
        }
    }

    async fn install_staged(&mut self, staged: Vec<u8>, tail: &[u8]) -> std::io::Result<()> {
        // The tail's write and sync, then the rename.
        if self.sync_ms > 0 {
            self.clock.sleep_ms(self.sync_ms).await;
        }
        self.mem.install_staged(staged, tail).await
    }
}

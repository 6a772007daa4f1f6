//! [`MemDisk`]: an in-memory [`Disk`] with explicit durable and pending state, so tests and the
//! simulator can crash a node at any point and decide exactly which unsynced bytes survive.
//!
//! Deterministic: it holds no randomness; callers pass every fault's numbers in.
//! Depends only on [`super::disk`].

use std::sync::{Arc, Mutex, MutexGuard};

use super::disk::Disk;

/// An in-memory disk. Clones are handles to the same disk, so the simulator can keep one to
/// inject faults while the node's WAL owns another.
#[derive(Clone, Debug, Default)]
pub struct MemDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Bytes that survive any crash.
    durable: Vec<u8>,
    /// Writes since the last sync, oldest first. The node's view is `durable` with these applied.
    pending: Vec<Op>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    Append(Vec<u8>),
    Truncate(usize),
}

impl Inner {
    /// `durable` with every pending write applied: what the running node reads back.
    fn view(&self) -> Vec<u8> {
        let mut bytes = self.durable.clone();
        for op in &self.pending {
            match op {
                Op::Append(more) => bytes.extend_from_slice(more),
                Op::Truncate(len) => bytes.truncate(*len),
            }
        }
        bytes
    }

    fn view_len(&self) -> usize {
        self.pending
            .iter()
            .fold(self.durable.len(), |len, op| match op {
                Op::Append(more) => len + more.len(),
                Op::Truncate(cut) => len.min(*cut),
            })
    }
}

impl MemDisk {
    /// An empty disk.
    pub fn new() -> MemDisk {
        MemDisk::default()
    }

    /// A disk whose durable content is `bytes`, as if written and synced by someone else.
    pub fn with_durable(bytes: Vec<u8>) -> MemDisk {
        let inner = Inner {
            durable: bytes,
            pending: Vec::new(),
        };
        MemDisk {
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("MemDisk mutex poisoned: a panic happened while holding it")
    }

    /// Power failure: every unsynced append and truncate is lost.
    pub fn crash_lose_pending(&self) {
        self.lock().pending.clear();
    }

    /// Power failure during a write: the first `keep` unsynced appended bytes reached the
    /// platter (a torn write) and the rest were lost. `keep` past the end keeps everything.
    ///
    /// Only pure appends can tear this way; if a truncate is pending, all pending writes are lost.
    pub fn crash_torn(&self, keep: usize) {
        let mut inner = self.lock();
        let pending = std::mem::take(&mut inner.pending);
        if pending.iter().any(|op| matches!(op, Op::Truncate(_))) {
            return;
        }
        let mut left = keep;
        for op in pending {
            let Op::Append(bytes) = op else {
                unreachable!("checked: no truncate pending")
            };
            let survived = left.min(bytes.len());
            inner.durable.extend_from_slice(&bytes[..survived]);
            left -= survived;
        }
    }

    /// Bit rot: XORs `xor` into the durable byte `offset_from_end` bytes before the end
    /// (0 is the last byte).
    pub fn corrupt_byte(&self, offset_from_end: usize, xor: u8) {
        let mut inner = self.lock();
        let len = inner.durable.len();
        assert!(
            offset_from_end < len,
            "corrupt offset {offset_from_end} past durable len {len}"
        );
        inner.durable[len - 1 - offset_from_end] ^= xor;
    }

    /// A misdirected or lost write, at rest: replaces the durable bytes at `offset` with
    /// `bytes` (which must lie within the durable bytes).
    pub fn overwrite_durable(&self, offset: usize, bytes: &[u8]) {
        let mut inner = self.lock();
        let len = inner.durable.len();
        assert!(
            offset + bytes.len() <= len,
            "overwrite of {} bytes at {offset} past durable len {len}",
            bytes.len()
        );
        inner.durable[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Bytes that would survive a crash now.
    pub fn durable_len(&self) -> usize {
        self.lock().durable.len()
    }

    /// Bytes appended since the last sync (what [`MemDisk::crash_torn`] can keep a prefix of).
    pub fn pending_len(&self) -> usize {
        let inner = self.lock();
        inner
            .pending
            .iter()
            .map(|op| if let Op::Append(b) = op { b.len() } else { 0 })
            .sum()
    }

    /// A copy of the durable bytes.
    pub fn durable_bytes(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }
}

impl Disk for MemDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        Ok(self.lock().view())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.lock().pending.push(Op::Append(bytes.to_vec()));
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        let mut inner = self.lock();
        let view_len = inner.view_len();
        // Unlike `File::set_len`, growing is refused: the WAL only ever cuts a tail.
        let len = usize::try_from(len)
            .ok()
            .filter(|len| *len <= view_len)
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("truncate to {len} bytes past end {view_len}"),
                )
            })?;
        inner.pending.push(Op::Truncate(len));
        Ok(())
    }

    async fn sync(&mut self) -> std::io::Result<()> {
        // Applied in place: copying the whole durable log on every sync made the simulator
        // spend half its time in memmove.
        let mut inner = self.lock();
        let Inner { durable, pending } = &mut *inner;
        for op in pending.drain(..) {
            match op {
                Op::Append(more) => durable.extend_from_slice(&more),
                Op::Truncate(len) => durable.truncate(len),
            }
        }
        Ok(())
    }

    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Like a write to a new file, a sync and a rename: all or nothing, and the unsynced
        // writes to the old file go with it.
        let mut inner = self.lock();
        inner.pending.clear();
        inner.durable = bytes.to_vec();
        Ok(())
    }

    /// The staged content is the bytes themselves, kept by the caller: a crash (which drops
    /// the node's memory) loses it and leaves the disk as it was.
    type Staged = Vec<u8>;

    fn stage<T: Send + 'static, B: FnOnce() -> (Vec<u8>, T) + Send + 'static>(
        &self,
        build: B,
    ) -> impl std::future::Future<Output = std::io::Result<(Vec<u8>, T)>> + 'static + use<T, B>
    {
        async move { Ok(build()) }
    }

    async fn install_staged(&mut self, staged: Vec<u8>, tail: &[u8]) -> std::io::Result<()> {
        let mut inner = self.lock();
        inner.pending.clear();
        let mut content = staged;
        content.extend_from_slice(tail);
        inner.durable = content;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::now;

    #[test]
    fn view_applies_pending_and_sync_makes_it_durable() {
        let mut disk = MemDisk::new();
        disk.append(b"abc").expect("append");
        disk.truncate(1).expect("truncate");
        disk.append(b"xy").expect("append");
        assert_eq!(disk.read_all().expect("read"), b"axy");
        assert_eq!((disk.durable_len(), disk.pending_len()), (0, 5));
        assert!(disk.truncate(4).is_err(), "growing is refused");
        now(disk.sync()).expect("sync");
        assert_eq!(disk.durable_bytes(), b"axy");
        assert_eq!(disk.pending_len(), 0);
    }

    #[test]
    fn crashes_keep_exactly_what_they_say() {
        let mut disk = MemDisk::with_durable(b"d".to_vec());
        disk.append(b"123").expect("append");
        disk.append(b"45").expect("append");
        disk.clone().crash_torn(4);
        assert_eq!(disk.read_all().expect("read"), b"d1234");
        disk.append(b"zz").expect("append");
        disk.crash_lose_pending();
        assert_eq!(disk.read_all().expect("read"), b"d1234");
        // A pending truncate cannot tear: the whole pending batch is lost.
        disk.truncate(1).expect("truncate");
        disk.append(b"q").expect("append");
        disk.crash_torn(1);
        assert_eq!(disk.read_all().expect("read"), b"d1234");
        disk.corrupt_byte(0, 0xff);
        assert_eq!(disk.durable_bytes(), [b'd', b'1', b'2', b'3', b'4' ^ 0xff]);
    }
}

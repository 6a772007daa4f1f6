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
    durable: Durable,
    /// Writes since the last sync, oldest first. The node's view is `durable` with these applied.
    pending: Vec<Op>,
    /// The bytes of the pending appends, one after another in `pending`'s order: one buffer
    /// reused from sync to sync instead of one allocation per append.
    pending_bytes: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
    /// The next this many bytes of `pending_bytes`.
    Append(usize),
    Truncate(usize),
}

/// How many bytes each piece of the durable content holds (the last may hold fewer).
const CHUNK: usize = 1 << 16;

/// The durable content, kept in pieces of [`CHUNK`] bytes so that it grows without copying
/// what it already holds (one growing vector copied the whole log at every doubling).
/// Every piece but the last is exactly [`CHUNK`] bytes long.
#[derive(Debug, Default)]
struct Durable {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Durable {
    fn from_slice(bytes: &[u8]) -> Durable {
        let mut durable = Durable::default();
        durable.extend_from_slice(bytes);
        durable
    }

    fn len(&self) -> usize {
        self.len
    }

    fn extend_from_slice(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.chunks.last_mut() {
                Some(last) if last.len() < CHUNK => {
                    let take = (CHUNK - last.len()).min(bytes.len());
                    last.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    self.len += take;
                }
                _ => self.chunks.push(Vec::with_capacity(CHUNK)),
            }
        }
    }

    fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        let keep = len.div_ceil(CHUNK);
        self.chunks.truncate(keep);
        if let Some(last) = self.chunks.last_mut() {
            last.truncate(len - (keep - 1) * CHUNK);
        }
        self.len = len;
    }

    fn byte_mut(&mut self, at: usize) -> &mut u8 {
        &mut self.chunks[at / CHUNK][at % CHUNK]
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len);
        for chunk in &self.chunks {
            bytes.extend_from_slice(chunk);
        }
        bytes
    }
}

impl Inner {
    /// `durable` with every pending write applied: what the running node reads back.
    fn view(&self) -> Vec<u8> {
        let mut bytes = self.durable.to_vec();
        let mut from = 0;
        for op in &self.pending {
            match op {
                Op::Append(n) => {
                    bytes.extend_from_slice(&self.pending_bytes[from..from + n]);
                    from += n;
                }
                Op::Truncate(len) => bytes.truncate(*len),
            }
        }
        bytes
    }

    fn view_len(&self) -> usize {
        self.pending
            .iter()
            .fold(self.durable.len(), |len, op| match op {
                Op::Append(n) => len + n,
                Op::Truncate(cut) => len.min(*cut),
            })
    }

    fn clear_pending(&mut self) {
        self.pending.clear();
        self.pending_bytes.clear();
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
            durable: Durable::from_slice(&bytes),
            ..Inner::default()
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
        self.lock().clear_pending();
    }

    /// Power failure during a write: the first `keep` unsynced appended bytes reached the
    /// platter (a torn write) and the rest were lost. `keep` past the end keeps everything.
    ///
    /// Only pure appends can tear this way; if a truncate is pending, all pending writes are lost.
    pub fn crash_torn(&self, keep: usize) {
        let mut inner = self.lock();
        let truncated = inner.pending.iter().any(|op| matches!(op, Op::Truncate(_)));
        if !truncated {
            let Inner {
                durable,
                pending_bytes,
                ..
            } = &mut *inner;
            let survived = keep.min(pending_bytes.len());
            durable.extend_from_slice(&pending_bytes[..survived]);
        }
        inner.clear_pending();
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
        *inner.durable.byte_mut(len - 1 - offset_from_end) ^= xor;
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
        for (at, byte) in (offset..).zip(bytes) {
            *inner.durable.byte_mut(at) = *byte;
        }
    }

    /// Bytes that would survive a crash now.
    pub fn durable_len(&self) -> usize {
        self.lock().durable.len()
    }

    /// Bytes appended since the last sync (what [`MemDisk::crash_torn`] can keep a prefix of).
    pub fn pending_len(&self) -> usize {
        self.lock().pending_bytes.len()
    }

    /// A copy of the durable bytes.
    pub fn durable_bytes(&self) -> Vec<u8> {
        self.lock().durable.to_vec()
    }
}

impl Disk for MemDisk {
    fn read_all(&self) -> std::io::Result<Vec<u8>> {
        Ok(self.lock().view())
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut inner = self.lock();
        inner.pending_bytes.extend_from_slice(bytes);
        inner.pending.push(Op::Append(bytes.len()));
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
        let Inner {
            durable,
            pending,
            pending_bytes,
        } = &mut *inner;
        let mut from = 0;
        for op in pending.iter() {
            match *op {
                Op::Append(n) => {
                    durable.extend_from_slice(&pending_bytes[from..from + n]);
                    from += n;
                }
                Op::Truncate(len) => durable.truncate(len),
            }
        }
        inner.clear_pending();
        Ok(())
    }

    async fn rewrite(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        // Like a write to a new file, a sync and a rename: all or nothing, and the unsynced
        // writes to the old file go with it.
        let mut inner = self.lock();
        inner.clear_pending();
        inner.durable = Durable::from_slice(bytes);
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
        inner.clear_pending();
        let mut content = Durable::from_slice(&staged);
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

    #[test]
    fn pieces_across_chunk_boundaries_read_back_as_one_file() {
        // A plain vector is the model; sizes straddle the piece size on purpose.
        let mut disk = MemDisk::new();
        let mut model: Vec<u8> = Vec::new();
        let mut state = 7u32;
        let mut next = |below: usize| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 8) as usize % below
        };
        for round in 0..40 {
            let len = next(3 * CHUNK / 2) + usize::from(round % 5 == 0) * CHUNK;
            let byte = u8::try_from(round).expect("small");
            disk.append(&vec![byte; len]).expect("append");
            model.extend(std::iter::repeat_n(byte, len));
            if round % 3 == 2 {
                let cut = match round % 4 {
                    0 => model.len() / CHUNK * CHUNK,
                    _ => next(model.len() + 1),
                };
                disk.truncate(cut as u64).expect("truncate");
                model.truncate(cut);
            }
            assert_eq!(disk.read_all().expect("read"), model);
            now(disk.sync()).expect("sync");
            assert_eq!((disk.durable_len(), disk.pending_len()), (model.len(), 0));
            assert_eq!(disk.durable_bytes(), model);
            if !model.is_empty() {
                let at = next(model.len());
                disk.corrupt_byte(model.len() - 1 - at, 0x5a);
                model[at] ^= 0x5a;
                let from = next(model.len());
                let patch: Vec<u8> = (0..(model.len() - from).min(CHUNK + 3))
                    .map(|k| k as u8)
                    .collect();
                disk.overwrite_durable(from, &patch);
                model[from..from + patch.len()].copy_from_slice(&patch);
                assert_eq!(disk.durable_bytes(), model);
            }
        }
        disk.append(&[1; CHUNK]).expect("append");
        disk.clone().crash_torn(CHUNK / 2 + 1);
        model.extend(std::iter::repeat_n(1, CHUNK / 2 + 1));
        assert_eq!(disk.read_all().expect("read"), model);
        now(disk.rewrite(&model[..CHUNK + 1])).expect("rewrite");
        assert_eq!(disk.durable_bytes(), model[..CHUNK + 1]);
    }
}

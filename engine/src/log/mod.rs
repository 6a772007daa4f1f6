//! Durable Raft state: the hard state and the log entries, kept in a write-ahead log over the
//! [`Disk`] trait.
//!
//! - [`disk`]: the [`Disk`] trait, one append-only file that is durable after `sync`.
//! - `record`: the hand-written, CRC-checked binary record format.
//! - [`wal`]: [`Wal`], which appends records and recovers the longest intact prefix on open.
//! - [`mem`]: [`MemDisk`], the in-memory disk with crash and corruption faults for tests and `sim`.
//!
//! Depends only on `crate::raft` data types (`Entry`, `HardState`, ...), never on the Raft logic.

pub mod disk;
pub mod mem;
mod record;
pub mod wal;

pub use disk::Disk;
pub use mem::MemDisk;
pub use record::{
    CutReason, RECORD_BYTES_MAX, SNAPSHOT_BYTES_MAX, WAL_FORMAT, intact_record_after,
    record_offsets,
};
pub use wal::{Damage, LogError, OpenOptions, Recovered, Staged, Wal};

/// Runs a future that must finish without waiting, as every [`MemDisk`] future does.
///
/// Tests use this instead of an executor so the crate needs no executor feature.
#[cfg(test)]
pub(crate) fn now<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("future was pending; MemDisk futures never wait"),
    }
}

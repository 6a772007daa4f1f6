//! The simulated world: madsim implementations of the engine's `Clock`, `Network` and `Disk`.
//!
//! The network is ours rather than madsim's: it needs duplication, one-way links and partitions
//! that cut messages already in flight, and it wakes a node only when its earliest message is due.
//! It carries messages as the production peer codec's bytes (`codec`).

mod clock;
mod codec;
mod disk;
mod net;

pub use clock::{ClockPlan, NodeClock, SIM_EPOCH_UNIX_MS, SimClock, Skew, WALL_ERROR_MAX_MS};
pub use codec::CodecFault;
pub use disk::{DiskFaults, SimDisk};
pub use net::{Latency, NetStats, NodeNet, SimNet};

//! Floe's engine: everything that runs inside one node, in either world.
//!
//! Layers, bottom to top (nothing imports from a layer above it):
//! - [`raft`]: the Raft core, a pure synchronous state machine (no I/O, no clock, no threads).
//! - [`log`]: durable Raft state (hard state and entries) over the [`log::Disk`] trait.
//! - [`server`]: the async node loop, generic over the world traits ([`server::Env`]).
//! - [`wire`]: the peer codec (hello and message frames), shared by the TCP transport and the
//!   simulator's network.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// Whether a planted bug's switch is on: `planted!(self.config.bugs.stale_read)`. With the
/// `planted-bugs` feature (only the simulator enables it) it reads the switch; without it the
/// switch does not exist and this is the literal `false`, so the branch it guards is dead code
/// the compiler drops. Defined before the modules so that they all see it.
macro_rules! planted {
    ($switch:expr) => {{
        #[cfg(feature = "planted-bugs")]
        let on: bool = $switch;
        #[cfg(not(feature = "planted-bugs"))]
        let on = false;
        on
    }};
}

pub mod http;
pub mod log;
// The production world is where real clocks, sleeps and tasks belong (clippy.toml bans them
// everywhere else in the engine).
#[cfg(feature = "net")]
#[allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "the production world: the system clock, tokio timers and tasks"
)]
pub mod net;
pub mod raft;
pub mod server;
pub mod store;
pub mod wire;

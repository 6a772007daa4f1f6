//! Floe's engine: everything that runs inside one node, in either world.
//!
//! Layers, bottom to top (nothing imports from a layer above it):
//! - [`raft`]: the Raft core, a pure synchronous state machine (no I/O, no clock, no threads).
//! - [`log`]: durable Raft state (hard state and entries) over the [`log::Disk`] trait.
//! - [`server`]: the async node loop, generic over the world traits ([`server::Env`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "net")]
pub mod http;
pub mod log;
#[cfg(feature = "net")]
pub mod net;
pub mod raft;
pub mod server;
pub mod store;

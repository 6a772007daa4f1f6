//! Floe's deterministic simulator: a Raft cluster of the engine's nodes under madsim, with seeded
//! faults, clients, and checkers that run after every step. One seed, one exact run.
//!
//! Layers: `trace` and `world` (the simulated clock, network and disk) at the bottom; `check`
//! (the `checker` crate, re-exported: judges, injects nothing, knows nothing of the engine) and
//! `observe` (the engine's observations converted into the checker's plain types); `cluster` (nodes over the world, wired to the checkers); `nemesis`
//! (faults) and `workload` (clients) over the cluster; `run` on top.

#[cfg(not(madsim))]
compile_error!(
    "crate `sim` needs `--cfg madsim` (set by .cargo/config.toml). A RUSTFLAGS variable replaces \
     that setting; use RUSTFLAGS=\"--cfg madsim ...\" if you must set it."
);

pub use checker as check;
pub mod aimed;
pub mod cluster;
pub mod failure;
pub mod fig16;
pub mod handover;
pub mod latency;
pub mod members;
pub mod nemesis;
pub mod observe;
pub mod options;
pub mod partial;
pub mod planted;
pub mod report;
pub mod run;
pub mod scenario;
pub mod shrink;
pub mod sweep;
pub mod trace;
pub mod workload;
pub mod world;

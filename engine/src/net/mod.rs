//! The production world: the system clock, a file disk and a TCP peer transport (tokio).

mod clock;

pub use clock::SystemClock;

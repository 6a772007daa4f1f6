//! The system clock: monotonic time for timers, wall-clock time for TTL stamps.

use std::future::Future;
use std::time::Duration;

use crate::server::Clock;

/// The production clock: `now_ms` counts from the clock's creation on the monotonic clock;
/// `unix_ms` reads the wall clock.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    #[allow(clippy::disallowed_types, reason = "the production world's clock")]
    origin: std::time::Instant,
}

impl SystemClock {
    /// A clock whose `now_ms` starts at 0 now.
    #[allow(clippy::disallowed_methods, reason = "the production world's clock")]
    pub fn new() -> SystemClock {
        SystemClock {
            origin: std::time::Instant::now(),
        }
    }
}

impl SystemClock {
    /// Nanoseconds since the Unix epoch on the wall clock (a start-up nonce).
    #[allow(
        clippy::disallowed_types,
        clippy::disallowed_methods,
        reason = "a nonce that grows from one start of the process to the next"
    )]
    pub fn unix_ns(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    #[allow(refining_impl_trait, reason = "callers rely on the sleep being Send")]
    fn sleep_until(&self, deadline_ms: u64) -> impl Future<Output = ()> + Send + 'static {
        let wait = deadline_ms.saturating_sub(self.now_ms());
        tokio::time::sleep(Duration::from_millis(wait))
    }

    #[allow(
        clippy::disallowed_types,
        clippy::disallowed_methods,
        reason = "TTL stamps need wall-clock time"
    )]
    fn unix_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

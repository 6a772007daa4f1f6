//! Virtual time from madsim.

use std::future::Future;
use std::task::{Context, Waker};
use std::time::Duration;

use engine::server::Clock;
use madsim::time::TimeHandle;

/// 2026-01-01T00:00:00Z: where every simulation's wall clock starts.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_767_225_600_000;

/// The simulation's clock: milliseconds since the run started, in virtual time.
#[derive(Clone)]
pub struct SimClock {
    handle: TimeHandle,
}

impl SimClock {
    /// The clock of the current madsim runtime.
    pub fn current() -> SimClock {
        SimClock {
            handle: TimeHandle::current(),
        }
    }

    /// Virtual milliseconds since the run started.
    pub fn now_ms(&self) -> u64 {
        self.handle.elapsed().as_millis() as u64
    }

    /// Virtual microseconds since the run started (the history's time base).
    pub fn now_us(&self) -> u64 {
        self.handle.elapsed().as_micros() as u64
    }

    /// Sleeps for `ms` virtual milliseconds (at least 1, as madsim rounds up).
    pub async fn sleep_ms(&self, ms: u64) {
        self.handle.sleep(Duration::from_millis(ms)).await;
    }
}

impl SimClock {
    /// Has madsim wake `waker` at `at_ms` (a timer, not a task: nothing is left to poll).
    pub fn wake_at(&self, at_ms: u64, waker: &Waker) {
        let now = self.now_ms();
        let sleep = self
            .handle
            .sleep(Duration::from_millis(at_ms.saturating_sub(now)));
        let mut sleep = std::pin::pin!(sleep);
        // Polling a pending `Sleep` registers a timer that wakes the polling context's waker;
        // the timer outlives the `Sleep`.
        let _ = sleep.as_mut().poll(&mut Context::from_waker(waker));
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        SimClock::now_ms(self)
    }

    fn now_us(&self) -> u64 {
        SimClock::now_us(self)
    }

    /// The simulation's wall clock starts at 2026-01-01T00:00:00Z, the same in every run.
    fn unix_ms(&self) -> u64 {
        SIM_EPOCH_UNIX_MS + SimClock::now_ms(self)
    }

    async fn sleep_until(&self, deadline_ms: u64) {
        let now = SimClock::now_ms(self);
        self.sleep_ms(deadline_ms.saturating_sub(now)).await;
    }
}

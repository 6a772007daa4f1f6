//! Virtual time from madsim: the simulation's true time (`SimClock`, the history's and the
//! checkers' time base), and each node's own skewed clock over it (`NodeClock`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use engine::server::Clock;
use madsim::time::TimeHandle;

/// 2026-01-01T00:00:00Z: where every simulation's wall clock starts.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_767_225_600_000;

/// The simulation's clock: milliseconds since the run started, in virtual time.
#[derive(Clone)]
pub struct SimClock {
    handle: TimeHandle,
    alarms: Arc<Mutex<Alarms>>,
    /// The waker every madsim timer of this clock rings (one `Ring`, shared).
    ring: Waker,
}

/// The wake-ups the simulation's tasks asked for, by virtual millisecond.
///
/// madsim keeps one timer per request (a boxed closure in its heap, never cancelled), and a
/// run asks for about 150,000: every node's next arrival and tick, every disk sync, every
/// client's sleeps and timeouts. They fall on far fewer distinct milliseconds, so the clock
/// keeps one madsim timer per millisecond that anything waits for, which wakes every task
/// waiting for that millisecond, each once, in the order they asked.
///
/// The milliseconds are slots of a queue from `first_ms` on, one per millisecond (most wake-ups
/// are a few milliseconds ahead, the farthest a client's timeout), so asking is an index, not
/// a search.
#[derive(Default)]
struct Alarms {
    /// The millisecond of `due[0]`.
    first_ms: u64,
    /// `due[i]`: the wake-ups asked for millisecond `first_ms + i`.
    due: VecDeque<Slot>,
    /// Emptied waker lists, reused.
    spare: Vec<Vec<(Waker, u32)>>,
}

/// One millisecond's wake-ups.
#[derive(Default)]
struct Slot {
    /// A madsim timer was registered for this millisecond (then it rings for it, once).
    timer: bool,
    /// Each waker with how many sleeps (and other askers) wait on it for that millisecond.
    wakers: Vec<(Waker, u32)>,
}

/// The waker of every madsim timer of one clock. A timer registered for millisecond `t` rings
/// in `[t, t + 1)` ms (madsim sleeps at least 1 ms from when it is asked, and it is asked
/// before `t`), so the timers ring in the order of their milliseconds, one per millisecond
/// slot that has one: each ring is for the earliest slot with a timer still queued.
struct Ring {
    alarms: Weak<Mutex<Alarms>>,
}

impl Wake for Ring {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let Some(alarms) = self.alarms.upgrade() else {
            return;
        };
        let mut wakers = {
            let mut alarms = alarms.lock().expect("alarms lock poisoned");
            loop {
                // Emptied by `shutdown`: nothing waits any more.
                let Some(slot) = alarms.due.pop_front() else {
                    return;
                };
                alarms.first_ms += 1;
                if slot.timer {
                    break slot.wakers;
                }
                // A millisecond nothing waited for (no timer, no wakers).
            }
        };
        // Woken with the list unlocked: a woken task may ask for another wake-up.
        for (waker, _) in wakers.drain(..) {
            waker.wake();
        }
        alarms
            .lock()
            .expect("alarms lock poisoned")
            .spare
            .push(wakers);
    }
}

impl SimClock {
    /// The clock of the current madsim runtime.
    pub fn current() -> SimClock {
        let alarms: Arc<Mutex<Alarms>> = Arc::default();
        let ring = Waker::from(Arc::new(Ring {
            alarms: Arc::downgrade(&alarms),
        }));
        SimClock {
            handle: TimeHandle::current(),
            alarms,
            ring,
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

    /// Virtual nanoseconds since the run started (true time, for node clocks).
    pub fn true_ns(&self) -> u64 {
        self.handle.elapsed().as_nanos() as u64
    }

    /// Sleeps for `ms` virtual milliseconds (at least 1, as madsim's sleep): until the clock
    /// reads `now_ms() + ms`.
    pub fn sleep_ms(&self, ms: u64) -> SimSleep<'_> {
        SimSleep {
            clock: self,
            at_ms: self.now_ms() + ms.max(1),
            armed: None,
        }
    }

    /// Has `waker` woken when the clock reaches `at_ms` (a timer, not a task: nothing is left
    /// to poll). A waker already waiting for that millisecond is not added twice.
    pub fn wake_at(&self, at_ms: u64, waker: &Waker) {
        debug_assert!(
            at_ms > self.now_ms(),
            "a wake-up is for a later millisecond"
        );
        let mut alarms = self.alarms.lock().expect("alarms lock poisoned");
        let alarms = &mut *alarms;
        if alarms.due.is_empty() {
            alarms.first_ms = at_ms;
        }
        // Earlier than every millisecond queued (they are later than now): slots before them.
        while at_ms < alarms.first_ms {
            alarms.due.push_front(Slot::default());
            alarms.first_ms -= 1;
        }
        let i = (at_ms - alarms.first_ms) as usize;
        if i >= alarms.due.len() {
            alarms.due.resize_with(i + 1, Slot::default);
        }
        let slot = &mut alarms.due[i];
        if slot.timer {
            match slot.wakers.iter_mut().find(|(w, _)| w.will_wake(waker)) {
                Some((_, count)) => *count += 1,
                None => slot.wakers.push((waker.clone(), 1)),
            }
            return;
        }
        slot.timer = true;
        slot.wakers = alarms.spare.pop().unwrap_or_default();
        slot.wakers.push((waker.clone(), 1));
        let elapsed_ns = self.true_ns();
        // madsim sleeps at least 1 ms: a timer for the next millisecond may ring a little
        // into it, still in it.
        let sleep = self.handle.sleep(Duration::from_nanos(
            (at_ms * 1_000_000).saturating_sub(elapsed_ns),
        ));
        let mut sleep = std::pin::pin!(sleep);
        // Polling a pending `Sleep` registers a timer that wakes the polling context's waker;
        // the timer outlives the `Sleep`.
        let _ = sleep.as_mut().poll(&mut Context::from_waker(&self.ring));
    }

    /// Withdraws one `wake_at(at_ms, waker)` not needed any more (a sleep dropped before its
    /// time: a client's timeout once answered, a node's tick sleep once its sync is done), so
    /// that it wakes no task for nothing. The millisecond's madsim timer still rings.
    fn withdraw(&self, at_ms: u64, waker: &Waker) {
        let mut alarms = self.alarms.lock().expect("alarms lock poisoned");
        let Some(slot) = at_ms
            .checked_sub(alarms.first_ms)
            .and_then(|i| alarms.due.get_mut(i as usize))
        else {
            return;
        };
        if let Some(i) = slot.wakers.iter().position(|(w, _)| w.will_wake(waker)) {
            slot.wakers[i].1 -= 1;
            if slot.wakers[i].1 == 0 {
                slot.wakers.remove(i);
            }
        }
    }

    /// Forgets every waiting waker: they point at tasks that own handles to this clock, and
    /// left in place, that cycle would leak each run's world.
    pub fn shutdown(&self) {
        let mut alarms = self.alarms.lock().expect("alarms lock poisoned");
        alarms.due.clear();
        alarms.spare.clear();
    }
}

/// A virtual-time sleep that asks for its wake-up once.
///
/// madsim's `Sleep` adds a timer to its heap on every pending poll and never removes one, so a
/// task woken for something else while it sleeps (a node's message, a client's exchange beside
/// its timeout) would add one more timer, and one more spurious wake-up of the task, per poll.
/// This one asks the clock for a wake-up only when first polled, or again if a different task
/// polls it.
pub struct SimSleep<'a> {
    clock: &'a SimClock,
    at_ms: u64,
    /// The waker the wake-up was asked for.
    armed: Option<Waker>,
}

impl Future for SimSleep<'_> {
    type Output = ();

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> std::task::Poll<()> {
        if self.clock.now_ms() >= self.at_ms {
            return std::task::Poll::Ready(());
        }
        if !self.armed.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            if let Some(old) = self.armed.take() {
                self.clock.withdraw(self.at_ms, &old);
            }
            self.clock.wake_at(self.at_ms, cx.waker());
            self.armed = Some(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

impl Drop for SimSleep<'_> {
    fn drop(&mut self) {
        if let Some(waker) = self.armed.take()
            && self.clock.now_ms() < self.at_ms
        {
            self.clock.withdraw(self.at_ms, &waker);
        }
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

/// How far a node's wall clock may ever be from true time: offsets, drift and jumps are clamped
/// to it (an NTP-disciplined clock, slewed back within its bound). README.md, "What Floe
/// promises under clock skew", derives the TTL bound from it.
pub const WALL_ERROR_MAX_MS: u64 = 250;

/// What a run's clocks may do: each node's starting offset and drift are drawn from `seed`, and
/// the nemesis's clock faults draw within the same bounds.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ClockPlan {
    /// Seeds each node's starting offset and drift.
    pub seed: u64,
    /// Largest starting wall offset (or a `clock-offset` fault's new one), ms.
    pub offset_max_ms: u64,
    /// Largest drift rate, parts per million (200 in ordinary seeds, 10,000 = 1% in some).
    pub drift_ppm_max: u64,
    /// Largest wall-clock jump of a `clock-jump` fault, forward or back, ms.
    pub jump_max_ms: u64,
    /// No wall clock is ever further than this from true time, ms.
    pub error_max_ms: u64,
}

impl ClockPlan {
    /// Every node on true time, nothing drifts or jumps.
    pub fn perfect() -> ClockPlan {
        ClockPlan {
            seed: 0,
            offset_max_ms: 0,
            drift_ppm_max: 0,
            jump_max_ms: 0,
            error_max_ms: 0,
        }
    }

    /// A starting offset (ns) and drift (parts per billion) for a node.
    pub fn draw(&self, rng: &mut impl rand::Rng) -> (i64, i64) {
        let offset_ns = 1_000_000 * self.offset_max_ms as i64;
        let drift_ppb = 1_000 * self.drift_ppm_max as i64;
        (
            rng.gen_range(-offset_ns..=offset_ns),
            rng.gen_range(-drift_ppb..=drift_ppb),
        )
    }
}

/// One simulated machine's clock error, kept across the restarts of its node: a drift rate
/// that both its monotonic and its wall clock run at, and the wall clock's error from true time
/// (clamped to the plan's bound; moved by offsets and jumps).
#[derive(Clone, Debug)]
pub struct Skew(Arc<SkewShared>);

/// A machine's clock state, and a copy of what its monotonic clock is computed from that is
/// read without the lock (a node reads its clock a few hundred thousand times a run; the
/// nemesis changes it a few times): a sequence lock, all of it atomics.
#[derive(Debug)]
struct SkewShared {
    state: Mutex<SkewState>,
    /// Odd while a change is being published; moves by two per change.
    version: AtomicU64,
    /// `SkewState::anchor_ns`.
    anchor_ns: AtomicU64,
    /// `SkewState::mono_ns`.
    mono_ns: AtomicU64,
    /// `SkewState::drift_ppb`.
    drift_ppb: AtomicI64,
}

#[derive(Debug)]
struct SkewState {
    /// True time (ns since the run started) of the last change.
    anchor_ns: u64,
    /// The machine's monotonic time at the anchor, ns.
    mono_ns: u64,
    /// The wall clock's error at the anchor, ns.
    error_ns: i64,
    /// Drift, parts per billion.
    drift_ppb: i64,
    /// Bound on the wall clock's error, ns.
    bound_ns: i64,
    /// The last `true_ns_for` asked and its answer (a node's deadline stays put for many
    /// polls). Cleared when the anchor moves.
    true_memo: Option<(u64, u64)>,
}

/// `dt_ns * drift_ppb / 10^9`, truncated toward zero: in 64 bits when the product fits (always
/// within a run's hours), else in 128 (128-bit division was 3% of a reference run).
fn drift_of(dt_ns: u64, drift_ppb: i64) -> i128 {
    match i64::try_from(dt_ns)
        .ok()
        .and_then(|dt| dt.checked_mul(drift_ppb))
    {
        Some(product) => i128::from(product / 1_000_000_000),
        None => i128::from(dt_ns) * i128::from(drift_ppb) / 1_000_000_000,
    }
}

/// `ceil(ahead_ns * 10^9 / (10^9 + drift_ppb))`: the true nanoseconds a clock running
/// `drift_ppb` fast takes to move `ahead_ns` (`drift_ppb` is clamped to +-10^8, so the rate is
/// positive). In 64 bits as `q * 10^9 + ceil(r * 10^9 / rate)` with `ahead_ns = q * rate + r`
/// (then `r * 10^9 < 1.1 * 10^18` fits), the same value as the 128-bit quotient, which is
/// kept for the overflow a run never reaches.
fn ceil_scaled(ahead_ns: u64, drift_ppb: i64) -> u64 {
    let rate = (1_000_000_000 + drift_ppb) as u64;
    let (q, r) = (ahead_ns / rate, ahead_ns % rate);
    q.checked_mul(1_000_000_000)
        .and_then(|whole| whole.checked_add((r * 1_000_000_000).div_ceil(rate)))
        .unwrap_or_else(|| {
            let (ahead, rate) = (i128::from(ahead_ns), i128::from(rate));
            ((ahead * 1_000_000_000 + rate - 1) / rate) as u64
        })
}

/// The monotonic time at true time `t_ns` of a clock that read `mono_ns` at true time
/// `anchor_ns` and runs `drift_ppb` fast from then on.
fn mono_at(anchor_ns: u64, mono_ns: u64, drift_ppb: i64, t_ns: u64) -> u64 {
    let dt = t_ns.saturating_sub(anchor_ns);
    let drifted = i128::from(dt) + drift_of(dt, drift_ppb);
    mono_ns + drifted.max(0) as u64
}

impl SkewState {
    fn mono_at(&self, t_ns: u64) -> u64 {
        mono_at(self.anchor_ns, self.mono_ns, self.drift_ppb, t_ns)
    }

    fn error_at(&self, t_ns: u64) -> i64 {
        let dt = t_ns.saturating_sub(self.anchor_ns);
        let error = i128::from(self.error_ns) + drift_of(dt, self.drift_ppb);
        error.clamp(-i128::from(self.bound_ns), i128::from(self.bound_ns)) as i64
    }

    /// The earliest true time at which the monotonic clock reads at least `mono_ns`.
    fn true_at(&self, mono_ns: u64) -> u64 {
        if mono_ns <= self.mono_ns {
            return self.anchor_ns;
        }
        let dt = ceil_scaled(mono_ns - self.mono_ns, self.drift_ppb);
        // Integer rounding in `mono_at` may need one more nanosecond.
        let mut t = self.anchor_ns + dt;
        while self.mono_at(t) < mono_ns {
            t += 1;
        }
        t
    }

    /// Moves the anchor to `t_ns` (before the rate or the error changes).
    fn rebase(&mut self, t_ns: u64) {
        self.true_memo = None;
        self.mono_ns = self.mono_at(t_ns);
        self.error_ns = self.error_at(t_ns);
        self.anchor_ns = self.anchor_ns.max(t_ns);
    }
}

impl Skew {
    /// A machine whose wall clock starts `offset_ns` off true time and runs `drift_ppb` fast
    /// (negative: slow), never more than `bound_ns` off.
    pub fn new(offset_ns: i64, drift_ppb: i64, bound_ns: i64) -> Skew {
        let drift_ppb = drift_ppb.clamp(-100_000_000, 100_000_000);
        Skew(Arc::new(SkewShared {
            state: Mutex::new(SkewState {
                anchor_ns: 0,
                mono_ns: 0,
                error_ns: offset_ns.clamp(-bound_ns, bound_ns),
                drift_ppb,
                bound_ns,
                true_memo: None,
            }),
            version: AtomicU64::new(0),
            anchor_ns: AtomicU64::new(0),
            mono_ns: AtomicU64::new(0),
            drift_ppb: AtomicI64::new(drift_ppb),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SkewState> {
        self.0.state.lock().expect("skew lock poisoned")
    }

    /// Makes `s` (changed under the lock, which the caller holds) what `mono_ns` reads.
    fn publish(&self, s: &SkewState) {
        let shared = &*self.0;
        let version = shared.version.load(Ordering::Relaxed);
        shared.version.store(version + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        shared.anchor_ns.store(s.anchor_ns, Ordering::Relaxed);
        shared.mono_ns.store(s.mono_ns, Ordering::Relaxed);
        shared.drift_ppb.store(s.drift_ppb, Ordering::Relaxed);
        shared.version.store(version + 2, Ordering::Release);
    }

    /// The machine's monotonic time at true time `t_ns`: computed from the published copy,
    /// read again if a change was being published meanwhile.
    pub fn mono_ns(&self, t_ns: u64) -> u64 {
        let shared = &*self.0;
        loop {
            let before = shared.version.load(Ordering::Acquire);
            let anchor_ns = shared.anchor_ns.load(Ordering::Relaxed);
            let mono_ns = shared.mono_ns.load(Ordering::Relaxed);
            let drift_ppb = shared.drift_ppb.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if before.is_multiple_of(2) && shared.version.load(Ordering::Relaxed) == before {
                return mono_at(anchor_ns, mono_ns, drift_ppb, t_ns);
            }
            std::hint::spin_loop();
        }
    }

    /// The wall clock's error at true time `t_ns`.
    pub fn error_ns(&self, t_ns: u64) -> i64 {
        self.state().error_at(t_ns)
    }

    /// The earliest true time at which the monotonic clock reads at least `mono_ns`.
    pub fn true_ns_for(&self, mono_ns: u64) -> u64 {
        let mut s = self.state();
        if let Some((mono, t)) = s.true_memo
            && mono == mono_ns
        {
            return t;
        }
        let t = s.true_at(mono_ns);
        s.true_memo = Some((mono_ns, t));
        t
    }

    /// From true time `t_ns` on, both clocks run `drift_ppb` fast.
    pub fn set_drift(&self, t_ns: u64, drift_ppb: i64) {
        let mut s = self.state();
        s.rebase(t_ns);
        s.drift_ppb = drift_ppb.clamp(-100_000_000, 100_000_000);
        self.publish(&s);
    }

    /// The wall clock steps by `by_ns` at true time `t_ns` (within the bound).
    pub fn jump(&self, t_ns: u64, by_ns: i64) {
        let mut s = self.state();
        s.rebase(t_ns);
        s.error_ns = (s.error_ns + by_ns).clamp(-s.bound_ns, s.bound_ns);
        self.publish(&s);
    }

    /// The wall clock is set `offset_ns` off true time at `t_ns` (within the bound).
    pub fn set_offset(&self, t_ns: u64, offset_ns: i64) {
        let mut s = self.state();
        s.rebase(t_ns);
        s.error_ns = offset_ns.clamp(-s.bound_ns, s.bound_ns);
        self.publish(&s);
    }
}

/// One node's clock, for one life of the node: its monotonic `now_ms` counts from the node's
/// start (as `floe`'s `SystemClock` counts from the process's), at the machine's drift; its wall
/// clock is true time plus the machine's error. Timers are armed on the simulation's true time.
#[derive(Clone)]
pub struct NodeClock {
    global: SimClock,
    skew: Skew,
    /// The machine's monotonic time when this life started, ns.
    boot_ns: u64,
}

impl NodeClock {
    /// A new life's clock on the machine `skew`, starting now.
    pub fn boot(global: SimClock, skew: Skew) -> NodeClock {
        let boot_ns = skew.mono_ns(global.true_ns());
        NodeClock {
            global,
            skew,
            boot_ns,
        }
    }

    fn local_ns(&self) -> u64 {
        self.skew.mono_ns(self.global.true_ns()) - self.boot_ns
    }

    /// The true time (ms since the run started, rounded up) at which `now_ms` reaches
    /// `deadline_ms`.
    pub fn true_ms_at(&self, deadline_ms: u64) -> u64 {
        let t = self
            .skew
            .true_ns_for(self.boot_ns + deadline_ms.saturating_mul(1_000_000));
        t.div_ceil(1_000_000)
    }

    /// Nanoseconds since the Unix epoch on this node's wall clock (the start-up nonce, as
    /// `floe`'s `SystemClock::unix_ns`).
    pub fn unix_ns(&self) -> u64 {
        let t = self.global.true_ns();
        let wall = i128::from(SIM_EPOCH_UNIX_MS) * 1_000_000
            + i128::from(t)
            + i128::from(self.skew.error_ns(t));
        wall.max(0) as u64
    }
}

impl Clock for NodeClock {
    fn now_ms(&self) -> u64 {
        self.local_ns() / 1_000_000
    }

    fn now_us(&self) -> u64 {
        self.local_ns() / 1_000
    }

    fn unix_ms(&self) -> u64 {
        self.unix_ns() / 1_000_000
    }

    async fn sleep_until(&self, deadline_ms: u64) {
        while Clock::now_ms(self) < deadline_ms {
            let at = self.true_ms_at(deadline_ms);
            let now = self.global.now_ms();
            self.global.sleep_ms(at.saturating_sub(now).max(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unlocked_reading_agrees_with_the_locked_state_after_every_change() {
        let skew = Skew::new(5_000_000, 3_000, 250_000_000);
        for step in 0..2_000u64 {
            let t = step * 7_919_000;
            match step % 7 {
                0 => skew.set_drift(t, (step as i64 * 1_234) % 100_000 - 50_000),
                3 => skew.jump(t, 1_000_000),
                5 => skew.set_offset(t, -2_000_000),
                _ => {}
            }
            for dt in [0, 1, 999_999, 5_000_000, 10_000_000_000] {
                assert_eq!(skew.mono_ns(t + dt), skew.state().mono_at(t + dt));
            }
        }
    }

    #[test]
    fn the_monotonic_clock_never_goes_back_and_the_wall_error_stays_bounded() {
        let bound = 250_000_000;
        let skew = Skew::new(90_000_000, -10_000_000, bound);
        let mut last = 0;
        for step in 0..20_000u64 {
            let t = step * 1_000_000;
            if step % 100 == 0 {
                let by = if step % 200 == 0 {
                    -200_000_000
                } else {
                    200_000_000
                };
                skew.jump(t, by);
            }
            if step % 700 == 0 {
                skew.set_drift(t, (step as i64 % 3 - 1) * 10_000_000);
            }
            let mono = skew.mono_ns(t);
            assert!(mono >= last, "monotonic at {t}");
            last = mono;
            assert!(skew.error_ns(t).abs() <= bound);
            let back = skew.true_ns_for(mono);
            assert!(back <= t && skew.mono_ns(back) >= mono);
        }
    }

    /// The 64-bit quotient is the 128-bit one it replaced, for every rate a clock may run at.
    #[test]
    fn ceil_scaled_matches_the_wide_quotient() {
        use rand::{Rng, SeedableRng};
        let wide = |ahead: u64, drift: i64| {
            let (ahead, rate) = (i128::from(ahead), 1_000_000_000 + i128::from(drift));
            ((ahead * 1_000_000_000 + rate - 1) / rate) as u64
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let drifts = [-100_000_000, -1, 0, 1, 200_000, 100_000_000];
        let aheads = [
            1,
            999_999_999,
            1_000_000_000,
            18_446_744_073,
            3_600_000_000_000_000,
        ];
        for &drift in &drifts {
            for &ahead in &aheads {
                assert_eq!(
                    ceil_scaled(ahead, drift),
                    wide(ahead, drift),
                    "{ahead} {drift}"
                );
            }
        }
        for _ in 0..100_000 {
            let drift = rng.gen_range(-100_000_000..=100_000_000);
            let bits = rng.gen_range(1..=62);
            let ahead = rng.gen_range(1..=1u64 << bits);
            assert_eq!(
                ceil_scaled(ahead, drift),
                wide(ahead, drift),
                "{ahead} {drift}"
            );
        }
    }

    #[test]
    fn remembered_readings_are_dropped_when_the_clock_changes() {
        let skew = Skew::new(0, 0, 250_000_000);
        let mut t = 0;
        for step in 1..2_000u64 {
            // Read, change the drift at the same instant, read again: each answer is the one
            // computed afresh from the clock's state.
            let (mono, back) = (skew.mono_ns(t), skew.true_ns_for(step * 1_000_000));
            assert_eq!(mono, skew.state().mono_at(t));
            assert_eq!(back, skew.state().true_at(step * 1_000_000));
            skew.set_drift(t, (step as i64 % 5 - 2) * 5_000_000);
            assert_eq!(skew.mono_ns(t), skew.state().mono_at(t));
            assert_eq!(
                skew.true_ns_for(step * 1_000_000),
                skew.state().true_at(step * 1_000_000)
            );
            t += 777_777;
        }
    }
}

//! TTL arithmetic: from a `ttl` parameter to an absolute expiry instant, and back to the
//! remaining seconds a response shows.
//!
//! Depends on nothing else in the crate. Time is always an argument (u64 ms since the Unix epoch);
//! nothing here reads a clock (replicated state never does: store/README.md §1, §7).

/// The largest `ttl` in seconds that is accepted.
///
/// store/README.md §7: etcd keeps the TTL in a Go `time.Duration` (i64 nanoseconds), and larger
/// values overflow into an immediate expiry; we reject them with 202 instead of reproducing the
/// overflow.
pub const TTL_SECONDS_MAX: u64 = (i64::MAX as u64) / 1_000_000_000;

/// The absolute expiry instant of a node written at `now_ms` with `ttl_seconds`, or `None` when
/// the TTL is out of range (the parameter parser turns that into error 202).
pub fn expiry_from_ttl(now_ms: u64, ttl_seconds: u64) -> Option<u64> {
    if ttl_seconds > TTL_SECONDS_MAX {
        return None;
    }
    // store/README.md §7: the expiry is now + ttl on the receiving member, carried in the command.
    now_ms.checked_add(ttl_seconds.checked_mul(1000)?)
}

/// The `ttl` field of a response: the remaining seconds, rounded up (store/README.md §5.2).
///
/// It is 0 for a node expiring now (the renderer then omits it) and negative for a node whose
/// expiry passed but whose `Expire` command has not been applied yet (store/README.md §7: reads
/// never expire).
pub fn remaining_seconds(expire_at_ms: u64, now_ms: u64) -> i64 {
    let remaining_ms = i128::from(expire_at_ms) - i128::from(now_ms);
    // store/README.md §5.2: ceil((expiration - now) / 1s); div_euclid floors, so negate twice.
    let seconds = -((-remaining_ms).div_euclid(1000));
    i64::try_from(seconds).unwrap_or(if seconds < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_rounds_up() {
        assert_eq!(remaining_seconds(20_000, 0), 20);
        assert_eq!(remaining_seconds(20_000, 1), 20);
        assert_eq!(remaining_seconds(20_000, 999), 20);
        assert_eq!(remaining_seconds(20_000, 1000), 19);
        assert_eq!(remaining_seconds(1000, 1000), 0);
        assert_eq!(remaining_seconds(1000, 1500), 0);
        assert_eq!(remaining_seconds(1000, 2000), -1);
        assert_eq!(remaining_seconds(1000, 2001), -1);
    }

    #[test]
    fn expiry_limits() {
        assert_eq!(expiry_from_ttl(5, 0), Some(5));
        assert_eq!(expiry_from_ttl(5, 20), Some(20_005));
        assert_eq!(
            expiry_from_ttl(0, TTL_SECONDS_MAX),
            Some(TTL_SECONDS_MAX * 1000)
        );
        assert_eq!(expiry_from_ttl(0, TTL_SECONDS_MAX + 1), None);
        assert_eq!(expiry_from_ttl(u64::MAX, 1), None);
        assert_eq!(expiry_from_ttl(0, u64::MAX), None);
    }
}

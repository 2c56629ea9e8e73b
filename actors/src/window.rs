//! A fixed one-minute window counter: one atomic word holding `minute << 32 | count`, so the
//! rollover to a new minute and the increment are a single compare-and-swap. Exact under any
//! concurrency: with a limit of N, exactly N additions succeed per minute.
//!
//! Used for deployment `rpm`/`tpm` (router) and for key, user, team and end-user limits.

use std::sync::atomic::{AtomicU64, Ordering};

/// The minute a unix-millisecond time falls in (32 bits are enough for 8,000 years).
pub fn minute_of(now_ms: u64) -> u64 {
    (now_ms / 60_000) & 0xFFFF_FFFF
}

/// Milliseconds until the current minute ends (what `retry-after` reports).
pub fn ms_to_next_minute(now_ms: u64) -> u64 {
    60_000 - now_ms % 60_000
}

#[derive(Debug, Default)]
pub struct MinuteCounter(AtomicU64);

fn unpack(packed: u64, minute: u64) -> u64 {
    if packed >> 32 == minute {
        packed & 0xFFFF_FFFF
    } else {
        0
    }
}

impl MinuteCounter {
    /// The count in the current minute.
    pub fn get(&self, now_ms: u64) -> u64 {
        unpack(self.0.load(Ordering::Acquire), minute_of(now_ms))
    }

    /// The minute of the last count (0 for a counter never used): a counter whose minute is over
    /// counts nothing, so the limiter may drop it.
    pub fn minute(&self) -> u64 {
        self.0.load(Ordering::Acquire) >> 32
    }

    /// Add `n` unless that would pass `limit`; returns whether it was added. An addition larger than
    /// the whole limit is admitted into an empty minute (it could never fit otherwise); a limit of 0
    /// admits nothing.
    pub fn add_within(&self, now_ms: u64, n: u64, limit: Option<u64>) -> bool {
        let minute = minute_of(now_ms);
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let current = unpack(packed, minute);
                if limit.is_some_and(|l| current >= l || (current > 0 && current + n > l)) {
                    return None;
                }
                Some(minute << 32 | (current + n).min(0xFFFF_FFFF))
            })
            .is_ok()
    }

    /// Take `n` back (same minute only: a rollover already cleared it).
    pub fn sub(&self, now_ms: u64, n: u64) {
        let minute = minute_of(now_ms);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                (packed >> 32 == minute)
                    .then(|| minute << 32 | unpack(packed, minute).saturating_sub(n))
            });
    }

    /// Replace an estimate that was added with the actual amount.
    pub fn reconcile(&self, now_ms: u64, estimated: u64, actual: u64) {
        let minute = minute_of(now_ms);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let current = unpack(packed, minute);
                let next = (current + actual)
                    .saturating_sub(estimated.min(current))
                    .min(0xFFFF_FFFF);
                Some(minute << 32 | next)
            });
    }

    /// Raise the count to `value` if it is behind (a count shared by other instances).
    pub fn adopt(&self, now_ms: u64, value: u64) {
        let minute = minute_of(now_ms);
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                (value > unpack(packed, minute)).then_some(minute << 32 | value.min(0xFFFF_FFFF))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_limits_and_rolls_over() {
        let c = MinuteCounter::default();
        let t = 120_000;
        assert!(c.add_within(t, 1, Some(2)));
        assert!(c.add_within(t, 1, Some(2)));
        assert!(!c.add_within(t, 1, Some(2)));
        assert!(
            c.add_within(t + 60_000, 1, Some(2)),
            "a new minute starts empty"
        );
        let z = MinuteCounter::default();
        assert!(!z.add_within(t, 1, Some(0)), "a limit of 0 admits nothing");
        let big = MinuteCounter::default();
        assert!(big.add_within(t, 500, Some(100)));
        assert!(!big.add_within(t, 1, Some(100)));
        big.reconcile(t, 500, 40);
        assert_eq!(big.get(t), 40);
        big.sub(t, 15);
        assert_eq!(big.get(t), 25);
        big.adopt(t, 10);
        assert_eq!(big.get(t), 25);
        big.adopt(t, 90);
        assert_eq!(big.get(t), 90);
        assert_eq!(ms_to_next_minute(t + 1_500), 58_500);
        assert_eq!((big.minute(), MinuteCounter::default().minute()), (2, 0));
    }
}

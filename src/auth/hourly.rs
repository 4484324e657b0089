//! Small per-key limits counted over the last hour (password reset
//! requests per address, verification mails per user).
//!
//! Each key keeps the times of its accepted requests within the window, at
//! most `per_hour` of them, so memory per key is bounded and the answer is
//! exact: the `n+1`-th request within any hour is refused, and the refusal
//! says when the oldest one leaves the window.

use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

const HOUR: Duration = Duration::from_secs(3600);

/// `per_hour` requests per key in any sliding hour.
#[derive(Debug, Clone)]
pub struct HourlyLimit<K: Hash + Eq> {
    per_hour: usize,
    window: Duration,
    seen: Arc<DashMap<K, VecDeque<Instant>>>,
}

impl<K: Hash + Eq + Clone> HourlyLimit<K> {
    /// Allows `per_hour` requests per key per hour.
    pub fn new(per_hour: u32) -> Self {
        Self::with_window(per_hour, HOUR)
    }

    fn with_window(per_hour: u32, window: Duration) -> Self {
        Self {
            per_hour: usize::try_from(per_hour.max(1)).unwrap_or(usize::MAX),
            window,
            seen: Arc::new(DashMap::new()),
        }
    }

    /// Counts a request for `key`; `Err(wait)` when the key has used its
    /// allowance (the request is not counted then).
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut times = self.seen.entry(key.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            let oldest = times.front().copied().unwrap_or(now);
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        times.push_back(now);
        Ok(())
    }

    /// Forgets keys with nothing in the window (periodic upkeep).
    pub fn prune(&self) {
        let now = Instant::now();
        self.seen.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_is_per_key_and_refusals_say_how_long_to_wait() {
        let limit = HourlyLimit::new(3);
        for _ in 0..3 {
            assert!(limit.check(&"a").is_ok());
        }
        let wait = limit.check(&"a").expect_err("the fourth is refused");
        assert!(wait > Duration::from_secs(3500) && wait <= HOUR);
        assert!(limit.check(&"b").is_ok(), "keys are independent");
    }

    #[test]
    fn requests_leave_the_window_as_it_slides() {
        let limit = HourlyLimit::with_window(1, Duration::from_millis(20));
        assert!(limit.check(&1).is_ok());
        assert!(limit.check(&1).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(limit.check(&1).is_ok());
        std::thread::sleep(Duration::from_millis(30));
        limit.prune();
        assert!(limit.seen.is_empty());
    }
}

//! Login lockout, counted per login string.
//!
//! Failures are counted per lowercased login string (what the client typed
//! as `login`), the same way whether or not the string names an account.
//! Counting a known account's failures across its username and its email
//! while unknown logins count per string would let anyone learn which
//! username and email belong together: fail three times as `alice`, twice
//! as `alice@example.com`, and see whether one more try is locked. Counted
//! per string, both paths behave identically from outside, so the counters
//! tell nothing. A wrong password and a wrong second-factor code count
//! alike; a success clears the account's username and email both.
//!
//! The counts live in memory, like the unknown logins they have to match
//! (which have no row to live in): a restart forgets them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

/// Failure counts and locks, keyed by the lowercased login string.
#[derive(Debug, Clone)]
pub struct LoginGuard {
    entries: Arc<DashMap<String, Entry>>,
    max_failures: u32,
    lockout: Duration,
}

/// What one more failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; not locked yet.
    Counted,
    /// This failure locked the login, until the given time.
    Locked(Instant),
}

impl LoginGuard {
    /// Locks after `max_failures` failures in a row, for `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            max_failures,
            lockout,
        }
    }

    /// How long a lock lasts.
    pub fn lockout(&self) -> Duration {
        self.lockout
    }

    /// Time left on a lock of this login, if it is locked.
    pub fn locked_for(&self, login: &str) -> Option<Duration> {
        let entry = self.entries.get(login)?;
        let until = entry.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure of `login`.
    pub fn record_failure(&self, login: &str) -> Failure {
        let now = Instant::now();
        let mut entry = self.entries.entry(login.to_owned()).or_insert(Entry {
            failures: 0,
            locked_until: None,
            last_failure: now,
        });
        if entry.locked_until.is_some_and(|until| until <= now) {
            entry.locked_until = None;
        }
        entry.failures += 1;
        entry.last_failure = now;
        if entry.failures >= self.max_failures {
            entry.failures = 0;
            let until = now + self.lockout;
            entry.locked_until = Some(until);
            return Failure::Locked(until);
        }
        Failure::Counted
    }

    /// Forgets failures and locks of these logins (a success, a password
    /// reset).
    pub fn clear<'a>(&self, logins: impl IntoIterator<Item = &'a str>) {
        for login in logins {
            self.entries.remove(login);
        }
    }

    /// Drops entries that are neither locked nor recently failed, so memory
    /// stays flat under many distinct logins.
    pub fn prune(&self) {
        let now = Instant::now();
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|u| u > now)
                || now.duration_since(e.last_failure) < self.lockout
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_lock_after_the_threshold_each_on_its_own() {
        let guard = LoginGuard::new(3, Duration::from_secs(60));
        assert_eq!(guard.record_failure("ghost"), Failure::Counted);
        assert_eq!(guard.record_failure("ghost"), Failure::Counted);
        assert!(guard.locked_for("ghost").is_none());
        assert!(matches!(guard.record_failure("ghost"), Failure::Locked(_)));
        assert!(guard.locked_for("ghost").is_some());
        assert!(guard.locked_for("other").is_none());
    }

    #[test]
    fn clearing_forgets_counts_and_locks() {
        let guard = LoginGuard::new(2, Duration::from_secs(60));
        guard.record_failure("alice");
        guard.record_failure("alice");
        guard.record_failure("alice@example.com");
        assert!(guard.locked_for("alice").is_some());
        guard.clear(["alice", "alice@example.com"]);
        assert!(guard.locked_for("alice").is_none());
        assert_eq!(guard.record_failure("alice@example.com"), Failure::Counted);
    }

    #[test]
    fn an_expired_lock_starts_counting_afresh() {
        let guard = LoginGuard::new(1, Duration::from_millis(1));
        assert!(matches!(guard.record_failure("a"), Failure::Locked(_)));
        std::thread::sleep(Duration::from_millis(5));
        assert!(guard.locked_for("a").is_none());
        guard.prune();
        assert!(guard.entries.is_empty());
    }
}

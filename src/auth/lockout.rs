//! Lockout for logins that match no account.
//!
//! Known accounts are locked in the store. If unknown logins were never
//! locked, a `423` would reveal that an account exists; so unknown logins
//! get the same treatment, tracked in memory (they have no row to live in).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
    last_failure: Instant,
}

/// Failure counts and locks for unknown logins, keyed by the lowercased login.
#[derive(Debug, Clone)]
pub struct UnknownLoginGuard {
    entries: Arc<DashMap<String, Entry>>,
    max_failures: u32,
    lockout: Duration,
}

impl UnknownLoginGuard {
    /// Locks after `max_failures` failures in a row, for `lockout`.
    pub fn new(max_failures: u32, lockout: Duration) -> Self {
        Self {
            entries: Arc::new(DashMap::new()),
            max_failures,
            lockout,
        }
    }

    /// Time left on a lock of this login, if it is locked.
    pub fn locked_for(&self, login: &str) -> Option<Duration> {
        let entry = self.entries.get(login)?;
        let until = entry.locked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failure; returns true when this failure locked the login.
    pub fn record_failure(&self, login: &str) -> bool {
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
            entry.locked_until = Some(now + self.lockout);
            return true;
        }
        false
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
    fn unknown_logins_lock_after_the_threshold() {
        let guard = UnknownLoginGuard::new(3, Duration::from_secs(60));
        assert!(!guard.record_failure("ghost"));
        assert!(!guard.record_failure("ghost"));
        assert!(guard.locked_for("ghost").is_none());
        assert!(guard.record_failure("ghost"));
        assert!(guard.locked_for("ghost").is_some());
        assert!(guard.locked_for("other").is_none());
    }
}

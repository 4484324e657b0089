//! The in-memory view of blocks, consulted on every fan-out.
//!
//! Loaded from the store at start and updated after each block or unblock
//! is stored. Fan-out asks one question per event — does anyone block the
//! author? — and only then one per recipient.

use std::collections::HashSet;

use dashmap::DashMap;

use crate::domain::UserId;

/// Who blocks whom.
#[derive(Debug, Default)]
pub struct BlockIndex {
    /// blocked → the users who blocked them.
    blockers_of: DashMap<UserId, HashSet<UserId>>,
    /// blocker → the users they blocked.
    blocked_by: DashMap<UserId, HashSet<UserId>>,
}

impl BlockIndex {
    /// Builds the view from `(blocker, blocked)` pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (UserId, UserId)>) -> Self {
        let index = Self::default();
        for (blocker, blocked) in pairs {
            index.insert(blocker, blocked);
        }
        index
    }

    /// `blocker` now blocks `blocked`.
    pub fn insert(&self, blocker: UserId, blocked: UserId) {
        self.blockers_of.entry(blocked).or_default().insert(blocker);
        self.blocked_by.entry(blocker).or_default().insert(blocked);
    }

    /// `blocker` no longer blocks `blocked`.
    pub fn remove(&self, blocker: UserId, blocked: UserId) {
        let now_empty = self.blockers_of.get_mut(&blocked).is_some_and(|mut set| {
            set.remove(&blocker);
            set.is_empty()
        });
        if now_empty {
            self.blockers_of
                .remove_if(&blocked, |_, set| set.is_empty());
        }
        // The other direction too, or `either_way` would still see the block.
        let now_empty = self.blocked_by.get_mut(&blocker).is_some_and(|mut set| {
            set.remove(&blocked);
            set.is_empty()
        });
        if now_empty {
            self.blocked_by.remove_if(&blocker, |_, set| set.is_empty());
        }
    }

    /// Whether `blocker` blocks `blocked`.
    pub fn blocks(&self, blocker: UserId, blocked: UserId) -> bool {
        self.blockers_of
            .get(&blocked)
            .is_some_and(|set| set.contains(&blocker))
    }

    /// Whether either blocks the other (presence, DMs, profiles).
    pub fn either(&self, a: UserId, b: UserId) -> bool {
        self.blocks(a, b) || self.blocks(b, a)
    }

    /// Everyone `author` blocked or is blocked by, if any (presence goes
    /// neither way across a block).
    pub fn either_way(&self, author: UserId) -> Option<HashSet<UserId>> {
        let mut all = self.blockers_of(author).unwrap_or_default();
        if let Some(set) = self.blocked_by.get(&author) {
            all.extend(set.iter().copied());
        }
        (!all.is_empty()).then_some(all)
    }

    /// The users who block `author`, if any (one lookup per fan-out).
    pub fn blockers_of(&self, author: UserId) -> Option<HashSet<UserId>> {
        self.blockers_of
            .get(&author)
            .filter(|set| !set.is_empty())
            .map(|set| set.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_directional_and_removable() {
        let (a, b) = (UserId::new(), UserId::new());
        let index = BlockIndex::from_pairs([(a, b)]);
        assert!(index.blocks(a, b));
        assert!(!index.blocks(b, a));
        assert!(index.either(b, a));
        assert_eq!(index.blockers_of(b).map(|s| s.len()), Some(1));
        index.remove(a, b);
        assert!(!index.either(a, b));
        assert!(index.blockers_of(b).is_none());
        assert!(index.either_way(a).is_none());
        index.insert(a, b);
        assert_eq!(index.either_way(a).map(|s| s.len()), Some(1));
        assert_eq!(index.either_way(b).map(|s| s.len()), Some(1));
    }
}

//! What the bridge keeps a while after it happened, for late queries: the
//! outcomes of flows (`FlowStatus`) and who stands behind an inbound
//! loopback address (`AcceptLookup`). Entries older than the keep time go
//! when the map has grown past a mark that doubles with what survives, so
//! an insert costs O(1) amortized however many entries there are. (A scan
//! of the whole map at every insert made 10,000 connections opened within
//! the keep time quadratic: about 200 µs more per connection near the end.)

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Below this many entries nothing is dropped.
const MIN_PRUNE: usize = 4096;

/// A map whose entries expire `keep` after their last insert.
pub struct Recent<K, V> {
    map: HashMap<K, (V, Instant)>,
    keep: Duration,
    prune_at: usize,
}

impl<K: Hash + Eq, V> Recent<K, V> {
    /// An empty map keeping entries for `keep`.
    pub fn new(keep: Duration) -> Self {
        Recent {
            map: HashMap::new(),
            keep,
            prune_at: MIN_PRUNE,
        }
    }

    /// Inserts or refreshes `k`.
    pub fn insert(&mut self, k: K, v: V) {
        let now = Instant::now();
        if self.map.len() >= self.prune_at {
            let keep = self.keep;
            self.map
                .retain(|_, (_, t)| now.saturating_duration_since(*t) < keep);
            self.prune_at = (self.map.len() * 2).max(MIN_PRUNE);
        }
        self.map.insert(k, (v, now));
    }

    /// The value of `k`, if kept.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k).map(|e| &e.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_fresh_entries_and_drops_expired_ones_only_past_the_mark() {
        let mut r = Recent::new(Duration::ZERO);
        for i in 0..MIN_PRUNE {
            r.insert(i, i);
        }
        // Nothing dropped below the mark, even with keep 0.
        assert_eq!(r.map.len(), MIN_PRUNE);
        assert_eq!(r.get(&7), Some(&7));
        // At the mark, the expired ones go.
        r.insert(MIN_PRUNE, 0);
        assert_eq!(r.map.len(), 1);
        assert_eq!(r.get(&7), None);
        assert_eq!(r.get(&MIN_PRUNE), Some(&0));
    }

    #[test]
    fn the_mark_doubles_with_what_survives() {
        let mut r = Recent::new(Duration::from_secs(3600));
        for i in 0..3 * MIN_PRUNE {
            r.insert(i, ());
        }
        // Nothing expired: all kept, and the mark moved past them.
        assert_eq!(r.map.len(), 3 * MIN_PRUNE);
        assert!(r.prune_at > 3 * MIN_PRUNE);
        // Refreshing an entry does not add one.
        r.insert(5, ());
        assert_eq!(r.map.len(), 3 * MIN_PRUNE);
    }
}

//! The replay window against a simple model (a set of seen counters and the
//! largest one), over random and adversarial counter sequences.

use std::collections::HashSet;

use noise::replay::{ReplayWindow, WINDOW_SIZE};
use noise::timers::REJECT_AFTER_MESSAGES;
use proptest::prelude::*;

/// The specification: accept a counter iff it is below the limit, was not
/// accepted before, and is not more than `WINDOW_SIZE` behind the largest
/// accepted counter.
#[derive(Default)]
struct Model {
    seen: HashSet<u64>,
    last: u64,
}

impl Model {
    fn update(&mut self, c: u64) -> bool {
        if c >= REJECT_AFTER_MESSAGES || self.seen.contains(&c) {
            return false;
        }
        if c <= self.last && self.last - c > WINDOW_SIZE {
            return false;
        }
        self.seen.insert(c);
        self.last = self.last.max(c);
        true
    }
}

fn counters() -> impl Strategy<Value = Vec<u64>> {
    // Mostly increasing sequences with reordering, duplicates and jumps.
    prop::collection::vec(
        prop_oneof![
            4 => 0u64..64,                      // small step forward
            2 => 0u64..(WINDOW_SIZE + 200),     // step around the window size
            1 => 0u64..100_000,                 // big jump
        ],
        1..400,
    )
    .prop_flat_map(|steps| {
        let n = steps.len();
        (
            Just(steps),
            prop::collection::vec((any::<bool>(), 0u64..(WINDOW_SIZE + 300)), n),
        )
    })
    .prop_map(|(steps, backs)| {
        let mut c = 0u64;
        let mut out = Vec::new();
        for (s, (back, b)) in steps.into_iter().zip(backs) {
            c += s;
            out.push(if back { c.saturating_sub(b) } else { c });
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn window_matches_model(seq in counters()) {
        let mut w = ReplayWindow::new();
        let mut m = Model::default();
        for c in seq {
            let check = w.check(c);
            let expected = m.update(c);
            prop_assert_eq!(check, expected, "check({})", c);
            prop_assert_eq!(w.update(c), expected, "update({})", c);
        }
    }

    #[test]
    fn every_counter_is_accepted_at_most_once(seq in counters()) {
        let mut w = ReplayWindow::new();
        let mut accepted = HashSet::new();
        for c in seq {
            if w.update(c) {
                prop_assert!(accepted.insert(c), "counter {} accepted twice", c);
            }
        }
    }

    #[test]
    fn in_order_and_reordered_within_2048_all_accepted(
        base in 0u64..1_000_000,
        perm in Just((0u64..2048).collect::<Vec<_>>()).prop_shuffle(),
    ) {
        let mut w = ReplayWindow::new();
        prop_assert!(w.update(base + 2047));
        for c in perm {
            let expected = c != 2047;
            prop_assert_eq!(w.update(base + c), expected);
        }
    }
}

#[test]
fn window_is_at_least_2048() {
    const { assert!(WINDOW_SIZE >= 2048) };
    let mut w = ReplayWindow::new();
    assert!(w.update(10_000));
    assert!(w.update(10_000 - 2048));
    assert!(!w.update(10_000 - WINDOW_SIZE - 1));
}

#[test]
fn limit_is_enforced() {
    let mut w = ReplayWindow::new();
    assert!(w.update(REJECT_AFTER_MESSAGES - 1));
    assert!(!w.update(REJECT_AFTER_MESSAGES));
    assert!(!w.update(u64::MAX));
}

//! Bounded listener backlogs: how many tunnel connections to one of the
//! program's listeners may wait between our stack and the program.
//!
//! A connection a peer makes is accepted by our stack, handed to the bridge,
//! which connects to the program's loopback listener; the kernel queues it
//! there (up to the program's own backlog) until the program calls
//! `accept`. A program that listens and never accepts would otherwise make
//! every such connect hang in the bridge, each holding a tunnel flow. So
//! per listener at most [`MAX_PENDING`] connections may be between the
//! engine's hand-off and the kernel taking them (a [`Ticket`] each); while
//! that many wait, the engine leaves new connections in the stack's listen
//! queue (backlog [`STACK_BACKLOG`]), and once that is full the stack drops
//! further SYNs unanswered — as Linux does with a full accept queue
//! (`tcp_abort_on_overflow` = 0): the peer's SYN retransmissions get in as
//! soon as the program accepts again. Dropped SYNs are counted
//! (`listen_overflows`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Connections per listener handed to the bridge and not yet queued by the
/// kernel at the program's listener.
pub const MAX_PENDING: usize = 128;
/// The stack's listen backlog (connections established or half-open, not
/// yet taken by the engine).
pub const STACK_BACKLOG: usize = 128;

/// What a released [`Ticket`] calls (the engine: "accept more").
pub type OnRelease = Arc<dyn Fn() + Send + Sync>;

/// The waiting connections of one listener.
#[derive(Clone)]
pub struct Pending {
    count: Arc<AtomicUsize>,
    on_release: OnRelease,
}

impl Pending {
    /// A counter whose releases call `on_release`.
    pub fn new(on_release: OnRelease) -> Pending {
        Pending {
            count: Arc::new(AtomicUsize::new(0)),
            on_release,
        }
    }

    /// Connections waiting now.
    pub fn waiting(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// A ticket for one more connection, or `None` at [`MAX_PENDING`].
    pub fn admit(&self) -> Option<Ticket> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_PENDING).then_some(n + 1)
            })
            .ok()?;
        Some(Ticket {
            pending: Some(self.clone()),
        })
    }
}

/// One admitted connection; dropping it (the kernel took the connection,
/// or it failed) frees the place and tells the engine.
pub struct Ticket {
    pending: Option<Pending>,
}

impl Ticket {
    /// A ticket that counts nothing (backends without a bound).
    pub fn none() -> Ticket {
        Ticket { pending: None }
    }

    /// Gives the place back unused, without telling (nothing was waiting).
    pub fn cancel(mut self) {
        if let Some(p) = self.pending.take() {
            p.count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.count.fetch_sub(1, Ordering::AcqRel);
            (p.on_release)();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_bound_and_a_release_makes_room_and_tells() {
        let told = Arc::new(AtomicUsize::new(0));
        let t2 = told.clone();
        let p = Pending::new(Arc::new(move || {
            t2.fetch_add(1, Ordering::Relaxed);
        }));
        let mut tickets: Vec<Ticket> = (0..MAX_PENDING).map(|_| p.admit().expect("room")).collect();
        assert_eq!(p.waiting(), MAX_PENDING);
        assert!(p.admit().is_none(), "full");
        tickets.pop();
        assert_eq!(told.load(Ordering::Relaxed), 1);
        assert_eq!(p.waiting(), MAX_PENDING - 1);
        assert!(p.admit().is_some(), "room again (and released at once)");
        assert_eq!(told.load(Ordering::Relaxed), 2);
        drop(Ticket::none());
        p.admit().expect("room").cancel();
        assert_eq!(told.load(Ordering::Relaxed), 2, "cancel does not tell");
        assert_eq!(p.waiting(), MAX_PENDING - 1);
    }
}

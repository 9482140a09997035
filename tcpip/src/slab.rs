//! A generational slab: sockets are named by (index, generation) handles
//! so a stale handle never reaches a reused slot.

#[derive(Debug)]
struct Slot<T> {
    gen: u32,
    val: Option<T>,
}

/// A slab of `T` with generation-checked access.
#[derive(Debug)]
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `val`; returns (index, generation).
    pub fn insert(&mut self, val: T) -> (u32, u32) {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let s = &mut self.slots[i as usize];
            s.gen = s.gen.wrapping_add(1);
            s.val = Some(val);
            return (i, s.gen);
        }
        self.slots.push(Slot {
            gen: 0,
            val: Some(val),
        });
        ((self.slots.len() - 1) as u32, 0)
    }
    /// Entry at `idx` if the generation matches.
    pub fn get(&self, idx: u32, gen: u32) -> Option<&T> {
        match self.slots.get(idx as usize) {
            Some(s) if s.gen == gen => s.val.as_ref(),
            _ => None,
        }
    }
    /// Mutable entry at `idx` if the generation matches.
    pub fn get_mut(&mut self, idx: u32, gen: u32) -> Option<&mut T> {
        match self.slots.get_mut(idx as usize) {
            Some(s) if s.gen == gen => s.val.as_mut(),
            _ => None,
        }
    }
    /// Entry at `idx` whatever its generation.
    pub fn at(&self, idx: u32) -> Option<&T> {
        self.slots.get(idx as usize).and_then(|s| s.val.as_ref())
    }
    /// Mutable entry at `idx` whatever its generation.
    pub fn at_mut(&mut self, idx: u32) -> Option<&mut T> {
        self.slots
            .get_mut(idx as usize)
            .and_then(|s| s.val.as_mut())
    }
    /// Generation of slot `idx`.
    pub fn gen(&self, idx: u32) -> u32 {
        self.slots.get(idx as usize).map_or(0, |s| s.gen)
    }
    /// Removes the entry at `idx`.
    pub fn remove(&mut self, idx: u32) -> Option<T> {
        let v = self.slots.get_mut(idx as usize)?.val.take();
        if v.is_some() {
            self.free.push(idx);
            self.len -= 1;
        }
        v
    }
    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Number of slots (live or free).
    pub fn capacity_slots(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_miss() {
        let mut s = Slab::default();
        let (i, g) = s.insert(1);
        assert_eq!(s.get(i, g), Some(&1));
        s.remove(i);
        let (i2, g2) = s.insert(2);
        assert_eq!(i2, i);
        assert_ne!(g2, g);
        assert_eq!(s.get(i, g), None);
        assert_eq!(s.len(), 1);
    }
}

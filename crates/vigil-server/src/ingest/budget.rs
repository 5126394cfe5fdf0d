//! The ingest memory budget: how many bytes the batches being received, decoded, queued,
//! detected and stored may hold at once (`ingest.memory_budget_bytes`).
//!
//! A count of queued batches does not bound memory: a 10,000-event batch of raw log lines
//! costs tens of megabytes once parsed, so 256 of them are gigabytes. Every batch therefore
//! holds a [`Reservation`] from the moment its body starts to arrive until it is stored:
//! first its size on the wire (`Content-Length`), growing as a compressed body expands,
//! then, before it is parsed, [`PARSED_PER_BYTE`] times its decoded size, and once its
//! events are counted, [`batch_cost`] if that is more (the documents, their normalized form
//! and the stored text, measured). HTTP ingest that does not fit is answered 503
//! `overloaded` with Retry-After; a syslog TCP connection waits for room; syslog UDP
//! batches that do not fit are refused and counted.
//!
//! The budget is a semaphore of KiB units; `/metrics` shows the budget, the bytes reserved
//! now and the most ever reserved.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::{
    INGEST_MEMORY_BUDGET, INGEST_MEMORY_INFLIGHT, INGEST_MEMORY_PEAK, INGEST_MEMORY_REFUSED,
};

/// Reservation granularity: one semaphore permit is this many bytes.
const UNIT: u64 = 1024;

// What a batch costs in flight, measured with `cargo run --release -p vigil-server
// --example ingest_cost` (peak live heap while a batch is parsed, normalized, turned into
// stored rows): 10,000 raw log lines (162 bytes of JSON each) 8.8 KB per event, 54x their
// JSON; 10,000 pre-normalized events 3.4 KB per event, 20x their JSON. Parsed raw lines
// grow into many fields, so the per-event part dominates; long messages are copied a few
// times (document, stored text, message column), so a per-byte part remains.

/// Bytes charged per byte of decoded JSON before it is parsed (the parsed tree of any shape
/// of event measured, with the body itself).
pub const PARSED_PER_BYTE: u64 = 20;
/// Bytes charged per event once a batch is parsed: the normalized document's structure.
pub const EVENT_COST: u64 = 9 * 1024;
/// Bytes charged per byte of batch JSON once parsed, on top of [`EVENT_COST`]: the copies
/// of its text.
pub const STORED_PER_BYTE: u64 = 4;

/// What a parsed batch of `events` events and `bytes` bytes of JSON (or log lines) holds
/// until it is stored.
pub fn batch_cost(events: usize, bytes: usize) -> u64 {
    events as u64 * EVENT_COST + bytes as u64 * STORED_PER_BYTE
}

/// The budget shared by every ingest path. Cheap to clone.
#[derive(Clone)]
pub struct MemoryBudget(Arc<Inner>);

struct Inner {
    sem: Arc<Semaphore>,
    units: u64,
    peak_units: AtomicU64,
}

/// Nothing fits right now (the budget is in use by other batches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// Bytes held against the budget; released when dropped.
pub struct Reservation {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

impl MemoryBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> Self {
        let units = units(bytes).clamp(1, Semaphore::MAX_PERMITS as u64);
        metrics::gauge!(INGEST_MEMORY_BUDGET).set((units * UNIT) as f64);
        Self(Arc::new(Inner {
            sem: Arc::new(Semaphore::new(units as usize)),
            units,
            peak_units: AtomicU64::new(0),
        }))
    }

    /// The whole budget, bytes.
    pub fn total_bytes(&self) -> u64 {
        self.0.units * UNIT
    }

    /// Bytes reserved now.
    pub fn in_use_bytes(&self) -> u64 {
        (self.0.units - self.0.sem.available_permits() as u64) * UNIT
    }

    /// The most bytes ever reserved at once.
    pub fn peak_bytes(&self) -> u64 {
        self.0.peak_units.load(Ordering::Relaxed) * UNIT
    }

    /// Whether a batch costing `bytes` could ever fit (it is not larger than the budget).
    pub fn could_fit(&self, bytes: u64) -> bool {
        units(bytes) <= self.0.units
    }

    /// An empty reservation, to grow as a body arrives.
    pub fn empty(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            permit: None,
        }
    }

    /// Reserves `bytes` now, or refuses at once.
    pub fn try_reserve(&self, bytes: u64) -> Result<Reservation, Exhausted> {
        let mut r = self.empty();
        r.try_grow(bytes)?;
        Ok(r)
    }

    /// Reserves `bytes`, waiting for room (a reservation larger than the whole budget
    /// takes all of it, so it cannot wait forever).
    pub async fn reserve(&self, bytes: u64) -> Reservation {
        let n = units(bytes).min(self.0.units) as u32;
        // The semaphore is never closed (an error would only mean nothing is held).
        let permit = self.0.sem.clone().acquire_many_owned(n).await.ok();
        self.note_peak();
        Reservation {
            budget: self.clone(),
            permit,
        }
    }

    /// Sets the gauges from the current state (called before `/metrics` is rendered, so
    /// the figures are exact at scrape time).
    pub fn publish(&self) {
        metrics::gauge!(INGEST_MEMORY_BUDGET).set(self.total_bytes() as f64);
        metrics::gauge!(INGEST_MEMORY_INFLIGHT).set(self.in_use_bytes() as f64);
        metrics::gauge!(INGEST_MEMORY_PEAK).set(self.peak_bytes() as f64);
    }

    fn note_peak(&self) {
        let used = self.0.units - self.0.sem.available_permits() as u64;
        self.0.peak_units.fetch_max(used, Ordering::Relaxed);
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.permit.as_ref().map_or(0, |p| p.num_permits() as u64) * UNIT
    }

    /// Holds `more` bytes in addition, or refuses at once (what is held stays held).
    pub fn try_grow(&mut self, more: u64) -> Result<(), Exhausted> {
        let n = units(more);
        if n == 0 {
            return Ok(());
        }
        let n = u32::try_from(n).map_err(|_| Exhausted)?;
        let Ok(p) = self.budget.0.sem.clone().try_acquire_many_owned(n) else {
            metrics::counter!(INGEST_MEMORY_REFUSED).increment(1);
            return Err(Exhausted);
        };
        match &mut self.permit {
            Some(held) => held.merge(p),
            None => self.permit = Some(p),
        }
        self.budget.note_peak();
        Ok(())
    }

    /// Holds exactly `bytes` (rounded up to the unit): grows, or gives back the rest.
    pub fn try_resize(&mut self, bytes: u64) -> Result<(), Exhausted> {
        let want = units(bytes);
        let held = units(self.bytes());
        if want > held {
            return self.try_grow((want - held) * UNIT);
        }
        if let Some(p) = &mut self.permit {
            // Dropping the split-off part returns it to the budget.
            drop(p.split((held - want) as usize));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_grow_shrink_and_return_their_bytes() {
        let b = MemoryBudget::new(10 * UNIT);
        let mut r = b.try_reserve(3 * UNIT).unwrap();
        assert_eq!((r.bytes(), b.in_use_bytes()), (3 * UNIT, 3 * UNIT));
        r.try_grow(5 * UNIT + 1).unwrap(); // rounded up to whole units
        assert_eq!(b.in_use_bytes(), 9 * UNIT);
        assert_eq!(b.try_reserve(2 * UNIT).err(), Some(Exhausted));
        assert_eq!(r.try_grow(2 * UNIT), Err(Exhausted));
        assert_eq!(r.bytes(), 9 * UNIT, "a refused growth keeps what was held");
        r.try_resize(2 * UNIT).unwrap();
        assert_eq!(b.in_use_bytes(), 2 * UNIT);
        let other = b.try_reserve(8 * UNIT).unwrap();
        drop(r);
        drop(other);
        assert_eq!(b.in_use_bytes(), 0);
        assert_eq!(b.peak_bytes(), 10 * UNIT);
        assert!(b.could_fit(10 * UNIT) && !b.could_fit(10 * UNIT + 1));
    }

    #[tokio::test]
    async fn waiting_reservations_get_room_when_it_is_returned() {
        let b = MemoryBudget::new(4 * UNIT);
        let held = b.try_reserve(4 * UNIT).unwrap();
        let waiting = tokio::spawn({
            let b = b.clone();
            // Larger than the whole budget: takes all of it rather than waiting forever.
            async move { b.reserve(100 * UNIT).await.bytes() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(held);
        assert_eq!(waiting.await.unwrap(), 4 * UNIT);
        assert_eq!(b.in_use_bytes(), 0);
    }
}

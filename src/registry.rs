//! Numeric handles for regions, so the data path can be plain functions (a few tens of
//! nanoseconds per call) instead of napi-rs class methods (a few hundred).
//!
//! A handle is `generation * 2^32 + slot`, with `slot < 2^32` and `generation` in
//! `1..2^21`: at most 2^53 - 1, a safe integer. Slots are reused with the next generation;
//! a slot whose generation is exhausted is retired, never reused. So no two regions ever
//! share a handle, however many mappings a process makes or keeps.
//!
//! The handles never reach user code: `shim.js` keeps them in a `WeakMap` keyed by the
//! `Mapping` object. A slot holds its region until the region is released *and* its
//! `Mapping` object is gone, so the registry also lists every region of this JavaScript
//! thread that may still own an address range (see `region::teardown`).
//!
//! Nothing here runs JavaScript or builds errors; callers turn `None`/`Err` into exceptions
//! after the borrow is released.

use crate::region::Region;
use std::cell::RefCell;
use std::sync::Arc;

const SLOT_LIMIT: u64 = 1 << 32;
const MAX_GENERATION: u32 = (1 << 21) - 1;

struct Entry {
    generation: u32,
    region: Option<Arc<Region>>,
}

#[derive(Default)]
struct Registry {
    slots: Vec<Entry>,
    /// Free slots whose generation can still grow.
    free: Vec<u32>,
}

thread_local! {
    // Mappings belong to the JavaScript thread (main or worker) that made them.
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// Why a region could not be registered.
#[derive(Debug)]
pub enum InsertError {
    /// 2^32 mappings are registered, or memory for the table ran out.
    Full,
    /// The registry is in use or gone (re-entrancy, thread exit); never expected.
    Unavailable,
}

fn encode(generation: u32, slot: u32) -> f64 {
    // Exact: at most (2^21 - 1) * 2^32 + 2^32 - 1 = 2^53 - 1.
    (u64::from(generation) * SLOT_LIMIT + u64::from(slot)) as f64
}

fn decode(handle: f64) -> Option<(u32, usize)> {
    if !((0.0..=9_007_199_254_740_991.0).contains(&handle) && handle.fract() == 0.0) {
        return None;
    }
    let handle = handle as u64;
    Some(((handle / SLOT_LIMIT) as u32, (handle % SLOT_LIMIT) as usize))
}

/// Registers `region` and returns its handle.
pub fn insert(region: Arc<Region>) -> Result<f64, InsertError> {
    REGISTRY
        .try_with(|registry| {
            let mut registry = registry.try_borrow_mut().map_err(|_| InsertError::Unavailable)?;
            let slot = match registry.free.pop() {
                Some(slot) => slot,
                None => {
                    let next = registry.slots.len() as u64;
                    if next >= SLOT_LIMIT {
                        return Err(InsertError::Full);
                    }
                    registry.slots.try_reserve(1).map_err(|_| InsertError::Full)?;
                    // Room for every slot in `free`, so `remove` never allocates.
                    let room = registry.slots.len() + 1 - registry.free.len();
                    registry.free.try_reserve(room).map_err(|_| InsertError::Full)?;
                    registry.slots.push(Entry {
                        generation: 0,
                        region: None,
                    });
                    next as u32
                }
            };
            let entry = &mut registry.slots[slot as usize];
            entry.generation += 1;
            entry.region = Some(region);
            Ok(encode(entry.generation, slot))
        })
        .unwrap_or(Err(InsertError::Unavailable))
}

/// The region behind `handle`, or `None` if no region has it.
pub fn get(handle: f64) -> Option<Arc<Region>> {
    let (generation, slot) = decode(handle)?;
    REGISTRY
        .try_with(|registry| {
            let registry = registry.try_borrow().ok()?;
            match registry.slots.get(slot) {
                Some(Entry {
                    generation: g,
                    region: Some(region),
                }) if *g == generation => Some(Arc::clone(region)),
                _ => None,
            }
        })
        .ok()
        .flatten()
}

/// Forgets `handle`. The slot is reused with the next generation, or retired when its
/// generation is exhausted.
pub fn remove(handle: f64) {
    let Some((generation, slot)) = decode(handle) else {
        return;
    };
    let removed = REGISTRY
        .try_with(|registry| {
            let mut registry = registry.try_borrow_mut().ok()?;
            let entry = registry.slots.get_mut(slot)?;
            if entry.generation != generation {
                return None;
            }
            let region = entry.region.take()?;
            if entry.generation < MAX_GENERATION {
                // Reserved when the slot was made, so this push cannot allocate.
                registry.free.push(slot as u32);
            }
            Some(region)
        })
        .ok()
        .flatten();
    // Dropped outside the borrow: a region's drop must never find the registry borrowed.
    drop(removed);
}

/// Every registered region of this thread.
pub fn all() -> Vec<Arc<Region>> {
    REGISTRY
        .try_with(|registry| {
            registry
                .try_borrow()
                .map(|r| r.slots.iter().filter_map(|e| e.region.clone()).collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

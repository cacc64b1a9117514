//! The address range behind a JavaScript `Mapping`, and when it may be unmapped.
//!
//! JavaScript reaches mapped memory only through external buffers made by
//! [`Region::external_buffer`]. Each owns a [`Guard`] (its finalizer hint), and Node finalizes
//! every external backing store exactly once, on a later event-loop turn: after the buffer is
//! collected, or after every ArrayBuffer its contents were moved to is (`transfer()`, a BYOB
//! stream read, a worker it was posted to), or at env teardown. So the guards, not weak
//! references to the original objects, tell what may still point into the range.
//!
//! `outstanding` counts guards neither finalized nor revoked. `unmap()` detaches every tracked
//! ArrayBuffer still alive and attached and revokes its guard: a detached buffer never touches
//! memory again, and no other ArrayBuffer can share its backing store. If guards remain, one
//! of them may have escaped (or was collected and awaits its finalizer): the file is released
//! at once, the range becoming private anonymous memory, and it stays reserved until the last
//! of them is finalized. Otherwise the range is unmapped at once.
//!
//! Every transition runs on the JavaScript thread that made the mapping, under the state's
//! write lock; pool threads (`persistAsync`) only read the state.
//!
//! | state   | event                                                      | next     |
//! |---------|------------------------------------------------------------|----------|
//! | Mapped  | `unmap()`, no guard outstanding after revoking             | Unmapped |
//! | Mapped  | `unmap()`, guards outstanding                              | Retired  |
//! | Mapped  | last user gone (the `Mapping` collected, no task pending) and no guard outstanding | Unmapped |
//! | Mapped  | last outstanding guard finalized, no user                  | Unmapped |
//! | Retired | last outstanding guard finalized                           | Unmapped |
//! | Mapped  | env teardown with guards outstanding (see [`teardown`])     | Retired, tainted |
//!
//! A tainted range is never unmapped: at env teardown Node finalizes every buffer of the env,
//! including ones whose contents live on in another thread's ArrayBuffer, so a finalizer then
//! no longer proves that nothing points into the range.
//!
//! V8 is told what a mapping costs (`napi_adjust_external_memory`) when it is made, and the
//! same amount is given back once, when the range is unmapped, so garbage collection runs
//! before forgotten mappings exhaust memory or the kernel's map count.
//!
//! # Safety
//! [`Region::external_buffer`] hands JavaScript a pointer into the range; the guard it owns
//! keeps the range mapped or reserved (the rules above) until Node finalizes it.
#![allow(unsafe_code)]

use crate::error::{self, OrThrow};
use crate::js::{self, Detach, ExternalError, Finalize, JsRef};
use crate::registry;
use napi::bindgen_prelude::*;
use napi::sys;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, Weak};

/// What V8 is told a shared file mapping costs. Its pages are page cache, which the kernel
/// reclaims or writes back by itself; what runs out is the process's map count
/// (`vm.max_map_count`, 65 530 by default). V8 starts a collection after about 64 MiB of
/// external growth, so this cost lets at most a few hundred forgotten shared mappings (under
/// 1% of that limit) pile up before one, while a program that keeps thousands of live
/// mappings pays a collection only every 256 new ones. Private and anonymous mappings cost
/// their size: their touched pages are process memory.
pub const SHARED_FILE_COST: i64 = 256 << 10;

/// The fewest tracked buffers at which the list is pruned of collected ones.
const MIN_PRUNE: usize = 64;

enum State {
    Mapped(pmem2::Mapping),
    /// The file is released; the addresses stay reserved for outstanding guards.
    Retired(pmem2::ReservedRange),
    Unmapped,
}

/// Bookkeeping of the JavaScript objects over the range; used on the JavaScript thread only
/// (a Mutex because a Region is shared with pool threads).
struct JsSide {
    handle: f64,
    /// Strong reference to the Buffer returned by `mapping.buffer`, so it is the same object
    /// each time; deleted when the Mapping object goes (it would otherwise keep its own guard,
    /// and so this region, alive forever).
    buffer: Option<JsRef>,
    /// Every external buffer made over the range and not yet revoked, for `unmap()` to detach.
    tracked: Vec<Tracked>,
    /// `tracked` is pruned of collected buffers when it reaches this length.
    prune_at: usize,
}

struct Tracked {
    /// Weak reference to the buffer's ArrayBuffer.
    arraybuffer: JsRef,
    guard: Weak<Guard>,
}

/// The mapped range shared by the `Mapping` object, its buffers' finalizers and async tasks.
pub(crate) struct Region {
    state: RwLock<State>,
    /// Guards neither finalized nor revoked.
    outstanding: AtomicUsize,
    /// The `Mapping` object while it lives, plus pending tasks: a mapped range stays mapped
    /// while any is left.
    users: AtomicUsize,
    object_alive: AtomicBool,
    /// Set at env teardown with guards outstanding: the range is never unmapped.
    tainted: AtomicBool,
    /// Bytes reported to V8 at creation, given back once at release.
    cost: i64,
    js: Mutex<JsSide>,
}

/// The finalizer hint of one external buffer: keeps the region alive and counts the buffer
/// until it is finalized or revoked (whichever comes first counts, once).
pub(crate) struct Guard {
    region: Arc<Region>,
    settled: AtomicBool,
}

impl Guard {
    fn new(region: &Arc<Region>) -> Arc<Guard> {
        region.outstanding.fetch_add(1, SeqCst);
        Arc::new(Guard {
            region: Arc::clone(region),
            settled: AtomicBool::new(false),
        })
    }

    /// Stops counting this guard; `true` the first time.
    fn settle(&self) -> bool {
        let first = !self.settled.swap(true, SeqCst);
        if first {
            self.region.outstanding.fetch_sub(1, SeqCst);
        }
        first
    }
}

impl Finalize for Arc<Guard> {
    fn finalize(self, env: &Env) {
        if self.settle() {
            self.region.release_if_unused(Some(env));
        }
    }
}

impl Region {
    /// Registers `map` and reports its cost to V8.
    pub(crate) fn new(env: &Env, map: pmem2::Mapping) -> Result<Arc<Region>> {
        let private = map.sharing() == pmem2::Sharing::Private || map.file_type().is_none();
        // Private and anonymous pages become process memory once touched.
        let cost = if private { map.size() as i64 } else { SHARED_FILE_COST };
        Region::with_cost(env, map, cost)
    }

    /// Registers the private alias of a read-only mapping (`mapping.rs`). Its pages stay page
    /// cache unless a stray store copies one, so it costs what a shared file mapping costs: a
    /// map entry, not its size.
    pub(crate) fn alias(env: &Env, map: pmem2::Mapping) -> Result<Arc<Region>> {
        Region::with_cost(env, map, SHARED_FILE_COST)
    }

    fn with_cost(env: &Env, map: pmem2::Mapping, cost: i64) -> Result<Arc<Region>> {
        let region = Arc::new(Region {
            state: RwLock::new(State::Mapped(map)),
            outstanding: AtomicUsize::new(0),
            users: AtomicUsize::new(1),
            object_alive: AtomicBool::new(true),
            tainted: AtomicBool::new(false),
            cost,
            js: Mutex::new(JsSide {
                handle: -1.0,
                buffer: None,
                tracked: Vec::new(),
                prune_at: MIN_PRUNE,
            }),
        });
        match registry::insert(Arc::clone(&region)) {
            Ok(handle) => {
                region.js_side().handle = handle;
                js::adjust_external_memory(env, cost);
                Ok(region)
            }
            Err(why) => {
                let old = std::mem::replace(&mut *region.state_mut(), State::Unmapped);
                drop(old); // munmap: nothing else knows the range
                Err(error::coded(
                    env,
                    "ERR_PMEM2_TOO_MANY_MAPPINGS",
                    pmem2::ErrorKind::Os(12).code(),
                    &format!("cannot register another mapping ({why:?}); unmap mappings that are no longer needed"),
                ))
            }
        }
    }

    fn js_side(&self) -> MutexGuard<'_, JsSide> {
        // Never held across JavaScript or another lock user, so never contended; a poisoned
        // lock (a panic while held) still has consistent data.
        self.js.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The data path's handle (see `registry.rs`).
    pub(crate) fn handle(&self) -> f64 {
        self.js_side().handle
    }

    /// Runs `f` on the live mapping; `PMEM2_E_MAPPING_NOT_FOUND` after `unmap()`. The lock is
    /// released before the caller turns an error into an exception.
    pub(crate) fn with_live<R>(&self, f: impl FnOnce(&pmem2::Mapping) -> pmem2::Result<R>) -> pmem2::Result<R> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        match &*state {
            State::Mapped(map) => f(map),
            _ => Err(pmem2::Error::new(
                pmem2::ErrorKind::MappingNotFound,
                "the mapping was unmapped; it can no longer be used",
            )),
        }
    }

    pub(crate) fn is_mapped(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(PoisonError::into_inner),
            State::Mapped(_)
        )
    }

    /// A Buffer over `[offset, offset+len)` of the live mapping, counted and tracked for
    /// `unmap()`. The caller has checked the range and the protection.
    pub(crate) fn external_buffer(self: &Arc<Self>, env: &Env, offset: usize, len: usize) -> Result<sys::napi_value> {
        let ptr = self.with_live(|m| m.checked_range(offset, len)).or_throw(env)?;
        let guard = Guard::new(self);
        // SAFETY: the range is inside the live mapping (no JavaScript ran since the check, and
        // only this thread unmaps); the buffer's finalizer owns a guard, which keeps the range
        // mapped or reserved until Node finalizes it.
        match unsafe { js::create_external_buffer(env, ptr, len, Arc::clone(&guard)) } {
            Ok((buffer, arraybuffer)) => {
                teardown::arm(env)?;
                // An untracked buffer cannot be revoked: it then keeps the range reserved
                // after unmap() until it is finalized, which is safe.
                if let Some(arraybuffer) = arraybuffer {
                    self.track(env, arraybuffer, Arc::downgrade(&guard))?;
                }
                Ok(buffer)
            }
            Err((why, owner)) => {
                owner.settle(); // the buffer was not made: nothing to wait for
                match why {
                    ExternalError::NotAllowed => Err(error::coded(
                        env,
                        "ERR_EXTERNAL_BUFFERS_NOT_ALLOWED",
                        pmem2::ErrorKind::NotSupported.code(),
                        "this runtime does not allow external buffers (e.g. Electron's V8 sandbox), so mapped memory \
                         cannot be exposed as a Buffer without copying; use mapping.read(offset, length) and \
                         mapping.write(offset, data)",
                    )),
                    ExternalError::Other(e) => Err(e),
                }
            }
        }
    }

    /// Adds a buffer to the tracked list, first pruning collected ones when the list has
    /// doubled since the last prune: amortised O(1), at most about twice the live buffers.
    fn track(&self, env: &Env, arraybuffer: sys::napi_value, guard: Weak<Guard>) -> Result<()> {
        let arraybuffer = JsRef::new(env, arraybuffer, false)?;
        let mut js = self.js_side();
        if js.tracked.len() >= js.prune_at {
            let tracked = std::mem::take(&mut js.tracked);
            let mut live = Vec::new();
            // At most the old length: sized by existing entries, not by a request.
            if live.try_reserve(tracked.len()).is_err() {
                js.tracked = tracked;
            } else {
                for entry in tracked {
                    if matches!(entry.arraybuffer.get(env), Ok(Some(_))) {
                        live.push(entry);
                    } else {
                        entry.arraybuffer.delete(env);
                    }
                }
                js.tracked = live;
            }
            js.prune_at = (2 * js.tracked.len()).max(MIN_PRUNE);
        }
        if js.tracked.try_reserve(1).is_err() {
            drop(js);
            arraybuffer.delete(env);
            return Err(error::range(
                env,
                "out of memory for tracking the buffers over this mapping",
            ));
        }
        js.tracked.push(Tracked { arraybuffer, guard });
        Ok(())
    }

    /// The Buffer `mapping.buffer` returned before, if it is still cached.
    pub(crate) fn cached_buffer(&self, env: &Env) -> Result<Option<sys::napi_value>> {
        let js = self.js_side();
        match &js.buffer {
            Some(buffer) => buffer.get(env),
            None => Ok(None),
        }
    }

    /// Caches the Buffer of `mapping.buffer`.
    pub(crate) fn cache_buffer(&self, env: &Env, buffer: sys::napi_value) -> Result<()> {
        let reference = JsRef::new(env, buffer, true)?;
        if let Some(old) = self.js_side().buffer.replace(reference) {
            old.delete(env);
        }
        Ok(())
    }

    /// Detaches every tracked buffer still alive and attached, revokes its guard and forgets
    /// the list. Runs no JavaScript.
    fn revoke_tracked(&self, env: &Env) {
        let (tracked, buffer) = {
            let mut js = self.js_side();
            js.prune_at = MIN_PRUNE;
            (std::mem::take(&mut js.tracked), js.buffer.take())
        };
        for entry in tracked {
            if let Ok(Some(arraybuffer)) = entry.arraybuffer.get(env) {
                // Already detached: its contents moved to another ArrayBuffer, which the
                // guard still counts. A failure leaves the guard counting too: safe.
                if let Ok(Detach::Detached) = js::detach_arraybuffer(env, arraybuffer) {
                    if let Some(guard) = entry.guard.upgrade() {
                        guard.settle();
                    }
                }
            }
            entry.arraybuffer.delete(env);
        }
        if let Some(buffer) = buffer {
            buffer.delete(env);
        }
    }

    /// `mapping.unmap()`: detaches every buffer, then unmaps at once, or releases the file and
    /// keeps the range reserved while guards are outstanding. A second call does nothing.
    pub(crate) fn unmap(&self, env: &Env) -> Result<()> {
        if !self.is_mapped() {
            return Ok(());
        }
        self.revoke_tracked(env);
        // No JavaScript ran since the check above, so the state is still Mapped.
        let (released, result) = {
            let mut state = self.state_mut();
            match std::mem::replace(&mut *state, State::Unmapped) {
                State::Mapped(map) if self.outstanding.load(SeqCst) > 0 => match map.release_file() {
                    Ok(range) => {
                        *state = State::Retired(range);
                        (false, Ok(()))
                    }
                    // The core abandoned the range: it is never touched again.
                    Err(e) => (true, Err(e)),
                },
                State::Mapped(map) => (true, map.unmap()),
                other => {
                    *state = other;
                    return Ok(());
                }
            }
        };
        if released {
            self.after_release(Some(env));
        }
        // Only now, with no lock held, may an error (which can run JavaScript) be built.
        result.or_throw(env)
    }

    /// The `Mapping` object was collected.
    pub(crate) fn object_finalized(&self, env: &Env) {
        if let Some(buffer) = self.js_side().buffer.take() {
            buffer.delete(env);
        }
        self.object_alive.store(false, SeqCst);
        self.users.fetch_sub(1, SeqCst);
        self.release_if_unused(Some(env));
        self.forget_if_done();
    }

    /// Unmaps a region no one uses: a retired range with no guard outstanding, or a mapped
    /// one with neither guards nor users. Without an env (a task dropped unsettled) the
    /// unmapping still happens; only V8's counter and the tracked references are left as is.
    fn release_if_unused(&self, env: Option<&Env>) {
        if self.outstanding.load(SeqCst) > 0 {
            return;
        }
        let released = {
            let mut state = self.state_mut();
            let unused = match &*state {
                State::Retired(_) => true,
                State::Mapped(_) => self.users.load(SeqCst) == 0,
                State::Unmapped => false,
            };
            if unused {
                let old = std::mem::replace(&mut *state, State::Unmapped);
                self.dispose(old);
            }
            unused
        };
        if released {
            self.after_release(env);
        }
    }

    /// Unmaps what `old` holds, unless the region is tainted: then the file is released and
    /// the range kept reserved for the life of the process.
    fn dispose(&self, old: State) {
        let tainted = self.tainted.load(SeqCst);
        match old {
            State::Mapped(map) if tainted => {
                if let Ok(range) = map.release_file() {
                    std::mem::forget(range);
                }
            }
            State::Mapped(map) => {
                let _ = map.unmap();
            }
            State::Retired(range) if tainted => std::mem::forget(range),
            State::Retired(range) => drop(range),
            State::Unmapped => {}
        }
    }

    /// Once the range is gone: gives V8 its cost back, deletes the references over it and
    /// leaves the registry if the `Mapping` object is gone too.
    fn after_release(&self, env: Option<&Env>) {
        let (tracked, buffer) = {
            let mut js = self.js_side();
            (std::mem::take(&mut js.tracked), js.buffer.take())
        };
        if let Some(env) = env {
            js::adjust_external_memory(env, -self.cost);
            tracked.into_iter().for_each(|t| t.arraybuffer.delete(env));
            if let Some(buffer) = buffer {
                buffer.delete(env);
            }
        }
        self.forget_if_done();
    }

    fn forget_if_done(&self) {
        if !self.object_alive.load(SeqCst) && !self.is_mapped() && !self.is_retired() {
            registry::remove(self.handle());
        }
    }

    fn is_retired(&self) -> bool {
        matches!(
            *self.state.read().unwrap_or_else(PoisonError::into_inner),
            State::Retired(_)
        )
    }

    /// How many buffers are tracked and how many guards are outstanding (for tests).
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.js_side().tracked.len(), self.outstanding.load(SeqCst))
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // Only reached with a range still held on abnormal paths (a thread's registry
        // destroyed with it); never unmap then, since a finalizer did not prove it unused.
        let state = std::mem::replace(
            self.state.get_mut().unwrap_or_else(PoisonError::into_inner),
            State::Unmapped,
        );
        if self.tainted.load(SeqCst) || self.outstanding.load(SeqCst) > 0 {
            std::mem::forget(state);
        }
    }
}

/// A pending async task's claim: the range stays mapped until the task has settled, even if
/// the `Mapping` object is collected meanwhile.
pub(crate) struct UserHold(Option<Arc<Region>>);

impl UserHold {
    pub(crate) fn new(region: &Arc<Region>) -> UserHold {
        region.users.fetch_add(1, SeqCst);
        UserHold(Some(Arc::clone(region)))
    }

    /// Ends the claim on the JavaScript thread, after the task settled.
    pub(crate) fn release(mut self, env: &Env) {
        if let Some(region) = self.0.take() {
            region.users.fetch_sub(1, SeqCst);
            region.release_if_unused(Some(env));
            region.forget_if_done();
        }
    }
}

impl Drop for UserHold {
    fn drop(&mut self) {
        if let Some(region) = self.0.take() {
            region.users.fetch_sub(1, SeqCst);
            region.release_if_unused(None);
            region.forget_if_done();
        }
    }
}

/// Env teardown (a worker exiting, or the process): Node then finalizes every external
/// buffer of the env, newest first, including ones whose contents were moved to another
/// thread's ArrayBuffer and are still in use there; after that it never reports their end.
///
/// So a finalizer at teardown proves nothing. To look at the regions before any of those
/// finalizers runs, every new external buffer of a worker is followed by a sentinel: a one-byte external
/// buffer that this module keeps alive, so its finalizer runs only at teardown, and before
/// the finalizer of every buffer made earlier. It revokes the buffers it can prove are this
/// env's own (alive and attached: Node would detach them anyway), and taints each region with
/// guards still outstanding: its file is released now and its range is never unmapped.
pub(crate) mod teardown {
    use super::*;
    use std::cell::{Cell, RefCell};

    thread_local! {
        /// The newest sentinel of this thread's env: its number and a strong reference.
        static CURRENT: RefCell<Option<(u64, JsRef)>> = const { RefCell::new(None) };
        static NEXT: Cell<u64> = const { Cell::new(1) };
    }

    struct Sentinel {
        number: u64,
        /// The byte the sentinel buffer is over (each its own: no two buffers share a start).
        _byte: Box<u8>,
    }

    impl Finalize for Sentinel {
        fn finalize(self, env: &Env) {
            // A replaced sentinel is collected normally; only the current one means teardown.
            let current = CURRENT.with(|c| c.try_borrow().ok().and_then(|c| c.as_ref().map(|(n, _)| *n)));
            if current == Some(self.number) {
                for region in registry::all() {
                    region.teardown(env);
                }
            }
        }
    }

    /// Makes a new sentinel, newer than every external buffer made so far (call after making
    /// one). Only off the process's main thread: when the main env is torn down, Node has
    /// already stopped every worker, so no other thread can hold this env's memory.
    pub(crate) fn arm(env: &Env) -> Result<()> {
        // SAFETY: getpid and gettid only return numbers.
        if unsafe { libc::gettid() == libc::getpid() } {
            return Ok(());
        }
        let number = NEXT.with(|n| n.replace(n.get() + 1));
        let mut byte = Box::new(0u8);
        let data: *mut u8 = &mut *byte;
        let sentinel = Sentinel { number, _byte: byte };
        // SAFETY: the byte is owned by the sentinel, which Node hands back to `finalize`
        // only when the buffer over it is gone.
        let (buffer, _) =
            unsafe { js::create_external_buffer(env, data, 1, sentinel) }.map_err(|(why, _)| match why {
                ExternalError::Other(e) => e,
                ExternalError::NotAllowed => Error::from_reason("external buffers are not allowed"),
            })?;
        let reference = JsRef::new(env, buffer, true)?;
        let old = CURRENT.with(|c| c.try_borrow_mut().ok().and_then(|mut c| c.replace((number, reference))));
        if let Some((_, old)) = old {
            old.delete(env);
        }
        Ok(())
    }

    impl Region {
        fn teardown(&self, env: &Env) {
            self.revoke_tracked(env);
            if self.outstanding.load(SeqCst) == 0 {
                return;
            }
            self.tainted.store(true, SeqCst);
            let mut state = self.state_mut();
            *state = match std::mem::replace(&mut *state, State::Unmapped) {
                State::Mapped(map) => match map.release_file() {
                    Ok(range) => State::Retired(range),
                    Err(_) => State::Unmapped, // the core abandoned the range
                },
                other => other,
            };
        }
    }
}

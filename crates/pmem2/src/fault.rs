//! Turning a SIGBUS inside pmem2's own copy, read, write and flush routines into an error.
//!
//! A page of a file mapping faults with SIGBUS when the file no longer covers it (another
//! process truncated the file) or when the memory behind it is poisoned (an uncorrectable
//! media error on persistent memory). The kernel's default is to kill the process. For the
//! bounded routines pmem2 runs itself, [`guarded`] catches that fault and returns it as a
//! [`Fault`] instead, the way the JDK turns the same fault inside its copy routines into an
//! exception. Direct access through raw pointers (or JavaScript views) is not guarded.
//!
//! # How
//! - A guarded call writes the spans it touches (destination and, for copies, source) into
//!   a [`Frame`] on its own stack and arms its thread's [`Slot`] by pointing it at that
//!   frame. It then calls the operation (through [`run`]) from an assembly block
//!   (`sys::fault_arch::guarded_call`) that stores the registers the compiler reserves (the
//!   stack pointer, the frame pointer and one more), and the address right after the call,
//!   in the frame. Every other register a callee must preserve is declared clobbered, so
//!   the compiler holds nothing in them across the block. The block yields 0.
//! - The SIGBUS handler, installed once when the first thread claims a slot, looks for the
//!   faulting thread's armed slot. If the fault is a kernel-reported access fault
//!   (`BUS_ADRERR`, `BUS_OBJERR`, `BUS_MCEERR_AR`) in a page overlapping one of the spans,
//!   it records address and code in the frame, disarms, and rewrites the interrupted
//!   context so that the return from the handler lands in the architecture's recovery
//!   stub. The stub restores the saved registers and re-enters the block after the call,
//!   which then yields 1: a longjmp without libc, and without `setjmp`'s returns-twice
//!   problem, because to the compiler the block is opaque code that is entered once and
//!   left once, at its end, with its declared outputs and clobbers.
//! - Returning through sigreturn (rather than jumping out of the handler) lets the kernel
//!   restore the signal mask, the alternate-stack state and the FPU state exactly as they
//!   were when the copy faulted.
//! - Any other SIGBUS is chained to the action that was installed before pmem2's: its
//!   `sa_sigaction` or `sa_handler` is called with the same arguments (under its `sa_mask`,
//!   honouring `SA_RESETHAND` and `SA_NODEFER`). For `SIG_DFL` or `SIG_IGN` the default
//!   action is restored and the handler returns, so the faulting instruction runs again and
//!   the kernel's default applies (termination with a core dump); a SIGBUS sent with
//!   `kill` is raised again instead, since nothing would re-execute. The Rust runtime's own
//!   SIGBUS handler (stack-overflow reporting, installed before `main` in Rust programs) is
//!   such a previous action and keeps working.
//!
//! # Why abandoning the operation's frames is sound
//! Recovery discards every frame between the assembly block and the faulting instruction
//! without running any code in them. That is only sound for frames with nothing to release
//! (no destructors, locks or allocations), and it is guaranteed by construction:
//! - the operation is a closure that is `Copy`, so it owns nothing that needs dropping, and
//!   its result is `Copy`, so a half-built result has no drop glue either;
//! - the only guarded bodies are pmem2's raw routines: the [`MemmoveFn`](crate::MemmoveFn)
//!   and [`MemsetFn`](crate::MemsetFn) implementations, `ptr::copy`, the cache-line flush
//!   loop and a one-byte probe (see the callers in `map.rs` and `mem/mod.rs`); they take no
//!   lock and allocate nothing;
//! - [`run`] catches a panic of the operation and [`guarded`] resumes it after the
//!   block, so no unwinding ever crosses the assembly (which has no unwind information).
//!   `run` is `extern "C"`, which would abort rather than unwind if anything escaped the
//!   catch.
//!
//! # Why the handler uses no thread-local storage
//! Thread-locals of a shared library loaded with `dlopen` (the Node.js addon) are allocated
//! lazily by glibc's `__tls_get_addr`, which may call `malloc` the first time a thread
//! touches them, and the handler runs on whichever thread faulted, also threads that never
//! used pmem2. So the slots live in a process-wide, append-only list of leaked allocations,
//! owned by threads identified by `pthread_self()` (a read of the thread pointer); the
//! handler walks that list with atomic loads only. Thread-locals are read on the normal path
//! only, to find the calling thread's slot.
//!
//! # Limits
//! - A SIGBUS handler installed after pmem2's replaces it; unless it chains to pmem2's,
//!   faults in pmem2's routines kill the process again.
//! - A guarded call made from a signal handler that interrupted another guarded call on the
//!   same thread runs unguarded (the interrupted one is disarmed meanwhile).
//! - Recovery is off under a CET shadow stack (x86_64), during thread-local destruction at
//!   thread exit, and on architectures other than x86_64 and aarch64: the operations then run
//!   unguarded and a SIGBUS keeps the kernel's default.
//!
//! # Safety
//! The unsafe code here is the handler (raw `siginfo_t`/`ucontext_t` from the kernel,
//! `sigaction` calls), the frames (written only by their own thread: by [`guarded`], by the
//! assembly block, and by that thread's signal handler, while [`guarded`] is still running)
//! and the assembly call, whose contract the rules above meet.
#![allow(unsafe_code)]

/// A SIGBUS that stopped a guarded operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    /// The faulting address (`si_addr`).
    pub(crate) addr: usize,
    /// `si_code`: `BUS_ADRERR`, `BUS_OBJERR` or `BUS_MCEERR_AR`.
    pub(crate) code: i32,
}

impl Fault {
    /// The name of the `si_code`.
    pub(crate) fn code_name(&self) -> &'static str {
        match self.code {
            libc::BUS_ADRERR => "BUS_ADRERR",
            libc::BUS_OBJERR => "BUS_OBJERR",
            libc::BUS_MCEERR_AR => "BUS_MCEERR_AR",
            _ => "unknown si_code",
        }
    }

    /// What the kernel means by the code.
    pub(crate) fn cause(&self) -> &'static str {
        match self.code {
            libc::BUS_MCEERR_AR => "the memory is poisoned (an uncorrectable media error or a bad block)",
            libc::BUS_OBJERR => "the file's storage reported a hardware error",
            _ => "the page is no longer backed by the file: it was truncated under the mapping, or its data could not be read",
        }
    }
}

/// A byte range a guarded operation touches. A fault is attributed to the operation when it
/// hits a page overlapping one of its spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    len: usize,
}

impl Span {
    /// `[ptr, ptr + len)`.
    pub(crate) fn new(ptr: *const u8, len: usize) -> Span {
        Span {
            start: ptr as usize,
            len,
        }
    }

    /// No range.
    pub(crate) const NONE: Span = Span { start: 0, len: 0 };
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(crate) use guard::guarded;

/// Runs `op` unguarded: this architecture has no recovery stub.
#[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
pub(crate) fn guarded<R: Copy, F: FnOnce() -> R + Copy>(_spans: [Span; 2], op: F) -> Result<R, Fault> {
    Ok(op())
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod guard {
    use super::{Fault, Span};
    use crate::sys::fault_arch::{self as arch, SaveArea};
    use std::cell::Cell;
    use std::ffi::{c_int, c_void};
    use std::mem::MaybeUninit;
    use std::panic::{self, AssertUnwindSafe};
    use std::ptr;
    use std::sync::atomic::{compiler_fence, AtomicPtr, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// One thread's registration. Slots are leaked and never freed, so the signal handler can
    /// walk them at any time; a slot is reused by another thread after its owner exits.
    #[repr(C, align(64))]
    struct Slot {
        /// `pthread_self()` of the owning thread, 0 while free.
        owner: AtomicUsize,
        /// The [`Frame`] of the owner's current guarded call: non-null while armed.
        frame: AtomicPtr<Frame>,
        /// The next slot of the list; set once before the slot is published.
        next: AtomicPtr<Slot>,
    }

    /// What the handler needs of one guarded call. It lives in [`guarded`]'s stack frame,
    /// which a recovery does not discard, and is only touched by its thread: by [`guarded`],
    /// by the assembly block (`save`), and by that thread's signal handler (`fault_*`).
    #[repr(C)]
    struct Frame {
        /// The call's two spans; the handler widens them to whole pages (a poisoned page is
        /// reported by its first address).
        spans: [Span; 2],
        /// Written by the handler before it redirects the thread to the recovery stub.
        fault_addr: MaybeUninit<usize>,
        fault_code: MaybeUninit<i32>,
        /// Filled by the assembly block, read by the recovery stub.
        save: MaybeUninit<SaveArea>,
    }

    impl Frame {
        /// Whether `addr` lies in a page overlapping one of the spans.
        fn covers(&self, addr: usize) -> bool {
            let mask = PAGE_MASK.load(Ordering::Relaxed);
            let page = addr & mask;
            self.spans.iter().any(|span| {
                let last_byte = span.start.saturating_add(span.len.saturating_sub(1));
                span.len != 0 && span.start & mask <= page && page <= last_byte & mask
            })
        }
    }

    /// The head of the append-only slot list.
    static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(ptr::null_mut());
    /// The SIGBUS action that was installed before pmem2's, published before pmem2's handler.
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    /// The page size, for rounding spans (set before the handler is installed).
    static PAGE_MASK: AtomicUsize = AtomicUsize::new(!0xfff);

    thread_local! {
        /// This thread's slot, or null before its first guarded call. Const-initialised and
        /// without a destructor: reading it is a plain thread-local load.
        static CURRENT: Cell<*const Slot> = const { Cell::new(ptr::null()) };
        /// Frees this thread's slot when the thread exits.
        static LEASE: Lease = const { Lease };
    }

    struct Lease;

    impl Drop for Lease {
        fn drop(&mut self) {
            let slot = CURRENT.with(|current| current.replace(ptr::null()));
            // SAFETY: slots are never freed.
            if let Some(slot) = unsafe { slot.as_ref() } {
                slot.owner.store(0, Ordering::Release);
            }
        }
    }

    fn thread_id() -> usize {
        // SAFETY: pthread_self has no preconditions; it reads the thread pointer and is safe
        // to call from a signal handler.
        unsafe { libc::pthread_self() as usize }
    }

    /// The calling thread's slot, claiming one (and installing the handler) on first use;
    /// `None` when recovery is unavailable.
    #[inline]
    fn current_slot() -> Option<&'static Slot> {
        let slot = CURRENT.with(Cell::get);
        // SAFETY: a non-null CURRENT points to a leaked slot this thread owns.
        match unsafe { slot.as_ref() } {
            Some(slot) => Some(slot),
            None => claim_slot(),
        }
    }

    #[cold]
    #[inline(never)]
    fn claim_slot() -> Option<&'static Slot> {
        if !enabled() {
            return None;
        }
        // Registers the destructor that frees the slot; fails while this thread's
        // thread-locals are being destroyed, and the call then runs unguarded.
        LEASE.try_with(|_| ()).ok()?;
        let me = thread_id();
        let mut cursor = SLOTS.load(Ordering::Acquire);
        // SAFETY: list entries are leaked slots, never freed.
        while let Some(slot) = unsafe { cursor.as_ref() } {
            if slot
                .owner
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                CURRENT.with(|current| current.set(slot));
                return Some(slot);
            }
            cursor = slot.next.load(Ordering::Acquire);
        }
        let slot: &'static Slot = Box::leak(Box::new(Slot {
            owner: AtomicUsize::new(me),
            frame: AtomicPtr::new(ptr::null_mut()),
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        let new = slot as *const Slot as *mut Slot;
        let mut head = SLOTS.load(Ordering::Relaxed);
        loop {
            slot.next.store(head, Ordering::Relaxed);
            match SLOTS.compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        CURRENT.with(|current| current.set(slot));
        Some(slot)
    }

    /// Whether faults are recovered in this process: decided once, installing the handler.
    fn enabled() -> bool {
        static ENABLED: OnceLock<bool> = OnceLock::new();
        *ENABLED.get_or_init(|| arch::prepare() && install_handler())
    }

    fn install_handler() -> bool {
        PAGE_MASK.store(!(crate::sys::page_size() - 1), Ordering::Relaxed);
        // SAFETY: sigaction only reads and writes the structs passed to it.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, ptr::null(), &mut previous) != 0 {
                return false;
            }
            // Published before pmem2's handler can run, so the handler always finds it.
            let _ = PREVIOUS.set(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) = on_sigbus;
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, ptr::null_mut()) == 0
        }
    }

    /// What the assembly block passes to [`run`]: the operation and room for its outcome.
    ///
    /// The operation stays where [`guarded`] holds it and is read through a pointer, field by
    /// field: copying it into this struct would load it with wider accesses than the stores
    /// that wrote it, which cannot be forwarded from the store buffer. After a non-temporal
    /// copy and its fence, such a load waits for the fence to drain, a stall the size of a
    /// small copy.
    struct Call<F, R> {
        op: *const F,
        /// 0 while running, 1 when `out` holds the result, 2 when `panic` holds a payload.
        state: u8,
        out: MaybeUninit<R>,
        panic: MaybeUninit<Box<dyn std::any::Any + Send>>,
    }

    /// Runs the operation of a [`Call`] inside the assembly block. A panic is caught here and
    /// resumed by [`guarded`] after the block.
    ///
    /// # Safety
    /// `call` must point to a live `Call<F, R>` that nothing else accesses during the call,
    /// whose `op` points to a live `F`.
    unsafe extern "C" fn run<R: Copy, F: FnOnce() -> R + Copy>(call: *mut c_void) {
        // SAFETY: per the contract, `guarded` passes its own exclusive `Call<F, R>`.
        let call = unsafe { &mut *call.cast::<Call<F, R>>() };
        let op = call.op;
        // SAFETY: `op` points to the operation, alive in `guarded`'s frame; `F: Copy`.
        match panic::catch_unwind(AssertUnwindSafe(|| unsafe { ptr::read(op) }())) {
            Ok(value) => {
                call.out.write(value);
                call.state = 1;
            }
            Err(payload) => {
                call.panic.write(payload);
                call.state = 2;
            }
        }
    }

    /// Runs `op`; a SIGBUS that `op` causes on a page overlapping one of `spans` ends it
    /// early and is returned as `Err(Fault)`. `op` must be one of pmem2's raw copy or flush
    /// routines (see the module documentation for why).
    #[inline]
    pub(crate) fn guarded<R: Copy, F: FnOnce() -> R + Copy>(spans: [Span; 2], op: F) -> Result<R, Fault> {
        let Some(slot) = current_slot() else {
            return Ok(op());
        };
        if !slot.frame.load(Ordering::Relaxed).is_null() {
            // Only a signal handler that interrupted a guarded call gets here.
            return Ok(slot.unarmed(op));
        }
        let mut frame = Frame {
            spans,
            fault_addr: MaybeUninit::uninit(),
            fault_code: MaybeUninit::uninit(),
            save: MaybeUninit::uninit(),
        };
        let frame_ptr: *mut Frame = &mut frame;
        let mut call = Call {
            op: &op,
            state: 0,
            out: MaybeUninit::uninit(),
            panic: MaybeUninit::uninit(),
        };
        slot.frame.store(frame_ptr, Ordering::Relaxed);
        // The handler runs on this thread: a compiler fence is what orders the frame's
        // contents and the arming before the operation as the handler observes them.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: `call` is ours and outlives the block; `run::<R, F>` matches it
        // and does not unwind; the save area is this call's and nothing else touches it until
        // the call returns; the frames a recovery abandons are `run`'s and `op`'s, which own
        // nothing (`F` and `R` are `Copy`, and `op` is a raw copy or flush routine).
        let faulted = unsafe {
            arch::guarded_call(
                (&mut call as *mut Call<F, R>).cast(),
                run::<R, F>,
                (*frame_ptr).save.as_mut_ptr(),
            )
        };
        compiler_fence(Ordering::SeqCst);
        slot.frame.store(ptr::null_mut(), Ordering::Relaxed);
        if faulted != 0 {
            // SAFETY: the handler wrote both fields before redirecting the thread, which is
            // the only way the block yields 1.
            return Err(unsafe {
                Fault {
                    addr: ptr::read_volatile(&(*frame_ptr).fault_addr).assume_init(),
                    code: ptr::read_volatile(&(*frame_ptr).fault_code).assume_init(),
                }
            });
        }
        match call.state {
            // SAFETY: `run` wrote `out` before setting state 1.
            1 => Ok(unsafe { call.out.assume_init() }),
            // SAFETY: `run` wrote `panic` before setting state 2; it is read once.
            2 => panic::resume_unwind(unsafe { call.panic.assume_init_read() }),
            _ => unreachable!("the assembly block yielded 0 without running the operation"),
        }
    }

    impl Slot {
        /// Runs `op` with this slot disarmed, then re-arms it.
        fn unarmed<R, F: FnOnce() -> R>(&self, op: F) -> R {
            let outer = self.frame.swap(ptr::null_mut(), Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            let value = op();
            compiler_fence(Ordering::SeqCst);
            self.frame.store(outer, Ordering::Relaxed);
            value
        }
    }

    /// Under AddressSanitizer (`scripts/asan` builds with `--cfg pmem2_asan`): the recovery
    /// abandons the operation's frames without their epilogues, which would leave their
    /// stack variables poisoned, and later calls reusing that stack would be reported as
    /// use-after-scope. ASan's own longjmp does the same: this unpoisons the thread's stacks
    /// (the default one and the signal stack), touching only shadow memory.
    #[inline]
    fn asan_abandon_frames() {
        #[cfg(pmem2_asan)]
        {
            extern "C" {
                fn __asan_handle_no_return();
            }
            // SAFETY: an ASan runtime entry meant for this moment (a jump that skips frames);
            // it reads the thread's stack bounds (sigaltstack is async-signal-safe) and
            // writes shadow memory only.
            unsafe { __asan_handle_no_return() }
        }
    }

    /// The slot of thread `me` if it is armed, walking the list with atomic loads only.
    fn armed_slot(me: usize) -> Option<&'static Slot> {
        let mut cursor = SLOTS.load(Ordering::Acquire);
        // SAFETY: list entries are leaked slots, never freed.
        while let Some(slot) = unsafe { cursor.as_ref() } {
            if slot.owner.load(Ordering::Acquire) == me && !slot.frame.load(Ordering::Relaxed).is_null() {
                return Some(slot);
            }
            cursor = slot.next.load(Ordering::Acquire);
        }
        None
    }

    /// pmem2's SIGBUS handler. Async-signal-safe: atomic loads and stores, `pthread_self`,
    /// `sigaction`, `pthread_sigmask`, `raise`, and the previous handler.
    extern "C" fn on_sigbus(sig: c_int, info: *mut libc::siginfo_t, uctx: *mut c_void) {
        // SAFETY: errno of this thread; the interrupted code must find it unchanged.
        let errno = unsafe { *libc::__errno_location() };
        // SAFETY: the kernel's arguments for this invocation.
        if !unsafe { recover(info, uctx) } {
            // SAFETY: as above.
            unsafe { chain(sig, info, uctx) };
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// Redirects the thread to its recovery stub if the fault belongs to its armed guarded
    /// call.
    ///
    /// # Safety
    /// `info` and `uctx` must be the running SIGBUS handler's arguments.
    unsafe fn recover(info: *mut libc::siginfo_t, uctx: *mut c_void) -> bool {
        let Some(slot) = armed_slot(thread_id()) else {
            return false;
        };
        if info.is_null() || uctx.is_null() {
            return false;
        }
        // SAFETY: a siginfo_t from the kernel.
        let code = unsafe { (*info).si_code };
        // Access faults reported by the kernel for this thread's own access; a SIGBUS sent by
        // another process or BUS_MCEERR_AO (poison found, not consumed) are not.
        if !matches!(code, libc::BUS_ADRERR | libc::BUS_OBJERR | libc::BUS_MCEERR_AR) {
            return false;
        }
        // SAFETY: for these codes the kernel filled si_addr.
        let addr = unsafe { (*info).si_addr() } as usize;
        let frame = slot.frame.load(Ordering::Relaxed);
        // SAFETY: an armed slot's frame is the live `Frame` of the guarded call this thread
        // is inside (this handler interrupted it), in `guarded`'s stack frame.
        let frame = unsafe { &mut *frame };
        if !frame.covers(addr) {
            return false;
        }
        slot.frame.store(ptr::null_mut(), Ordering::Relaxed);
        frame.fault_addr.write(addr);
        frame.fault_code.write(code);
        asan_abandon_frames();
        // SAFETY: `uctx` is this handler's context for a fault on this thread. A
        // kernel-reported fault in the spans comes from the operation's own accesses, which
        // run inside the assembly block after it filled `save`, and the call is still running.
        unsafe { arch::resume_at_recovery(uctx, frame.save.as_mut_ptr()) };
        true
    }

    /// Hands a SIGBUS that is not pmem2's to the action installed before pmem2's.
    ///
    /// # Safety
    /// The running SIGBUS handler's arguments.
    unsafe fn chain(sig: c_int, info: *mut libc::siginfo_t, uctx: *mut c_void) {
        // SAFETY: a siginfo_t from the kernel (or null).
        let code = unsafe { info.as_ref() }.map_or(0, |info| info.si_code);
        // A fault of the interrupted instruction: it runs again when the handler returns.
        // Positive codes come from the kernel; BUS_MCEERR_AO is asynchronous.
        let synchronous = code > 0 && code != libc::BUS_MCEERR_AO;
        let previous = PREVIOUS.get();
        let handler = previous.map_or(libc::SIG_DFL, |action| action.sa_sigaction);
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            if handler == libc::SIG_IGN && !synchronous {
                return; // ignored, as the kernel would have
            }
            // The kernel applies the default to a fault even when SIGBUS is ignored.
            reset_default(sig);
            if !synchronous {
                // SAFETY: raise is async-signal-safe; SIGBUS is blocked in this handler, so
                // the signal is delivered, with the default action, when it returns.
                unsafe { libc::raise(sig) };
            }
            return;
        }
        let Some(action) = previous else { return };
        // The previous handler may leave by a jump of its own and never come back to an
        // interrupted guarded call: that call must not stay armed with a dead save area.
        if let Some(slot) = armed_slot(thread_id()) {
            slot.frame.store(ptr::null_mut(), Ordering::Relaxed);
        }
        if action.sa_flags & libc::SA_RESETHAND != 0 {
            reset_default(sig);
        }
        // SAFETY: sigset operations on local sets; pthread_sigmask is async-signal-safe.
        let saved_mask = unsafe {
            let mut saved: libc::sigset_t = std::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, &action.sa_mask, &mut saved);
            if action.sa_flags & libc::SA_NODEFER != 0 {
                let mut this: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut this);
                libc::sigaddset(&mut this, sig);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &this, ptr::null_mut());
            }
            saved
        };
        if action.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: with SA_SIGINFO the previous action's handler has this signature.
            let previous = unsafe {
                std::mem::transmute::<libc::sighandler_t, extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void)>(
                    handler,
                )
            };
            previous(sig, info, uctx);
        } else {
            // SAFETY: without SA_SIGINFO the previous action's handler takes the signal only.
            let previous = unsafe { std::mem::transmute::<libc::sighandler_t, extern "C" fn(c_int)>(handler) };
            previous(sig);
        }
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved_mask, ptr::null_mut()) };
    }

    fn reset_default(sig: c_int) {
        // SAFETY: sigaction with a zeroed action (SIG_DFL, no flags) is async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, ptr::null_mut());
        }
    }
}

#[cfg(all(test, target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A shared mapping of two pages of a file truncated to one: the second page raises
    /// SIGBUS (BUS_ADRERR) on any access.
    struct LostPage {
        _file: std::fs::File,
        base: *mut u8,
        page: usize,
    }

    impl LostPage {
        fn new() -> LostPage {
            let page = crate::sys::page_size();
            let file = tempfile::tempfile().unwrap();
            file.set_len(2 * page as u64).unwrap();
            // SAFETY: a fresh shared mapping of our own file, unmapped on drop.
            let base = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    2 * page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(base, libc::MAP_FAILED);
            file.set_len(page as u64).unwrap();
            LostPage {
                _file: file,
                base: base.cast(),
                page,
            }
        }

        fn kept(&self) -> *mut u8 {
            self.base
        }

        fn lost(&self) -> *mut u8 {
            self.base.wrapping_add(self.page + 8)
        }
    }

    impl Drop for LostPage {
        fn drop(&mut self) {
            // SAFETY: the mapping made in `new`.
            unsafe { libc::munmap(self.base.cast(), 2 * self.page) };
        }
    }

    fn read_byte(p: *const u8) -> u8 {
        // SAFETY: callers pass addresses inside a LostPage mapping.
        unsafe { p.read_volatile() }
    }

    #[test]
    fn a_fault_in_a_span_is_returned_with_address_and_code() {
        let lost = LostPage::new();
        let p = lost.lost().cast_const();
        let fault = guarded([Span::new(p, 1), Span::NONE], move || read_byte(p)).unwrap_err();
        assert_eq!(
            fault,
            Fault {
                addr: p as usize,
                code: libc::BUS_ADRERR
            }
        );
        assert_eq!(fault.code_name(), "BUS_ADRERR");
        // The second span counts as well, and a page overlapping a span is enough.
        let fault = guarded([Span::NONE, Span::new(p.wrapping_add(100), 1)], move || read_byte(p));
        assert_eq!(fault.unwrap_err().addr, p as usize);
        let kept = lost.kept().cast_const();
        assert_eq!(
            guarded([Span::new(kept, 1), Span::NONE], move || read_byte(kept)),
            Ok(0)
        );
    }

    #[test]
    fn a_panic_in_the_operation_propagates_and_leaves_the_thread_disarmed() {
        let caught = std::panic::catch_unwind(|| {
            guarded([Span::NONE, Span::NONE], || -> u8 { panic!("inside the guarded call") })
        })
        .unwrap_err();
        assert_eq!(caught.downcast_ref::<&str>(), Some(&"inside the guarded call"));
        let lost = LostPage::new();
        let p = lost.lost().cast_const();
        assert!(guarded([Span::new(p, 1), Span::NONE], move || read_byte(p)).is_err());
    }

    /// A guarded call inside a guarded call (only a signal handler can make one) runs with
    /// the outer call disarmed, and re-arms it afterwards.
    #[test]
    fn a_nested_call_runs_unarmed_and_the_outer_call_stays_guarded() {
        let lost = LostPage::new();
        let (kept, p) = (lost.kept().cast_const(), lost.lost().cast_const());
        let outer = guarded([Span::new(p, 1), Span::NONE], move || {
            let inner = guarded([Span::new(kept, 1), Span::NONE], move || read_byte(kept));
            assert_eq!(inner, Ok(0));
            read_byte(p)
        });
        assert_eq!(outer.unwrap_err().addr, p as usize);
    }

    /// A fault outside the call's spans is not pmem2's to recover: the process dies of
    /// SIGBUS (checked in a re-executed child).
    #[test]
    fn a_fault_outside_the_spans_kills_the_process() {
        const CHILD: &str = "PMEM2_FAULT_UNIT_CHILD";
        let name = "fault::tests::a_fault_outside_the_spans_kills_the_process";
        if std::env::var_os(CHILD).is_some() {
            let none = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: setrlimit reads the struct it is given; no core file for this death.
            assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) }, 0);
            let lost = LostPage::new();
            let (kept, p) = (lost.kept().cast_const(), lost.lost().cast_const());
            let _ = guarded([Span::new(kept, 1), Span::NONE], move || read_byte(p));
            println!("survived a fault outside the spans");
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGBUS),
            "{:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

//! The aarch64 half of fault recovery (see `crate::fault`): the trampoline that runs a
//! guarded operation, the stub a recovered fault resumes at, and the rewrite of the
//! interrupted context that sends the thread there.
//!
//! # Safety
//! [`guarded_call`] and [`recover`] are naked functions written for the AAPCS64. The
//! trampoline stores exactly the state a function must preserve for its caller (X19–X28,
//! the frame pointer X29, the link register X30, SP and the low halves D8–D15 of V8–V15)
//! before it calls the operation; the stub restores that state and returns 1 through the
//! saved link register, as if the trampoline had returned. Nothing else is abandoned: the
//! frames below the trampoline belong to the operation, which `crate::fault` restricts to
//! plain copy and flush routines.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// What [`guarded_call`] saves and [`recover`] restores: X19–X30, SP, D8–D15.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SaveArea {
    regs: [u64; 21],
}

/// Runs `func(ctx)` and returns 0; or returns 1 when a fault handler redirected the thread
/// to [`recover`] while `func` ran.
///
/// # Safety
/// `save` must be valid for writes and stay untouched by anything but this thread's
/// recovery until the call returns. `func` must not unwind. If a fault can be recovered
/// while `func` runs, every frame below this one must be safe to discard without running
/// any code (no destructors, locks or allocations to release).
#[unsafe(naked)]
pub(crate) unsafe extern "C" fn guarded_call(
    ctx: *mut c_void,
    func: unsafe extern "C" fn(*mut c_void),
    save: *mut SaveArea,
) -> u32 {
    // x0 = ctx, x1 = func, x2 = save.
    core::arch::naked_asm!(
        "stp x19, x20, [x2, #0]",
        "stp x21, x22, [x2, #16]",
        "stp x23, x24, [x2, #32]",
        "stp x25, x26, [x2, #48]",
        "stp x27, x28, [x2, #64]",
        "stp x29, x30, [x2, #80]",
        "mov x9, sp",
        "str x9, [x2, #96]",
        "stp d8, d9, [x2, #104]",
        "stp d10, d11, [x2, #120]",
        "stp d12, d13, [x2, #136]",
        "stp d14, d15, [x2, #152]",
        "stp x29, x30, [sp, #-16]!",
        "mov x29, sp",
        "blr x1",
        "ldp x29, x30, [sp], #16",
        "mov w0, #0",
        "ret",
    )
}

/// Where a recovered thread resumes: restores the saved registers from the save area in X0
/// and returns 1 to the trampoline's caller. Reached only through a rewritten signal
/// context, never called.
#[unsafe(naked)]
unsafe extern "C" fn recover(save: *const SaveArea) -> ! {
    core::arch::naked_asm!(
        "ldp x19, x20, [x0, #0]",
        "ldp x21, x22, [x0, #16]",
        "ldp x23, x24, [x0, #32]",
        "ldp x25, x26, [x0, #48]",
        "ldp x27, x28, [x0, #64]",
        "ldp x29, x30, [x0, #80]",
        "ldr x9, [x0, #96]",
        "mov sp, x9",
        "ldp d8, d9, [x0, #104]",
        "ldp d10, d11, [x0, #120]",
        "ldp d12, d13, [x0, #136]",
        "ldp d14, d15, [x0, #152]",
        "mov w0, #1",
        "ret",
    )
}

/// Decides, outside any signal handler, whether recovery works in this process: always on
/// aarch64 Linux (the stub returns through the restored link register, which pointer
/// authentication, if the caller uses it, checks in the caller's own epilogue as usual).
pub(crate) fn prepare() -> bool {
    true
}

/// Rewrites the interrupted context of a SIGBUS handler so that the return from the handler
/// (sigreturn) lands in [`recover`] with `save` as its argument. sigreturn restores the signal
/// mask, the alternate-stack state and the FP/SIMD state of the interrupted thread.
///
/// # Safety
/// `uctx` must be the `ucontext_t` the kernel passed to the running handler for a fault on
/// this thread, and `save` the area the thread's current [`guarded_call`] filled.
pub(crate) unsafe fn resume_at_recovery(uctx: *mut c_void, save: *mut SaveArea) {
    let stub: unsafe extern "C" fn(*const SaveArea) -> ! = recover;
    let uc = uctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel's ucontext_t for this handler invocation, valid and ours to modify
    // until the handler returns.
    let mcontext = unsafe { &mut (*uc).uc_mcontext };
    mcontext.pc = stub as usize as _;
    mcontext.regs[0] = save as usize as _;
}

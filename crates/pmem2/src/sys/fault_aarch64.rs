//! The aarch64 half of fault recovery (see `crate::fault`): the call that runs a guarded
//! operation, the stub a recovered fault resumes at, and the rewrite of the interrupted
//! context that sends the thread there.
//!
//! # Safety
//! [`guarded_call`] is an inline assembly block that calls the operation as an ordinary
//! AAPCS64 call. It declares as clobbered every register the call may leave changed, so the
//! compiler keeps nothing in them across the block, except X19, X29 and SP, which the
//! compiler reserves: the block saves those, and [`recover`] restores them and re-enters
//! the block right after the call with W0 = 1, as if the call had returned. Nothing else is
//! abandoned: the frames below the block belong to the operation, which `crate::fault`
//! restricts to plain copy and flush routines.
#![allow(unsafe_code)]

use std::ffi::c_void;

/// What [`guarded_call`] saves and [`recover`] restores: X19, the frame pointer X29, SP and
/// the resume address.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SaveArea {
    regs: [u64; 4],
}

/// Runs `func(ctx)` and returns 0; or returns 1 when a fault handler redirected the thread
/// to [`recover`] while `func` ran.
///
/// # Safety
/// `save` must be valid for writes and stay untouched by anything but this thread's
/// recovery until the call returns. `func` must not unwind. If a fault can be recovered
/// while `func` runs, every frame below this one must be safe to discard without running
/// any code (no destructors, locks or allocations to release).
#[inline(always)]
pub(crate) unsafe fn guarded_call(
    ctx: *mut c_void,
    func: unsafe extern "C" fn(*mut c_void),
    save: *mut SaveArea,
) -> u32 {
    let faulted: usize;
    // SAFETY: per the contract. The block calls `func` as an ordinary C call and declares
    // every register the callee may change as clobbered (X20-X28 and V8-V15 explicitly,
    // the rest through the C ABI), except X19, X29 and SP, which LLVM reserves: those are
    // saved here and restored by the stub, which resumes at label 2 with W0 = 1. The
    // `bti j` there (a no-op without BTI) is the landing pad for the stub's branch.
    unsafe {
        core::arch::asm!(
            "str x19, [{save}]",
            "str x29, [{save}, #8]",
            "mov x9, sp",
            "str x9, [{save}, #16]",
            "adr x9, 2f",
            "str x9, [{save}, #24]",
            "blr {func}",
            "mov w0, #0",
            "2:",
            "hint #36",
            save = in(reg) save,
            func = in(reg) func,
            inlateout("x0") ctx as usize => faulted,
            out("x9") _,
            out("x20") _,
            out("x21") _,
            out("x22") _,
            out("x23") _,
            out("x24") _,
            out("x25") _,
            out("x26") _,
            out("x27") _,
            out("x28") _,
            out("v8") _,
            out("v9") _,
            out("v10") _,
            out("v11") _,
            out("v12") _,
            out("v13") _,
            out("v14") _,
            out("v15") _,
            clobber_abi("C"),
        );
    }
    faulted as u32
}

/// Where a recovered thread resumes: restores X19, X29 and SP from the save area in X0 and
/// branches back into [`guarded_call`] with W0 = 1. Reached only through a rewritten signal
/// context, never called.
#[unsafe(naked)]
unsafe extern "C" fn recover(save: *const SaveArea) -> ! {
    core::arch::naked_asm!(
        "ldr x19, [x0]",
        "ldr x29, [x0, #8]",
        "ldr x9, [x0, #16]",
        "mov sp, x9",
        "ldr x9, [x0, #24]",
        "mov w0, #1",
        "br x9",
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

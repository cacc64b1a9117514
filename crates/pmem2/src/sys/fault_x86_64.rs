//! The x86_64 half of fault recovery (see `crate::fault`): the call that runs a guarded
//! operation, the stubs a recovered fault resumes at, and the rewrite of the interrupted
//! context that sends the thread there.
//!
//! # Safety
//! [`guarded_call`] is an inline assembly block that calls the operation as an ordinary
//! System V AMD64 call. It declares as clobbered every register the call may leave changed
//! (R12–R15 explicitly, the rest through the C ABI), so the compiler keeps nothing in them
//! across the block, except RBX, RBP and RSP, which the compiler reserves: the block saves
//! those, and a recovery stub restores them and re-enters the block right after the call
//! with EAX = 1, as if the call had returned. Nothing else is abandoned: the frames below
//! the block belong to the operation, which `crate::fault` restricts to plain copy and
//! flush routines. Declaring clobbers instead of saving every callee-saved register keeps
//! the stores on the data path to the few the compiler needs anyway.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`guarded_call`] saves and a recovery stub restores: RBX, RBP, the stack pointer
/// and the resume address.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SaveArea {
    regs: [u64; 4],
}

/// Runs `func(ctx)` and returns 0; or returns 1 when a fault handler redirected the thread
/// to a recovery stub while `func` ran.
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
    let faulted: u32;
    // SAFETY: per the contract. The block calls `func` as an ordinary C call (the stack is
    // call-aligned on entry to an asm block without `nostack`) and declares every register
    // the callee may change as clobbered, except RBX, RBP and RSP, which LLVM reserves: those
    // are saved here and restored by the stub, which resumes at label 2 with EAX = 1.
    unsafe {
        core::arch::asm!(
            "mov [{save}], rbx",
            "mov [{save} + 8], rbp",
            "mov [{save} + 16], rsp",
            "lea rsi, [rip + 2f]",
            "mov [{save} + 24], rsi",
            "call {func}",
            "xor eax, eax",
            "2:",
            save = in(reg) save,
            func = in(reg) func,
            out("rsi") _,
            in("rdi") ctx,
            lateout("eax") faulted,
            out("r12") _,
            out("r13") _,
            out("r14") _,
            out("r15") _,
            clobber_abi("C"),
        );
    }
    faulted
}

/// The instructions both stubs end with: restore RBX, RBP and RSP from the save area in RDI,
/// clear the direction flag (the interrupted copy may have set it, and the ABI requires it
/// clear), and resume after the call in [`guarded_call`] with EAX = 1.
macro_rules! restore_and_resume {
    () => {
        concat!(
            "cld\n",
            "mov rbx, [rdi]\n",
            "mov rbp, [rdi + 8]\n",
            "mov rsp, [rdi + 16]\n",
            "mov eax, 1\n",
            "jmp qword ptr [rdi + 24]\n",
        )
    };
}

/// Where a recovered thread resumes (CPUs without AVX). Reached only through a rewritten
/// signal context, never called.
#[unsafe(naked)]
unsafe extern "C" fn recover(save: *const SaveArea) -> ! {
    core::arch::naked_asm!(restore_and_resume!())
}

/// As [`recover`], with a VZEROUPPER first: the interrupted AVX copy may have left the upper
/// halves of the YMM/ZMM registers dirty, which would slow down later SSE code.
#[unsafe(naked)]
unsafe extern "C" fn recover_avx(save: *const SaveArea) -> ! {
    core::arch::naked_asm!("vzeroupper", restore_and_resume!())
}

/// Whether the CPU has AVX (so the stub may execute VZEROUPPER); set by [`prepare`].
static HAS_AVX: AtomicBool = AtomicBool::new(false);

/// Decides, once and outside any signal handler, whether recovery works in this process and
/// which stub to use. Recovery is refused under a CET shadow stack: resuming at the stub
/// skips returns the shadow stack expects, and the next return would fault.
pub(crate) fn prepare() -> bool {
    HAS_AVX.store(std::is_x86_feature_detected!("avx"), Ordering::Relaxed);
    !shadow_stack_enabled()
}

fn shadow_stack_enabled() -> bool {
    const ARCH_SHSTK_STATUS: libc::c_long = 0x5005;
    const ARCH_SHSTK_SHSTK: u64 = 1;
    let mut features: u64 = 0;
    // SAFETY: ARCH_SHSTK_STATUS writes one u64 to the pointer, which points to `features`;
    // kernels without shadow stack support fail with EINVAL and write nothing.
    let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_SHSTK_STATUS, &mut features as *mut u64) };
    rc == 0 && features & ARCH_SHSTK_SHSTK != 0
}

/// Rewrites the interrupted context of a SIGBUS handler so that the return from the handler
/// (sigreturn) lands in the recovery stub with `save` as its argument. sigreturn restores the
/// signal mask, the alternate-stack state and the FPU state of the interrupted thread, so the
/// stub starts with exactly the state the faulting instruction had, plus these two registers.
///
/// # Safety
/// `uctx` must be the `ucontext_t` the kernel passed to the running handler for a fault on
/// this thread, and `save` the area the thread's current [`guarded_call`] filled.
pub(crate) unsafe fn resume_at_recovery(uctx: *mut c_void, save: *mut SaveArea) {
    let stub: unsafe extern "C" fn(*const SaveArea) -> ! = if HAS_AVX.load(Ordering::Relaxed) {
        recover_avx
    } else {
        recover
    };
    let uc = uctx.cast::<libc::ucontext_t>();
    // SAFETY: the kernel's ucontext_t for this handler invocation, valid and ours to modify
    // until the handler returns.
    let gregs = unsafe { &mut (*uc).uc_mcontext.gregs };
    gregs[libc::REG_RIP as usize] = stub as usize as libc::greg_t;
    gregs[libc::REG_RDI as usize] = save as usize as libc::greg_t;
}

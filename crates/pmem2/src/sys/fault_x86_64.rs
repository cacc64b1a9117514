//! The x86_64 half of fault recovery (see `crate::fault`): the trampoline that runs a
//! guarded operation, the stub a recovered fault resumes at, and the rewrite of the
//! interrupted context that sends the thread there.
//!
//! # Safety
//! [`guarded_call`] and the recovery stubs are naked functions written for the System V
//! AMD64 ABI. The trampoline stores exactly the state a function must preserve for its
//! caller (RBX, RBP, R12–R15, the stack pointer and the return address) before it calls the
//! operation; a stub restores that state and returns 1 to the trampoline's caller, as if the
//! trampoline had returned. Nothing else is abandoned: the frames below the trampoline belong
//! to the operation, which `crate::fault` restricts to plain copy and flush routines.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

/// What [`guarded_call`] saves and a recovery stub restores: RBX, RBP, R12, R13, R14, R15,
/// the stack pointer the trampoline's caller has after the return, and the return address.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct SaveArea {
    regs: [u64; 8],
}

/// Runs `func(ctx)` and returns 0; or returns 1 when a fault handler redirected the thread
/// to a recovery stub while `func` ran.
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
    // rdi = ctx, rsi = func, rdx = save. On entry [rsp] is the return address and rsp is
    // 8 below a 16-byte boundary, so one more 8-byte adjustment aligns the call.
    core::arch::naked_asm!(
        "mov [rdx], rbx",
        "mov [rdx + 8], rbp",
        "mov [rdx + 16], r12",
        "mov [rdx + 24], r13",
        "mov [rdx + 32], r14",
        "mov [rdx + 40], r15",
        "lea rax, [rsp + 8]",
        "mov [rdx + 48], rax",
        "mov rax, [rsp]",
        "mov [rdx + 56], rax",
        "sub rsp, 8",
        "call rsi",
        "add rsp, 8",
        "xor eax, eax",
        "ret",
    )
}

/// The instructions both stubs end with: restore the saved registers from the save area in
/// RDI, clear the direction flag (the interrupted copy may have set it, and the ABI requires
/// it clear at a return), and return 1 to the trampoline's caller with its stack pointer.
macro_rules! restore_and_return_one {
    () => {
        concat!(
            "cld\n",
            "mov rbx, [rdi]\n",
            "mov rbp, [rdi + 8]\n",
            "mov r12, [rdi + 16]\n",
            "mov r13, [rdi + 24]\n",
            "mov r14, [rdi + 32]\n",
            "mov r15, [rdi + 40]\n",
            "mov rsp, [rdi + 48]\n",
            "mov eax, 1\n",
            "jmp qword ptr [rdi + 56]\n",
        )
    };
}

/// Where a recovered thread resumes (CPUs without AVX). Reached only through a rewritten
/// signal context, never called.
#[unsafe(naked)]
unsafe extern "C" fn recover(save: *const SaveArea) -> ! {
    core::arch::naked_asm!(restore_and_return_one!())
}

/// As [`recover`], with a VZEROUPPER first: the interrupted AVX copy may have left the upper
/// halves of the YMM/ZMM registers dirty, which would slow down later SSE code.
#[unsafe(naked)]
unsafe extern "C" fn recover_avx(save: *const SaveArea) -> ! {
    core::arch::naked_asm!("vzeroupper", restore_and_return_one!())
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

//! `Config`: how to map, in both API forms.

use crate::args::{fd_arg, int_arg, u64_arg};
use crate::error::OrThrow;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Store granularity, from the finest to the coarsest (`enum pmem2_granularity`).
#[napi]
pub enum Granularity {
    /// Stores are durable once they leave the CPU (eADR, private or anonymous mappings).
    Byte = 0,
    /// Cache lines must be flushed: DAX with MAP_SYNC.
    CacheLine = 1,
    /// Pages must be written back with msync: the page cache.
    Page = 2,
}

/// Whether writes reach the file (`enum pmem2_sharing_type`).
#[napi]
pub enum Sharing {
    /// Writes go to the file (MAP_SHARED).
    Shared = 0,
    /// Copy-on-write; the file never changes (MAP_PRIVATE).
    Private = 1,
}

/// The kernel's `PROT_READ | PROT_WRITE | PROT_EXEC` (1, 2, 4), which C programs pass to mmap.
const POSIX_PROT_BITS: u32 = 0b111;

/// A `RangeError` for a kernel `PROT_*` value given to `setProtection`, naming the pmem2
/// constants to use instead; `code` and `errno` stay libpmem2's (`PMEM2_E_INVALID_PROT_FLAG`),
/// so code ported from C that checks them keeps working.
fn posix_protection(env: &Env, value: u32) -> Error {
    let names: Vec<&str> = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")]
        .into_iter()
        .filter(|&(bit, _)| value & bit != 0)
        .map(|(_, name)| name)
        .collect();
    let kind = pmem2::ErrorKind::InvalidProtFlag;
    crate::error::range_coded(
        env,
        kind.name(),
        kind.code(),
        &format!(
            "setProtection({value}): {value} is the kernel's {}; pmem2 takes libpmem2's PROT_* constants \
             (PROT_READ = 1 << 30, PROT_WRITE = 1 << 31, PROT_EXEC = 1 << 29): pass {} from pmem2",
            names.join(" | "),
            names.join(" | ")
        ),
    )
}

/// A reusable description of a mapping (`struct pmem2_config`).
///
/// ```ts
/// const config = new Config()
/// config.setRequiredStoreGranularity(Granularity.Page)
/// config.setOffset(0)
/// config.setLength(4096n)
/// ```
#[napi]
pub struct Config {
    pub(crate) inner: pmem2::Config,
}

#[napi]
impl Config {
    /// Offset 0, length 0 (to the end), shared, read-write, granularity not set.
    #[napi(constructor, catch_unwind)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Config {
        Config {
            inner: pmem2::Config::new(),
        }
    }

    /// The coarsest granularity the program can work with; mapping fails with
    /// `PMEM2_E_GRANULARITY_NOT_SUPPORTED` if the platform only offers a coarser one.
    #[napi(catch_unwind, ts_args_type = "granularity: Granularity")]
    pub fn set_required_store_granularity(&mut self, env: Env, granularity: Unknown) -> Result<()> {
        let value = int_arg(&env, &granularity, "granularity", i32::MIN.into(), i32::MAX.into())?;
        let granularity = pmem2::Granularity::try_from(value).or_throw(&env)?;
        self.inner.set_required_store_granularity(granularity);
        Ok(())
    }

    /// Where the mapping starts in the source: a multiple of `source.alignment`, at most
    /// 2^63-1 (`PMEM2_E_OFFSET_OUT_OF_RANGE` above).
    #[napi(catch_unwind, ts_args_type = "offset: number | bigint")]
    pub fn set_offset(&mut self, env: Env, offset: Unknown) -> Result<()> {
        let offset = u64_arg(&env, &offset, "offset")?;
        self.inner.set_offset(offset).or_throw(&env)?;
        Ok(())
    }

    /// How many bytes to map; 0 maps to the end of the source.
    #[napi(catch_unwind, ts_args_type = "length: number | bigint")]
    pub fn set_length(&mut self, env: Env, length: Unknown) -> Result<()> {
        let length = u64_arg(&env, &length, "length")?;
        self.inner.set_length(length);
        Ok(())
    }

    /// `Sharing.Shared` (the default) or `Sharing.Private`.
    #[napi(catch_unwind, ts_args_type = "sharing: Sharing")]
    pub fn set_sharing(&mut self, env: Env, sharing: Unknown) -> Result<()> {
        let value = int_arg(&env, &sharing, "sharing", i32::MIN.into(), i32::MAX.into())?;
        self.inner.set_sharing(pmem2::Sharing::try_from(value).or_throw(&env)?);
        Ok(())
    }

    /// A combination of `PROT_READ`, `PROT_WRITE` and `PROT_EXEC`, or `PROT_NONE`.
    /// `PROT_READ | PROT_WRITE` (negative in JavaScript) is accepted. These are libpmem2's
    /// values (1 << 29 .. 1 << 31): the kernel's 1, 2, 3 … 7 are a `RangeError` saying so (code
    /// `PMEM2_E_INVALID_PROT_FLAG`); other unknown bits a `Pmem2Error` with that code.
    #[napi(
        catch_unwind,
        ts_generic_types = "P extends number",
        ts_args_type = "protection: ProtectionArg<P>"
    )]
    pub fn set_protection(&mut self, env: Env, protection: Unknown) -> Result<()> {
        // JavaScript's bitwise OR yields a signed 32-bit value; accept both spellings.
        let value = int_arg(&env, &protection, "protection", i32::MIN.into(), u32::MAX.into())? as u32;
        if value != 0 && value & !POSIX_PROT_BITS == 0 {
            return Err(posix_protection(&env, value));
        }
        self.inner
            .set_protection(pmem2::Protection::from_raw(value).or_throw(&env)?);
        Ok(())
    }

    /// Seed form (API 1.0): the file `map(config)` maps. Not duplicated: keep it open
    /// until `map` returns.
    #[napi(catch_unwind, ts_args_type = "fd: number")]
    pub fn set_fd(&mut self, env: Env, fd: Unknown) -> Result<()> {
        self.inner.set_fd(fd_arg(&env, &fd)?);
        Ok(())
    }

    /// Seed form: the size of the file set with `setFd` (`PMEM2_E_FILE_HANDLE_NOT_SET` without one).
    #[napi(catch_unwind)]
    pub fn get_file_size(&self, env: Env) -> Result<f64> {
        Ok(self.inner.file_size().or_throw(&env)? as f64)
    }
}

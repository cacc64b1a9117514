//! The data path of `Mapping`: copies that persist (`memcpy`, `memmove`, `memset`, `write`),
//! many ranges with one drain (`persistRanges`), and `deepFlush`. Each is one call into Rust
//! that copies straight from the caller's bytes, with no intermediate allocation.

use crate::args::{int_arg, usize_arg};
use crate::error::{self, range};
use crate::js;
use crate::mapping::Mapping;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use pmem2::MemFlags;

fn flags_arg(env: &Env, flags: Option<Unknown>) -> Result<MemFlags> {
    let Some(flags) = flags.filter(|f| !matches!(f.get_type(), Ok(ValueType::Undefined))) else {
        return Ok(MemFlags::empty());
    };
    let bits = int_arg(env, &flags, "flags", 0, u32::MAX.into())? as u32;
    MemFlags::from_bits(bits).ok_or_else(|| {
        range(
            env,
            &format!("The value of \"flags\" ({bits}) is not a combination of the MEM_* constants"),
        )
    })
}

/// Where the bytes of a `Uint8Array` argument are.
enum Bytes {
    /// Inside this mapping, at this offset (a view of the mapping itself).
    Within(usize, usize),
    /// Elsewhere: memory the copy may read while it writes the mapping.
    Outside(*const u8, usize),
}

impl Mapping {
    fn bytes(&self, env: &Env, value: &Unknown, name: &str) -> Result<Bytes> {
        let Some((ptr, len)) = js::typed_bytes_ptr(env, value)? else {
            return Err(error::type_error(
                env,
                &format!("The \"{name}\" argument must be a Buffer or Uint8Array"),
            ));
        };
        self.live(env, |m| {
            let base = m.address() as usize;
            let at = ptr as usize;
            Ok(if len > 0 && at >= base && at + len <= base + m.size() {
                Bytes::Within(at - base, len)
            } else {
                Bytes::Outside(ptr, len)
            })
        })
    }

    /// Copies `src` to `dest_offset` with `flags`, whether `src` is a view of this mapping or not.
    #[allow(unsafe_code)]
    fn copy_in(&self, env: &Env, dest_offset: usize, src: Bytes, flags: MemFlags) -> Result<()> {
        self.live(env, |m| match src {
            Bytes::Within(src_offset, len) => m.memmove_within(dest_offset, src_offset, len, flags),
            Bytes::Outside(_, 0) => m.memmove(dest_offset, &[], flags),
            Bytes::Outside(ptr, len) => {
                // SAFETY: napi reported `len` bytes at `ptr` for a Uint8Array of this call; no
                // JavaScript runs until the copy returns, and the bytes do not lie in this
                // mapping (checked in `bytes`), so nothing writes them during the borrow.
                let src = unsafe { std::slice::from_raw_parts(ptr, len) };
                m.memmove(dest_offset, src, flags)
            }
        })
    }
}

#[napi]
impl Mapping {
    /// Copies `src` to `destOffset` and makes it durable (`pmem2_memcpy_fn`): non-temporal
    /// stores from 256 bytes, flushes and a drain, or msync on PAGE mappings. `flags` are
    /// `MEM_*` constants (e.g. `MEM_NONTEMPORAL | MEM_NODRAIN`).
    #[napi(ts_args_type = "destOffset: number | bigint, src: Uint8Array, flags?: number")]
    pub fn memcpy(&self, env: Env, dest_offset: Unknown, src: Unknown, flags: Option<Unknown>) -> Result<()> {
        let dest_offset = usize_arg(&env, &dest_offset, "destOffset")?;
        let flags = flags_arg(&env, flags)?;
        let src = self.bytes(&env, &src, "src")?;
        self.copy_in(&env, dest_offset, src, flags)
    }

    /// As `memcpy`; `src` may overlap the destination (a view of this mapping).
    #[napi(ts_args_type = "destOffset: number | bigint, src: Uint8Array, flags?: number")]
    pub fn memmove(&self, env: Env, dest_offset: Unknown, src: Unknown, flags: Option<Unknown>) -> Result<()> {
        self.memcpy(env, dest_offset, src, flags)
    }

    /// Fills `length` bytes at `destOffset` with `value` and makes them durable (`pmem2_memset_fn`).
    #[napi(ts_args_type = "destOffset: number | bigint, value: number, length: number | bigint, flags?: number")]
    pub fn memset(
        &self,
        env: Env,
        dest_offset: Unknown,
        value: Unknown,
        length: Unknown,
        flags: Option<Unknown>,
    ) -> Result<()> {
        let dest_offset = usize_arg(&env, &dest_offset, "destOffset")?;
        let value = int_arg(&env, &value, "value", 0, 255)? as u8;
        let length = usize_arg(&env, &length, "length")?;
        let flags = flags_arg(&env, flags)?;
        self.live(&env, |m| m.memset(dest_offset, value, length, flags))
    }

    /// Copies `data` to `offset` and persists it, in one call (a `memcpy` with no flags).
    #[napi(ts_args_type = "offset: number | bigint, data: Uint8Array")]
    pub fn write(&self, env: Env, offset: Unknown, data: Unknown) -> Result<()> {
        let offset = usize_arg(&env, &offset, "offset")?;
        let data = self.bytes(&env, &data, "data")?;
        self.copy_in(&env, offset, data, MemFlags::empty())
    }

    /// Flushes every `[offset, length]` range, then drains once. All ranges are checked before
    /// anything is flushed.
    #[napi(ts_args_type = "ranges: ReadonlyArray<readonly [offset: number | bigint, length: number | bigint]>")]
    pub fn persist_ranges(&self, env: Env, ranges: Unknown) -> Result<()> {
        if !ranges.is_array()? {
            return Err(error::type_error(
                &env,
                "The \"ranges\" argument must be an array of [offset, length] pairs",
            ));
        }
        let array = ranges.coerce_to_object()?;
        let count = array.get_array_length()?;
        let mut pairs = Vec::with_capacity(count as usize);
        for i in 0..count {
            let pair: Unknown = array.get_element(i)?;
            if !pair.is_array()? || pair.coerce_to_object()?.get_array_length()? != 2 {
                return Err(error::type_error(
                    &env,
                    &format!("ranges[{i}] must be an [offset, length] pair"),
                ));
            }
            let pair = pair.coerce_to_object()?;
            let offset = usize_arg(&env, &pair.get_element::<Unknown>(0)?, &format!("ranges[{i}][0]"))?;
            let length = usize_arg(&env, &pair.get_element::<Unknown>(1)?, &format!("ranges[{i}][1]"))?;
            pairs.push((offset, length));
        }
        self.live(&env, |m| {
            for &(offset, length) in &pairs {
                m.checked_range(offset, length)?;
            }
            for &(offset, length) in &pairs {
                m.flush(offset, length)?;
            }
            m.drain();
            Ok(())
        })
    }

    /// Flushes `[offset, offset+length)` to the deepest persistence domain (`pmem2_deep_flush`).
    /// Throws `PMEM2_E_DEEP_FLUSH_RANGE` outside the mapping, `PMEM2_E_NOSUPP` for anonymous
    /// mappings.
    #[napi(ts_args_type = "offset: number | bigint, length: number | bigint")]
    pub fn deep_flush(&self, env: Env, offset: Unknown, length: Unknown) -> Result<()> {
        let (offset, length) = (usize_arg(&env, &offset, "offset")?, usize_arg(&env, &length, "length")?);
        self.live(&env, |m| m.deep_flush(offset, length))
    }
}

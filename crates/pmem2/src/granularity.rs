//! Which store granularity a new mapping offers (libpmem2's `get_min_granularity`).

use crate::config::{Granularity, Sharing};

/// The environment variable that overrides the detected granularity of shared file mappings.
pub const FORCE_GRANULARITY_ENV: &str = "PMEM2_FORCE_GRANULARITY";

/// Parses `PMEM2_FORCE_GRANULARITY` as libpmem2 does: `BYTE`, `CACHE_LINE`, `CACHELINE` or
/// `PAGE`, case-insensitive, at most 10 characters; anything else is ignored, with one warning
/// on stderr per process (libpmem2 logs "Invalid value of PMEM2_FORCE_GRANULARITY").
pub(crate) fn forced_granularity() -> Option<Granularity> {
    let value = std::env::var_os(FORCE_GRANULARITY_ENV)?;
    let parsed = value.to_str().and_then(parse_forced);
    if parsed.is_none() {
        warn_invalid(&value.to_string_lossy());
    }
    parsed
}

fn parse_forced(value: &str) -> Option<Granularity> {
    if value.len() > 10 {
        return None;
    }
    match value.to_ascii_uppercase().as_str() {
        "BYTE" => Some(Granularity::Byte),
        "CACHE_LINE" | "CACHELINE" => Some(Granularity::CacheLine),
        "PAGE" => Some(Granularity::Page),
        _ => None,
    }
}

fn warn_invalid(value: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "pmem2: ignoring {FORCE_GRANULARITY_ENV}={value:?}: expected BYTE, CACHE_LINE or PAGE; \
             the detected granularity applies"
        );
    });
}

/// The granularity a file mapping offers. Private mappings are BYTE (their stores never
/// need to reach the file) even before the override is consulted; without MAP_SYNC the page
/// cache is in the way (PAGE); with it, cache lines must be flushed unless eADR holds.
pub(crate) fn available(eadr: bool, map_sync: bool, sharing: Sharing, forced: Option<Granularity>) -> Granularity {
    if sharing == Sharing::Private {
        return Granularity::Byte;
    }
    if let Some(forced) = forced {
        return forced;
    }
    match (map_sync, eadr) {
        (false, _) => Granularity::Page,
        (true, false) => Granularity::CacheLine,
        (true, true) => Granularity::Byte,
    }
}

/// Why a requested granularity is not available, in libpmem2's words.
pub(crate) fn unavailable_reason(available: Granularity) -> &'static str {
    match available {
        Granularity::CacheLine => "the platform doesn't support eADR",
        _ => "fd doesn't point to DAX-enabled file or kernel doesn't support MAP_SYNC flag (Linux >= 4.15)",
    }
}

/// The name libpmem2 users know: `BYTE`, `CACHE_LINE`, `PAGE`.
pub(crate) fn name(granularity: Granularity) -> &'static str {
    match granularity {
        Granularity::Byte => "BYTE",
        Granularity::CacheLine => "CACHE_LINE",
        Granularity::Page => "PAGE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Granularity::*;

    #[test]
    fn forced_values_as_libpmem2_parses_them() {
        for (value, want) in [
            ("page", Some(Page)),
            ("cache_line", Some(CacheLine)),
            ("CaCHe_Line", Some(CacheLine)),
            ("CACHELINE", Some(CacheLine)),
            ("byte", Some(Byte)),
            ("0", None),
            ("", None),
            ("PAGE ", None),
            ("CACHE_LINES", None),
        ] {
            assert_eq!(parse_forced(value), want, "{value:?}");
        }
    }

    // The decision table of libpmem2's pmem2_granularity test (mocked MAP_SYNC and eADR).
    #[test]
    fn decision_table() {
        assert_eq!(available(false, false, Sharing::Shared, None), Page);
        assert_eq!(available(false, true, Sharing::Shared, None), CacheLine);
        assert_eq!(available(true, true, Sharing::Shared, None), Byte);
        assert_eq!(available(true, false, Sharing::Shared, None), Page);
        assert_eq!(available(false, false, Sharing::Private, Some(Page)), Byte);
        assert_eq!(available(false, false, Sharing::Shared, Some(CacheLine)), CacheLine);
    }
}

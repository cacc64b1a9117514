//! `mapFile(path, options)`: open, size, map and close in one call; and the async forms.

use crate::args::{class_arg, int_arg, u64_arg};
use crate::config::Config;
use crate::error::{self, OrThrow};
use crate::js;
use crate::mapping::Mapping;
use crate::source::Source;
use crate::tasks::MapTask;
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// The longest path the kernel accepts, in bytes with its terminating NUL (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// A string path without NUL bytes. A path the kernel would refuse as too long is refused
/// here with the same error, before copying it.
fn path_arg(env: &Env, path: &Unknown) -> Result<String> {
    if path.get_type()? != ValueType::String {
        return Err(error::type_error(env, "The \"path\" argument must be of type string"));
    }
    if js::utf8_length(env, path)? >= PATH_MAX {
        let err = pmem2::Error::new(pmem2::ErrorKind::Os(libc::ENAMETOOLONG), "open: the path is too long");
        return Err(error::pmem2(env, err));
    }
    let path = path.coerce_to_string()?.into_utf8()?.into_owned()?;
    if path.contains('\0') {
        return Err(error::invalid_value(
            env,
            &format!(
                "The argument 'path' must be a string, Uint8Array, or URL without null bytes. Received {}",
                inspect(&path)
            ),
        ));
    }
    Ok(path)
}

/// `util.inspect` of a string as Node's argument errors show it: quoted, control characters
/// escaped, cut after 128 characters.
fn inspect(s: &str) -> String {
    let quote = match (s.contains('\''), s.contains('"'), s.contains('`')) {
        (false, _, _) => '\'',
        (true, false, _) => '"',
        (true, true, false) => '`',
        (true, true, true) => '\'',
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\\' => out.push_str("\\\\"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    if out.chars().count() > 128 {
        out = out.chars().take(128).collect::<String>() + "...";
    }
    out
}

fn bool_field(env: &Env, options: &Object, name: &str) -> Result<Option<bool>> {
    let value: Unknown = options.get_named_property(name)?;
    match value.get_type()? {
        ValueType::Undefined => Ok(None),
        ValueType::Boolean => Ok(Some(value.coerce_to_bool()?)),
        _ => Err(error::type_error(
            env,
            &format!("The \"options.{name}\" property must be of type boolean"),
        )),
    }
}

fn file_options(env: &Env, options: Option<Unknown>) -> Result<pmem2::FileOptions> {
    let mut out = pmem2::FileOptions::default();
    let Some(options) = options.filter(|o| !matches!(o.get_type(), Ok(ValueType::Undefined))) else {
        return Ok(out);
    };
    if options.get_type()? != ValueType::Object {
        return Err(error::type_error(
            env,
            "The \"options\" argument must be of type object",
        ));
    }
    let object = options.coerce_to_object()?;
    reject_unknown_keys(env, &object)?;
    let size: Unknown = object.get_named_property("size")?;
    if size.get_type()? != ValueType::Undefined {
        out.size = Some(u64_arg(env, &size, "options.size")?);
    }
    out.create = bool_field(env, &object, "create")?.unwrap_or(false);
    out.read_only = bool_field(env, &object, "readOnly")?.unwrap_or(false);
    let granularity: Unknown = object.get_named_property("granularity")?;
    if granularity.get_type()? != ValueType::Undefined {
        let value = int_arg(
            env,
            &granularity,
            "options.granularity",
            i32::MIN.into(),
            i32::MAX.into(),
        )?;
        out.granularity = pmem2::Granularity::try_from(value).or_throw(env)?;
    }
    let sharing: Unknown = object.get_named_property("sharing")?;
    if sharing.get_type()? != ValueType::Undefined {
        let value = int_arg(env, &sharing, "options.sharing", i32::MIN.into(), i32::MAX.into())?;
        out.sharing = pmem2::Sharing::try_from(value).or_throw(env)?;
    }
    let offset: Unknown = object.get_named_property("offset")?;
    if offset.get_type()? != ValueType::Undefined {
        out.offset = u64_arg(env, &offset, "options.offset")?;
    }
    let length: Unknown = object.get_named_property("length")?;
    if length.get_type()? != ValueType::Undefined {
        out.length = u64_arg(env, &length, "options.length")?;
    }
    Ok(out)
}

/// The keys `mapFile` reads from its options (`MapFileOptions` in `header.d.ts`).
const OPTION_KEYS: [&str; 7] = [
    "size",
    "create",
    "granularity",
    "readOnly",
    "sharing",
    "offset",
    "length",
];

/// A misspelt option (`sise`) must not be silently ignored: every own enumerable string key
/// must be one `mapFile` reads. A `TypeError` with code `ERR_INVALID_ARG_VALUE`, which Node
/// uses for an argument of the right type holding a value it cannot take.
fn reject_unknown_keys(env: &Env, options: &Object) -> Result<()> {
    let keys = js::own_enumerable_keys(env, options)?;
    for i in 0..keys.get_array_length()? {
        let key: String = keys
            .get_element::<Unknown>(i)?
            .coerce_to_string()?
            .into_utf8()?
            .into_owned()?;
        if !OPTION_KEYS.contains(&key.as_str()) {
            return Err(error::invalid_value(
                env,
                &format!(
                    "Unknown option {}: mapFile takes {}",
                    inspect(&key),
                    OPTION_KEYS.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Opens `path` (creating it and allocating `size` bytes when asked), maps the whole file (or
/// the window `offset`/`length`) and closes the fd. Defaults: existing file, read-write,
/// shared, PAGE granularity. An unknown option key is a `TypeError`.
///
/// ```ts
/// const log = mapFile('/mnt/pmem/log', { size: 1 << 20, create: true })
/// ```
#[napi(catch_unwind, ts_args_type = "path: string, options?: MapFileOptions")]
pub fn map_file(env: Env, path: Unknown, options: Option<Unknown>) -> Result<Mapping> {
    let path = path_arg(&env, &path)?;
    let options = file_options(&env, options)?;
    let (map, alias) = map_file_with_alias(path, &options).or_throw(&env)?;
    Mapping::new(&env, map, alias)
}

/// `pmem2::map_file`, with the private alias a read-only mapping's Buffers use.
fn map_file_with_alias(
    path: String,
    options: &pmem2::FileOptions,
) -> pmem2::Result<(pmem2::Mapping, Option<pmem2::Mapping>)> {
    let (map, alias) = pmem2::map_file_with_private_alias(path, options)?;
    Ok((map, alias.and_then(|alias| alias.ok())))
}

/// `mapFile` on the libuv thread pool. Rejects with the same `Pmem2Error`s.
#[napi(
    catch_unwind,
    ts_args_type = "path: string, options?: MapFileOptions",
    ts_return_type = "Promise<Mapping>"
)]
pub fn map_file_async(env: Env, path: Unknown, options: Option<Unknown>) -> Result<AsyncTask<MapTask>> {
    let path = path_arg(&env, &path)?;
    let options = file_options(&env, options)?;
    Ok(AsyncTask::new(MapTask::new(move || {
        map_file_with_alias(path, &options)
    })))
}

/// `mapNew` on the libuv thread pool. Keep the source's fd open until the promise settles.
#[napi(
    catch_unwind,
    ts_args_type = "config: Config, source: Source",
    ts_return_type = "Promise<Mapping>"
)]
pub fn map_async(env: Env, config: Unknown, source: Unknown) -> Result<AsyncTask<MapTask>> {
    let config = class_arg::<Config>(&env, &config, "config", "Config")?.inner.clone();
    let source = class_arg::<Source>(&env, &source, "source", "Source")?.inner.clone();
    Ok(AsyncTask::new(MapTask::new(move || {
        let map = pmem2::Mapping::new(&config, &source)?;
        let alias = crate::mapping::alias_for(&map, &source);
        Ok((map, alias))
    })))
}

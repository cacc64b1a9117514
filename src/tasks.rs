//! Work that runs on the libuv thread pool: mapping (page-cache setup of large files) and
//! PAGE-granularity persists (msync), so servers do not block their event loop.

use crate::error;
use crate::mapping::Mapping;
use crate::region::{Region, UserHold};
use napi::bindgen_prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Runs a core operation off the JavaScript thread, keeping its error for `reject`, where an
/// env exists to build the `Pmem2Error`.
pub struct CoreTask<T: Send + 'static> {
    job: Option<Box<dyn FnOnce() -> pmem2::Result<T> + Send>>,
    failure: Option<pmem2::Error>,
}

impl<T: Send + 'static> CoreTask<T> {
    fn new(job: impl FnOnce() -> pmem2::Result<T> + Send + 'static) -> CoreTask<T> {
        CoreTask {
            job: Some(Box::new(job)),
            failure: None,
        }
    }

    fn run(&mut self) -> Result<T> {
        let job = self.job.take().ok_or_else(|| Error::from_reason("task already ran"))?;
        // A panic on a pool thread must not unwind into libuv.
        let outcome =
            catch_unwind(AssertUnwindSafe(job)).map_err(|_| Error::from_reason("pmem2: internal error (panic)"))?;
        outcome.map_err(|e| {
            let reason = e.to_string();
            self.failure = Some(e);
            Error::from_reason(reason)
        })
    }

    fn rejection(&mut self, env: &Env, err: Error) -> Error {
        match self.failure.take() {
            Some(e) => error::pmem2(env, e),
            None => err,
        }
    }
}

/// A mapping and the private alias its Buffers use when it is read-only.
type Mapped = (pmem2::Mapping, Option<pmem2::Mapping>);

/// `mapAsync` / `mapFileAsync`.
pub struct MapTask(CoreTask<Mapped>);

impl MapTask {
    pub fn new(job: impl FnOnce() -> pmem2::Result<Mapped> + Send + 'static) -> MapTask {
        MapTask(CoreTask::new(job))
    }
}

impl Task for MapTask {
    type Output = Mapped;
    type JsValue = Mapping;

    fn compute(&mut self) -> Result<Mapped> {
        self.0.run()
    }

    fn resolve(&mut self, env: Env, (map, alias): Mapped) -> Result<Mapping> {
        Mapping::new(&env, map, alias)
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<Mapping> {
        Err(self.0.rejection(&env, err))
    }
}

/// `mapping.persistAsync`. Holds the region as a user, so it stays mapped until the task
/// settles; a concurrent `unmap()` waits for a running msync.
pub struct PersistTask {
    core: CoreTask<()>,
    hold: Option<UserHold>,
}

impl PersistTask {
    /// `length` `None` persists from `offset` to the end of the mapping.
    pub(crate) fn new(region: Arc<Region>, offset: usize, length: Option<usize>) -> PersistTask {
        let hold = UserHold::new(&region);
        PersistTask {
            core: CoreTask::new(move || {
                region.with_live(|m| m.persist(offset, length.unwrap_or_else(|| crate::data_path::rest_of(m, offset))))
            }),
            hold: Some(hold),
        }
    }
}

impl Task for PersistTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        self.core.run()
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }

    fn reject(&mut self, env: Env, err: Error) -> Result<()> {
        Err(self.core.rejection(&env, err))
    }

    fn finally(mut self, env: Env) -> Result<()> {
        if let Some(hold) = self.hold.take() {
            hold.release(&env);
        }
        Ok(())
    }
}

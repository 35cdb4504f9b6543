//! `memoryLimitIo(key, handle)`: limit() on the memory store with the key as its only string.
//!
//! Why: on `Redis.memory()` the crossing costs more than the state change. Profiled (perf, a
//! release build with symbols), `memoryLimit(kind, a, b, c, key, now, rate, out, null)` spent
//! about 200 ns of its 1.3 µs on the `out` typed array alone (napi-rs' borrow bookkeeping and
//! V8's typed-array queries, every call) and about 90 ns reading six numbers. Here the numbers
//! travel in a Float64Array handed over once (`memoryIo(array)` → a handle): JS writes
//! `[kind, a, b, c, now, rate]` into it, calls `memoryLimitIo(key, handle)`, and the call writes
//! `[success, limit, remaining, reset]` back into its first four slots.
//!
//! Arrays are kept per thread, by handle: one thread can hold several copies of the facade
//! (vm contexts, a test runner's fresh module registry), each with its own array. The thread
//! holds a strong reference to each (so its ArrayBuffer, whose memory V8 never moves, stays
//! alive), and only this thread's JS, which cannot run during the call, can touch it.

use std::cell::{Cell, RefCell};

use napi::bindgen_prelude::{FromNapiValue, Object, TypeName, ValidateNapiValue};
use napi::{sys, Env, Error, JsError, JsValue, Result, Status, ValueType};
use napi_derive::napi;
use ratelimit_core::algorithm::Algorithm;
use ratelimit_stores::memory::MemoryStore;
use ratelimit_stores::memory_algorithm as in_memory;

use crate::algorithm::algorithm_from_numbers;
use crate::args::{clock, cost};
use crate::errors::{invalid_arg, store_error};
use crate::short_str::ShortStr;

/// Numbers read from the array: `[kind, a, b, c, now, rate]`.
const INPUTS: usize = 6;

/// An io array: where its data is (a reference keeps it alive for the thread's life).
#[derive(Clone, Copy)]
struct Io {
    data: *mut f64,
    len: usize,
}

/// Arrays one thread may hand over: one per copy of the facade it loads.
const MAX_IOS: usize = 4096;

thread_local! {
    static IOS: RefCell<Vec<Io>> = const { RefCell::new(Vec::new()) };
    /// The algorithm of the previous call and its numbers: a limiter's calls repeat them, and
    /// checking them again costs more than comparing four numbers.
    static LAST: Cell<Option<([f64; 4], Algorithm)>> = const { Cell::new(None) };
}

/// A Float64Array argument taken as N-API hands it: its memory, and the value to reference.
pub struct IoArray {
    data: *mut f64,
    len: usize,
    value: sys::napi_value,
}

impl FromNapiValue for IoArray {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut kind = sys::TypedarrayType::int8_array;
        let mut len = 0usize;
        let mut data = std::ptr::null_mut();
        let mut buffer = std::ptr::null_mut();
        let mut offset = 0usize;
        // SAFETY: every out-pointer is valid for its type; N-API checks `value` itself.
        let status = unsafe {
            sys::napi_get_typedarray_info(
                env,
                value,
                &mut kind,
                &mut len,
                &mut data,
                &mut buffer,
                &mut offset,
            )
        };
        if status != sys::Status::napi_ok || kind != sys::TypedarrayType::float64_array {
            return Err(invalid_arg("memoryIo takes a Float64Array"));
        }
        Ok(IoArray {
            data: data.cast(),
            len,
            value,
        })
    }
}

impl TypeName for IoArray {
    fn type_name() -> &'static str {
        "Float64Array"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for IoArray {}

/// Hands an io array over for this thread's `memoryLimitIo` calls; returns its handle.
#[napi(catch_unwind, js_name = "memoryIo")]
pub fn memory_io(env: Env, #[napi(ts_arg_type = "Float64Array")] io: IoArray) -> Result<u32> {
    if io.len < INPUTS {
        return Err(invalid_arg("memoryIo needs room for 6 numbers"));
    }
    if IOS.with_borrow(Vec::len) >= MAX_IOS {
        return Err(invalid_arg(
            "memoryIo: too many arrays handed over on this thread",
        ));
    }
    let mut reference = std::ptr::null_mut();
    // SAFETY: `io.value` is this call's argument, alive in its scope. The reference is never
    // deleted: the array must outlive every call that may name its handle (Node frees it with
    // the environment).
    let status = unsafe { sys::napi_create_reference(env.raw(), io.value, 1, &mut reference) };
    if status != sys::Status::napi_ok {
        return Err(invalid_arg("memoryIo could not keep the array"));
    }
    Ok(IOS.with_borrow_mut(|ios| {
        ios.push(Io {
            data: io.data,
            len: io.len,
        });
        ios.len() as u32 - 1
    }))
}

/// `memoryLimitIo(key, handle)` on the exports, registered by hand rather than with `#[napi]`:
/// napi-rs 3 wraps each `#[napi]` function in borrow-scope bookkeeping that allocates on every
/// call (about 100 ns here, measured), as much as the rest of this call's crossing.
#[napi(module_exports)]
pub fn register_memory_limit_io(exports: Object, env: Env) -> Result<()> {
    const NAME: &std::ffi::CStr = c"memoryLimitIo";
    let mut function = std::ptr::null_mut();
    // SAFETY: a plain N-API function without data; `NAME` is NUL-terminated.
    let status = unsafe {
        sys::napi_create_function(
            env.raw(),
            NAME.as_ptr(),
            NAME.count_bytes() as isize,
            Some(memory_limit_io_callback),
            std::ptr::null_mut(),
            &mut function,
        )
    };
    if status == sys::Status::napi_ok {
        // SAFETY: the module's exports object and a function value of this env.
        let status = unsafe {
            sys::napi_set_named_property(env.raw(), exports.raw(), NAME.as_ptr(), function)
        };
        if status == sys::Status::napi_ok {
            return Ok(());
        }
    }
    Err(Error::new(
        Status::GenericFailure,
        "cannot export memoryLimitIo",
    ))
}

/// The N-API callback of `memoryLimitIo(key, handle)`: undefined, or the error thrown as
/// napi-rs throws it.
unsafe extern "C" fn memory_limit_io_callback(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let outcome = std::panic::catch_unwind(|| {
        let mut argc = 2usize;
        let mut argv = [std::ptr::null_mut(); 2];
        // SAFETY: room for two arguments; the other out-pointers are optional.
        let status = unsafe {
            sys::napi_get_cb_info(
                env,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if status != sys::Status::napi_ok || argc < 2 {
            return Err(invalid_arg(
                "memoryLimitIo takes the key and a handle from memoryIo",
            ));
        }
        // SAFETY: this call's arguments.
        let key = unsafe { ShortStr::from_napi_value(env, argv[0]) }?;
        let handle = unsafe { u32::from_napi_value(env, argv[1]) }?;
        memory_limit_io(&key, handle)
    });
    let error = match outcome {
        Ok(Ok(())) => return std::ptr::null_mut(),
        Ok(Err(error)) => error,
        Err(_) => Error::new(Status::GenericFailure, "memoryLimitIo panicked"),
    };
    // SAFETY: throwing on this callback's env, which has no exception pending.
    unsafe { JsError::from(error).throw_into(env) };
    std::ptr::null_mut()
}

/// limit() of `key` on the memory store, the numbers in the io array of `handle` (`memoryIo`).
fn memory_limit_io(key: &str, handle: u32) -> Result<()> {
    let Some(io) = IOS.with_borrow(|ios| ios.get(handle as usize).copied()) else {
        return Err(invalid_arg(
            "memoryLimitIo: no array has this handle on this thread",
        ));
    };
    // SAFETY: the array is alive (this thread references it), V8 does not move an
    // ArrayBuffer's memory, and no JS runs (so nothing else touches it) until the call returns.
    let io = unsafe { std::slice::from_raw_parts_mut(io.data, io.len) };
    let algorithm = algorithm_of([io[0], io[1], io[2], io[3]])?;
    let numbers = in_memory::limit_numbers(
        MemoryStore::global_ref(),
        &algorithm,
        key,
        clock(io[4])?,
        cost(io[5])?,
        &[],
    )
    .map_err(store_error)?;
    io[..4].copy_from_slice(&numbers);
    Ok(())
}

/// The algorithm `[kind, a, b, c]` names (checked as `memoryLimit` checks it).
fn algorithm_of(numbers: [f64; 4]) -> Result<Algorithm> {
    if let Some((last, algorithm)) = LAST.get() {
        // Bit for bit: LAST only holds numbers that passed the checks below, so anything else
        // (a NaN included) is checked.
        if last.map(f64::to_bits) == numbers.map(f64::to_bits) {
            return Ok(algorithm);
        }
    }
    let [kind, a, b, c] = numbers;
    if !(kind == 0.0 || kind == 1.0 || kind == 2.0) {
        return Err(invalid_arg("unknown algorithm kind"));
    }
    let algorithm = algorithm_from_numbers(kind as u32, a, b, c)?;
    LAST.set(Some((numbers, algorithm)));
    Ok(algorithm)
}

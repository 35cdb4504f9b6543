//! `memoryLimitIo(key)`: limit() on the memory store with the key as its only argument.
//!
//! Why: on `Redis.memory()` the crossing costs more than the state change. Profiled (perf, a
//! release build with symbols), `memoryLimit(kind, a, b, c, key, now, rate, out, null)` spent
//! about 200 ns of its 1.3 µs on the `out` typed array alone (napi-rs' borrow bookkeeping and
//! V8's typed-array queries, every call) and about 90 ns reading six numbers. Here the numbers
//! travel in a Float64Array each JS thread hands over once (`memoryIo`): JS writes
//! `[kind, a, b, c, now, rate]` into it, and the call writes `[success, limit, remaining,
//! reset]` back into its first four slots.
//!
//! The array's memory is read through a pointer kept per thread: the thread holds a strong
//! reference to the array (so its ArrayBuffer, whose memory V8 never moves, stays alive), and
//! only this thread's JS, which cannot run during the call, can touch it.

use std::cell::Cell;

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

/// A thread's io array: where its data is, and the reference keeping it alive.
#[derive(Clone, Copy)]
struct Io {
    data: *mut f64,
    len: usize,
    reference: sys::napi_ref,
}

thread_local! {
    static IO: Cell<Option<Io>> = const { Cell::new(None) };
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

/// Hands this thread's io array over (again: the previous one is let go).
#[napi(catch_unwind, js_name = "memoryIo")]
pub fn memory_io(env: Env, #[napi(ts_arg_type = "Float64Array")] io: IoArray) -> Result<()> {
    if io.len < INPUTS {
        return Err(invalid_arg("memoryIo needs room for 6 numbers"));
    }
    let mut reference = std::ptr::null_mut();
    // SAFETY: `io.value` is this call's argument, alive in its scope.
    let status = unsafe { sys::napi_create_reference(env.raw(), io.value, 1, &mut reference) };
    if status != sys::Status::napi_ok {
        return Err(invalid_arg("memoryIo could not keep the array"));
    }
    if let Some(previous) = IO.replace(Some(Io {
        data: io.data,
        len: io.len,
        reference,
    })) {
        // SAFETY: a reference this thread created, deleted once (it was just replaced).
        unsafe { sys::napi_delete_reference(env.raw(), previous.reference) };
    }
    Ok(())
}

/// `memoryLimitIo(key)` on the exports, registered by hand rather than with `#[napi]`: napi-rs
/// 3 wraps each `#[napi]` function in borrow-scope bookkeeping that allocates on every call
/// (about 100 ns here, measured), as much as the rest of this call's crossing.
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

/// The N-API callback of `memoryLimitIo(key)`: undefined, or the error thrown as napi-rs throws.
unsafe extern "C" fn memory_limit_io_callback(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    let outcome = std::panic::catch_unwind(|| {
        let mut argc = 1usize;
        let mut argv = [std::ptr::null_mut(); 1];
        // SAFETY: room for one argument; the other out-pointers are optional.
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
        if status != sys::Status::napi_ok || argc < 1 {
            return Err(invalid_arg("memoryLimitIo takes the key"));
        }
        // SAFETY: this call's first argument.
        let key = unsafe { ShortStr::from_napi_value(env, argv[0]) }?;
        memory_limit_io(&key)
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

/// limit() of `key` on the memory store, the numbers in this thread's io array (`memoryIo`).
fn memory_limit_io(key: &str) -> Result<()> {
    let Some(io) = IO.get() else {
        return Err(invalid_arg("memoryLimitIo needs memoryIo(array) first"));
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
        // Bitwise, so a NaN never matches and is refused below.
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

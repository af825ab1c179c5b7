//! Any bytes as the body of `POST /loader`: neptune-local's request parsing answers with a
//! request or a message, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = neptune_local::fuzzing::start_request(data);
});

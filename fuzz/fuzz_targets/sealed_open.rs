//! cargo fuzz target: `clawtray_proto::fuzzing::sealed_open` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawtray_proto::fuzzing::sealed_open(data));

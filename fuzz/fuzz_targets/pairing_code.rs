//! cargo fuzz target: `clawtray_proto::fuzzing::pairing_code` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawtray_proto::fuzzing::pairing_code(data));

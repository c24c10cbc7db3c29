//! cargo fuzz target: `clawtray_proto::fuzzing::chat_parse` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| clawtray_proto::fuzzing::chat_parse(data));

//! Replays every committed fuzz input (`fuzz/corpus/<target>/` seeds and whatever the fuzzer
//! kept, and `fuzz/regressions/<target>/` crashes once found) through the same harnesses the fuzz
//! targets use, so the ordinary test command catches a regression without a fuzzer.

use std::path::Path;

use clawtray_proto::fuzzing::TARGETS;

#[test]
fn every_committed_fuzz_input_passes_its_harness() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut ran = 0;
    for (name, harness) in TARGETS {
        let mut inputs = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                continue;
            };
            for entry in entries.flatten() {
                let bytes = std::fs::read(entry.path()).expect("read a fuzz input");
                harness(&bytes);
                inputs += 1;
            }
        }
        assert!(inputs > 0, "fuzz/corpus/{name} has seeds");
        ran += inputs;
    }
    assert!(ran >= TARGETS.len());
}

//! Tauri's build step, as the starter template has it.
fn main() {
    tauri_build::build();
}

//! The audit record reader behind `ward audit verify`: any file content is
//! either verified or reported as a problem with a file and line. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ward::audit::verify::{Start, verify_files};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("ward-fuzz-audit-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let file = dir.join("audit-00000000.jsonl");
    if std::fs::write(&file, data).is_err() {
        return;
    }
    let keys = Err("no key".to_string());
    let _ = verify_files(std::slice::from_ref(&file), &keys, Start::Beginning);
    let _ = verify_files(std::slice::from_ref(&file), &keys, Start::Anywhere);
});

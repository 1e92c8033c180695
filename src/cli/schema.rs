//! `ward schema`: write the JSON Schemas of `ward.toml` and `users.toml` for the officer's editor.

use crate::config::schema::policy_schema;
use crate::users::schema::users_schema;
use std::path::Path;
use std::process::ExitCode;

/// The schema files' names, as the example files' `#:schema` lines name them.
pub const FILES: [&str; 2] = ["ward.schema.json", "users.schema.json"];

/// Writes both schemas into `dir` (made if missing) and says where.
pub fn run(dir: &Path) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("ward schema: cannot make {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for (name, text) in FILES.into_iter().zip([policy_schema(), users_schema()]) {
        let path = dir.join(name);
        if let Err(e) = crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644) {
            eprintln!("ward schema: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    println!(
        "Put `#:schema ./{}` (or ./{}) on the first line of a file for editors that read it \
         (Taplo, VS Code's Even Better TOML).",
        FILES[0], FILES[1]
    );
    ExitCode::SUCCESS
}

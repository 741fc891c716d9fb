//! Fingerprints the migration sources, so test harnesses can key a migrated template
//! database on them: a changed migration gets a new template, an unchanged one is reused.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;
use std::{env, fs};

fn main() {
    let src = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("src");
    println!("cargo:rerun-if-changed={}", src.display());
    let mut files: Vec<_> = fs::read_dir(&src)
        .expect("migrations/src is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            name == "lib.rs" || name.starts_with('m')
        })
        .collect();
    files.sort();
    let mut hasher = DefaultHasher::new();
    for file in files {
        file.file_name().hash(&mut hasher);
        fs::read(&file)
            .expect("migration source is readable")
            .hash(&mut hasher);
    }
    println!(
        "cargo:rustc-env=PRISM_MIGRATIONS_FINGERPRINT={:016x}",
        hasher.finish()
    );
}

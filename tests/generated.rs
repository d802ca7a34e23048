//! `generated/` is what symdiff generates for itself today: this test
//! regenerates every file and fails when one differs (run it with
//! `UPDATE_GENERATED=1` to rewrite them), as rust-analyzer guards its
//! generated sources.

use std::path::Path;

#[test]
fn generated_kernels_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    let update = std::env::var_os("UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    for f in symdiff::codegen::own_kernels() {
        let want = symdiff::codegen::own_file(&f)
            .unwrap_or_else(|e| panic!("generating {}: {}", f.file, e.message));
        let path = dir.join(f.file);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have != want {
            if update {
                std::fs::write(&path, &want).unwrap();
            } else {
                stale.push(f.file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "generated/{} out of date; regenerate with `{}` and review the diff",
        stale.join(", generated/"),
        symdiff::codegen::REGENERATE
    );
}

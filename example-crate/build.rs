// Generates the kernels this crate exports, exactly as symdiff's SPEC shows.
fn main() {
    symdiff::Builder::new()
        .kernel("xent", "xent(z, q)")
        .orders(0..=3)
        .kernel(
            "classifier",
            "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
        )
        .wrt("W")
        // A batch of rows (per-row Newton steps, as boosting takes them).
        .kernel("batch", "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m")
        .orders(0..=2)
        // Inputs named like the temporaries kernels name themselves
        // (`exps`, `p`, `sumexp`): those keep their numbered names.
        .kernel(
            "clash",
            "exps: vec[n]; p: vec[n]; sumexp: vec[n]; xent(exps, p) + sum(sumexp)",
        )
        .orders(0..=1)
        // Diagonal plus rank two: its Newton step comes from Woodbury.
        .kernel("expected", "dot(softmax(z), q)")
        .orders(0..=2)
        // Poisson regression's loss (log link): `exp` of arguments of any sign.
        .kernel("poisson", "sum(exp(z) - q * z)")
        .orders(0..=1)
        // Eight logits in f32, in fixed-size loops.
        .kernel("xent8", "xent(z, q)")
        .orders(0..=2)
        .dim("n", 8)
        .float(symdiff::Float::F32)
        // Logits of any length in f32.
        .kernel("xent32", "xent(z, q)")
        .orders(0..=1)
        .float(symdiff::Float::F32)
        .write_to_out_dir("kernels.rs")
        .unwrap();
    println!("cargo:rerun-if-changed=build.rs");
}

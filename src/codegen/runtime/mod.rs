//! The runtime helpers generated kernels carry (`exp`, `exp_shifted`,
//! `sigmoid`, `softplus`, the matrix products of `gemm.rs`), as real Rust
//! source: `f64.rs`, `f32.rs` and `gemm.rs` are
//! compiled and tested here, and [`source`] emits the functions a kernel
//! uses verbatim — comments, constants' explanations and all — under the
//! kernel's prefix (`xent_exp_shifted`).

use super::Float;

/// The helpers, in the order they are emitted.
pub const NAMES: &[&str] = &[
    "exp",
    "exp_shifted",
    "exp_poly",
    "sigmoid",
    "softplus",
    "fold64",
    "gemm",
    "gemm_threads",
    "gemm_panels",
    "gemm_block",
    "gemm_block_fma",
    "gemm_narrow",
    "gemm_wide_vectors",
    "gemm_wide_vectors_block",
    "gemm_wide_vectors_block_fma",
    "gemm_narrow_vectors",
    "gemm_narrow_vectors_block",
    "gemm_narrow_vectors_block_fma",
    "on_thread",
    "on_thread_fma",
    "next_sorted",
    "fill_permutations",
];

const F64: &str = include_str!("f64.rs");
const F32: &str = include_str!("f32.rs");

const GEMM: &str = include_str!("gemm.rs");

/// The matrix-product helpers, in `gemm.rs`: one copy for f64 and f32.
const MATRIX_PRODUCTS: &[&str] = &[
    "gemm",
    "gemm_threads",
    "gemm_panels",
    "gemm_block",
    "gemm_block_fma",
    "gemm_narrow",
    "gemm_wide_vectors",
    "gemm_wide_vectors_block",
    "gemm_wide_vectors_block_fma",
    "gemm_narrow_vectors",
    "gemm_narrow_vectors_block",
    "gemm_narrow_vectors_block_fma",
];

/// Helpers on `f64` partial results, which f32 kernels keep too, and
/// helpers generic over the float: one copy, in `f64.rs`, for both.
const ON_F64_PARTIALS: &[&str] = &[
    "fold64",
    "on_thread",
    "on_thread_fma",
    "next_sorted",
    "fill_permutations",
];

/// The source of the helper functions in `used` (and those they call),
/// each renamed `{kernel}_{name}`, with the file's header comment first.
pub fn source(kernel: &str, float: Float, used: &[&str]) -> String {
    let file = match float {
        Float::F64 => F64,
        Float::F32 => F32,
    };
    let mut wanted: Vec<&str> = used.to_vec();
    // What they call.
    if wanted.iter().any(|u| matches!(*u, "sigmoid" | "softplus")) {
        wanted.push("exp_shifted");
    }
    if wanted.contains(&"gemm") {
        wanted.extend(&MATRIX_PRODUCTS[1..]);
    }
    if wanted.contains(&"on_thread") {
        wanted.push("on_thread_fma");
    }
    if wanted.iter().any(|u| matches!(*u, "exp" | "exp_shifted")) {
        wanted.push("exp_poly");
    }
    if wanted.is_empty() {
        return String::new();
    }
    let header: String = file
        .lines()
        .take_while(|l| l.starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut out = header;
    for name in NAMES.iter().filter(|n| wanted.contains(n)) {
        let from = if MATRIX_PRODUCTS.contains(name) {
            GEMM
        } else if ON_F64_PARTIALS.contains(name) {
            F64
        } else {
            file
        };
        out.push('\n');
        out.push_str(&rename(function(from, name), kernel));
    }
    out
}

/// The text of `fn name` with the doc comments and attributes above it.
fn function<'a>(file: &'a str, name: &str) -> &'a str {
    let at = ["fn", "unsafe fn"]
        .iter()
        .flat_map(|kw| ["<", "("].map(|open| format!("\n{kw} {name}{open}")))
        .find_map(|head| file.find(&head))
        .expect("every helper is in the file")
        + 1;
    // Back over the `///` and `#[…]` lines above it.
    let mut start = at;
    for line in file[..at].lines().rev() {
        if line.starts_with("///") || line.starts_with("#[") {
            start -= line.len() + 1;
        } else {
            break;
        }
    }
    // Forward to the closing brace in column 0.
    let end = at + file[at..].find("\n}\n").expect("a function ends with `}`") + 3;
    &file[start..end]
}

/// Prefixes every call or definition of a helper with `kernel_`: an
/// identifier equal to a helper's name that is not a method or path
/// segment (`x.exp()`, `f64::exp` stay).
fn rename(text: &str, kernel: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut word = String::new();
    let mut prev: Option<char> = None;
    let mut in_comment = false;
    let flush = |word: &mut String, out: &mut String, prev: Option<char>, in_comment: bool| {
        if word.is_empty() {
            return;
        }
        if NAMES.contains(&word.as_str()) && !matches!(prev, Some('.' | ':')) && !in_comment {
            out.push_str(kernel);
            out.push('_');
        }
        out.push_str(word);
        word.clear();
    };
    let mut last_out: Option<char> = None;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            if word.is_empty() {
                prev = last_out;
            }
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out, prev, in_comment);
        if c == '\n' {
            in_comment = false;
        } else if c == '/' && last_out == Some('/') {
            in_comment = true;
        }
        out.push(c);
        last_out = Some(c);
    }
    flush(&mut word, &mut out, prev, in_comment);
    out
}

#[cfg(test)]
mod tests {
    mod f64_helpers {
        include!("f64.rs");
        include!("gemm.rs");

        pub(super) fn fold64_for_test<const MAX: bool>(acc: &mut [f64; 64]) {
            fold64::<MAX>(acc)
        }

        /// `x.mul_add(y, z)` run through `on_thread`, compiled for FMA or not.
        pub(super) fn on_thread_for_test(fma: bool, x: f64, y: f64, z: f64) -> f64 {
            if fma {
                on_thread::<true, _>(|| x.mul_add(y, z))
            } else {
                on_thread::<false, _>(|| x.mul_add(y, z))
            }
        }

        pub(super) fn next_sorted_for_test(sorted: &mut [usize], n: usize) -> bool {
            next_sorted(sorted, n)
        }

        pub(super) fn fill_permutations_for_test(
            sorted: &[usize],
            n: usize,
            v: usize,
            out: &mut [usize],
        ) {
            fill_permutations(sorted, n, v, out)
        }

        #[allow(clippy::too_many_arguments)]
        pub(super) fn gemm_for_test<T: Copy + Into<f64> + Sync>(
            fma: bool,
            threads: usize,
            rows: usize,
            left: usize,
            right: usize,
            u: &[T],
            us: [usize; 2],
            v: &[T],
            vs: [usize; 2],
            scale: &[f64],
            c: &mut [f64],
            cs: [usize; 2],
            symmetric: bool,
        ) {
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn with_fma<T: Copy + Into<f64> + Sync>(
                threads: usize,
                rows: usize,
                left: usize,
                right: usize,
                u: &[T],
                us: [usize; 2],
                v: &[T],
                vs: [usize; 2],
                scale: &[f64],
                c: &mut [f64],
                cs: [usize; 2],
                symmetric: bool,
            ) {
                gemm::<true>(
                    rows, left, right, u, us, v, vs, scale, c, cs, symmetric, threads,
                )
            }
            if fma {
                // SAFETY: the caller checked the CPU for AVX2 and FMA.
                unsafe {
                    with_fma(
                        threads, rows, left, right, u, us, v, vs, scale, c, cs, symmetric,
                    )
                }
            } else {
                gemm::<false>(
                    rows, left, right, u, us, v, vs, scale, c, cs, symmetric, threads,
                )
            }
        }

        #[test]
        fn exp_is_within_two_ulp_everywhere() {
            let mut x = -750.0f64;
            while x < 720.0 {
                for fma in [false, true] {
                    let got = if fma { exp::<true>(x) } else { exp::<false>(x) };
                    let want = x.exp();
                    if x < -708.0 {
                        assert_eq!(got, 0.0, "exp({x}) flushes to zero");
                    } else if want.is_infinite() {
                        assert!(got.is_infinite(), "exp({x}) = {got}");
                    } else {
                        let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
                        assert!(ulps <= 2, "exp({x}) = {got}, want {want} ({ulps} ulp)");
                    }
                }
                x += 0.0137;
            }
            assert!(exp::<false>(f64::NAN).is_nan());
            assert!(exp::<false>(f64::from_bits(0x7ff8_dead_beef_0001)).is_nan());
            assert_eq!(exp::<false>(f64::NEG_INFINITY), 0.0);
            assert_eq!(exp::<false>(f64::INFINITY), f64::INFINITY);
        }

        #[test]
        fn exp_shifted_agrees_on_shifted_arguments() {
            let mut x = -750.0f64;
            while x <= 0.0 {
                let (got, want) = (exp_shifted::<false>(x), x.exp());
                if x < -708.0 {
                    assert_eq!(got, 0.0);
                } else {
                    let ulps = (got.to_bits() as i64 - want.to_bits() as i64).abs();
                    assert!(ulps <= 2, "exp_shifted({x}) = {got}, want {want}");
                }
                x += 0.0093;
            }
            assert!(exp_shifted::<true>(f64::NAN).is_nan());
        }

        #[test]
        fn sigmoid_and_softplus_hold_at_both_ends() {
            for x in [-800.0, -40.0, -1.0, 0.0, 0.5, 30.0, 800.0] {
                let s: f64 = sigmoid::<false>(x);
                let want = if x >= 0.0 {
                    1.0 / (1.0 + (-x).exp())
                } else {
                    x.exp() / (1.0 + x.exp())
                };
                assert!(
                    (s - want).abs() <= 1e-15 * want.max(1e-300),
                    "sigmoid({x}) = {s}"
                );
                let sp: f64 = softplus::<false>(x);
                let want = x.max(0.0) + (-x.abs()).exp().ln_1p();
                assert!(
                    (sp - want).abs() <= 1e-15 * want.abs().max(1e-300),
                    "softplus({x})"
                );
            }
            assert_eq!(softplus::<false>(800.0), 800.0);
            assert!(sigmoid::<false>(f64::NAN).is_nan());
        }
    }

    /// `gemm` against the plain triple loop: odd sizes (partial panels),
    /// transposed operands by strides, a scale, the symmetric mirror, a
    /// slab boundary (more than 256 rows), with and without FMA.
    #[test]
    fn gemm_is_the_plain_sum() {
        let mut seed = 7u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        for &(rows, left, right) in &[
            (1, 1, 1),
            (3, 5, 9),
            (300, 10, 7),
            (257, 13, 13),
            (40, 33, 2),
            // Past 2^20 multiply-adds per thread: split over threads.
            (2100, 33, 41),
            (2100, 41, 33),
            // Narrow (at most 12) on either side, over threads.
            (2100, 10, 601),
            (700, 1203, 3),
            (300, 700, 11),
            (1100, 4, 999),
        ] {
            let u: Vec<f64> = (0..rows * left).map(|_| rand()).collect();
            let v: Vec<f64> = (0..rows * right).map(|_| rand()).collect();
            let s: Vec<f64> = (0..rows).map(|_| rand()).collect();
            // u is stored transposed (left × rows), v row-major (rows × right).
            let (us, vs) = ([1, rows], [right, 1]);
            let mut want = vec![0.0; left * right];
            for a in 0..left {
                for b in 0..right {
                    want[a * right + b] = (0..rows)
                        .map(|r| s[r] * u[r + a * rows] * v[r * right + b])
                        .sum();
                }
            }
            for (fma, threads) in [(false, 1), (true, 1), (false, 3), (true, 3)] {
                if fma
                    && !(std::is_x86_feature_detected!("avx2")
                        && std::is_x86_feature_detected!("fma"))
                {
                    continue;
                }
                let mut got = vec![0.0; left * right];
                f64_helpers::gemm_for_test(
                    fma,
                    threads,
                    rows,
                    left,
                    right,
                    &u,
                    us,
                    &v,
                    vs,
                    &s,
                    &mut got,
                    [right, 1],
                    false,
                );
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs())
                    .fold(0.0, f64::max);
                assert!(
                    err < 1e-12,
                    "{rows}×{left}×{right}, fma {fma}, {threads} threads: off by {err}"
                );
                // Threads give each entry the same sum in the same order.
                let mut one = vec![0.0; left * right];
                f64_helpers::gemm_for_test(
                    fma,
                    1,
                    rows,
                    left,
                    right,
                    &u,
                    us,
                    &v,
                    vs,
                    &s,
                    &mut one,
                    [right, 1],
                    false,
                );
                assert_eq!(got, one, "{rows}×{left}×{right}, {threads} threads");
                // Symmetric: u and v one operand, f32 data converted on the way.
                let x: Vec<f32> = (0..rows * left).map(|_| rand() as f32).collect();
                let mut sym = vec![0.0; left * left];
                f64_helpers::gemm_for_test(
                    fma,
                    threads,
                    rows,
                    left,
                    left,
                    &x,
                    [left, 1],
                    &x,
                    [left, 1],
                    &s,
                    &mut sym,
                    [left, 1],
                    true,
                );
                for a in 0..left {
                    for b in 0..left {
                        let want: f64 = (0..rows)
                            .map(|r| s[r] * f64::from(x[r * left + a]) * f64::from(x[r * left + b]))
                            .sum();
                        assert!(
                            (sym[a * left + b] - want).abs() < 1e-12,
                            "symmetric ({a}, {b})"
                        );
                        assert_eq!(sym[a * left + b], sym[b * left + a]);
                    }
                }
            }
        }
    }

    /// A range of rows run through `on_thread` computes what it would
    /// inline, fused multiply-adds and all (the fused one rounds once).
    #[test]
    fn on_thread_runs_the_range() {
        let (x, y, z) = (1.0 + f64::EPSILON, 1.0 - f64::EPSILON, -1.0);
        let fused = x.mul_add(y, z);
        assert_eq!(f64_helpers::on_thread_for_test(false, x, y, z), fused);
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            assert_eq!(f64_helpers::on_thread_for_test(true, x, y, z), fused);
        }
    }

    /// The sorted-tuple walk visits each multiset of indices once, and
    /// the fill writes exactly the entries whose indices permute it.
    #[test]
    fn sorted_tuples_and_their_permutations_cover_the_tensor_once() {
        for (n, k) in [(1usize, 3usize), (3, 4), (4, 5), (2, 10)] {
            let mut sorted = vec![0usize; k];
            let mut out = vec![usize::MAX; n.pow(k as u32)];
            let mut tuples = 0;
            loop {
                assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
                f64_helpers::fill_permutations_for_test(&sorted, n, tuples, &mut out);
                tuples += 1;
                if !f64_helpers::next_sorted_for_test(&mut sorted, n) {
                    break;
                }
            }
            // C(n + k − 1, k) multisets.
            let want = (1..=k).fold(1usize, |c, i| c * (n - 1 + i) / i);
            assert_eq!(tuples, want, "n = {n}, k = {k}");
            // Every entry written, by the tuple that sorts its indices.
            let mut order: Vec<Vec<usize>> = Vec::new();
            let mut s = vec![0usize; k];
            loop {
                order.push(s.clone());
                if !f64_helpers::next_sorted_for_test(&mut s, n) {
                    break;
                }
            }
            for (at, &t) in out.iter().enumerate() {
                let mut idx: Vec<usize> = (0..k).rev().map(|p| at / n.pow(p as u32) % n).collect();
                idx.sort_unstable();
                assert_eq!(order[t], idx, "entry {at}");
            }
        }
    }

    /// The fold gives the pairwise sums (and maxima) of the 64 partial
    /// results, in the order the emitted loops used to.
    #[test]
    fn fold64_is_the_pairwise_fold() {
        let base: [f64; 64] = std::array::from_fn(|k| ((k * 37 % 64) as f64 - 20.5) * 0.25);
        let mut sum = base;
        f64_helpers::fold64_for_test::<false>(&mut sum);
        let mut want = base;
        let mut half = 32;
        while half >= 4 {
            for l in 0..half {
                want[l] += want[l + half];
            }
            half /= 2;
        }
        assert_eq!(sum[..4], want[..4]);
        let total: f64 = base.iter().sum();
        assert!(((sum[0] + sum[1]) + (sum[2] + sum[3]) - total).abs() < 1e-12);
        let mut max = base;
        f64_helpers::fold64_for_test::<true>(&mut max);
        let top = base.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(max[0].max(max[1]).max(max[2].max(max[3])), top);
        // f32 kernels fold their f64 partial results with the same helper.
        let mut halves = [0.5f64; 64];
        f64_helpers::fold64_for_test::<false>(&mut halves);
        assert_eq!((halves[0] + halves[1]) + (halves[2] + halves[3]), 32.0);
    }

    mod f32_helpers {
        include!("f32.rs");

        #[test]
        fn exp_is_close_everywhere() {
            let mut x = -90.0f32;
            while x < 89.0 {
                let got = exp::<false>(x) as f64;
                let want = (x as f64).exp();
                if x < -86.0 {
                    assert_eq!(got, 0.0);
                } else if want > f32::MAX as f64 {
                    assert!(got.is_infinite());
                } else {
                    assert!(
                        (got - want).abs() <= 4e-7 * want,
                        "exp({x}) = {got}, want {want}"
                    );
                }
                x += 0.0071;
            }
            assert!(exp::<false>(f32::NAN).is_nan());
            assert!(exp_shifted::<true>(f32::NAN).is_nan());
            assert!((sigmoid::<false>(0.0) - 0.5).abs() < 1e-7);
            assert!((softplus::<false>(0.0) - std::f32::consts::LN_2).abs() < 1e-6);
        }
    }

    #[test]
    fn emitted_helpers_are_renamed_and_complete() {
        let s = super::source("k", super::Float::F64, &["sigmoid"]);
        assert!(s.contains("fn k_sigmoid<const FMA: bool>"), "{s}");
        assert!(s.contains("k_exp_shifted::<FMA>(-x.abs())"), "{s}");
        assert!(s.contains("fn k_exp_poly<"), "{s}");
        assert!(s.contains(".ln_1p()") || !s.contains("softplus"));
        assert!(!s.contains("fn k_exp<"), "unused helpers stay out: {s}");
        // Comments reach the output.
        assert!(s.contains("// A NaN's payload bits"), "{s}");
    }
}

//! The committed kernels in `generated/`, compiled here under
//! `#[deny(warnings)]`, checked against three independent truths at random
//! points (n from 1 to 13, logits up to ±1e4, targets that do not sum to
//! one): closed forms written out by hand below, symdiff's own `eval`
//! (the IR interpreter, a different path from the kernels), and central
//! finite differences of the kernels themselves.

#[deny(warnings)]
mod xent {
    include!("../generated/xent.rs");

    /// The baseline bodies, which the public functions skip on a CPU with
    /// AVX2 and FMA (this one, most likely): reached here so that both
    /// paths are tested wherever the tests run.
    pub mod baseline {
        pub fn xent(z: &[f64], q: &[f64]) -> f64 {
            super::xent_body::<false>(z, q)
        }
        pub fn grad(z: &[f64], q: &[f64], out: &mut [f64]) {
            super::xent_grad_body::<false>(z, q, out)
        }
        pub fn hvp(z: &[f64], q: &[f64], v: &[f64], out: &mut [f64]) {
            super::xent_hvp_body::<false>(z, q, v, out)
        }
        pub fn d3(z: &[f64], q: &[f64], out: &mut [f64]) {
            super::xent_d3_body::<false>(z, q, out, 1)
        }
        pub fn d4_dir(z: &[f64], q: &[f64], v: &[f64]) -> f64 {
            super::xent_d4_dir_body::<false>(z, q, v)
        }
        /// The polynomial `exp` of shifted arguments, unfused and fused.
        pub fn exp_shifted(x: f64, fma: bool) -> f64 {
            if fma {
                super::xent_exp_shifted::<true>(x)
            } else {
                super::xent_exp_shifted::<false>(x)
            }
        }
    }
}
#[deny(warnings)]
mod xent_f32 {
    include!("../generated/xent_f32.rs");
}
#[deny(warnings)]
mod softmax {
    include!("../generated/softmax.rs");
}
#[deny(warnings)]
mod log_softmax {
    include!("../generated/log_softmax.rs");
}
#[deny(warnings)]
mod logsumexp {
    include!("../generated/logsumexp.rs");
}

mod common;
use common::Rng;

/// Stable softmax and logsumexp by the textbook formulas (std `exp`).
fn reference(z: &[f64]) -> (Vec<f64>, f64) {
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    (e.iter().map(|x| x / s).collect(), m + s.ln())
}

/// Entrywise agreement to `rel` relative, or within `rel · floor` where
/// an entry is the small difference of terms of size `floor`: there no
/// double-precision formula, the reference's included, has more than
/// `eps · floor` absolute accuracy.
#[track_caller]
fn close_with(got: &[f64], want: &[f64], rel: f64, floor: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] = {g} is not finite");
        let tol = rel * (w.abs() + floor) + 1e-300;
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (diff {:e})",
            (g - w).abs()
        );
    }
}

/// `close_with`, the terms being of the size of the largest entry times
/// 1e-4 (enough for the cancellations of a product of probabilities).
#[track_caller]
fn close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    let scale = want.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    close_with(got, want, rel, 1e-4 * scale, what)
}

/// The size of the terms that cancel in a derivative of softmax at `z`:
/// probabilities are O(1), up to 13 of them are summed, and `z_i − lse`
/// is rounded to the unit of `max|z|`, which every formula (the
/// reference's too) inherits.
fn terms_floor(z: &[f64]) -> f64 {
    let zmax = z.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    1e-3 * (1.0 + zmax * 1e-2)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn delta(a: usize, b: usize) -> f64 {
    f64::from(u8::from(a == b))
}

/// symdiff's `eval` at a point, through the library (not the kernels).
fn eval(expr: &str, order: usize, at: &[(&str, &[f64])]) -> Vec<f64> {
    let text: Vec<String> = at
        .iter()
        .map(|(n, v)| {
            format!(
                "{n}=[{}]",
                v.iter()
                    .map(|x| format!("{x:e}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    common::eval(expr, order, None, &text.join("; "))
}

/// Central differences of a vector-valued function, entry `[out, wrt]`.
fn jacobian_fd(f: &dyn Fn(&[f64]) -> Vec<f64>, z: &[f64]) -> Vec<f64> {
    let n = z.len();
    let m = f(z).len();
    let mut out = vec![0.0; m * n];
    for j in 0..n {
        let h = 1e-5 * (1.0 + z[j].abs());
        let mut zp = z.to_vec();
        zp[j] += h;
        let mut zm = z.to_vec();
        zm[j] -= h;
        let (fp, fm) = (f(&zp), f(&zm));
        for i in 0..m {
            out[i * n + j] = (fp[i] - fm[i]) / (2.0 * h);
        }
    }
    out
}

#[test]
fn xent_kernels_match_closed_forms() {
    let mut rng = Rng(0x5eed_0001);
    for trial in 0..200 {
        let n = 1 + trial % 13;
        let z = rng.logits(n);
        let q = rng.vec(n, 0.0, 2.0);
        let v = rng.vec(n, -1.0, 1.0);
        let (p, lse) = reference(&z);
        let s: f64 = q.iter().sum();
        let what = |f: &str| format!("{f} at n={n} z={z:?} q={q:?}");
        let floor = terms_floor(&z) * s.max(1.0);

        let value = xent::xent(&z, &q);
        close_with(
            &[value],
            &[s * lse - dot(&z, &q)],
            1e-10,
            floor,
            &what("xent"),
        );

        let mut g = vec![0.0; n];
        xent::xent_grad(&z, &q, &mut g);
        let want: Vec<f64> = (0..n).map(|i| s * p[i] - q[i]).collect();
        close_with(&g, &want, 1e-10, floor, &what("xent_grad"));

        let pv = dot(&p, &v);
        let mut hv = vec![0.0; n];
        xent::xent_hvp(&z, &q, &v, &mut hv);
        let want: Vec<f64> = (0..n).map(|i| s * (p[i] * v[i] - p[i] * pv)).collect();
        close_with(&hv, &want, 1e-10, floor, &what("xent_hvp"));

        let mut h = vec![0.0; n * n];
        xent::xent_hessian(&z, &q, &mut h);
        let want: Vec<f64> = (0..n * n)
            .map(|e| s * (p[e / n] * delta(e / n, e % n) - p[e / n] * p[e % n]))
            .collect();
        close_with(&h, &want, 1e-10, floor, &what("xent_hessian"));

        let mut d3 = vec![0.0; n * n * n];
        xent::xent_d3(&z, &q, &mut d3);
        let mut want = vec![0.0; n * n * n];
        for i in 0..n {
            for j in 0..n {
                for k in 0..n {
                    want[(i * n + j) * n + k] = s
                        * (p[i] * delta(i, j) * delta(j, k)
                            - p[i] * p[j] * delta(i, k)
                            - p[i] * p[j] * delta(j, k)
                            - p[i] * p[k] * delta(i, j)
                            + 2.0 * p[i] * p[j] * p[k]);
                }
            }
        }
        close_with(&d3, &want, 1e-10, floor, &what("xent_d3"));

        // D³f[v,v,v] is the third cumulant of v under p, times s.
        let w: Vec<f64> = v.iter().map(|x| x - pv).collect();
        let k3 = s * p.iter().zip(&w).map(|(a, b)| a * b * b * b).sum::<f64>();
        close_with(
            &[xent::xent_d3_dir(&z, &q, &v)],
            &[k3],
            1e-9,
            floor,
            &what("xent_d3_dir"),
        );

        // Fourth cumulant: E[w⁴] − 3 E[w²]².
        let m2: f64 = p.iter().zip(&w).map(|(a, b)| a * b * b).sum();
        let m4: f64 = p.iter().zip(&w).map(|(a, b)| a * b.powi(4)).sum();
        close_with(
            &[xent::xent_d4_dir(&z, &q, &v)],
            &[s * (m4 - 3.0 * m2 * m2)],
            1e-9,
            floor,
            &what("xent_d4_dir"),
        );
    }
}

#[test]
fn xent_order_4_matches_eval_and_its_own_order_3() {
    let mut rng = Rng(0x5eed_0002);
    for n in 1..=5 {
        let z = rng.vec(n, -3.0, 3.0);
        let q = rng.vec(n, 0.0, 1.0);
        let v = rng.vec(n, -1.0, 1.0);
        let mut d4 = vec![0.0; n.pow(4)];
        xent::xent_d4(&z, &q, &mut d4);
        let s: f64 = q.iter().sum();
        close_with(
            &d4,
            &eval("xent(z, q)", 4, &[("z", &z), ("q", &q)]),
            1e-10,
            1e-4 * s,
            "xent_d4 vs eval",
        );
        let d3 = |x: &[f64]| {
            let mut o = vec![0.0; n * n * n];
            xent::xent_d3(x, &q, &mut o);
            o
        };
        close_with(
            &jacobian_fd(&d3, &z),
            &d4,
            1e-5,
            1e-2 * s,
            "xent_d4 vs differences of xent_d3",
        );
        let contracted: f64 = (0..n.pow(4))
            .map(|e| d4[e] * v[e / (n * n * n)] * v[(e / (n * n)) % n] * v[(e / n) % n] * v[e % n])
            .sum();
        close_with(
            &[xent::xent_d4_dir(&z, &q, &v)],
            &[contracted],
            1e-9,
            1e-3 * s,
            "xent_d4_dir vs contracted d4",
        );
    }
}

/// Orders 6 to 10 are emitted class by class and scattered over each
/// class's orbit. At z = (1, 1, 1), q = (1, 0, 0) a Mathematica session
/// printed the order-10 entries −2518/729 (all indices equal) and 1259/729
/// (one index different); elsewhere `eval` and the directional kernel are
/// the references.
#[test]
fn xent_high_orders_match_exact_values_eval_and_the_directional_kernel() {
    let mut d10 = vec![0.0; 3usize.pow(10)];
    xent::xent_d10(&[1.0, 1.0, 1.0], &[1.0, 0.0, 0.0], &mut d10);
    // Each entry is computed once per multiset of indices, one class sum
    // at a time (not scattered term by term): to 1e-12 relative.
    close(&[d10[0]], &[-2518.0 / 729.0], 1e-12, "xent_d10[0,…,0]");
    close(&[d10[1]], &[1259.0 / 729.0], 1e-12, "xent_d10[0,…,0,1]");
    let mut rng = Rng(0x5eed_0010);
    for n in 1..=3 {
        let z = rng.vec(n, -2.0, 2.0);
        let q = rng.vec(n, 0.0, 1.0);
        let v = rng.vec(n, -1.0, 1.0);
        let s: f64 = q.iter().sum();
        let mut d6 = vec![0.0; n.pow(6)];
        xent::xent_d6(&z, &q, &mut d6);
        close_with(
            &d6,
            &eval("xent(z, q)", 6, &[("z", &z), ("q", &q)]),
            1e-10,
            // Terms are up to 5!·s: entries that cancel to zero (n = 1)
            // come out as rounding noise of that size.
            120.0 * s,
            "xent_d6 vs eval",
        );
        let mut d10 = vec![0.0; n.pow(10)];
        xent::xent_d10(&z, &q, &mut d10);
        let top = d10.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        // (At n = 1 every entry is 0, and both give rounding noise of the
        // size of the cancelling terms, 9!·s·1e-16.)
        if n > 1 {
            close_with(
                &d10,
                &eval("xent(z, q)", 10, &[("z", &z), ("q", &q)]),
                // Both are within about 5e-13 of the largest entry (measured
                // against a 60-digit evaluation of the cumulants).
                1e-11,
                top,
                "xent_d10 vs eval",
            );
        }
        // Contract all ten indices with v. Each entry of the reference is
        // itself a sum of thousands of cancelling terms (~1e-11 relative to
        // their size), and the contraction cancels again: agreement to
        // 1e-6 here (measured 8e-8), against 1e-9 for exact entries above.
        let (mut t, mut mag) = (d10.clone(), d10.iter().map(|x| x.abs()).collect::<Vec<_>>());
        let abs_v: Vec<f64> = v.iter().map(|x| x.abs()).collect();
        for _ in 0..10 {
            t = t.chunks(n).map(|c| dot(c, &v)).collect();
            mag = mag.chunks(n).map(|c| dot(c, &abs_v)).collect();
        }
        close_with(
            &[xent::xent_d10_dir(&z, &q, &v)],
            &t,
            1e-6,
            1e-4 * mag[0] + 1e-6 * s,
            "xent_d10_dir vs contracted xent_d10",
        );
    }
}

#[test]
fn xent_kernels_stay_finite_at_extreme_logits_and_zero_targets() {
    let z = [1e4, -1e4, 0.0, 1e4 - 1.0, -3.0];
    let q = [0.0, 0.0, 1.0, 0.0, 0.0];
    let (p, lse) = reference(&z);
    assert!(xent::xent(&z, &q).is_finite());
    close(&[xent::xent(&z, &q)], &[lse - z[2]], 1e-12, "xent at ±1e4");
    let mut g = [0.0; 5];
    xent::xent_grad(&z, &q, &mut g);
    let want: Vec<f64> = (0..5).map(|i| p[i] - q[i]).collect();
    close(&g, &want, 1e-12, "xent_grad at ±1e4");
    let mut h = [0.0; 25];
    xent::xent_hessian(&z, &q, &mut h);
    assert!(h.iter().all(|x| x.is_finite()));
    assert!(xent::xent_d3_dir(&z, &q, &[1.0, -2.0, 0.5, 3.0, 0.0]).is_finite());
}

/// Logits of length 1000 (15 blocks of 64 and a short one) whose maximum
/// lies where the kernels' first guess of the shift does not see it.
fn far_maximum_cases() -> Vec<(&'static str, Vec<f64>)> {
    let mut rng = Rng(0x5eed_000b);
    let base = rng.vec(1000, -2.0, 2.0);
    let with = |at: usize, x: f64| {
        let mut z = base.clone();
        z[at] = x;
        z
    };
    let mut low_start = base.clone();
    low_start[..64].iter_mut().for_each(|x| *x = -1e4);
    vec![
        // Past every threshold: the exact maximum, recomputed once.
        ("a ramp", (0..1000).map(|i| i as f64).collect()),
        ("1e4 in the short last block", with(999, 1e4)),
        ("420 above the first block", with(130, 420.0)),
        ("a first block at -1e4", low_start),
        // Below the threshold: exponentials up to e^400 are summed as they are.
        ("400 above the first block", with(700, 400.0)),
        // The first block holds the maximum.
        ("1e4 in the first block", with(5, 1e4)),
    ]
}

#[test]
fn long_kernels_are_exact_when_the_maximum_lies_past_the_first_block() {
    // The exponentials' pass shifts by the first block's maximum and starts
    // over with the exact one only when a later entry is far above it.
    let mut rng = Rng(0x5eed_000c);
    for (case, z) in far_maximum_cases() {
        let n = z.len();
        let q = rng.vec(n, 0.0, 2.0);
        let v = rng.vec(n, -1.0, 1.0);
        let (p, lse) = reference(&z);
        let s: f64 = q.iter().sum();
        let what = |f: &str| format!("{f} with {case}");
        let floor = terms_floor(&z) * s;
        // The size of the terms that cancel in a derivative: `s·p_i`, `q_i`.
        let terms = s * p.iter().fold(0.0f64, |a, &b| a.max(b)) + 2.0;
        close_with(
            &[xent::xent(&z, &q), xent::baseline::xent(&z, &q)],
            &[s * lse - dot(&z, &q); 2],
            1e-12,
            floor,
            &what("xent"),
        );
        let want: Vec<f64> = (0..n).map(|i| s * p[i] - q[i]).collect();
        let mut g = vec![0.0; n];
        xent::xent_grad(&z, &q, &mut g);
        close_with(&g, &want, 1e-12, terms, &what("xent_grad"));
        xent::baseline::grad(&z, &q, &mut g);
        close_with(&g, &want, 1e-12, terms, &what("baseline xent_grad"));
        let pv = dot(&p, &v);
        let want: Vec<f64> = (0..n).map(|i| s * (p[i] * v[i] - p[i] * pv)).collect();
        xent::xent_hvp(&z, &q, &v, &mut g);
        close_with(&g, &want, 1e-12, terms, &what("xent_hvp"));
        let w: Vec<f64> = v.iter().map(|x| x - pv).collect();
        let k3 = s * p.iter().zip(&w).map(|(a, b)| a * b.powi(3)).sum::<f64>();
        close_with(
            &[xent::xent_d3_dir(&z, &q, &v)],
            &[k3],
            1e-10,
            terms,
            &what("xent_d3_dir"),
        );
        softmax::softmax(&z, &mut g);
        close_with(&g, &p, 1e-12, 1e-12, &what("softmax"));
        log_softmax::log_softmax(&z, &mut g);
        let want: Vec<f64> = z.iter().map(|x| x - lse).collect();
        close_with(&g, &want, 1e-12, 0.0, &what("log_softmax"));
        close_with(
            &[logsumexp::logsumexp(&z)],
            &[lse],
            1e-15,
            0.0,
            &what("logsumexp"),
        );
        logsumexp::logsumexp_grad(&z, &mut g);
        close_with(&g, &p, 1e-12, 1e-12, &what("logsumexp_grad"));
    }
}

#[test]
fn the_baseline_bodies_agree_with_the_dispatched_kernels() {
    // On a CPU with AVX2 and FMA the public functions run a second copy of
    // each body, compiled for those features; elsewhere they run the
    // baseline. The two differ only in rounding (fused multiply-adds).
    let mut rng = Rng(0x5eed_0009);
    for trial in 0..100 {
        let n = 1 + trial % 13 + if trial % 10 == 0 { 300 } else { 0 };
        let z = rng.logits(n);
        let q = rng.vec(n, 0.0, 2.0);
        let v = rng.vec(n, -1.0, 1.0);
        let floor = terms_floor(&z) * q.iter().sum::<f64>().max(1.0);
        let what = |f: &str| format!("baseline {f} at n={n}");
        close_with(
            &[xent::baseline::xent(&z, &q)],
            &[xent::xent(&z, &q)],
            1e-13,
            floor,
            &what("xent"),
        );
        let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
        xent::baseline::grad(&z, &q, &mut a);
        xent::xent_grad(&z, &q, &mut b);
        close_with(&a, &b, 1e-13, floor, &what("grad"));
        xent::baseline::hvp(&z, &q, &v, &mut a);
        xent::xent_hvp(&z, &q, &v, &mut b);
        close_with(&a, &b, 1e-13, floor, &what("hvp"));
        if n <= 13 {
            let (mut a, mut b) = (vec![0.0; n * n * n], vec![0.0; n * n * n]);
            xent::baseline::d3(&z, &q, &mut a);
            xent::xent_d3(&z, &q, &mut b);
            close_with(&a, &b, 1e-13, floor, &what("d3"));
        }
        close_with(
            &[xent::baseline::d4_dir(&z, &q, &v)],
            &[xent::xent_d4_dir(&z, &q, &v)],
            1e-11,
            floor,
            &what("d4_dir"),
        );
    }
}

#[test]
fn the_polynomial_exp_of_shifted_arguments_is_within_two_ulp_of_std() {
    // Over the whole range where it is not clamped, plus random points
    // near zero where softmax arguments (x − shift) mostly fall. The
    // example crate tests the general `exp` over its whole range.
    let mut rng = Rng(0x5eed_000a);
    let mut xs: Vec<f64> = (0..=141_700).map(|k| -708.0 + k as f64 * 0.01).collect();
    xs.extend(rng.vec(100_000, -40.0, 1.0));
    xs.extend([0.0, -0.0, -1e-300, 5e-324, -707.99, -708.0, 708.99, 709.0]);
    for fma in [false, true] {
        let exp = |x| xent::baseline::exp_shifted(x, fma);
        let mut worst: f64 = 0.0;
        for &x in &xs {
            let (got, want) = (exp(x), x.exp());
            let ulps = got.to_bits().abs_diff(want.to_bits()) as f64;
            assert!(
                ulps <= 2.0,
                "exp({x}) = {got}, std {want}: {ulps} ulp (fma {fma})"
            );
            worst = worst.max(ulps);
        }
        assert!(worst > 0.0, "a test that cannot fail");
        for x in [-708.5, -745.2, -1e4, f64::NEG_INFINITY] {
            assert_eq!(exp(x), 0.0, "exp({x}) flushes to zero");
        }
        // Above 709 the argument is clamped: finite, never wrapped.
        for x in [709.5, 1e4, f64::INFINITY] {
            assert_eq!(exp(x), exp(709.0), "exp({x}) is clamped");
        }
        assert!(exp(f64::NAN).is_nan());
    }
}

#[test]
fn softmax_kernels_match_closed_forms_and_eval() {
    let mut rng = Rng(0x5eed_0003);
    for trial in 0..100 {
        let n = 1 + trial % 13;
        let z = rng.logits(n);
        let (p, _) = reference(&z);
        let floor = terms_floor(&z);
        let mut out = vec![0.0; n];
        softmax::softmax(&z, &mut out);
        close_with(&out, &p, 1e-10, floor, "softmax");
        let mut j = vec![0.0; n * n];
        softmax::softmax_grad(&z, &mut j);
        let want: Vec<f64> = (0..n * n)
            .map(|e| p[e / n] * delta(e / n, e % n) - p[e / n] * p[e % n])
            .collect();
        close_with(&j, &want, 1e-10, floor, "softmax_grad");
    }
    for n in 1..=6 {
        let z = rng.vec(n, -4.0, 4.0);
        let v = rng.vec(n, -1.0, 1.0);
        let floor = terms_floor(&z);
        let mut h = vec![0.0; n * n * n];
        softmax::softmax_hessian(&z, &mut h);
        close_with(
            &h,
            &eval("softmax(z)", 2, &[("z", &z)]),
            1e-10,
            floor,
            "softmax_hessian vs eval",
        );
        let mut hv = vec![0.0; n * n];
        softmax::softmax_hvp(&z, &v, &mut hv);
        let want: Vec<f64> = (0..n * n)
            .map(|e| (0..n).map(|k| h[e * n + k] * v[k]).sum())
            .collect();
        close_with(
            &hv,
            &want,
            1e-10,
            floor,
            "softmax_hvp vs contracted hessian",
        );
        let grad = |x: &[f64]| {
            let mut o = vec![0.0; n * n];
            softmax::softmax_grad(x, &mut o);
            o
        };
        close_with(
            &jacobian_fd(&grad, &z),
            &h,
            1e-6,
            floor,
            "softmax_hessian vs differences",
        );
    }
}

#[test]
fn log_softmax_kernels_match_closed_forms() {
    let mut rng = Rng(0x5eed_0004);
    for trial in 0..100 {
        let n = 1 + trial % 13;
        let z = rng.logits(n);
        let (p, lse) = reference(&z);
        let floor = terms_floor(&z);
        let mut out = vec![0.0; n];
        log_softmax::log_softmax(&z, &mut out);
        let want: Vec<f64> = z.iter().map(|x| x - lse).collect();
        close_with(&out, &want, 1e-10, floor, "log_softmax");
        assert!(
            out.iter().all(|x| x.is_finite()),
            "log_softmax stays finite where softmax underflows"
        );
        let mut j = vec![0.0; n * n];
        log_softmax::log_softmax_grad(&z, &mut j);
        let want: Vec<f64> = (0..n * n).map(|e| delta(e / n, e % n) - p[e % n]).collect();
        close_with(&j, &want, 1e-10, floor, "log_softmax_grad");
        let mut h = vec![0.0; n * n * n];
        log_softmax::log_softmax_hessian(&z, &mut h);
        let want: Vec<f64> = (0..n * n * n)
            .map(|e| {
                let (j, k) = ((e / n) % n, e % n);
                p[j] * p[k] - p[j] * delta(j, k)
            })
            .collect();
        close_with(&h, &want, 1e-10, floor, "log_softmax_hessian");
    }
}

#[test]
fn logsumexp_kernels_match_closed_forms_and_eval() {
    let mut rng = Rng(0x5eed_0005);
    for trial in 0..100 {
        let n = 1 + trial % 13;
        let z = rng.logits(n);
        let v = rng.vec(n, -1.0, 1.0);
        let (p, lse) = reference(&z);
        let floor = terms_floor(&z);
        close_with(
            &[logsumexp::logsumexp(&z)],
            &[lse],
            1e-12,
            floor,
            "logsumexp",
        );
        let mut g = vec![0.0; n];
        logsumexp::logsumexp_grad(&z, &mut g);
        close_with(&g, &p, 1e-10, floor, "logsumexp_grad");
        let pv = dot(&p, &v);
        let mut hv = vec![0.0; n];
        logsumexp::logsumexp_hvp(&z, &v, &mut hv);
        let want: Vec<f64> = (0..n).map(|i| p[i] * v[i] - p[i] * pv).collect();
        close_with(&hv, &want, 1e-10, floor, "logsumexp_hvp");
        let w: Vec<f64> = v.iter().map(|x| x - pv).collect();
        let k3: f64 = p.iter().zip(&w).map(|(a, b)| a * b.powi(3)).sum();
        close_with(
            &[logsumexp::logsumexp_d3_dir(&z, &v)],
            &[k3],
            1e-9,
            floor,
            "logsumexp_d3_dir",
        );
    }
    for n in 1..=6 {
        let z = rng.vec(n, -4.0, 4.0);
        let floor = terms_floor(&z);
        let mut d3 = vec![0.0; n * n * n];
        logsumexp::logsumexp_d3(&z, &mut d3);
        close_with(
            &d3,
            &eval("logsumexp(z)", 3, &[("z", &z)]),
            1e-10,
            floor,
            "logsumexp_d3 vs eval",
        );
    }
}

#[test]
fn kernels_check_lengths_at_entry() {
    let r = std::panic::catch_unwind(|| {
        let mut g = [0.0; 3];
        xent::xent_grad(&[1.0, 2.0, 3.0], &[1.0, 0.0], &mut g);
    });
    assert!(r.is_err(), "a short `q` is refused");
}

/// `(H + λI) x = v` by Gaussian elimination with partial pivoting: the
/// dense O(n³) solve `xent_newton` replaces.
fn dense_solve(mut a: Vec<f64>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&x, &y| a[x * n + c].abs().total_cmp(&a[y * n + c].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(c * n + k, p * n + k);
        }
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            if f != 0.0 {
                for k in c..n {
                    a[r * n + k] -= f * a[c * n + k];
                }
                b[r] -= f * b[c];
            }
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    x
}

/// The O(n) Newton step agrees with a dense solve of the full Hessian, up
/// to n = 1000, for small and large λ and logits of either sign; at λ = 0
/// the least-norm step solves `H x = g` with `x ⊥ 1`.
#[test]
fn xent_newton_agrees_with_a_dense_solve() {
    for n in [2usize, 10, 100, 1000] {
        let z: Vec<f64> = (0..n).map(|i| ((i as f64) * 0.618).sin() * 6.0).collect();
        let q: Vec<f64> = (0..n)
            .map(|i| ((i as f64) * 0.3).cos().abs() + 0.1)
            .collect();
        let v: Vec<f64> = (0..n).map(|i| ((i as f64) * 1.7).sin()).collect();
        let mut h = vec![0.0; n * n];
        xent::xent_hessian(&z, &q, &mut h);
        for lambda in [1e-3, 1.0] {
            let mut a = h.clone();
            for i in 0..n {
                a[i * n + i] += lambda;
            }
            let want = dense_solve(a, v.clone());
            let mut got = vec![0.0; n];
            xent::xent_newton(&z, &q, &v, lambda, &mut got);
            let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            let err = got
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(
                err <= 1e-10 * scale,
                "n = {n}, λ = {lambda}: error {err:e}, scale {scale:e}"
            );
        }
        // λ = 0: g = H v is in the range; x = H⁺ g is v less its mean.
        let mut g = vec![0.0; n];
        xent::xent_hvp(&z, &q, &v, &mut g);
        let mut x = vec![0.0; n];
        xent::xent_newton_least_norm(&z, &q, &g, &mut x);
        let mean = v.iter().sum::<f64>() / n as f64;
        for i in 0..n {
            assert!(
                (x[i] - (v[i] - mean)).abs() < 1e-8,
                "n = {n}, entry {i}: {} vs {}",
                x[i],
                v[i] - mean
            );
        }
    }
}

#[test]
fn f32_kernels_agree_with_f64_to_f32_precision() {
    let mut rng = Rng(0x5eed_0032);
    for n in [1, 7, 100, 1000, 100_000] {
        let z = rng.vec(n, -4.0, 4.0);
        let q = rng.vec(n, 0.0, 1.0);
        let v = rng.vec(n, -1.0, 1.0);
        let f = |x: &[f64]| x.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (z32, q32, v32) = (f(&z), f(&q), f(&v));
        // From the f32 data, so that only the arithmetic differs.
        let back = |x: &[f32]| x.iter().map(|&a| f64::from(a)).collect::<Vec<f64>>();
        let (z, q, v) = (back(&z32), back(&q32), back(&v32));
        let want = xent::xent_d3_dir(&z, &q, &v);
        let got = f64::from(xent_f32::xent_f32_d3_dir(&z32, &q32, &v32));
        // Sums accumulate in f64; the terms are f32: a few ulp of the
        // moments, which are of the size of Σq·E|v − p·v|³.
        let s: f64 = q.iter().sum();
        assert!(
            (got - want).abs() <= 1e-5 * (want.abs() + s),
            "n = {n}: {got} against {want}"
        );
        let mut g32 = vec![0.0f32; n];
        xent_f32::xent_f32_grad(&z32, &q32, &mut g32);
        let mut g = vec![0.0; n];
        xent::xent_grad(&z, &q, &mut g);
        for i in 0..n {
            assert!(
                (f64::from(g32[i]) - g[i]).abs() <= 1e-5 * (g[i].abs() + s / n as f64),
                "grad {i}"
            );
        }
    }
}

/// Full Hessians split their rows over threads (`_threads`): each row is
/// computed as with one thread, in f64 and in f32 (whose ranges keep f64
/// sums where the one-thread body does).
#[test]
fn hessian_rows_on_threads_are_the_one_thread_rows() {
    let mut rng = Rng(0x7_4ead);
    let n = 300;
    let z = rng.vec(n, -4.0, 4.0);
    let q = rng.vec(n, 0.0, 1.0);
    let (mut one, mut two) = (vec![0.0; n * n], vec![0.0; n * n]);
    xent::xent_hessian(&z, &q, &mut one);
    xent::xent_hessian_threads(&z, &q, &mut two, 2);
    assert_eq!(one, two);
    let f = |x: &[f64]| x.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    let (z32, q32) = (f(&z), f(&q));
    let (mut one, mut two) = (vec![0.0f32; n * n], vec![0.0f32; n * n]);
    xent_f32::xent_f32_hessian(&z32, &q32, &mut one);
    xent_f32::xent_f32_hessian_threads(&z32, &q32, &mut two, 2);
    assert_eq!(one, two);
}

//! The build-script kernels give correct derivatives: checked against
//! central finite differences of the generated value function.

use symdiff_example::{
    classifier, classifier_grad, poisson, poisson_grad, xent, xent32, xent32_grad, xent8_grad,
    xent8_hvp, xent_d3_dir, xent_grad, xent_hessian, xent_hvp, xent_value_grad,
};

fn fd_grad(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let h = 1e-6 * (1.0 + x[i].abs());
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            a[i] += h;
            b[i] -= h;
            (f(&a) - f(&b)) / (2.0 * h)
        })
        .collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * (1.0 + w.abs()),
            "[{i}] got {g}, want {w}"
        );
    }
}

#[test]
fn xent_gradient_hessian_and_third_derivative() {
    let z = [0.3, -1.2, 2.0, 0.7];
    let q = [0.1, 0.0, 0.6, 0.5];
    let mut g = [0.0; 4];
    xent_grad(&z, &q, &mut g);
    assert_close(&g, &fd_grad(&|x| xent(x, &q), &z), 1e-7);

    let mut h = [0.0; 16];
    xent_hessian(&z, &q, &mut h);
    let v = [1.0, -0.5, 0.25, 2.0];
    let mut hv = [0.0; 4];
    xent_hvp(&z, &q, &v, &mut hv);
    let hv_full: Vec<f64> = (0..4)
        .map(|i| (0..4).map(|j| h[i * 4 + j] * v[j]).sum())
        .collect();
    assert_close(&hv, &hv_full, 1e-12);
    // The Hessian is singular along 1.
    for i in 0..4 {
        assert!((0..4).map(|j| h[i * 4 + j]).sum::<f64>().abs() < 1e-12);
    }
    // D³f[v,v,v] is the derivative of vᵀ H v along v.
    let quad = |x: &[f64]| {
        let mut hh = [0.0; 16];
        xent_hessian(x, &q, &mut hh);
        (0..16).map(|e| hh[e] * v[e / 4] * v[e % 4]).sum::<f64>()
    };
    let eps = 1e-5;
    let zp: Vec<f64> = z.iter().zip(&v).map(|(a, b)| a + eps * b).collect();
    let zm: Vec<f64> = z.iter().zip(&v).map(|(a, b)| a - eps * b).collect();
    let want = (quad(&zp) - quad(&zm)) / (2.0 * eps);
    assert_close(&[xent_d3_dir(&z, &q, &v)], &[want], 1e-6);
}

#[test]
fn linear_classifier_gradient_wrt_weights() {
    let (m, d, k) = (3, 2, 4);
    let x: Vec<f64> = (0..m * d).map(|i| (i as f64 * 0.37).sin()).collect();
    let w: Vec<f64> = (0..d * k).map(|i| (i as f64 * 0.91).cos()).collect();
    let b = [0.1, -0.2, 0.3, 0.0];
    let y = [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0];
    let mut g = vec![0.0; d * k];
    classifier_grad(m, d, &x, &w, &b, &y, &mut g);
    let want = fd_grad(&|ww| classifier(m, d, &x, ww, &b, &y), &w);
    assert_close(&g, &want, 1e-7);
}

#[test]
fn f32_kernels_of_fixed_length_agree_with_the_f64_ones() {
    // Logits far apart (±80 overflows an unshifted f32 exp) and q with zeros.
    let z64 = [0.3, -80.0, 2.0, 0.7, 80.0, -1.5, 79.0, 0.0];
    let q64 = [0.1, 0.0, 0.6, 0.5, 0.0, 0.2, 0.3, 0.0];
    let z: Vec<f32> = z64.iter().map(|&x| x as f32).collect();
    let q: Vec<f32> = q64.iter().map(|&x| x as f32).collect();
    let v: Vec<f32> = (0..8).map(|i| (i as f32 * 0.7).sin()).collect();
    let v64: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
    let (mut g, mut g64) = ([0.0f32; 8], [0.0f64; 8]);
    xent8_grad(&z, &q, &mut g);
    xent_grad(&z64, &q64, &mut g64);
    let g: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
    assert_close(&g, &g64, 1e-6);
    let (mut h, mut h64) = ([0.0f32; 8], [0.0f64; 8]);
    xent8_hvp(&z, &q, &v, &mut h);
    xent_hvp(&z64, &q64, &v64, &mut h64);
    let h: Vec<f64> = h.iter().map(|&x| f64::from(x)).collect();
    assert_close(&h, &h64, 1e-6);
    assert!(g.iter().chain(&h).all(|x| x.is_finite()));
}

#[test]
fn f32_kernels_of_any_length_agree_with_the_f64_ones_wherever_the_maximum_is() {
    // 1000 logits, so the exponentials' pass runs in blocks and shifts by
    // the first block's maximum until an entry far above it (f32: more
    // than about 44) makes it start over with the exact one.
    let base: Vec<f64> = (0..1000).map(|i| (i as f64 * 0.37).sin() * 2.0).collect();
    let with = |at: usize, x: f64| {
        let mut z = base.clone();
        z[at] = x;
        z
    };
    let cases = [
        ("a ramp", (0..1000).map(|i| i as f64 * 0.5).collect()),
        ("80 in the last block", with(999, 80.0)),
        ("40 above the first block", with(500, 40.0)),
        ("the maximum in the first block", with(3, 80.0)),
        ("no outlier", base.clone()),
    ];
    let q64: Vec<f64> = (0..1000).map(|i| ((i % 7) as f64) * 0.1).collect();
    let q: Vec<f32> = q64.iter().map(|&x| x as f32).collect();
    for (case, z64) in cases {
        let z: Vec<f32> = z64.iter().map(|&x| x as f32).collect();
        // The f64 kernel at the f32 point, so only the arithmetic differs.
        let z64: Vec<f64> = z.iter().map(|&x| f64::from(x)).collect();
        let q64: Vec<f64> = q.iter().map(|&x| f64::from(x)).collect();
        let (got, want) = (f64::from(xent32(&z, &q)), xent(&z64, &q64));
        assert!(
            (got - want).abs() <= 1e-5 * want.abs(),
            "xent32 with {case}: {got} vs {want}"
        );
        let (mut g, mut g64) = (vec![0.0f32; 1000], vec![0.0f64; 1000]);
        xent32_grad(&z, &q, &mut g);
        xent_grad(&z64, &q64, &mut g64);
        let s: f64 = q64.iter().sum();
        for (i, (&a, &b)) in g.iter().zip(&g64).enumerate() {
            assert!(
                (f64::from(a) - b).abs() <= 1e-5 * (s + 1.0) * 1e-2 + 1e-5 * b.abs(),
                "xent32_grad[{i}] with {case}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn poisson_gradient_is_exp_minus_counts() {
    // Rates e^z from 2e-44 to 5e43: the polynomial exp on both sides of 0.
    let z = [-100.0, -3.5, -0.2, 0.0, 0.7, 4.0, 100.0];
    let q = [0.0, 1.0, 2.0, 0.0, 3.0, 50.0, 1e40];
    let mut g = [0.0; 7];
    poisson_grad(&z, &q, &mut g);
    for i in 0..7 {
        let want = z[i].exp() - q[i];
        assert!(
            (g[i] - want).abs() <= 1e-14 * (z[i].exp() + q[i]),
            "[{i}] {} vs {want}",
            g[i]
        );
    }
    let at = [0.3, -1.2, 2.0];
    let counts = [1.0, 0.0, 4.0];
    let mut g = [0.0; 3];
    poisson_grad(&at, &counts, &mut g);
    assert_close(&g, &fd_grad(&|x| poisson(x, &counts), &at), 1e-7);
}

/// A NaN logit gives NaN derivatives whatever its payload: R's `NA_real_`
/// (0x7ff00000000007a2) has low bits that the polynomial `exp` would carry
/// into the exponent field of its result.
#[test]
fn nan_logits_with_any_payload_give_nan() {
    for bits in [
        0x7ff8_0000_0000_0000u64,
        0x7ff0_0000_0000_07a2,
        0xfff0_0000_0000_0001,
    ] {
        let nan = f64::from_bits(bits);
        assert!(nan.is_nan());
        for n in [3usize, 100, 1000] {
            let mut z: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            z[n / 2] = nan;
            let q = vec![1.0 / n as f64; n];
            let mut g = vec![0.0; n];
            xent_grad(&z, &q, &mut g);
            assert!(
                g.iter().all(|x| x.is_nan()),
                "n = {n}, payload {bits:#x}: {:?}",
                &g[..3]
            );
            let mut hv = vec![0.0; n];
            xent_hvp(&z, &q, &q, &mut hv);
            assert!(hv.iter().all(|x| x.is_nan()));
            assert!(xent_d3_dir(&z, &q, &q).is_nan());
            assert!(xent(&z, &q).is_nan());
        }
    }
}

/// Logits masked with −∞ drop out of the gradient, however many lead the
/// row (a whole first block of 64 used to make every entry NaN).
#[test]
fn masked_logits_drop_out_wherever_they_are() {
    for (n, masked) in [(100usize, 64usize), (100, 63), (1000, 900), (200, 199)] {
        let mut z: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        for x in &mut z[..masked] {
            *x = f64::NEG_INFINITY;
        }
        let q: Vec<f64> = (0..n).map(|i| if i < masked { 0.0 } else { 1.0 }).collect();
        let mut g = vec![0.0; n];
        xent_grad(&z, &q, &mut g);
        // The same problem without the masked entries.
        let (zk, qk) = (&z[masked..], &q[masked..]);
        let mut gk = vec![0.0; n - masked];
        xent_grad(zk, qk, &mut gk);
        assert!(
            g[..masked].iter().all(|&x| x == 0.0),
            "n = {n}, masked = {masked}"
        );
        assert_close(&g[masked..], &gk, 1e-12);
        // (The value is NaN here, as in JAX: 0 · log(0) of a masked target.)
    }
}

/// The value of xent is shift-invariant in the logits, and the kernel
/// computes it at `z − max(z)`: at logits of 1e300 (or offset by 1e12)
/// it keeps full precision, where `s·logsumexp(z) − q·z` as written loses
/// everything to cancellation.
#[test]
fn xent_value_keeps_its_digits_at_huge_logits() {
    let q = [0.2, 0.3, 0.5];
    let base = [0.0, 1.0, 3.0];
    let exact = xent(&base, &q);
    let want = {
        let lse = (0f64.exp() + 1f64.exp() + 3f64.exp()).ln();
        q.iter().zip(&base).map(|(q, z)| q * (lse - z)).sum::<f64>()
    };
    assert!((exact - want).abs() <= 1e-15 * want);
    for offset in [1e12, 1e100, 1e300, -1e300] {
        // Logits with the spacing of `base` where the offset allows it,
        // else all equal.
        let z: Vec<f64> = base.iter().map(|b| offset + b).collect();
        let spaced: Vec<f64> = z.iter().map(|x| x - offset).collect();
        let want = xent(&spaced, &q);
        let got = xent(&z, &q);
        assert!(
            (got - want).abs() <= 1e-12 * want.abs(),
            "offset {offset}: {got} vs {want}"
        );
    }
    let z = [1e300; 3];
    assert!((xent(&z, &q) - 3f64.ln()).abs() <= 1e-12 * 3f64.ln());
}

/// `xent_value_grad` is the value and the gradient, as the two kernels
/// give them, in one call.
#[test]
fn value_grad_is_value_and_gradient() {
    let z = [0.3, -1.1, 2.0, 0.6];
    let q = [0.1, 0.2, 0.6, 0.1];
    let mut g = [0.0; 4];
    let mut vg = [0.0; 4];
    xent_grad(&z, &q, &mut g);
    let v = xent_value_grad(&z, &q, &mut vg);
    assert_eq!(v, xent(&z, &q));
    assert_eq!(g, vg);
}

/// The end-to-end Newton fit: the exact Hessian converges in a handful of
/// iterations, the diagonal bound takes many more, to the same loss.
#[test]
fn newton_with_the_exact_hessian_beats_the_diagonal_bound() {
    use symdiff_example::newton;
    let q = newton::counts();
    assert_eq!(q, vec![90.0, 45.0, 15.0]);
    let (exact, l1) = newton::exact(&q, 1e-3, 1e-9, 10_000);
    let (diag, l2) = newton::diagonal(&q, 1e-3, 1e-9, 10_000_000);
    assert!(exact <= 10, "exact Newton took {exact} iterations");
    // The diagonal bound crawls along the Hessian's null direction (1),
    // which only λ = 1e-3 curves: hundreds of thousands of iterations.
    assert!(
        diag > 1000 * exact && diag < 10_000_000,
        "diagonal {diag} vs exact {exact}"
    );
    assert!((l1 - l2).abs() <= 1e-9 * l1.abs(), "{l1} vs {l2}");
}

/// Per-row structure of a batch, compiled: each row's Hessian block is
/// `S_rᵀS_r`, the diagonal is the block diagonals, and the per-row Newton
/// step solves `(H_r + λI) x_r = v_r`, all against the full Hessian.
#[test]
fn batched_factor_diagonal_and_newton_agree_with_the_full_hessian() {
    use symdiff_example::{batch_hessian, batch_hessian_diag, batch_hessian_factor, batch_newton};
    let (m, n) = (3, 4);
    let z: Vec<f64> = (0..m * n)
        .map(|k| ((k * 7 % 11) as f64 - 5.0) * 0.4)
        .collect();
    let y: Vec<f64> = (0..m * n)
        .map(|k| ((k * 5 % 7) as f64 + 1.0) / 10.0)
        .collect();
    let w = m * n;
    let mut h = vec![0.0; w * w];
    batch_hessian(m, n, &z, &y, &mut h);
    let mut s = vec![0.0; m * n * n];
    batch_hessian_factor(m, n, &z, &y, &mut s);
    let mut diag = vec![0.0; w];
    batch_hessian_diag(m, n, &z, &y, &mut diag);
    let v: Vec<f64> = (0..w).map(|k| (k as f64 * 0.37).sin()).collect();
    let lambda = 0.25;
    let mut x = vec![0.0; w];
    batch_newton(m, n, &z, &y, &v, lambda, &mut x);
    for r in 0..m {
        let s_r = &s[r * n * n..(r + 1) * n * n];
        for i in 0..n {
            let hii = h[(r * n + i) * w + r * n + i];
            assert!((diag[r * n + i] - hii).abs() < 1e-14, "diag row {r}");
            for j in 0..n {
                let sts: f64 = (0..n).map(|k| s_r[k * n + i] * s_r[k * n + j]).sum();
                let hij = h[(r * n + i) * w + r * n + j];
                assert!(
                    (sts - hij).abs() < 1e-14,
                    "SᵀS row {r} ({i}, {j}): {sts} vs {hij}"
                );
            }
        }
    }
    for a in 0..w {
        let back: f64 = (0..w).map(|b| h[a * w + b] * x[b]).sum::<f64>() + lambda * x[a];
        assert!(
            (back - v[a]).abs() < 1e-12,
            "Newton entry {a}: {back} vs {}",
            v[a]
        );
    }
}

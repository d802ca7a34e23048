//! Univariate polynomials over f64 (coefficients by degree), for
//! square-free factoring of denominators.

use super::EPS;

pub(super) fn trim(mut p: Vec<f64>) -> Vec<f64> {
    let big = p.iter().map(|x| x.abs()).fold(0.0, f64::max);
    while let Some(&last) = p.last() {
        if last.abs() <= EPS * big.max(1e-300) {
            p.pop();
        } else {
            break;
        }
    }
    p
}

pub(super) fn derivative(p: &[f64]) -> Vec<f64> {
    p.iter()
        .enumerate()
        .skip(1)
        .map(|(d, c)| c * d as f64)
        .collect()
}

/// Quotient and remainder.
pub(super) fn divmod(a: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let b = trim(b.to_vec());
    let mut r = trim(a.to_vec());
    if b.is_empty() || r.len() < b.len() {
        return (vec![], r);
    }
    let lead = *b.last().unwrap();
    let mut q = vec![0.0; r.len() - b.len() + 1];
    while r.len() >= b.len() && !r.is_empty() {
        let shift = r.len() - b.len();
        let c = r.last().unwrap() / lead;
        q[shift] = c;
        for (k, bk) in b.iter().enumerate() {
            r[shift + k] -= c * bk;
        }
        r.pop();
        r = trim(r);
    }
    (q, r)
}

pub(super) fn monic(p: Vec<f64>) -> Vec<f64> {
    match p.last() {
        Some(&l) if l != 0.0 => p.iter().map(|c| c / l).collect(),
        _ => p,
    }
}

pub(super) fn gcd(a: &[f64], b: &[f64]) -> Vec<f64> {
    let (mut a, mut b) = (monic(trim(a.to_vec())), monic(trim(b.to_vec())));
    while !b.is_empty() {
        let (_, r) = divmod(&a, &b);
        a = b;
        b = monic(r);
    }
    a
}

/// Yun's square-free factorisation: `[(factor, multiplicity)]`, factors
/// monic; the leading coefficient of `f` is left to the caller (bases are
/// normalised by their constant term, which [`from_univariate`] restores).
pub(super) fn square_free(f: &[f64]) -> Vec<(Vec<f64>, u32)> {
    let f = trim(f.to_vec());
    let df = derivative(&f);
    let g = gcd(&f, &df);
    if g.len() <= 1 {
        return vec![(f, 1)];
    }
    let mut out = Vec::new();
    let mut c = divmod(&f, &g).0;
    let mut d = {
        let (q, _) = divmod(&df, &g);
        sub(&q, &derivative(&c))
    };
    let mut i = 1;
    while trim(c.clone()).len() > 1 && i <= 64 {
        let a = gcd(&c, &d);
        if a.len() > 1 {
            out.push((a.clone(), i));
        }
        c = divmod(&c, &a).0;
        d = sub(&divmod(&d, &a).0, &derivative(&c));
        i += 1;
    }
    if out.is_empty() {
        vec![(f, 1)]
    } else {
        out
    }
}

pub(super) fn sub(a: &[f64], b: &[f64]) -> Vec<f64> {
    let n = a.len().max(b.len());
    trim(
        (0..n)
            .map(|k| a.get(k).copied().unwrap_or(0.0) - b.get(k).copied().unwrap_or(0.0))
            .collect(),
    )
}

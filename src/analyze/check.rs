//! Numerical checks of what `analyze` claims: a factorization `SᵀS = H`
//! and a null space `H·v = 0`, evaluated by the `eval` interpreter at a
//! random point (every symbolic length 5, every entry in [0.2, 1.2]: the
//! weights of a loss stay positive, so the claims' conditions hold).

use crate::derive::Derivation;
use crate::eval::Point;
use crate::ir::{fresh, Dim, Ix, Poly};
use crate::rules::assume::Fact;
use crate::sym::Tensor;

/// A random point for every variable of `d`, or None when it cannot be
/// built.
pub(crate) fn random_point(d: &Derivation) -> Option<Point> {
    random_point_where(d, &[])
}

/// [`random_point`] where the facts hold: a variable assumed to sum to 1
/// is scaled to, rows assumed to sum to 1 are, and a one-hot variable has
/// one 1 per row.
pub(crate) fn random_point_where(d: &Derivation, facts: &[Fact]) -> Option<Point> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let len = |x: &Dim| match x {
        Dim::Fixed(k) => *k,
        Dim::Named(_) => 5,
    };
    let mut at = Vec::new();
    for (name, shape) in &d.typed.vars {
        let dims = shape.dims();
        if dims.len() > 2 {
            return None;
        }
        let (rows, cols) = match dims.as_slice() {
            [] => (1, 1),
            [n] => (1, len(n)),
            [m, n] => (len(m), len(n)),
            _ => unreachable!(),
        };
        let mut vals: Vec<f64> = (0..rows * cols).map(|_| 0.2 + next()).collect();
        for f in facts.iter().filter(|f| f.var() == name) {
            match f {
                Fact::SumIsOne(_) => {
                    let total: f64 = vals.iter().sum();
                    vals.iter_mut().for_each(|v| *v /= total);
                }
                Fact::RowSumIsOne(_) => {
                    for row in vals.chunks_mut(cols) {
                        let total: f64 = row.iter().sum();
                        row.iter_mut().for_each(|v| *v /= total);
                    }
                }
                Fact::OneHot(_) => {
                    for (r, row) in vals.chunks_mut(cols).enumerate() {
                        row.iter_mut().for_each(|v| *v = 0.0);
                        row[(r * 7 + 3) % cols] = 1.0;
                    }
                }
            }
        }
        let list = |row: &[f64]| {
            let v: Vec<String> = row.iter().map(|x| format!("{x:e}")).collect();
            format!("[{}]", v.join(","))
        };
        at.push(match dims.len() {
            0 => format!("{name}={:e}", vals[0]),
            1 => format!("{name}={}", list(&vals)),
            _ => {
                let r: Vec<String> = vals.chunks(cols).map(list).collect();
                format!("{name}=[{}]", r.join(","))
            }
        });
    }
    crate::eval::bind(&d.typed, &crate::eval::parse_point(&at.join("; ")).ok()?).ok()
}

/// Largest |H − SᵀS| at a random point with every length 5, or None when
/// the point cannot be built.
pub(super) fn check_factor(d: &Derivation, h: &Tensor, s: &Poly, i: Ix, j: Ix) -> Option<f64> {
    // SᵀS_ij = Σ_k S_ki S_kj.
    let k = fresh();
    let ski = rename_both(s, i, j, k, i);
    let skj = rename_both(s, i, j, k, j);
    let sts = Poly::sum_over(k, &h.wrt_dims[0], &ski.mul(&skj));
    let dims = vec![h.wrt_dims[0].clone(), h.wrt_dims[0].clone()];
    largest_difference(d, h, sts, vec![i, j], dims)
}

/// Largest |H − P| over the entries of a Hessian `h` and a polynomial `p`
/// in the Hessian's indices `idx` (in its order).
pub(super) fn largest_difference(
    d: &Derivation,
    h: &Tensor,
    p: Poly,
    idx: Vec<Ix>,
    dims: Vec<Dim>,
) -> Option<f64> {
    let point = random_point(d)?;
    let want = crate::eval::evaluate(h, &point).ok()?;
    let t = Tensor::new(p, idx, dims, h.wrt_dims.clone());
    let got = crate::eval::evaluate(&t, &point).ok()?;
    (got.len() == want.len()).then(|| {
        got.iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max)
    })
}

/// `S` with its row index `i` read as `row` and its column `j` as `col`.
pub(super) fn rename_both(s: &Poly, i: Ix, j: Ix, row: Ix, col: Ix) -> Poly {
    let (ti, tj) = (fresh(), fresh());
    s.rename(i, ti)
        .rename(j, tj)
        .rename(ti, row)
        .rename(tj, col)
}

/// A checked difference as the report prints it: "below 1e-12" at
/// rounding level (the exact value depends on the point and the CPU, and
/// is in the JSON), else the value.
pub(super) fn size(err: f64) -> String {
    if err < 1e-12 {
        "below 1e-12".to_string()
    } else {
        format!("{err:.1e}")
    }
}

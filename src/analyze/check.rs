//! Numerical checks of what `analyze` claims: a factorization `SᵀS = H`
//! and a null space `H·v = 0`, evaluated by the `eval` interpreter at a
//! random point (every symbolic length 5, every entry in [0.2, 1.2]: the
//! weights of a loss stay positive, so the claims' conditions hold).

use crate::derive::Derivation;
use crate::eval::Point;
use crate::ir::{fresh, Dim, Ix, Poly};
use crate::sym::Tensor;

/// A random point for every variable of `d`, or None when it cannot be
/// built.
pub(super) fn random_point(d: &Derivation) -> Option<Point> {
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
        let mut list = |k: usize| -> String {
            let vals: Vec<String> = (0..k).map(|_| format!("{:.6}", 0.2 + next())).collect();
            format!("[{}]", vals.join(","))
        };
        at.push(match dims.len() {
            0 => format!("{name}={:.6}", 0.2 + next()),
            1 => format!("{name}={}", list(len(&dims[0]))),
            2 => {
                let rows: Vec<String> = (0..len(&dims[0])).map(|_| list(len(&dims[1]))).collect();
                format!("{name}=[{}]", rows.join(","))
            }
            _ => return None,
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

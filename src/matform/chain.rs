//! One term as a chain of matrix and vector links, free index → summed
//! index → free index.

use super::*;

/// A link of a chain, printed.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Link(pub(super) String);

/// A matrix entry, a vector entry, or something else.
pub(super) enum Piece {
    /// Name and its two indices.
    Matrix(String, Ix, Ix),
    /// A vector and its index.
    Vector(String, Ix),
}

pub(super) fn piece(a: &Atom, namer: &mut dyn Namer) -> Option<Piece> {
    match a {
        Atom::Var { name, idx } => match idx.as_slice() {
            [r, c] => Some(Piece::Matrix(name.to_string(), *r, *c)),
            [i] => Some(Piece::Vector(name.to_string(), *i)),
            _ => None,
        },
        Atom::Softmax { ix, body, at, .. } => {
            let mut rows = body.free();
            rows.remove(ix);
            let name = namer.atom_name(a)?;
            match rows.iter().copied().collect::<Vec<_>>().as_slice() {
                [r] => Some(Piece::Matrix(name, *r, *at)),
                [] => Some(Piece::Vector(name, *at)),
                _ => None,
            }
        }
        // A row sum Σ_a M_ra is the vector `M1`.
        Atom::Sum { ix, body, .. } => match body.terms.as_slice() {
            [t] if t.coef.0 == 1.0 && t.factors.len() == 1 && t.factors[0].exp.0 == 1.0 => {
                match piece(&t.factors[0].atom, namer)? {
                    Piece::Matrix(n, r, c) if c == *ix && r != *ix => {
                        Some(Piece::Vector(format!("{n}1"), r))
                    }
                    Piece::Matrix(n, r, c) if r == *ix && c != *ix => {
                        Some(Piece::Vector(format!("{n}ᵀ1"), c))
                    }
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

/// The chain of one term's indexed factors from `from` to `to` (None: the
/// chain starts or ends at a summed index, printed `1ᵀ` / `1`).
pub(super) fn chain(
    factors: &[Factor],
    from: Option<Ix>,
    to: Option<Ix>,
    namer: &mut dyn Namer,
) -> Option<Vec<Link>> {
    chain_with(factors, Vec::new(), from, to, namer)
}

/// [`chain`] with extra vectors already printed (row weights).
pub(super) fn chain_with(
    factors: &[Factor],
    extra: Vec<(String, Ix)>,
    from: Option<Ix>,
    to: Option<Ix>,
    namer: &mut dyn Namer,
) -> Option<Vec<Link>> {
    let (mats, vecs) = pieces(factors, extra, namer)?;
    // A vector result that is one vector: itself.
    if mats.is_empty() && from.is_some() && from == to {
        if let [(n, i)] = vecs.as_slice() {
            if Some(*i) != from {
                return None;
            }
            // Column sums `Mᵀ1` read as the row `1ᵀM`, so that terms share
            // the prefix `1ᵀ`: `1ᵀ(A − Y)/m`.
            return Some(match n.strip_suffix("ᵀ1") {
                Some(m) => vec![Link("1ᵀ".into()), Link(m.to_string())],
                None => vec![Link(n.clone())],
            });
        }
    }
    // Walk from `from` (or from the summed end of the first matrix).
    let mut links = Vec::new();
    let mut at = match from {
        Some(i) => i,
        None => {
            links.push(Link("1ᵀ".into()));
            open_start(&mats, to)?
        }
    };
    let mut used = vec![false; mats.len()];
    let mut vec_used = vec![false; vecs.len()];
    loop {
        // All vectors on this index are one diagonal: diag(y∘σ(X w)).
        let mut here: Vec<String> = Vec::new();
        for (k, (n, i)) in vecs.iter().enumerate() {
            if *i == at && !vec_used[k] {
                vec_used[k] = true;
                here.push(n.clone());
            }
        }
        if !here.is_empty() {
            links.push(Link(format!("diag({})", elementwise_product(&here))));
        }
        let Some(k) = (0..mats.len()).find(|&k| !used[k] && (mats[k].1 == at || mats[k].2 == at))
        else {
            break;
        };
        used[k] = true;
        let (n, r, c) = &mats[k];
        if *r == at {
            links.push(Link(n.clone()));
            at = *c;
        } else {
            links.push(Link(format!("{n}ᵀ")));
            at = *r;
        }
    }
    if used.iter().any(|u| !u) || vec_used.iter().any(|u| !u) {
        return None;
    }
    match to {
        Some(j) if j != at => None,
        Some(_) => Some(links),
        // An open end: a trailing diag(v) is the vector v (`Xᵀ y`).
        None => match links.last() {
            Some(Link(l)) if l.starts_with("diag(") && links.len() > 1 => {
                let v = l["diag(".len()..l.len() - 1].to_string();
                links.pop();
                links.push(Link(wrap(v)));
                Some(links)
            }
            _ => None,
        },
    }
}

/// A matrix `(name, row index, column index)` of a chain.
type Mat = (String, Ix, Ix);
/// A vector `(text, index)` of a chain.
type Vector = (String, Ix);

/// The factors as matrices and vectors (with `extra` vectors already
/// printed); None when one is neither, or has a power.
fn pieces(
    factors: &[Factor],
    extra: Vec<Vector>,
    namer: &mut dyn Namer,
) -> Option<(Vec<Mat>, Vec<Vector>)> {
    let mut mats = Vec::new();
    let mut vecs = extra;
    for f in factors {
        if f.exp.0 != 1.0 {
            return None;
        }
        match piece(&f.atom, namer) {
            Some(Piece::Matrix(n, r, c)) => mats.push((n, r, c)),
            Some(Piece::Vector(n, i)) => vecs.push((n, i)),
            None => {
                // Any other factor of one index is a vector, elementwise.
                let free: Vec<Ix> = f.atom.free().into_iter().collect();
                let [i] = free.as_slice() else { return None };
                let text = vector_text(&Poly::atom(f.atom.clone()), *i, namer)?;
                vecs.push((text, *i));
            }
        }
    }
    Some((mats, vecs))
}

/// Where a chain with no given start begins: the matrix index that is not
/// `to` and that no other matrix shares.
fn open_start(mats: &[Mat], to: Option<Ix>) -> Option<Ix> {
    let count = |x: Ix| mats.iter().filter(|(_, r, c)| *r == x || *c == x).count();
    let (_, r, c) = mats.iter().find(|(_, r, c)| {
        (count(*r) == 1 && Some(*r) != to) || (count(*c) == 1 && Some(*c) != to)
    })?;
    Some(if count(*r) == 1 && Some(*r) != to {
        *r
    } else {
        *c
    })
}

/// Vectors on one index as one elementwise product, `y∘σ(X w)`.
fn elementwise_product(here: &[String]) -> String {
    if let [one] = here {
        return one.clone();
    }
    here.iter()
        .map(|n| {
            if n.contains(' ') && !n.starts_with('(') {
                format!("({n})")
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>()
        .join("∘")
}

/// Parenthesizes an elementwise expression that is not one name.
pub(super) fn wrap(v: String) -> String {
    if v.contains(' ') || v.contains('∘') {
        format!("({v})")
    } else {
        v
    }
}

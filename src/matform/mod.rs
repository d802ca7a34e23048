//! Matrix forms of index expressions with sums over a shared index, as
//! matrixcalculus.org prints them: `Σ_c X_ci A_cj` is `Xᵀ A`, a factor on
//! the summed index alone becomes `diag(·)`, a sum that starts at a summed
//! index is a row of column sums `1ᵀ …`, and terms that share their first
//! or last factors are factored: `Xᵀ(A − Y)/m`.
//!
//! Each term must be a chain: free index → (summed index) → free index,
//! every matrix entry a link. A factor that depends on the summed row index
//! alone (`σ(Σ_a X_ba w_a)`, `y_b`) is a vector, printed elementwise
//! (`σ(X w)`), and terms whose sums differ only in such weights are first
//! merged into one sum ([`merge_row_sums`]), so the logistic-regression
//! Hessian reads `Xᵀ diag(σ(u)∘(1 − σ(u))∘…) X/m`. Anything else has no
//! matrix form here.

use crate::ir::{fresh, Atom, Factor, Ix, Poly, Term};

/// How to print an atom: names for softmax parts and variables.
pub trait Namer {
    /// The display name of a non-variable atom with the given indices
    /// (a row-wise softmax `A`), or None.
    fn atom_name(&mut self, a: &Atom) -> Option<String>;

    /// Whether numbers print as exact fractions (see
    /// [`crate::render::Names::exact`]).
    fn exact(&self) -> bool {
        true
    }
}

mod chain;
use chain::*;

/// Terms that are `F · Σ_b body` with the same outside factors `F` merge
/// into `F · Σ_b (c₁ body₁ + c₂ body₂ + …)`: the inverse of the normal
/// form's splitting of sums, so that a chain `X_bi X_bj` with several row
/// weights becomes one chain with their sum as the weight.
pub fn merge_row_sums(terms: &[Term]) -> Vec<Term> {
    // (outside factors, dim, members: (coefficient, sum atom))
    type Group = (
        Vec<Factor>,
        crate::ir::Dim,
        Vec<(f64, std::sync::Arc<Atom>)>,
    );
    let mut out: Vec<Term> = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for t in terms {
        let sums: Vec<usize> = (0..t.factors.len())
            .filter(|&n| {
                matches!(&*t.factors[n].atom, Atom::Sum { .. }) && t.factors[n].exp.0 == 1.0
            })
            .collect();
        let [n] = sums.as_slice() else {
            out.push(t.clone());
            continue;
        };
        let Atom::Sum { dim, .. } = &*t.factors[*n].atom else {
            unreachable!("filtered above")
        };
        let mut outside = t.factors.clone();
        outside.remove(*n);
        let member = (t.coef.0, t.factors[*n].atom.clone());
        match groups.iter_mut().find(|g| g.0 == outside && g.1 == *dim) {
            Some(g) => g.2.push(member),
            None => groups.push((outside, dim.clone(), vec![member])),
        }
    }
    for (outside, dim, members) in groups {
        let outside_poly = Poly::product(&outside, 1.0);
        if let [(c, sum)] = members.as_slice() {
            // Alone: the term as it was.
            out.extend(outside_poly.mul(&Poly::atom(sum.clone())).scale(*c).terms);
            continue;
        }
        let k = fresh();
        let mut body = Poly::zero();
        for (c, sum) in &members {
            let Atom::Sum { ix, body: b, .. } = &**sum else {
                unreachable!("grouped sums")
            };
            body = body.add(&b.rename(*ix, k).scale(*c));
        }
        if body.is_empty() {
            continue;
        }
        out.extend(Poly::sum_whole(k, &dim, body).mul(&outside_poly).terms);
    }
    out
}

/// A polynomial in one row index `row` printed as a vector expression,
/// elementwise: `y_b` is `y`, `Σ_a X_ba w_a` is `X w`, products are `∘`,
/// functions apply entrywise. Factored first (see [`crate::compact`]).
pub fn vector_text(p: &Poly, row: Ix, namer: &mut dyn Namer) -> Option<String> {
    node_text(&crate::compact::display(p), row, namer)
}

fn number_text(v: f64, exact: bool) -> String {
    let s = match crate::compact::as_fraction(v.abs()).filter(|_| exact) {
        Some((p, 1)) => p.to_string(),
        Some((p, q)) => format!("{p}/{q}"),
        None => v.abs().to_string(),
    };
    if v < 0.0 {
        format!("−{s}")
    } else {
        s
    }
}

fn node_text(n: &crate::compact::Node, row: Ix, namer: &mut dyn Namer) -> Option<String> {
    use crate::compact::Node;
    Some(match n {
        Node::Num(v) => number_text(*v, namer.exact()),
        Node::Atom(a) => atom_text(a, row, namer)?,
        Node::Func(f, arg) => format!("{}({})", f.name(), node_text(arg, row, namer)?),
        Node::Sum { .. } => {
            let p = n.to_poly();
            let [t] = p.terms.as_slice() else { return None };
            let [f] = t.factors.as_slice() else {
                return None;
            };
            let text = atom_text(&f.atom, row, namer)?;
            if t.coef.0 == 1.0 {
                text
            } else {
                format!("{}·{text}", number_text(t.coef.0, namer.exact()))
            }
        }
        Node::Pow(b, e) => {
            let compound = matches!(**b, Node::Add(_) | Node::Mul(_) | Node::Num(_));
            let b = node_text(b, row, namer)?;
            let b = if compound { format!("({b})") } else { b };
            if *e == 1.0 {
                b
            } else if *e == 0.5 {
                format!("sqrt({b})")
            } else if e.fract() == 0.0 {
                format!("{b}^{}", *e as i64)
            } else {
                format!("{b}^({})", number_text(*e, namer.exact()))
            }
        }
        Node::Mul(kids) => {
            let mut coef = 1.0;
            let mut parts = Vec::new();
            let mut den = Vec::new();
            for k in kids {
                match k {
                    Node::Num(v) => coef *= v,
                    // A negative power divides: `…/m`.
                    Node::Pow(b, e) if *e < 0.0 => {
                        den.push(node_text(&Node::Pow(b.clone(), -e), row, namer)?)
                    }
                    other => {
                        let t = node_text(other, row, namer)?;
                        // `(1 − 2·y)∘(X w)`: sums and products of matrices
                        // in brackets.
                        let compound = matches!(other, Node::Add(_))
                            || matches!(other, Node::Sum { .. })
                            || matches!(other, Node::Atom(a) if matches!(&**a, Atom::Sum { .. }));
                        parts.push(if compound && t.contains(' ') && !t.starts_with('(') {
                            format!("({t})")
                        } else {
                            t
                        });
                    }
                }
            }
            let mut body = parts.join("∘");
            if body.is_empty() {
                body = "1".into();
            }
            for d in den {
                body = format!("{body}/{d}");
            }
            let mag = coef.abs();
            let s = if mag == 1.0 {
                body
            } else {
                format!("{}·{body}", number_text(mag, namer.exact()))
            };
            if coef < 0.0 {
                format!("−{s}")
            } else {
                s
            }
        }
        Node::Add(kids) => {
            let mut out = String::new();
            for (i, k) in kids.iter().enumerate() {
                let t = node_text(k, row, namer)?;
                match (i, t.strip_prefix('−')) {
                    (0, _) => out.push_str(&t),
                    (_, Some(rest)) => out.push_str(&format!(" − {rest}")),
                    (_, None) => out.push_str(&format!(" + {t}")),
                }
            }
            out
        }
    })
}

fn atom_text(a: &Atom, row: Ix, namer: &mut dyn Namer) -> Option<String> {
    Some(match a {
        Atom::Var { name, idx } => match idx.as_slice() {
            [] => name.to_string(),
            [i] if *i == row => name.to_string(),
            _ => return None,
        },
        Atom::Dim(d) => d.to_string(),
        Atom::Func(f, arg) => format!("{}({})", f.name(), vector_text(arg, row, namer)?),
        Atom::Group(p) => format!("({})", vector_text(p, row, namer)?),
        Atom::Sum { ix, body, .. } => {
            // A matrix–vector product read from the row: Σ_a X_ba w_a.
            let [t] = body.terms.as_slice() else {
                return None;
            };
            let links = chain(&t.factors, Some(row), None, namer)?;
            let text = links
                .iter()
                .map(|l| l.0.clone())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = ix;
            if t.coef.0 == 1.0 {
                text
            } else {
                format!("{}·{text}", number_text(t.coef.0, namer.exact()))
            }
        }
        Atom::Softmax { .. } => match piece(a, namer)? {
            Piece::Vector(n, i) if i == row => n,
            _ => return None,
        },
        _ => return None,
    })
}

/// Splits a sum body into the factors common to all its terms (the
/// chain) and the rest, a polynomial in the summed index alone (the row
/// weight). None when the rest depends on another index.
fn split_weight(body: &Poly, ix: Ix) -> Option<(Vec<Factor>, Poly)> {
    let first = body.terms.first()?;
    let common: Vec<Factor> = first
        .factors
        .iter()
        .filter(|f| {
            f.exp.0 == 1.0
                && !f.atom.free().is_empty()
                && f.atom.free() != std::collections::BTreeSet::from([ix])
                && body.terms.iter().all(|t| t.factors.contains(f))
        })
        .cloned()
        .collect();
    if common.is_empty() {
        return None;
    }
    let weight = Poly::from_terms(
        body.terms
            .iter()
            .map(|t| Term {
                factors: t
                    .factors
                    .iter()
                    .filter(|f| !common.contains(f))
                    .cloned()
                    .collect(),
                coef: t.coef,
            })
            .collect(),
    );
    let only_row = weight.free().iter().all(|i| *i == ix);
    only_row.then_some((common, weight))
}

/// One term of a matrix form: its coefficient, its own scalar factors
/// and its chain of matrices and vectors.
type Row = (f64, Vec<Factor>, Vec<Link>);

/// The matrix form of `terms` with free indices `free` (rank 1 or 2), if
/// every term is a chain; scalar factors common to all terms come out
/// (a `1/m` is printed as a trailing `/m`).
pub fn matrix_chain_form(
    terms: &[Term],
    free: &[Ix],
    namer: &mut dyn Namer,
    show_scalar: &mut dyn FnMut(&[Factor]) -> String,
) -> Option<String> {
    if terms.is_empty() || free.is_empty() || free.len() > 2 {
        return None;
    }
    let scalar = |t: &Term| -> Vec<Factor> {
        t.factors
            .iter()
            .filter(|f| f.atom.free().is_empty() && !matches!(&*f.atom, Atom::Sum { .. }))
            .cloned()
            .collect()
    };
    let mut common = scalar(&terms[0]);
    for t in &terms[1..] {
        let s = scalar(t);
        common.retain(|f| s.contains(f));
    }
    let rows: Vec<Row> = terms
        .iter()
        .map(|t| chain_row(t, free, &common, namer))
        .collect::<Option<_>>()?;
    let (pre, suf) = common_ends(&rows)?;
    let (sum, terms_shown) = sum_text(&rows, pre, suf, namer, show_scalar);
    let body = if terms_shown > 1 && (pre > 0 || suf > 0) {
        format!("({sum})")
    } else {
        sum
    };
    let join = |ls: &[Link]| ls.iter().map(|l| l.0.clone()).collect::<Vec<_>>().join(" ");
    let mut out = join(&rows[0].2[..pre]);
    out.push_str(&body);
    let suffix = join(&rows[0].2[rows[0].2.len() - suf..]);
    if !suffix.is_empty() {
        out.push(' ');
        out.push_str(&suffix);
    }
    // Common scalars: `1/m` as `/m`, others in front.
    let (inv_dims, others): (Vec<Factor>, Vec<Factor>) = common
        .into_iter()
        .partition(|f| matches!(&*f.atom, Atom::Dim(_)) && f.exp.0 == -1.0);
    let mut out = if others.is_empty() {
        out
    } else {
        format!("{}·({out})", show_scalar(&others))
    };
    for f in inv_dims {
        if let Atom::Dim(d) = &*f.atom {
            let needs = terms_shown > 1 && (out.contains(" + ") || out.contains(" − "));
            out = if needs && pre == 0 && suf == 0 {
                format!("({out})/{d}")
            } else {
                format!("{out}/{d}")
            };
        }
    }
    Some(out.replace("  ", " ").replace("ᵀ (", "ᵀ("))
}

/// One term as a chain (see [`Row`]), its scalars in `common` left out;
/// None when it is not one.
fn chain_row(t: &Term, free: &[Ix], common: &[Factor], namer: &mut dyn Namer) -> Option<Row> {
    let mut own_scalars = Vec::new();
    let mut indexed = Vec::new();
    let mut weights: Vec<(String, Ix)> = Vec::new();
    let mut coef = t.coef.0;
    let mut diag = false;
    for f in &t.factors {
        if common.contains(f) {
            continue;
        }
        match &*f.atom {
            Atom::Delta(a, b) if free.len() == 2 && *a == free[0] && *b == free[1] => diag = true,
            Atom::Delta(..) => return None,
            Atom::Sum { ix, dim: _, body } if f.exp.0 == 1.0 && piece(&f.atom, namer).is_none() => {
                // Σ_c (chain): the summed index is internal to the chain.
                match body.terms.as_slice() {
                    [bt] if bt.coef.0 == 1.0 => indexed.extend(bt.factors.iter().cloned()),
                    _ => {
                        // Σ_c chain·w_c: the factors common to every term
                        // are the chain, the rest a row weight w.
                        let (chain_part, weight) = split_weight(body, *ix)?;
                        indexed.extend(chain_part);
                        let node = leading_number_out(crate::compact::display(&weight), &mut coef);
                        if !matches!(node, crate::compact::Node::Num(_)) {
                            weights.push((node_text(&node, *ix, namer)?, *ix));
                        }
                    }
                }
            }
            _ if f.atom.free().is_empty() => own_scalars.push(f.clone()),
            _ => indexed.push(f.clone()),
        }
    }
    let links = match (free.len(), diag) {
        (1, _) => {
            // A vector result: a row `1ᵀ …` when a summed index starts the
            // chain, read from its free index (`Xᵀ y`) where it can be, else
            // as a row of column sums (`1ᵀ(A − Y)`).
            let has_sum = indexed
                .iter()
                .any(|f| f.atom.free().iter().any(|i| !free.contains(i)))
                || indexed
                    .iter()
                    .any(|f| matches!(&*f.atom, Atom::Var { idx, .. } if idx.len() == 2));
            if has_sum {
                chain_with(&indexed, weights.clone(), Some(free[0]), None, namer)
                    .or_else(|| chain_with(&indexed, weights, None, Some(free[0]), namer))?
            } else {
                chain_with(&indexed, weights, Some(free[0]), Some(free[0]), namer)?
            }
        }
        (_, true) => return Some((coef, own_scalars, vec![diag_link(&indexed, weights, free[0], namer)?])),
        _ => chain_with(&indexed, weights, Some(free[0]), Some(free[1]), namer)?,
    };
    (!links.is_empty()).then_some((coef, own_scalars, links))
}

/// A number in front of a row weight goes to the row's coefficient:
/// `2·Xᵀ(X w − y)`.
fn leading_number_out(node: crate::compact::Node, coef: &mut f64) -> crate::compact::Node {
    use crate::compact::Node;
    match node {
        Node::Num(c) => {
            *coef *= c;
            Node::Num(1.0)
        }
        Node::Mul(kids) if matches!(kids.first(), Some(Node::Num(_))) => {
            if let Node::Num(c) = kids[0] {
                *coef *= c;
            }
            let rest: Vec<_> = kids[1..].to_vec();
            if rest.len() == 1 {
                rest.into_iter().next().unwrap()
            } else {
                Node::Mul(rest)
            }
        }
        other => other,
    }
}

/// `δ_ij v_i`: the diagonal matrix of the vector chain.
fn diag_link(
    indexed: &[Factor],
    weights: Vec<(String, Ix)>,
    i: Ix,
    namer: &mut dyn Namer,
) -> Option<Link> {
    let inner = chain_with(indexed, weights.clone(), None, Some(i), namer)
        .or_else(|| chain_with(indexed, weights, Some(i), Some(i), namer))?;
    Some(match inner.as_slice() {
        [] => Link("I".into()),
        [one] if one.0.starts_with("diag(") => one.clone(),
        _ => Link(format!(
            "diag({})",
            inner
                .iter()
                .map(|l| l.0.clone())
                .collect::<Vec<_>>()
                .join(" ")
        )),
    })
}

/// The lengths of the longest prefix and suffix all chains share (each
/// chain keeps at least one link of its own); none for one chain.
fn common_ends(rows: &[Row]) -> Option<(usize, usize)> {
    let min_len = rows.iter().map(|r| r.2.len()).min()?;
    if rows.len() == 1 {
        return Some((0, 0));
    }
    let mut pre = 0;
    while pre < min_len
        && rows
            .iter()
            .all(|r| r.2[pre] == rows[0].2[pre] && r.2.len() > pre + 1)
    {
        pre += 1;
    }
    let mut suf = 0;
    while suf < min_len - pre
        && rows.iter().all(|r| {
            r.2[r.2.len() - 1 - suf] == rows[0].2[rows[0].2.len() - 1 - suf]
                && r.2.len() > pre + suf + 1
        })
    {
        suf += 1;
    }
    Some((pre, suf))
}

/// The rows between the common prefix and suffix, as a signed sum
/// (positive terms first), and how many terms it has.
fn sum_text(
    rows: &[Row],
    pre: usize,
    suf: usize,
    namer: &mut dyn Namer,
    show_scalar: &mut dyn FnMut(&[Factor]) -> String,
) -> (String, usize) {
    let join = |ls: &[Link]| ls.iter().map(|l| l.0.clone()).collect::<Vec<_>>().join(" ");
    let mut inner: Vec<(f64, String)> = rows
        .iter()
        .map(|(c, s, l)| {
            let mid = join(&l[pre..l.len() - suf]);
            // A row's own 1/m reads as a trailing `/m`.
            let (inv, rest): (Vec<Factor>, Vec<Factor>) = s
                .iter()
                .cloned()
                .partition(|f| matches!(&*f.atom, Atom::Dim(_)) && f.exp.0 == -1.0);
            let s = show_scalar(&rest);
            let mut text = if s.is_empty() {
                mid
            } else {
                format!("{s}·{mid}")
            };
            for f in inv {
                if let Atom::Dim(d) = &*f.atom {
                    text = format!("{text}/{d}");
                }
            }
            (*c, text)
        })
        .collect();
    crate::render::lead_with(&mut inner, |(c, _)| *c > 0.0);
    let mut sum = String::new();
    for (k, (c, s)) in inner.iter().enumerate() {
        let mag = c.abs();
        let cs = if mag == 1.0 {
            String::new()
        } else {
            format!("{}·", number_text(mag, namer.exact()))
        };
        match (k, *c < 0.0) {
            (0, false) => sum.push_str(&format!("{cs}{s}")),
            (0, true) => sum.push_str(&format!("−{cs}{s}")),
            (_, false) => sum.push_str(&format!(" + {cs}{s}")),
            (_, true) => sum.push_str(&format!(" − {cs}{s}")),
        }
    }
    (sum, inner.len())
}

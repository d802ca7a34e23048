//! Derivative tensors as sums of symmetry classes.
//!
//! The k-th derivative of a function with respect to one variable is
//! symmetric under permutations of its k derivative indices. When the
//! variable is a vector, every term of the normal form is a set of delta
//! *blocks* (indices forced equal), atoms attached to single blocks, and
//! atoms that touch no derivative index. Such a term has a canonical
//! representative under those permutations (blocks sorted by signature,
//! indices assigned in order), and the derivative is stored as
//! `Σ_classes c · (sum of the distinct index permutations of the class)`.
//!
//! Differentiating a class representative T with orbit size `k!/stab(T)`
//! stands for differentiating every member of its orbit, so each new term t
//! adds `coef(t) · stab(C) / ((k+1) · stab(T))` to the coefficient of its
//! class C. xent at order 10 is 42 classes instead of 115,975 terms.
//!
//! Terms that do not fit the block form (matrix variables, atoms that join
//! two derivative indices) switch the tensor to plain, fully expanded terms.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diag::Result;
use crate::ir::{Atom, Dim, Factor, Ix, Poly, Real, Term};

/// Placeholder index used inside block signatures.
const PLACEHOLDER: Ix = Ix::MAX - 1;

/// A block of indices that deltas force equal, with the atoms that depend
/// on it alone.
#[derive(Clone, Debug)]
pub struct Block {
    /// Value indices in the block.
    pub value_members: Vec<Ix>,
    /// How many derivative indices are in the block.
    pub wrt_count: usize,
    /// The index the atoms use.
    pub rep: Ix,
    /// Atoms with the block's representative as their only free index.
    pub atoms: Vec<Factor>,
}

/// One symmetry class: a canonical representative and its stabilizer size.
#[derive(Clone, Debug)]
pub struct Class {
    /// The representative term, with the class coefficient.
    pub term: Term,
    /// Number of index permutations that leave the representative unchanged.
    pub stab: f64,
    /// Its blocks (symmetric tensors only).
    pub blocks: Vec<Block>,
    /// Atoms free of derivative indices.
    pub global: Vec<Factor>,
}

impl Class {
    /// How many distinct terms the class stands for at order `k`.
    pub fn orbit(&self, k: usize) -> f64 {
        factorial(k) / self.stab
    }
}

/// A derivative tensor: value indices, one index group per order, terms.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// Free indices of the value (its shape).
    pub value_idx: Vec<Ix>,
    /// Lengths of the value indices.
    pub value_dims: Vec<Dim>,
    /// One group of indices per derivative order (the shape of `wrt`).
    pub groups: Vec<Vec<Ix>>,
    /// Lengths of the indices of each group.
    pub wrt_dims: Vec<Dim>,
    /// The terms: classes when `symmetric`, else plain terms (stab 1).
    pub classes: Vec<Class>,
    /// Whether `classes` are symmetry classes.
    pub symmetric: bool,
}

/// `k!` as a float.
pub fn factorial(k: usize) -> f64 {
    (1..=k).map(|x| x as f64).product()
}

impl Tensor {
    /// The order-0 tensor of a lowered expression.
    pub fn new(
        value: Poly,
        value_idx: Vec<Ix>,
        value_dims: Vec<Dim>,
        wrt_dims: Vec<Dim>,
    ) -> Tensor {
        // Vectors, and matrices while every derivative shares one row
        // (`canon_rows`); a term outside that form turns the tensor plain.
        let symmetric = matches!(wrt_dims.len(), 1 | 2);
        let mut t = Tensor {
            value_idx,
            value_dims,
            groups: Vec::new(),
            wrt_dims,
            classes: Vec::new(),
            symmetric,
        };
        t.classes = t
            .classify(value.terms.into_iter().map(|x| (x, 1.0)).collect())
            .unwrap_or_else(|| unreachable!("order 0 has no derivative index"));
        t
    }

    /// The order.
    pub fn order(&self) -> usize {
        self.groups.len()
    }

    /// Indices of derivative group `g`.
    pub fn group_indices(&self, g: usize) -> Vec<Ix> {
        let base = (self.value_idx.len() + g * self.wrt_dims.len()) as Ix;
        (0..self.wrt_dims.len() as Ix).map(|r| base + r).collect()
    }

    /// Every term, as a polynomial (classes expanded into their orbits).
    pub fn expanded(&self) -> Poly {
        if !self.symmetric {
            return Poly::from_terms(self.classes.iter().map(|c| c.term.clone()).collect());
        }
        let mut terms = Vec::new();
        for c in &self.classes {
            terms.extend(orbit(&c.term, &self.groups));
        }
        Poly::from_terms(terms)
    }

    /// Whether every class stands for one term (so the representatives
    /// are the expanded tensor).
    pub fn orbits_are_trivial(&self) -> bool {
        let k = self.order();
        !self.symmetric || self.classes.iter().all(|c| c.orbit(k) == 1.0)
    }

    /// All classes as one polynomial of representatives (for the e-graph).
    pub fn representatives(&self) -> Poly {
        Poly::from_terms(self.classes.iter().map(|c| c.term.clone()).collect())
    }

    /// Replaces the representatives after simplification (same meaning).
    pub fn set_representatives(&mut self, p: Poly) {
        let order = self.order();
        let stabs: Vec<(Term, f64)> = p.terms.into_iter().map(|t| (t, 1.0)).collect();
        // Simplified representatives may land in new classes; reclassify
        // with orbit weights of 1 per representative.
        let mut masses: Vec<(Term, f64)> = Vec::new();
        for (t, _) in stabs {
            let weight = if self.symmetric {
                self.orbit_of(&t, order)
            } else {
                1.0
            };
            masses.push((t, weight));
        }
        if let Some(classes) = self.classify(masses.clone()) {
            self.classes = classes;
        } else {
            self.symmetric = false;
            let plain = Poly::from_terms(masses.into_iter().map(|(t, _)| t).collect());
            self.classes = plain.terms.into_iter().map(plain_class).collect();
        }
    }

    fn orbit_of(&self, t: &Term, order: usize) -> f64 {
        match canon(t, &self.value_idx, &self.groups) {
            Some((_, stab, _, _)) => factorial(order) / stab,
            None => 1.0,
        }
    }

    /// Groups terms (each with the orbit weight it stands for) into classes.
    /// None if some term does not fit the block form.
    fn classify(&self, terms: Vec<(Term, f64)>) -> Option<Vec<Class>> {
        if !self.symmetric {
            let p = Poly::from_terms(terms.into_iter().map(|(t, _)| t).collect());
            return Some(p.terms.into_iter().map(plain_class).collect());
        }
        let k = self.order();
        // Per canonical key: summed weight, stabilizer size, blocks, global factors.
        type Mass = (f64, f64, Vec<Block>, Vec<Factor>);
        let mut mass: HashMap<Vec<Factor>, Mass> = HashMap::new();
        let mut order: Vec<Vec<Factor>> = Vec::new();
        for (t, weight) in terms {
            let (key, stab, blocks, global) = canon(&t, &self.value_idx, &self.groups)?;
            let e = mass.entry(key.factors.clone()).or_insert_with(|| {
                order.push(key.factors.clone());
                (0.0, stab, blocks, global)
            });
            // Total mass (exact while coefficients are integers); divided by
            // the orbit size once, below, so no rounding accumulates.
            e.0 += t.coef.0 * weight;
        }
        let mut classes: Vec<Class> = order
            .into_iter()
            .filter_map(|f| {
                let (m, stab, blocks, global) = mass.remove(&f)?;
                let c = m / (factorial(k) / stab);
                (c != 0.0).then_some(Class {
                    term: Term {
                        factors: f,
                        coef: Real(c),
                    },
                    stab,
                    blocks,
                    global,
                })
            })
            .collect();
        classes.sort_by(|a, b| a.term.factors.cmp(&b.term.factors));
        Some(classes)
    }

    /// The derivative of this tensor with respect to `wrt`: one order more.
    pub fn differentiate(&self, wrt: &str) -> Result<Tensor> {
        let mut next = self.clone();
        let g = self.order();
        next.groups.push(self.group_indices(g));
        let j = next.groups[g].clone();
        if self.symmetric {
            let mut weighted = Vec::new();
            for c in &self.classes {
                let orbit = c.orbit(g);
                let d = crate::diff::diff(
                    &Poly {
                        terms: vec![c.term.clone()],
                    },
                    wrt,
                    &j,
                )?;
                weighted.extend(d.terms.into_iter().map(|t| (t, orbit)));
            }
            if let Some(classes) = next.classify(weighted) {
                next.classes = classes;
                return Ok(next);
            }
            // Leave the symmetric form: expand and differentiate plainly.
            next.symmetric = false;
        }
        let d = crate::diff::diff(&self.expanded(), wrt, &j)?;
        next.classes = d.terms.into_iter().map(plain_class).collect();
        Ok(next)
    }
}

fn plain_class(t: Term) -> Class {
    Class {
        term: t,
        stab: 1.0,
        blocks: Vec::new(),
        global: Vec::new(),
    }
}

/// The single atom of a one-factor, coefficient-one polynomial.
fn only_atom(p: Poly) -> Option<Arc<Atom>> {
    match p.terms.as_slice() {
        [t] if t.coef.0 == 1.0 && t.factors.len() == 1 && t.factors[0].exp.0 == 1.0 => {
            Some(t.factors[0].atom.clone())
        }
        _ => None,
    }
}

/// Canonical representative of a term under permutations of the groups
/// (single-index groups only). Returns (key term with coefficient 1,
/// stabilizer size, blocks, global atoms), or None outside the block form.
pub fn canon(
    t: &Term,
    value_idx: &[Ix],
    groups: &[Vec<Ix>],
) -> Option<(Term, f64, Vec<Block>, Vec<Factor>)> {
    if groups.iter().any(|g| g.len() != 1) {
        return canon_rows(t, value_idx, groups);
    }
    let wrt: Vec<Ix> = groups.iter().map(|g| g[0]).collect();
    let mut blocks = delta_blocks(t, value_idx, &wrt);
    let global = attach_atoms(t, &mut blocks)?;
    let (blocks, mut stab) = order_blocks(blocks);
    // Assign derivative indices in block order and rebuild the term.
    let mut next = wrt.iter().copied();
    let mut factors = global.clone();
    let mut out_blocks = Vec::new();
    for mut b in blocks {
        stab *= factorial(b.wrt_count);
        let mut members = b.value_members.clone();
        for _ in 0..b.wrt_count {
            members.push(next.next().expect("as many derivative indices as groups"));
        }
        let r = *members.iter().min().expect("blocks are not empty");
        for &m in &members {
            if m != r {
                factors.push(Factor {
                    atom: Arc::new(Atom::Delta(r, m)),
                    exp: Real(1.0),
                });
            }
        }
        let mut atoms = Vec::new();
        for f in &b.atoms {
            let atom = only_atom(f.atom.rename(PLACEHOLDER, r))?;
            atoms.push(Factor { atom, exp: f.exp });
        }
        factors.extend(atoms.iter().cloned());
        b.rep = r;
        b.atoms = atoms;
        out_blocks.push(b);
    }
    factors.sort();
    Some((
        Term {
            factors,
            coef: Real(1.0),
        },
        stab,
        out_blocks,
        global,
    ))
}

/// The blocks of the value and derivative indices that the deltas of `t`
/// join (each index in one block, the delta's first index its
/// representative), without their atoms yet.
fn delta_blocks(t: &Term, value_idx: &[Ix], wrt: &[Ix]) -> Vec<Block> {
    let is_wrt = |x: Ix| wrt.contains(&x);
    let mut rep_of: HashMap<Ix, Ix> = HashMap::new();
    for f in &t.factors {
        if let Atom::Delta(r, m) = &*f.atom {
            rep_of.insert(*m, *r);
        }
    }
    let rep = |x: Ix| *rep_of.get(&x).unwrap_or(&x);
    let mut reps: Vec<Ix> = Vec::new();
    for &x in value_idx.iter().chain(wrt) {
        let r = rep(x);
        if !reps.contains(&r) {
            reps.push(r);
        }
    }
    reps.iter()
        .map(|&r| {
            let members: Vec<Ix> = value_idx
                .iter()
                .chain(wrt)
                .copied()
                .filter(|&x| rep(x) == r)
                .collect();
            Block {
                value_members: members.iter().copied().filter(|&x| !is_wrt(x)).collect(),
                wrt_count: members.iter().filter(|&&x| is_wrt(x)).count(),
                rep: r,
                atoms: Vec::new(),
            }
        })
        .collect()
}

/// Gives each block the atoms of `t` that read its representative (with
/// the representative as a placeholder, sorted); returns the factors that
/// read no derivative block (global). None when an atom reads two blocks
/// one of which holds a derivative index (outside the block form).
fn attach_atoms(t: &Term, blocks: &mut [Block]) -> Option<Vec<Factor>> {
    let mut global = Vec::new();
    for f in &t.factors {
        if let Atom::Delta(..) = &*f.atom {
            continue;
        }
        let free = f.atom.free();
        let touching: Vec<usize> = blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| free.contains(&b.rep))
            .map(|(i, _)| i)
            .collect();
        let touches_wrt = touching.iter().any(|&i| blocks[i].wrt_count > 0);
        match touching.as_slice() {
            [i] if touches_wrt => {
                let atom = only_atom(f.atom.rename(blocks[*i].rep, PLACEHOLDER))?;
                blocks[*i].atoms.push(Factor { atom, exp: f.exp });
            }
            _ if touches_wrt => return None,
            _ => global.push(f.clone()),
        }
    }
    for b in blocks.iter_mut() {
        b.atoms.sort();
    }
    Some(global)
}

/// The blocks in canonical order (value blocks by their indices, the
/// others by signature: derivative count and atoms) and the number of
/// permutations of equal derivative-only blocks (a stabilizer factor).
fn order_blocks(blocks: Vec<Block>) -> (Vec<Block>, f64) {
    let (mut vblocks, mut wblocks): (Vec<Block>, Vec<Block>) = blocks
        .into_iter()
        .partition(|b| !b.value_members.is_empty());
    vblocks.sort_by(|a, b| a.value_members.cmp(&b.value_members));
    let sig = |b: &Block| (b.wrt_count, b.atoms.clone());
    wblocks.sort_by_key(|a| sig(a));
    let mut stab = 1.0;
    let mut run = 1usize;
    for i in 0..wblocks.len() {
        if i > 0 && sig(&wblocks[i]) == sig(&wblocks[i - 1]) {
            run += 1;
        } else {
            stab *= factorial(run);
            run = 1;
        }
    }
    stab *= factorial(run);
    vblocks.extend(wblocks);
    (vblocks, stab)
}

/// [`canon`] for a matrix variable whose derivative indices all share one
/// row (every group's row index in one delta block), as the derivatives of
/// a sum of row-wise functions (the batched xent) do: permuting the groups
/// then only permutes their column indices, so the term is canonicalized
/// on its columns with the common row `R` held fixed, and its row deltas
/// are put back unchanged. Anything else is outside the block form.
fn canon_rows(
    t: &Term,
    value_idx: &[Ix],
    groups: &[Vec<Ix>],
) -> Option<(Term, f64, Vec<Block>, Vec<Factor>)> {
    if groups.iter().any(|g| g.len() != 2) {
        return None;
    }
    let rep = |x: Ix| {
        t.factors
            .iter()
            .find_map(|f| match &*f.atom {
                Atom::Delta(r, m) if *m == x => Some(*r),
                _ => None,
            })
            .unwrap_or(x)
    };
    let row = rep(groups[0][0]);
    if groups.iter().any(|g| rep(g[0]) != row || rep(g[1]) == row) {
        return None;
    }
    // The row block's deltas stay as they are; the rest is a term over the
    // columns, with the row (and the value indices in its block) constant.
    let (row_deltas, rest): (Vec<Factor>, Vec<Factor>) = t
        .factors
        .iter()
        .cloned()
        .partition(|f| matches!(&*f.atom, Atom::Delta(r, _) if *r == row));
    let columns: Vec<Vec<Ix>> = groups.iter().map(|g| vec![g[1]]).collect();
    let value_cols: Vec<Ix> = value_idx
        .iter()
        .copied()
        .filter(|&x| rep(x) != row && x != row)
        .collect();
    let sub = Term {
        factors: rest,
        coef: t.coef,
    };
    let (key, stab, blocks, global) = canon(&sub, &value_cols, &columns)?;
    let mut factors = key.factors;
    factors.extend(row_deltas);
    factors.sort();
    Some((
        Term {
            factors,
            coef: Real(1.0),
        },
        stab,
        blocks,
        global,
    ))
}

/// Whether every group is one index (a vector variable): only then are a
/// class's blocks laid out as `eval` and the class-by-class kernels read
/// them.
pub fn single_index_groups(groups: &[Vec<Ix>]) -> bool {
    groups.iter().all(|g| g.len() == 1)
}

/// The distinct images of a term under permutations of the groups.
pub fn orbit(t: &Term, groups: &[Vec<Ix>]) -> Vec<Term> {
    use std::collections::HashSet;
    let mut seen: HashSet<Vec<Factor>> = HashSet::new();
    let mut out = Vec::new();
    let mut stack = vec![t.clone()];
    seen.insert(t.factors.clone());
    while let Some(cur) = stack.pop() {
        for g in 0..groups.len().saturating_sub(1) {
            let swapped = swap_groups(&cur, &groups[g], &groups[g + 1]);
            for s in swapped.terms {
                let s = Term {
                    factors: s.factors,
                    coef: cur.coef,
                };
                if seen.insert(s.factors.clone()) {
                    stack.push(s);
                }
            }
        }
        out.push(cur);
    }
    out
}

fn swap_groups(t: &Term, a: &[Ix], b: &[Ix]) -> Poly {
    let tmp: Vec<Ix> = a.iter().map(|_| crate::ir::fresh()).collect();
    let mut p = Poly {
        terms: vec![Term {
            factors: t.factors.clone(),
            coef: Real(1.0),
        }],
    };
    for (x, y) in a.iter().zip(&tmp) {
        p = p.rename(*x, *y);
    }
    for (x, y) in b.iter().zip(a) {
        p = p.rename(*x, *y);
    }
    for (x, y) in tmp.iter().zip(b) {
        p = p.rename(*x, *y);
    }
    p
}

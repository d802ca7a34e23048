//! Runs kernel loop nests directly, without compiling them, so that the
//! lowering, inlining and fusion passes can be tested on many programs
//! against [`crate::eval`] (an independent evaluator of the same IR).

use std::collections::HashMap;

use super::loops::schedule::{shifted_sum, Schedule, BLOCK, RESTART_ABOVE};
use super::loops::{
    Access, Array, Part, PerTemp, Place, RedOp, RowSplit, Scalar, Stmt, Temps, Var,
};
use crate::ir::Dim;

/// One function's loop nests.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The body.
    pub stmts: Vec<Stmt>,
    /// Its temporaries.
    pub temps: Temps,
    /// The dims of `out` (empty for a scalar).
    pub out_len: Vec<Dim>,
    /// Whether it returns a scalar instead of writing `out`.
    pub returns: bool,
}

/// A scattered class's block sizes and kinds.
type ClassShape = (Vec<usize>, Vec<usize>);

struct Machine<'a> {
    inputs: &'a [Vec<f64>],
    sizes: &'a HashMap<String, usize>,
    vars: HashMap<Var, usize>,
    temps: PerTemp<Vec<f64>>,
    out: Vec<f64>,
    /// Whether the function writes `out` (a returned value then follows it).
    writes_out: bool,
    /// Orbits enumerated once per class, as the kernels do at entry.
    orbits: HashMap<ClassShape, Vec<Vec<u8>>>,
}

/// Runs `plan` on `inputs` (in parameter order, the direction last) with
/// the given lengths; returns `out`, or the returned scalar as one entry
/// (or `out` then the returned scalar, for a function that does both).
pub fn run(plan: &Plan, inputs: &[Vec<f64>], sizes: &HashMap<String, usize>) -> Vec<f64> {
    let size = |d: &Dim| match d {
        Dim::Fixed(k) => *k,
        Dim::Named(n) => sizes[&**n],
    };
    let temps = plan
        .temps
        .map(|t| vec![0.0; t.vars.iter().map(|(_, d)| size(d)).product()]);
    let out = vec![f64::NAN; plan.out_len.iter().map(size).product()];
    let mut m = Machine {
        inputs,
        sizes,
        vars: HashMap::new(),
        temps,
        out,
        writes_out: !plan.returns,
        orbits: HashMap::new(),
    };
    for s in &plan.stmts {
        m.exec(s);
    }
    m.out
}

impl Machine<'_> {
    fn size(&self, d: &Dim) -> usize {
        match d {
            Dim::Fixed(k) => *k,
            Dim::Named(n) => self.sizes[&**n],
        }
    }

    fn flat(&self, a: &Access) -> usize {
        a.idx
            .iter()
            .fold(0, |acc, (v, d)| acc * self.size(d) + self.vars[v])
    }

    fn load(&self, a: &Access) -> f64 {
        let i = self.flat(a);
        match &a.array {
            Array::Input(k) => self.inputs[*k][i],
            Array::Temp(t) => self.temps[*t][i],
            Array::Out => self.out[i],
        }
    }

    fn store(&mut self, p: &Place, add: bool, x: f64) {
        let (arr, i) = match p {
            Place::Temp(t) => (&mut self.temps[*t], 0),
            Place::Elem(a) => {
                let i = self.flat(a);
                match &a.array {
                    Array::Temp(t) => (&mut self.temps[*t], i),
                    Array::Out => (&mut self.out, i),
                    Array::Input(_) => unreachable!("inputs are read-only"),
                }
            }
        };
        if add {
            arr[i] += x;
        } else {
            arr[i] = x;
        }
    }

    /// A loop over ranges of rows as a kernel runs it on two threads: two
    /// ranges, each with its sums from zero and its own row buffers, the
    /// sums added in order after. The arrays written row by row are the
    /// kernel's whole arrays here, so the row's place in its range is the
    /// row itself.
    fn row_ranges(&mut self, row: Var, m: usize, body: &[Stmt], split: &RowSplit) {
        let ranges = m.min(2);
        let mut summed: Vec<Vec<f64>> = split.sums.iter().map(|&t| self.temps[t].clone()).collect();
        for r in 0..ranges {
            for &t in split.sums.iter().chain(&split.private) {
                self.temps[t].iter_mut().for_each(|x| *x = 0.0);
            }
            for i in r * m / ranges..(r + 1) * m / ranges {
                self.vars.insert(row, i);
                self.vars.insert(split.local, i);
                for b in body {
                    self.exec(b);
                }
            }
            for (total, &t) in summed.iter_mut().zip(&split.sums) {
                total
                    .iter_mut()
                    .zip(&self.temps[t])
                    .for_each(|(x, p)| *x += p);
            }
        }
        for (total, &t) in summed.into_iter().zip(&split.sums) {
            self.temps[t] = total;
        }
    }

    fn eval(&self, x: &Scalar) -> f64 {
        match x {
            Scalar::Num(c) => *c,
            Scalar::Temp(t) => self.temps[*t][0],
            Scalar::Load(a) => self.load(a),
            Scalar::Dim(d) => self.size(d) as f64,
            Scalar::Sum(xs) => xs.iter().map(|y| self.eval(y)).sum(),
            Scalar::Product(xs) => xs.iter().map(|y| self.eval(y)).product(),
            Scalar::Sub(a, b) => self.eval(a) - self.eval(b),
            Scalar::Neg(a) => -self.eval(a),
            Scalar::Recip(a) => 1.0 / self.eval(a),
            Scalar::Powi(a, k) => self.eval(a).powi(*k),
            Scalar::Powf(a, b) => self.eval(a).powf(self.eval(b)),
            Scalar::Sqrt(a) => self.eval(a).sqrt(),
            Scalar::Call(f, a) => f.apply(self.eval(a)),
            Scalar::ExpShifted(a) => self.eval(a).exp(),
            Scalar::Ln(a) => self.eval(a).ln(),
            Scalar::Delta(a, b) => f64::from(u8::from(self.vars[a] == self.vars[b])),
        }
    }

    /// Stores each shift part of a pass: the maximum of its body over the
    /// first `len` entries (with `finite`, 0 when that is −∞, as restarting
    /// kernels do).
    fn shifts(&mut self, var: Var, parts: &[Part], len: usize, finite: bool) {
        for p in parts.iter().filter(|p| p.op == RedOp::Shift) {
            let mut top = f64::NEG_INFINITY;
            for i in 0..len {
                self.vars.insert(var, i);
                top = top.max(self.eval(&p.body));
            }
            if finite && top == f64::NEG_INFINITY {
                top = 0.0;
            }
            self.store(&p.place, false, top);
        }
    }

    /// Runs the other parts of a pass over `len` entries, stores their
    /// totals and returns them (in the order of the parts, shifts left out).
    fn sums(&mut self, var: Var, parts: &[Part], len: usize) -> Vec<f64> {
        let parts: Vec<&Part> = parts.iter().filter(|p| p.op != RedOp::Shift).collect();
        let mut acc: Vec<f64> = parts
            .iter()
            .map(|p| {
                if p.op == RedOp::Sum {
                    0.0
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect();
        for i in 0..len {
            self.vars.insert(var, i);
            for (a, p) in acc.iter_mut().zip(&parts) {
                let x = self.eval(&p.body);
                if let Some(k) = &p.keep {
                    self.store(&Place::Elem(k.clone()), false, x);
                }
                *a = if p.op == RedOp::Sum { *a + x } else { a.max(x) };
            }
        }
        for (a, p) in acc.iter().zip(&parts) {
            self.store(&p.place, false, *a);
        }
        acc
    }

    fn exec(&mut self, s: &Stmt) {
        match s {
            Stmt::Loop {
                var,
                dim,
                body,
                split: Some(split),
                ..
            } => self.row_ranges(*var, self.size(dim), body, split),
            Stmt::Loop { var, dim, body, .. } => {
                for i in 0..self.size(dim) {
                    self.vars.insert(*var, i);
                    for b in body {
                        self.exec(b);
                    }
                }
            }
            // The classes' terms scattered one by one over their orbits
            // (the kernels' sorted-tuple walk is checked against this).
            Stmt::Symmetric { classes, .. } => {
                self.out.iter_mut().for_each(|x| *x = 0.0);
                for c in classes {
                    self.exec(&c.scatter_nest());
                }
            }
            // Tiles visit the same iterations; plainly ordered here.
            Stmt::Tile {
                a: (va, da),
                b: (vb, db),
                body,
                ..
            } => {
                for i in 0..self.size(da) {
                    self.vars.insert(*va, i);
                    for j in 0..self.size(db) {
                        self.vars.insert(*vb, j);
                        for s in body {
                            self.exec(s);
                        }
                    }
                }
            }
            // A shift is read by the other parts: the exact maximum,
            // before them.
            Stmt::Reduce { .. } => unreachable!("reductions are scheduled before they run"),
            // As the kernels run it: a restarting shift starts as the first
            // block's maximum, and the pass runs again from the exact one
            // when its shifted sum passes `RESTART_ABOVE`.
            // Slices and prefetches change how memory is touched, not what
            // is computed: the interpreter reads entries directly.
            Stmt::Pass {
                var,
                dim,
                parts,
                schedule,
                ..
            } => {
                let n = self.size(dim);
                let restart = match schedule {
                    Schedule::Blocks { restart: true } => shifted_sum(parts),
                    _ => None,
                };
                let Some(k) = restart else {
                    self.shifts(*var, parts, n, false);
                    self.sums(*var, parts, n);
                    return;
                };
                let mut exact = n <= BLOCK;
                self.shifts(*var, parts, n.min(BLOCK), true);
                loop {
                    let totals = self.sums(*var, parts, n);
                    if !exact && totals[k] > RESTART_ABOVE {
                        exact = true;
                        self.shifts(*var, parts, n, true);
                        continue;
                    }
                    break;
                }
            }
            Stmt::Store { place, add, value } => {
                let x = self.eval(value);
                self.store(place, *add, x);
            }
            Stmt::ZeroOut => self.out.iter_mut().for_each(|x| *x = 0.0),
            Stmt::Scatter {
                vars,
                sizes,
                kinds,
                value,
            } => {
                let x = self.eval(value);
                let n = self.size(&vars[0].1);
                let ix: Vec<usize> = vars.iter().map(|(v, _)| self.vars[v]).collect();
                let rows = self
                    .orbits
                    .entry((sizes.clone(), kinds.clone()))
                    .or_insert_with(|| super::loops::orbit_rows(sizes, kinds));
                for row in rows.iter() {
                    let at = row.iter().fold(0, |at, &b| at * n + ix[b as usize]);
                    self.out[at] += x;
                }
            }
            // A function that also writes `out` returns its value after it
            // (`f_value_grad`: the gradient, then the value).
            Stmt::Return(v) if self.writes_out => {
                let x = self.eval(v);
                self.out.push(x)
            }
            Stmt::Return(v) => self.out = vec![self.eval(v)],
            // The product as the sum it is, in the plain order: the kernels'
            // blocked helper is tested against it.
            Stmt::MatMul {
                sum: (s, n),
                left: (l, ln),
                right: (r, rn),
                out,
                summand,
                ..
            } => {
                for a in 0..self.size(ln) {
                    self.vars.insert(*l, a);
                    for b in 0..self.size(rn) {
                        self.vars.insert(*r, b);
                        let mut acc = 0.0;
                        for k in 0..self.size(n) {
                            self.vars.insert(*s, k);
                            acc += self.eval(summand);
                        }
                        self.store(&Place::Elem(out.clone()), true, acc);
                    }
                }
            }
        }
    }
}

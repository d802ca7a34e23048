//! Numeric evaluation of a derivative tensor at a point.
//!
//! The point comes from `--at "z=[1,2,3]; q=[0.2,0.3,0.5]"`. Values follow
//! JAX's jacobian convention: the value's shape, then the shape of `wrt` once
//! per order, flattened row-major. Entries are computed once per sorted
//! tuple of derivative indices (the tensor is symmetric in them) and copied.
//! Softmax and logsumexp are max-shifted, so logits of ±1e4 are fine.

use std::collections::HashMap;
use std::ops::Range;

use crate::diag::{Error, Result, Source};
use crate::ir::{Atom, Dim, Factor, Ix, Poly, Term};
use crate::shape::{Shape, Typed};
use crate::sym::{Class, Tensor};

/// What `eval` computes: the derivative tensor at a point, flattened
/// row-major in JAX's jacobian convention.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// The variable differentiated.
    pub wrt: String,
    /// The order.
    pub order: usize,
    /// The value's shape, then the shape of `wrt` once per order.
    pub shape: Vec<usize>,
    /// The entries, row-major.
    pub values: Vec<f64>,
}

impl Evaluation {
    /// The one-line JSON object `symdiff eval` prints (with its newline).
    pub fn json(&self) -> String {
        // Written field by field: a `serde_json::Value` of a million
        // numbers costs more than evaluating them.
        let json = |r: serde_json::Result<String>| r.expect("strings and numbers serialize");
        format!(
            "{{\"wrt\":{},\"order\":{},\"shape\":{},\"values\":{}}}\n",
            json(serde_json::to_string(&self.wrt)),
            self.order,
            json(serde_json::to_string(&self.shape)),
            json(serde_json::to_string(&self.values))
        )
    }
}

/// `symdiff eval`: the order-`order` derivative of `expr` with respect to
/// `wrt` (default: as `derive` chooses) at the point `at` (`z=[1,2,3];
/// q=[...]`), within the default deadline on a large stack.
pub fn run(expr: &str, at: &str, order: usize, wrt: Option<&str>) -> Result<Evaluation> {
    crate::derive::check_order(order)?;
    crate::budget::run(crate::budget::DEFAULT_DEADLINE, || {
        let bindings = parse_point(at)?;
        let program = crate::parse::parse_program(expr)?;
        let hints = shape_hints(&bindings);
        let typed = crate::shape::check_with_hints(&program, &hints)?;
        let point = bind(&typed, &bindings)?;
        // Size check first: an order whose tensor could not be printed is
        // refused before any work.
        let w = match wrt {
            Some(w) => w.to_string(),
            None => typed.default_wrt().unwrap_or_default(),
        };
        if let Some(ws) = typed.var_shape(&w) {
            check_size(&typed.body.shape, ws, order, &point)?;
        }
        let mut req = crate::derive::Request::new(expr, order);
        req.wrt = wrt.map(str::to_string);
        req.shapes = hints;
        let d = crate::derive::derive(&req)?;
        let shape = tensor_shape(&d.tensor, &point);
        let mut point = point;
        if order == 0 && d.shift_invariant() {
            // f(z) = f(z − max(z)·1): the logits' common offset cancels
            // symbolically, not in floating point (xent at z = 1e300·1).
            if let Some((_, data)) = point.vars.get_mut(&d.wrt) {
                let top = data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if top.is_finite() {
                    data.iter_mut().for_each(|x| *x -= top);
                }
            }
        }
        let values = evaluate(&d.tensor, &point)?;
        Ok(Evaluation {
            wrt: d.wrt,
            order,
            shape,
            values,
        })
    })
}

mod evaluator;
mod point;

internal! { pub use evaluator::Evaluator; }
use evaluator::FastMap;
internal! { pub use point::*; }

internal! {
/// The numeric shape of a derivative tensor at a point.
pub fn tensor_shape(t: &Tensor, point: &Point) -> Vec<usize> {
    let mut shape: Vec<usize> = t.value_dims.iter().map(|d| point.size(d)).collect();
    for _ in 0..t.order() {
        shape.extend(t.wrt_dims.iter().map(|d| point.size(d)));
    }
    shape
}
}

internal! {
/// Checks that the tensor at this point is small enough to print.
pub fn check_size(
    value_shape: &Shape,
    wrt_shape: &Shape,
    order: usize,
    point: &Point,
) -> Result<Vec<usize>> {
    let mut shape: Vec<usize> = value_shape.dims().iter().map(|d| point.size(d)).collect();
    let wrt: Vec<usize> = wrt_shape.dims().iter().map(|d| point.size(d)).collect();
    let mut entries: f64 = shape.iter().map(|&x| x as f64).product();
    let per: f64 = wrt.iter().map(|&x| x as f64).product();
    entries *= per.powi(order.min(100_000) as i32);
    if entries > MAX_ENTRIES as f64 {
        return Err(Error::new(format!(
            "the order-{order} tensor has {} entries here; eval prints at most {MAX_ENTRIES}",
            if entries.is_finite() {
                format!("{entries:.0}")
            } else {
                "more than 10^308".into()
            }
        ))
        .with_note("lower --order, or use `derive` for the symbolic form"));
    }
    for _ in 0..order {
        shape.extend(wrt.iter().copied());
    }
    Ok(shape)
}
}

internal! {
/// Evaluates a tensor: its entries, flattened row-major.
pub fn evaluate(t: &Tensor, point: &Point) -> Result<Vec<f64>> {
    let shape = tensor_shape(t, point);
    let total: usize = shape.iter().product();
    let nv = t.value_idx.len();
    let rw = t.wrt_dims.len();
    let mut ev = Evaluator::new(point);
    let plain = if t.symmetric && crate::sym::single_index_groups(&t.groups) {
        None
    } else {
        Some(t.expanded())
    };
    // Entries that are permutations of each other are computed once; at
    // order 0 and 1 every entry is its own class, so nothing is kept.
    let symmetric_entries = t.order() >= 2;
    let mut cache: FastMap<Vec<usize>, f64> = FastMap::default();
    let mut out = Vec::with_capacity(total);
    let mut pos = vec![0usize; shape.len()];
    for _ in 0..total {
        // Canonical entry: value indices, then groups sorted.
        let mut groups: Vec<&[usize]> = pos[nv..].chunks(rw.max(1)).collect();
        if rw == 0 {
            groups.clear();
        }
        groups.sort();
        let mut key: Vec<usize> = pos[..nv].to_vec();
        for g in &groups {
            key.extend_from_slice(g);
        }
        let v = match cache.get(&key) {
            Some(v) => *v,
            None => {
                let v = match &plain {
                    Some(p) => ev.entry_plain(p, t, &key),
                    None => t.classes.iter().map(|c| ev.class_entry(c, t, &key)).sum(),
                };
                if symmetric_entries {
                    cache.insert(key, v);
                }
                v
            }
        };
        if !v.is_finite() {
            return Err(Error::new(format!("the derivative is not finite at this point (entry {pos:?} is {v})"))
                .with_note("the expression or one of its derivatives is undefined here (log or power of zero, or overflow)"));
        }
        out.push(v);
        for d in (0..shape.len()).rev() {
            pos[d] += 1;
            if pos[d] < shape[d] {
                break;
            }
            pos[d] = 0;
        }
    }
    Ok(out)
}
}

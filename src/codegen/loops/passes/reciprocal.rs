//! Reciprocals: an elementwise temporary that is read only as a divisor
//! (`1/t`, `t⁻²`) stores its reciprocal instead, so each element costs one
//! division where it is made and multiplications where it is read. The
//! Newton step's `d_i + λ` is read by two sums and by the output, five
//! divisions per entry; stored as `1/(d_i + λ)` it is one.

use crate::codegen::loops::*;

/// Marks each temporary read in `x` as read, and as read other than as a
/// divisor where it is.
fn survey(x: &Scalar, read: &mut PerTemp<bool>, other: &mut PerTemp<bool>) {
    match x {
        Scalar::Recip(a) | Scalar::Powi(a, _) if temp_read(a).is_some() => {
            let t = temp_read(a).expect("a read");
            read[t] = true;
            if matches!(x, Scalar::Powi(_, k) if *k > 0) {
                other[t] = true;
            }
        }
        _ => {
            if let Some(t) = temp_read(x) {
                read[t] = true;
                other[t] = true;
            }
            each_child(x, &mut |k| survey(k, read, other));
        }
    }
}

/// Reads of a flipped temporary: `1/t` becomes `t`, `t^-k` becomes `t^k`.
fn flip_reads(x: &mut Scalar, flipped: &PerTemp<bool>) {
    visit_mut(x, &mut |y| {
        let new = match y {
            Scalar::Recip(a) if temp_read(a).is_some_and(|t| flipped[t]) => Some((**a).clone()),
            Scalar::Powi(a, k) if temp_read(a).is_some_and(|t| flipped[t]) => Some(if *k == -1 {
                (**a).clone()
            } else {
                Scalar::Powi(a.clone(), -*k)
            }),
            _ => None,
        };
        if let Some(n) = new {
            *y = n;
        }
    });
}

impl Body {
    /// Stores `1/t` for every live elementwise temporary `t` read only as
    /// a divisor, and rewrites its reads.
    pub(crate) fn store_reciprocals(&mut self, tail: &mut [Stmt]) {
        let mut read = PerTemp::new(&self.temps, false);
        let mut other = read.clone();
        for temp in self.temps.iter().filter(|t| t.live) {
            match &temp.def {
                Def::Elem(x) => survey(x, &mut read, &mut other),
                Def::Reduce { body, .. } => survey(body, &mut read, &mut other),
            }
        }
        for s in tail.iter() {
            visit_top(s, &mut |x| survey(x, &mut read, &mut other));
        }
        let mut flipped = read.clone();
        for (t, temp) in self.temps.enumerate() {
            flipped[t] = temp.live
                && read[t]
                && !other[t]
                && !temp.vars.is_empty()
                && matches!(temp.def, Def::Elem(_));
        }
        if !self.temps.ids().any(|t| flipped[t]) {
            return;
        }
        for (t, temp) in self.temps.enumerate_mut() {
            match &mut temp.def {
                Def::Elem(x) => {
                    if flipped[t] {
                        *x = Scalar::Recip(Box::new(x.clone()));
                    }
                    flip_reads(x, &flipped);
                }
                Def::Reduce { body, .. } => flip_reads(body, &flipped),
            }
        }
        for s in tail.iter_mut() {
            visit_scalars(s, &mut |x| flip_reads(x, &flipped));
        }
    }
}

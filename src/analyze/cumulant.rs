//! The third derivative as a cumulant tensor, where it is one.

use super::Report;
use crate::derive::Derivation;
use crate::ir::{Atom, Poly, Term};

/// The third derivative as a cumulant tensor, where it is one: every
/// symmetry class is one set partition type π of `{i, j, k}` with a
/// softmax `p` on each block, the same scalar factor `c` throughout, and
/// coefficient `c·(−1)^{|π|−1}(|π|−1)!`. Then `D³f = c·κ₃(p)`, the third
/// cumulant tensor of a categorical distribution with probabilities `p`
/// (checked class by class, not assumed).
pub(super) fn third_order(d: &Derivation, r: &mut Report, show: &mut dyn FnMut(&Poly) -> String) {
    let Some(t) = d.orders.get(3) else { return };
    if !t.symmetric || t.classes.len() != 3 {
        return;
    }
    let global = &t.classes[0].global;
    let mut softmax: Option<&Atom> = None;
    for c in &t.classes {
        if c.global != *global {
            return;
        }
        for b in &c.blocks {
            let [f] = b.atoms.as_slice() else { return };
            let Atom::Softmax { ix, body, dim, .. } = &*f.atom else {
                return;
            };
            if f.exp.0 != 1.0 {
                return;
            }
            match softmax {
                Some(Atom::Softmax {
                    ix: x,
                    body: y,
                    dim: z,
                    ..
                }) if (x, y, z) != (ix, body, dim) => return,
                _ => softmax = Some(&*f.atom),
            }
        }
        let blocks = c.blocks.len() as i32;
        let want =
            if blocks % 2 == 1 { 1.0 } else { -1.0 } * crate::sym::factorial(blocks as usize - 1);
        if c.term.coef.0 != want {
            return;
        }
    }
    let scale = Poly {
        terms: vec![Term {
            factors: global.clone(),
            coef: crate::ir::Real(1.0),
        }],
    };
    let c = if scale.as_constant() == Some(1.0) {
        String::new()
    } else {
        format!("{}·", show(&scale))
    };
    r.line(
        "third order",
        &format!(
            "D³f = {c}κ₃(p), the third cumulant tensor of Categorical(p): Σ over partitions π of {{i, j, k}} of (−1)^(|π|−1)·(|π|−1)!·Π_B p_B δ_B (as `derive --order 3` prints)"
        ),
    );
    r.json.insert("third_order".into(), "cumulant".into());
}

//! Names of temporaries in generated code: after the mathematics where it
//! has a name, else the temporary's kind and number (`g5`).
//!
//! * `p`: a softmax, `exp(z − lse)`; `exp_z`: shifted exponentials
//!   `exp(z − shift)`; `exps`: those a sum pass keeps for a softmax
//!   (read as `exps·inv_sumexp`);
//! * `shift`, `sumexp`, `lse`: the parts of a logsumexp;
//! * `sum_q`: the sum of an input's entries;
//! * `m1`, `m2`, …: the moments `Σ p (v − c)^k` of a direction under a
//!   softmax (the directional derivatives are products of them);
//! * `pv`: the mean `Σ p v` of an input under a softmax (`sum_v_exps`
//!   before it is scaled);
//! * `inv_sumexp`: the reciprocal of a named temporary.
//!
//! A name is used once per function and never shadows a parameter, a
//! length or an item of the kernel; where it would, the numbered name is
//! kept.

use std::collections::BTreeSet;

use proc_macro2::Ident;
use quote::format_ident;

use super::Names;
use crate::codegen::loops::{
    flatten_product, temp_read, visit, Access, Array, Def, RedOp, Scalar, Temp, TempId, Temps,
};
use crate::ir::Dim;

/// One name per temporary.
pub(super) fn temp_names(names: &Names, temps: &Temps) -> Vec<Ident> {
    let mut taken: BTreeSet<String> = names.inputs.iter().map(|i| i.to_string()).collect();
    taken.extend(["out", "n", "FMA", "self", "fn", "let", "mut"].map(String::from));
    taken.extend(names.fixed.keys().cloned());
    for t in temps {
        let mut dims: Vec<&Dim> = t.vars.iter().map(|(_, d)| d).collect();
        let mut note_access = |x: &Scalar| {
            if let Scalar::Load(Access { idx, .. }) = x {
                for (_, d) in idx {
                    if let Dim::Named(n) = d {
                        taken.insert(n.to_string());
                    }
                }
            }
        };
        match &t.def {
            Def::Elem(x) => visit(x, &mut note_access),
            Def::Reduce { dim, body, .. } => {
                visit(body, &mut note_access);
                dims.push(dim);
            }
        }
        dims.into_iter().for_each(|d| note_dim(d, &mut taken));
    }
    // Candidates first (a name may depend on a later temporary's, as
    // `pv` on `sum_v_exps`: twice over), then each kept where it is free.
    let mut math: Vec<Option<String>> = vec![None; temps.len()];
    for _ in 0..2 {
        for (i, t) in temps.enumerate() {
            if math[i.0].is_none() {
                math[i.0] = math_name(names, temps, &math, i, t);
            }
        }
    }
    let kernel = &names.kernel;
    let mut out: Vec<String> = Vec::with_capacity(temps.len());
    for (i, t) in temps.iter().enumerate() {
        let name = math[i]
            .clone()
            .filter(|n| !taken.contains(n) && !n.starts_with(&format!("{kernel}_")) && n != kernel);
        let text = name.unwrap_or_else(|| format!("{}{}", t.hint, i));
        taken.insert(text.clone());
        out.push(text);
    }
    // A name made from another's (`inv_sumexp`) only where that one kept
    // its name.
    let kept: BTreeSet<String> = out.iter().cloned().collect();
    for (i, t) in temps.iter().enumerate() {
        let base = out[i].strip_prefix("inv_").map(str::to_string);
        if base.is_some_and(|b| !kept.contains(&b)) {
            out[i] = format!("{}{}", t.hint, i);
        }
    }
    out.into_iter().map(|n| format_ident!("{}", n)).collect()
}

fn note_dim(d: &Dim, taken: &mut BTreeSet<String>) {
    if let Dim::Named(n) = d {
        taken.insert(n.to_string());
    }
}

/// The input a scalar reads, if it is a read of one.
fn input_read(x: &Scalar) -> Option<usize> {
    match x {
        Scalar::Load(Access {
            array: Array::Input(k),
            ..
        }) => Some(*k),
        _ => None,
    }
}

/// The mathematical name of temporary `me`, `t`, from its definition and
/// the names found so far (`named[k]`).
fn math_name(
    names: &Names,
    temps: &Temps,
    named: &[Option<String>],
    me: TempId,
    t: &Temp,
) -> Option<String> {
    let hint_of = |k: TempId| temps[k].hint;
    match (&t.def, t.hint) {
        // Filled by its sum pass with the shifted exponentials, which
        // reads then scale by the reciprocal of their sum.
        (Def::Elem(x), "p") if temp_read(x) == Some(me) => Some("exps".into()),
        (_, "max") => Some("shift".into()),
        (_, "sumexp") => Some("sumexp".into()),
        (_, "lse") => Some("lse".into()),
        (Def::Elem(Scalar::ExpShifted(arg)), _) => match &**arg {
            Scalar::Sub(x, c) => match (input_read(x), temp_read(c).map(hint_of)) {
                (Some(_), Some("lse")) => Some("p".into()),
                (Some(k), Some("max")) => Some(format!("exp_{}", names.inputs[k])),
                _ => None,
            },
            _ => None,
        },
        // (Σ x·exps)/(Σ exps) = Σ x·p.
        (Def::Elem(Scalar::Product(xs)), _) if xs.len() == 2 => {
            let (a, b) = (temp_read(&xs[0])?, temp_read(&xs[1])?);
            let (na, nb) = (named.get(a.0)?.as_deref()?, named.get(b.0)?.as_deref()?);
            let sum = if na == "inv_sumexp" {
                nb
            } else if nb == "inv_sumexp" {
                na
            } else {
                return None;
            };
            let x = sum.strip_prefix("sum_")?.strip_suffix("_exps")?;
            Some(format!("p{x}"))
        }
        (Def::Elem(Scalar::Recip(x)), _) => {
            let k = temp_read(x)?;
            let base = named.get(k.0)?.as_ref()?;
            Some(format!("inv_{base}"))
        }
        (
            Def::Reduce {
                op: RedOp::Sum,
                body,
                ..
            },
            _,
        ) => {
            if let Some(k) = input_read(body) {
                return Some(format!("sum_{}", names.inputs[k]));
            }
            if let Some(k) = moment(temps, body) {
                return Some(format!("m{k}"));
            }
            // Σ x·p: the mean of x under the softmax (`pv`); Σ x·exps
            // before it is scaled by the reciprocal of their sum.
            let mut factors = Vec::new();
            flatten_product(body, &mut factors);
            let mut x = None;
            let (mut p, mut exps, mut inv) = (false, false, false);
            for f in &factors {
                if let Some(k) = input_read(f) {
                    if x.replace(k).is_some() {
                        return None;
                    }
                    continue;
                }
                match named.get(temp_read(f)?.0)?.as_deref()? {
                    "p" => p = true,
                    "exps" => exps = true,
                    "inv_sumexp" => inv = true,
                    _ => return None,
                }
            }
            let x = &names.inputs[x?];
            match (p, exps, inv) {
                (true, false, false) | (false, true, true) => Some(format!("p{x}")),
                (false, true, false) => Some(format!("sum_{x}_exps")),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `k` when `body` is `(v − c)^k` times a softmax (as `p`, or as kept
/// exponentials times the reciprocal of their sum): a centred moment.
fn moment(temps: &Temps, body: &Scalar) -> Option<i32> {
    let mut factors = Vec::new();
    flatten_product(body, &mut factors);
    let mut power = None;
    let mut softmax = false;
    for f in &factors {
        match f {
            Scalar::Powi(b, k) if matches!(&**b, Scalar::Sub(v, _) if input_read(v).is_some()) => {
                power = Some(*k)
            }
            Scalar::Sub(v, _) if input_read(v).is_some() => power = Some(1),
            // A softmax, or the exponentials its sum pass kept (then
            // every read is scaled by the reciprocal of their sum).
            x => match temp_read(x).map(|k| temps[k].hint) {
                Some("p") => softmax = true,
                Some("inv") => {}
                _ => return None,
            },
        }
    }
    softmax.then_some(power?)
}

//! Printing the explanation's expressions, in text and LaTeX, with the
//! index names and common parts of the derivation.

use super::tree::{Ctx, Ex};
use crate::derive::Derivation;
use crate::ir::{Atom, Ix, Poly};
use crate::render::{Names, Printer, Syntax};

pub(super) fn show_poly(p: &Poly, names: &mut Names) -> (String, String) {
    let mut rec = egg::RecExpr::default();
    crate::compact::display(p).add_to(&mut rec);
    show_rec(&rec, names)
}

pub(super) fn show_rec(
    rec: &egg::RecExpr<crate::lang::Math>,
    names: &mut Names,
) -> (String, String) {
    let text = Printer {
        names,
        syntax: Syntax::Text,
        overrides: Default::default(),
    }
    .show(rec);
    let latex = Printer {
        names,
        syntax: Syntax::Latex,
        overrides: Default::default(),
    }
    .show(rec);
    (text, latex)
}

/// Binding strength of a printed piece: sums bind loosest.
pub(super) fn is_compound(ex: &Ex) -> bool {
    match ex {
        Ex::Add(_) => true,
        Ex::P(p) => p.terms.len() > 1,
        _ => false,
    }
}

pub(super) fn show_ex(ex: &Ex, ctx: &mut Ctx, syntax: Syntax) -> String {
    let latex = syntax == Syntax::Latex;
    let paren = |s: String| {
        if latex {
            format!("\\left({s}\\right)")
        } else {
            format!("({s})")
        }
    };
    match ex {
        Ex::P(p) => {
            let (t, l) = show_poly(p, ctx.names);
            if latex {
                l
            } else {
                t
            }
        }
        Ex::D(a) => {
            let inner = Poly::atom(a.clone());
            let (t, l) = show_poly(&inner, ctx.names);
            let j: Vec<String> = ctx.j.iter().map(|i| ctx.names.name_of(*i)).collect();
            let w = ctx.wrt;
            let simple = matches!(
                &**a,
                Atom::Var { .. } | Atom::Softmax { .. } | Atom::Func(..) | Atom::Lse { .. }
            );
            // A scalar variable has no index to write.
            let jn = j.join("");
            if latex {
                let l = if simple { l } else { paren(l) };
                let den = if jn.is_empty() {
                    w.to_string()
                } else {
                    format!("{w}_{{{jn}}}")
                };
                format!("\\frac{{\\partial {l}}}{{\\partial {den}}}")
            } else {
                let t = if simple { t } else { paren(t) };
                let den = if jn.is_empty() {
                    w.to_string()
                } else {
                    format!("{w}_{jn}")
                };
                format!("∂{t}/∂{den}")
            }
        }
        Ex::Add(xs) => {
            let mut out = String::new();
            for (n, x) in xs.iter().enumerate() {
                let s = show_ex(x, ctx, syntax);
                let minus = if latex { "-" } else { "−" };
                match s.strip_prefix(minus).or_else(|| s.strip_prefix('-')) {
                    Some(rest) if n > 0 => out.push_str(&format!(" {minus} {}", rest.trim_start())),
                    _ if n > 0 => out.push_str(&format!(" + {s}")),
                    _ => out.push_str(&s),
                }
            }
            out
        }
        Ex::Mul(c, xs) => {
            let parts: Vec<String> = xs
                .iter()
                .map(|x| {
                    let s = show_ex(x, ctx, syntax);
                    if is_compound(x) && (xs.len() > 1 || *c != 1.0) {
                        paren(s)
                    } else {
                        s
                    }
                })
                .collect();
            let dot = if latex { " \\cdot " } else { "·" };
            let body = parts.join(dot);
            let minus = if latex { "-" } else { "−" };
            if *c == 1.0 {
                body
            } else if *c == -1.0 {
                format!("{minus}{body}")
            } else {
                let (t, l) = show_poly(&Poly::constant(*c), ctx.names);
                format!("{}{dot}{body}", if latex { l } else { t })
            }
        }
        Ex::Sum(k, _, b) => {
            let name = ctx.names.name_of(*k);
            let body = show_ex(b, ctx, syntax);
            let body = if is_compound(b) { paren(body) } else { body };
            if latex {
                format!("\\sum_{{{name}}} {body}")
            } else {
                format!("Σ_{name} {body}")
            }
        }
    }
}

pub(super) fn latex_lhs(f: &str) -> String {
    match f.split_once('_') {
        Some((a, b)) => format!("{a}_{{{b}}}"),
        None => f.to_string(),
    }
}

pub(super) fn latex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '_' | '&' | '%' | '$' | '#' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '^' => out.push_str("\\^{}"),
            '~' => out.push_str("\\~{}"),
            '\\' => out.push_str("\\textbackslash{}"),
            c => out.push(c),
        }
    }
    out
}

/// `∂f/∂z_i`, `∂²f/∂z_i∂z_j`, text and LaTeX.
pub(super) fn derivative_lhs(
    f: &str,
    d: &Derivation,
    groups: &[Vec<Ix>],
    names: &Names,
) -> (String, String) {
    let k = groups.len();
    if k == 0 {
        return (f.to_string(), latex_lhs(f));
    }
    let w = &d.wrt;
    let dens: Vec<String> = groups
        .iter()
        .map(|g| g.iter().map(|i| names.name_of(*i)).collect::<String>())
        .collect();
    let sup = if k > 1 { superscript(k) } else { String::new() };
    // A scalar variable: ∂²f/∂x².
    if dens.iter().all(|j| j.is_empty()) {
        let lsup = if k > 1 {
            format!("^{{{k}}}")
        } else {
            String::new()
        };
        return (
            format!("∂{sup}{f}/∂{w}{sup}"),
            format!(
                "\\frac{{\\partial{lsup} {}}}{{\\partial {w}{lsup}}}",
                latex_lhs(f)
            ),
        );
    }
    let text = format!(
        "∂{sup}{f}/{}",
        dens.iter().map(|j| format!("∂{w}_{j}")).collect::<String>()
    );
    let lsup = if k > 1 {
        format!("^{{{k}}}")
    } else {
        String::new()
    };
    let latex = format!(
        "\\frac{{\\partial{lsup} {}}}{{{}}}",
        latex_lhs(f),
        dens.iter()
            .map(|j| format!("\\partial {w}_{{{j}}}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    (text, latex)
}

pub(super) fn superscript(k: usize) -> String {
    k.to_string()
        .chars()
        .map(|c| {
            "⁰¹²³⁴⁵⁶⁷⁸⁹"
                .chars()
                .nth(c.to_digit(10).unwrap_or(0) as usize)
                .unwrap_or(c)
        })
        .collect()
}

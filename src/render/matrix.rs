//! The matrix/vector form of a rank ≤ 2 tensor (`s·p − q`,
//! `s·(diag(p) − p pᵀ)`), when every term has one.

use super::*;

/// The matrix/vector form of a tensor of rank ≤ 2 with free indices
/// `free` (value indices then derivative indices), if every term has one:
/// `s·p − q`, `s·(diag(p) − p pᵀ)`.
pub fn matrix_form(terms: &[Term], free: &[u32], printer: &mut Printer) -> Option<String> {
    if free.len() > 2 || terms.is_empty() {
        return None;
    }
    let l = printer.latex();
    // Scalar factors common to every term come out front.
    let scalar = |t: &Term| -> Vec<crate::ir::Factor> {
        t.factors
            .iter()
            .filter(|f| f.atom.free().is_empty())
            .cloned()
            .collect()
    };
    let mut common = scalar(&terms[0]);
    for t in &terms[1..] {
        let s = scalar(t);
        common.retain(|f| s.contains(f));
    }
    let show_atoms =
        |fs: &[crate::ir::Factor], printer: &mut Printer, drop: Option<u32>| -> String {
            let saved = printer.overrides.clone();
            if let Some(ix) = drop {
                printer
                    .overrides
                    .insert(crate::lang::index_symbol(ix), String::new());
            }
            let parts: Vec<String> = fs
                .iter()
                .map(|f| {
                    let mut r = RecExpr::default();
                    crate::lang::add_term(std::slice::from_ref(f), 1.0, &mut r);
                    printer.show(&r)
                })
                .collect();
            printer.overrides = saved;
            parts.join(if l { " \\odot " } else { "∘" })
        };
    let mut pieces: Vec<(f64, String)> = Vec::new();
    for t in terms {
        let mut scal = Vec::new();
        let mut at: [Vec<crate::ir::Factor>; 2] = [Vec::new(), Vec::new()];
        let mut diag = false;
        for f in &t.factors {
            if common.contains(f) {
                continue;
            }
            if let Atom::Delta(a, b) = &*f.atom {
                if free.len() == 2 && *a == free[0] && *b == free[1] {
                    diag = true;
                    continue;
                }
                return None;
            }
            let fr = f.atom.free();
            if fr.is_empty() {
                scal.push(f.clone());
            } else if fr.len() == 1 {
                let pos = free.iter().position(|x| fr.contains(x))?;
                at[pos].push(f.clone());
            } else {
                return None;
            }
        }
        let mut s = show_atoms(&scal, printer, None);
        let body = match free.len() {
            0 => String::new(),
            1 => {
                if at[0].is_empty() {
                    "1".into()
                } else {
                    show_atoms(&at[0], printer, Some(free[0]))
                }
            }
            _ if diag && at[0].is_empty() => "I".into(),
            _ if diag && l => format!(
                "\\operatorname{{diag}}\\left({}\\right)",
                show_atoms(&at[0], printer, Some(free[0]))
            ),
            _ if diag => format!("diag({})", show_atoms(&at[0], printer, Some(free[0]))),
            _ => {
                let u = if at[0].is_empty() {
                    "1".into()
                } else {
                    show_atoms(&at[0], printer, Some(free[0]))
                };
                let v = if at[1].is_empty() {
                    "1".into()
                } else {
                    show_atoms(&at[1], printer, Some(free[1]))
                };
                let wrap = |x: String| {
                    if x.contains('∘') || x.contains("odot") {
                        format!("({x})")
                    } else {
                        x
                    }
                };
                if l {
                    format!("{} {}^\\top", wrap(u), wrap(v))
                } else {
                    format!("{} {}ᵀ", wrap(u), wrap(v))
                }
            }
        };
        if !s.is_empty() && !body.is_empty() {
            s.push_str(if l { " \\cdot " } else { "·" });
        }
        s.push_str(&body);
        pieces.push((t.coef.0, s));
    }
    lead_with(&mut pieces, |(c, _)| *c > 0.0);
    let mut out = String::new();
    for (n, (c, s)) in pieces.iter().enumerate() {
        let mag = c.abs();
        let cs = if mag == 1.0 && !s.is_empty() {
            String::new()
        } else {
            format!("{} ", printer.num(mag))
        };
        let sign = if *c < 0.0 { printer.minus() } else { "+" };
        if n == 0 {
            if *c < 0.0 {
                out.push_str(printer.minus());
            }
        } else {
            out.push_str(&format!(" {sign} "));
        }
        out.push_str(cs.trim_end());
        if !cs.is_empty() && !s.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
    }
    if !common.is_empty() {
        let c = show_atoms(&common, printer, None);
        let c = c.replace('∘', "·");
        if pieces.len() > 1 {
            out = if l {
                format!("{c} \\left({out}\\right)")
            } else {
                format!("{c}·({out})")
            };
        } else {
            out = if l {
                format!("{c} \\cdot {out}")
            } else {
                format!("{c}·{out}")
            };
        }
    }
    Some(out)
}

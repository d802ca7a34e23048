//! A [`Derivation`] shown: the display expression from the e-graph, the
//! text and LaTeX reports, the matrix form and the JSON of `derive`.

use super::*;

impl Derivation {
    /// The display expression: classes (symmetrized where large), factored
    /// by the e-graph. Returns it with the stats of the display run.
    pub(crate) fn display_expr(&self, limits: Limits) -> (egg::RecExpr<Math>, RunStats) {
        let order = self.tensor.order();
        let total: f64 = self.tensor.classes.iter().map(|c| c.orbit(order)).sum();
        let mut r = egg::RecExpr::default();
        if self.free_indices().is_empty() {
            // A scalar: the factored, common-denominator form (see
            // `compact`); the e-graph's factoring has nothing to add.
            crate::compact::display(&self.tensor.expanded()).add_to(&mut r);
            return saturate(&r, &[], limits, "display");
        }
        let expand = !self.tensor.symmetric || total <= EXPAND_DISPLAY;
        let mut kids = Vec::new();
        if expand {
            // Sums that differ only in their summand are one sum, its body
            // factored: Σ_b X_bi X_bj·σ_b·(1 − σ_b)·(1 − 2 y_b)².
            let terms = crate::matform::merge_row_sums(&self.tensor.expanded().terms);
            for t in &terms {
                kids.push(crate::compact::term_node(t).add_to(&mut r));
            }
        } else {
            for c in &self.tensor.classes {
                let orbit = c.orbit(order);
                let (scal, idx): (Vec<_>, Vec<_>) = c
                    .term
                    .factors
                    .iter()
                    .cloned()
                    .partition(|f| f.atom.free().is_empty());
                if orbit <= 1.0 || idx.is_empty() {
                    kids.push(crate::lang::add_term(
                        &c.term.factors,
                        c.term.coef.0,
                        &mut r,
                    ));
                    continue;
                }
                let inner = crate::lang::add_term(&idx, 1.0, &mut r);
                let n = r.add(Math::Num(crate::lang::Num(crate::ir::Real(orbit.round()))));
                let sym = r.add(Math::Sym([n, inner]));
                let mut outer = Vec::new();
                if c.term.coef.0 != 1.0 {
                    outer.push(r.add(Math::Num(crate::lang::Num(c.term.coef))));
                }
                for f in &scal {
                    outer.push(crate::lang::add_term(std::slice::from_ref(f), 1.0, &mut r));
                }
                outer.push(sym);
                kids.push(if outer.len() == 1 {
                    outer[0]
                } else {
                    r.add(Math::Mul(outer.into()))
                });
            }
        }
        crate::render::lead_with(&mut kids, |&k| !starts_negative(&r, k));
        match kids.len() {
            0 => {
                r.add(Math::Num(crate::lang::Num(crate::ir::Real(0.0))));
            }
            1 => {}
            _ => {
                r.add(Math::Add(kids.into()));
            }
        }
        saturate(&r, &rules::factor::rules(), limits, "display")
    }

    /// The printed names of the free indices, in order.
    pub(super) fn free_names(&self, names: &Names) -> Vec<String> {
        self.free_indices()
            .iter()
            .map(|&i| names.name_of(i))
            .collect()
    }

    /// Names for the indices and parts of this derivation's output.
    pub(crate) fn names(&self) -> Names {
        let mut taken: BTreeSet<String> = self.typed.vars.iter().map(|(n, _)| n.clone()).collect();
        taken.extend(self.typed.symbolic_dims());
        taken.insert("p".into());
        taken.insert("s".into());
        let mut names = Names::new(&self.free_indices(), &taken);
        names.exact = !typed_floats(&self.source);
        names
    }

    /// The report `derive` prints.
    pub fn report(&self, syntax: Syntax, limits: Limits) -> (String, RunStats) {
        let (expr, display_stats) = self.display_expr(limits);
        let mut names = self.names();
        let mut printer = Printer {
            names: &mut names,
            syntax,
            overrides: Default::default(),
        };
        let index_form = printer.show(&expr);
        let k = self.tensor.order();
        // Matrix variables get chain forms (`Xᵀ(A − Y)/m`); vector ones the
        // diag/outer form (`diag(p) − p pᵀ`).
        let matrix = self.report_matrix(&mut printer, syntax);
        // A row-wise part's definition names itself (`A_ec = softmax_c(…)`).
        let part_lines: Vec<String> = names
            .parts
            .iter()
            .map(|(n, def, _)| {
                if def.starts_with(&format!("{n}_")) {
                    def.clone()
                } else {
                    format!("{n} = {def}")
                }
            })
            .collect();
        let free = self.free_names(&names);
        let shape = self.symbolic_shape();
        let mut out = String::new();
        match syntax {
            Syntax::Text => {
                let lhs = if k == 0 {
                    "f".to_string()
                } else {
                    let sup = superscript(k);
                    format!(
                        "∂{}f/∂{}{}",
                        if k > 1 { sup.clone() } else { String::new() },
                        self.wrt,
                        if k > 1 { sup } else { String::new() }
                    )
                };
                out.push_str(&format!("f = {}\n", self.expr_text()));
                out.push_str(&format!(
                    "{lhs}  (order {k} with respect to {}, shape [{}])\n",
                    self.wrt,
                    shape.join(", ")
                ));
                if !free.is_empty() {
                    out.push_str(&format!("indices: {}\n", free.join(" ")));
                }
                for line in &part_lines {
                    out.push_str(&format!("where {line}\n"));
                }
                out.push_str(&format!("\nindex form:  {index_form}\n"));
                if let Some(m) = matrix {
                    out.push_str(&format!("matrix form: {m}\n"));
                }
                if self.display_is_symmetrized() {
                    out.push_str("\nX[N] is the sum of the N distinct permutations of X's derivative indices.\n");
                }
                if !self.used_facts.is_empty() {
                    out.push_str(&format!(
                        "assumptions used: {}\n",
                        self.used_facts.join(", ")
                    ));
                }
                for c in &self.conditions {
                    out.push_str(&format!("valid where: {c}\n"));
                }
                if !self.unused_facts.is_empty() {
                    out.push_str(&format!(
                        "assumptions not used (no rule applies them to this derivative): {}\n",
                        self.unused_facts.join(", ")
                    ));
                }
            }
            Syntax::Latex => {
                for line in &part_lines {
                    out.push_str(&format!("{line}\n"));
                }
                let lhs = self.latex_lhs(&free);
                let wrt = latex_name(&self.wrt);
                out.push_str(&format!("{lhs} = {index_form}\n"));
                if let Some(m) = matrix {
                    let whole = if k == 0 {
                        "f".to_string()
                    } else {
                        let pow = if k > 1 {
                            format!("^{{{k}}}")
                        } else {
                            String::new()
                        };
                        format!("\\frac{{\\partial{pow} f}}{{\\partial {wrt}{pow}}}")
                    };
                    out.push_str(&format!("{whole} = {m}\n"));
                }
                if !self.used_facts.is_empty() {
                    out.push_str(&format!(
                        "\\text{{assuming }} {}\n",
                        self.used_facts
                            .iter()
                            .map(|f| format!("\\texttt{{{}}}", latex_text(f)))
                            .collect::<Vec<_>>()
                            .join(",\\ ")
                    ));
                }
            }
        }
        (out, display_stats)
    }

    /// The matrix form of the report: chain forms for matrix variables
    /// (`Xᵀ(A − Y)/m`), the diag/outer form for vector ones
    /// (`diag(p) − p pᵀ`); none past order 2.
    fn report_matrix(&self, printer: &mut Printer, syntax: Syntax) -> Option<String> {
        let k = self.tensor.order();
        let has_matrix = self.typed.vars.iter().any(|(_, s)| s.rank() == 2);
        let free_idx = self.free_indices();
        if k > 2 || free_idx.is_empty() {
            None
        } else if has_matrix {
            let terms = self.tensor.expanded().terms;
            let mut namer = PartNamer { printer };
            // Scalars print as text here; the whole chain is converted to
            // LaTeX below.
            let mut show = |fs: &[crate::ir::Factor]| -> String {
                if fs.is_empty() {
                    return String::new();
                }
                let mut r = egg::RecExpr::default();
                crate::lang::add_term(fs, 1.0, &mut r);
                let mut names = Names::new(&[], &BTreeSet::new());
                Printer {
                    names: &mut names,
                    syntax: Syntax::Text,
                    overrides: Default::default(),
                }
                .show(&r)
            };
            // Sums merged first (one chain with a row weight), else term
            // by term.
            let merged = crate::matform::merge_row_sums(&terms);
            let chain =
                crate::matform::matrix_chain_form(&merged, &free_idx, &mut namer, &mut show)
                    .or_else(|| {
                        crate::matform::matrix_chain_form(&terms, &free_idx, &mut namer, &mut show)
                    });
            match syntax {
                Syntax::Text => chain,
                Syntax::Latex => chain.map(|c| chain_latex(&c)),
            }
        } else if self.typed.var_shape(&self.wrt).map(Shape::rank) == Some(1) {
            matrix_form(&self.tensor.expanded().terms, &free_idx, printer)
        } else {
            None
        }
    }

    /// The LaTeX left-hand side to paste: `∂³f/∂z_i∂z_j∂z_k` with the
    /// derivative's own indices.
    fn latex_lhs(&self, free: &[String]) -> String {
        let k = self.tensor.order();
        // A left-hand side to paste: ∂³f/∂z_i∂z_j∂z_k with the
        // derivative's own indices.
        let value_names = &free[..self.tensor.value_idx.len()];
        let f = if value_names.is_empty() {
            "f".to_string()
        } else {
            format!("f_{{{}}}", value_names.join(""))
        };
        let wrt = latex_name(&self.wrt);
        if k == 0 {
            f.clone()
        } else {
            let per = self.tensor.wrt_dims.len();
            let dens: Vec<String> = (0..k)
                .map(|g| {
                    let idx = &free[value_names.len() + g * per..value_names.len() + (g + 1) * per];
                    if idx.is_empty() {
                        format!("\\partial {wrt}")
                    } else {
                        format!("\\partial {wrt}_{{{}}}", idx.join(""))
                    }
                })
                .collect();
            let dens = if per == 0 && k > 1 {
                format!("\\partial {wrt}^{{{k}}}")
            } else {
                dens.join(" ")
            };
            let pow = if k > 1 {
                format!("^{{{k}}}")
            } else {
                String::new()
            };
            format!("\\frac{{\\partial{pow} {f}}}{{{dens}}}")
        }
    }

    fn display_is_symmetrized(&self) -> bool {
        let order = self.tensor.order();
        let total: f64 = self.tensor.classes.iter().map(|c| c.orbit(order)).sum();
        self.tensor.symmetric && total > EXPAND_DISPLAY
    }

    /// The program text, on one line.
    pub fn expr_text(&self) -> String {
        crate::parse::one_line(&self.source)
    }

    /// The matrix form `derive` prints (`diag(p) − p pᵀ`, `Xᵀ(A − Y)/m`),
    /// as text, where one exists.
    pub fn matrix_form(&self, limits: Limits) -> Option<String> {
        self.report(Syntax::Text, limits)
            .0
            .lines()
            .find_map(|l| l.strip_prefix("matrix form: ").map(str::to_string))
    }

    /// The shape with symbolic dimensions.
    pub fn symbolic_shape(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .tensor
            .value_dims
            .iter()
            .map(|d| d.to_string())
            .collect();
        for _ in 0..self.tensor.order() {
            s.extend(self.tensor.wrt_dims.iter().map(|d| d.to_string()));
        }
        s
    }

    /// The JSON `derive --format json` prints, with the stats of the
    /// display run (as [`Derivation::report`]).
    pub fn json(&self, limits: Limits) -> (serde_json::Value, RunStats) {
        let (expr, display_stats) = self.display_expr(limits);
        let mut names = self.names();
        let mut printer = Printer {
            names: &mut names,
            syntax: Syntax::Text,
            overrides: Default::default(),
        };
        let text = printer.show(&expr);
        let parts: serde_json::Map<String, serde_json::Value> = names
            .parts
            .iter()
            .map(|(n, d, _)| (n.clone(), serde_json::Value::String(d.clone())))
            .collect();
        let free = self.free_names(&names);
        let matrix = self.matrix_form(limits);
        let json = serde_json::json!({
            "wrt": self.wrt,
            "order": self.tensor.order(),
            "shape": self.symbolic_shape(),
            "indices": free,
            "definitions": parts,
            "symmetrized": self.display_is_symmetrized(),
            "text": text,
            "matrix_form": matrix,
            "tree": json_tree(&expr, &names),
            "assumptions_used": self.used_facts,
            "assumptions_unused": self.unused_facts,
            "conditions": self.conditions,
        });
        (json, display_stats)
    }
}

/// Names row-wise softmax parts (`A`) for matrix forms, through the
/// printer so that the index form and the matrix form agree.
struct PartNamer<'p, 'n> {
    printer: &'p mut Printer<'n>,
}

impl crate::matform::Namer for PartNamer<'_, '_> {
    fn exact(&self) -> bool {
        self.printer.names.exact
    }

    fn atom_name(&mut self, a: &crate::ir::Atom) -> Option<String> {
        let mut r = egg::RecExpr::default();
        crate::lang::add_atom(a, &mut r);
        let shown = self.printer.show(&r);
        Some(shown.split('_').next().unwrap_or(&shown).to_string())
    }
}

/// Whether the program text has a number literal that is not a short
/// fraction (`0.7978845608`, `1e-3`): then results print as decimals, as
/// the user wrote them; otherwise as exact fractions (`0.5` reads `1/2`).
pub(crate) fn typed_floats(source: &str) -> bool {
    let bytes = source.as_bytes();
    let mut n = 0;
    while n < bytes.len() {
        let c = bytes[n];
        let starts_number = (c.is_ascii_digit() || c == b'.')
            && (n == 0 || !(bytes[n - 1].is_ascii_alphanumeric() || bytes[n - 1] == b'_'));
        if !starts_number {
            n += 1;
            continue;
        }
        let start = n;
        while n < bytes.len()
            && (bytes[n].is_ascii_digit()
                || bytes[n] == b'.'
                || ((bytes[n] == b'e' || bytes[n] == b'E')
                    && bytes
                        .get(n + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == b'-' || *d == b'+'))
                || ((bytes[n] == b'-' || bytes[n] == b'+') && matches!(bytes[n - 1], b'e' | b'E')))
        {
            n += 1;
        }
        if let Ok(v) = source[start..n].parse::<f64>() {
            if !matches!(crate::compact::as_fraction(v), Some((_, q)) if q <= 1000) {
                return true;
            }
        }
    }
    false
}

/// Whether a display term has a negative leading coefficient.
fn starts_negative(r: &egg::RecExpr<Math>, id: egg::Id) -> bool {
    match &r[id] {
        Math::Num(n) => n.0 .0 < 0.0,
        Math::Mul(kids) => kids
            .iter()
            .any(|k| matches!(&r[*k], Math::Num(n) if n.0 .0 < 0.0)),
        _ => false,
    }
}

/// A matrix form printed as text, in LaTeX: `ᵀ` is `^\top`, `∘` is
/// `\circ`, function names upright.
pub(crate) fn chain_latex(text: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&match word.as_str() {
                "diag" | "sigmoid" | "softplus" | "sqrt" => format!("\\operatorname{{{word}}}"),
                "exp" | "log" | "tanh" | "sin" | "cos" => format!("\\{word}"),
                _ => word.clone(),
            });
            word.clear();
        }
    };
    for c in text.chars() {
        if c.is_ascii_alphabetic() {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out);
        match c {
            'ᵀ' => out.push_str("^{\\top}"),
            '∘' => out.push_str(" \\circ "),
            '·' => out.push_str(" \\cdot "),
            '−' => out.push('-'),
            c if c.is_ascii() => out.push(c),
            _ => out.push('?'),
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A variable name in math mode (`W`, `w_{1}` for `w_1`).
fn latex_name(name: &str) -> String {
    match name.split_once('_') {
        Some((a, b)) => format!("{a}_{{{b}}}"),
        None => name.to_string(),
    }
}

/// Text for `\texttt{…}`: the characters TeX treats specially escaped.
fn latex_text(s: &str) -> String {
    s.replace('_', "\\_")
}

pub(super) fn subscript(free: &[String]) -> String {
    if free.is_empty() {
        String::new()
    } else {
        format!("_{}", free.join(""))
    }
}

pub(super) fn superscript(k: usize) -> String {
    const D: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];
    k.to_string()
        .chars()
        .map(|c| D[c.to_digit(10).unwrap() as usize])
        .collect()
}

//! Printing: index notation (text or LaTeX) with named common parts, the
//! matrix form where one exists, and the expression tree as JSON.

use std::collections::{BTreeMap, BTreeSet};

use egg::{Id, RecExpr, Symbol};
use serde_json::{json, Value};

use crate::ir::{Atom, Poly, Term};
use crate::lang::{symbol_index, to_rec, Math};

/// Output syntax.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// Unicode text.
    Text,
    /// LaTeX math.
    Latex,
}

/// Names for indices and common parts, shared by every printed line.
#[derive(Clone)]
pub struct Names {
    index: BTreeMap<Symbol, String>,
    /// Named parts in order: (name, rendered definition, canonical key).
    pub parts: Vec<(String, String, String)>,
    /// Names of bound indices by height, clear of variables and free names.
    bound: Vec<String>,
    /// Whether numbers print as exact fractions (`3/8`); false when the
    /// user typed a float that is not a short fraction (`0.7978845608`),
    /// and then every number prints as a decimal.
    pub exact: bool,
    /// Names no index may take (variables, lengths, parts).
    taken: BTreeSet<String>,
    /// Whether softmaxes and sums of a variable print as named parts
    /// (`p_i`, `s`) or as themselves (`softmax(z)_i`, `sum(q)`): off for the
    /// steps of `--explain` before the one that names them.
    pub naming: bool,
}

/// Free index names in order. `o` (reads as 0) is left out; `p`, `q`, `s`
/// and `z` usually name parts or variables. Past the end every index is
/// numbered instead (`i1 … i13`), so one result never mixes the styles.
const FREE_NAMES: &[&str] = &[
    "i", "j", "k", "l", "m", "n", "r", "t", "u", "v", "w", "x", "y",
];
const BOUND_NAMES: &[&str] = &["a", "b", "c", "d", "e", "f", "g", "h"];

impl Names {
    /// Names the free indices `ids` (in order) avoiding `taken` names.
    pub fn new(ids: &[u32], taken: &BTreeSet<String>) -> Names {
        let mut index = BTreeMap::new();
        let pool: Vec<String> = FREE_NAMES
            .iter()
            .map(|s| s.to_string())
            .filter(|s| !taken.contains(s))
            .collect();
        for (n, &ix) in ids.iter().enumerate() {
            let name = if ids.len() <= pool.len() {
                pool[n].clone()
            } else {
                format!("i{}", n + 1)
            };
            index.insert(crate::lang::index_symbol(ix), name);
        }
        let used: BTreeSet<&String> = index.values().collect();
        let bound = BOUND_NAMES
            .iter()
            .map(|s| s.to_string())
            .chain(["n", "p", "q", "s", "v", "z"].iter().map(|s| s.to_string()))
            .filter(|s| !taken.contains(s) && !used.contains(s))
            .collect();
        Names {
            index,
            parts: Vec::new(),
            bound,
            exact: true,
            taken: taken.clone(),
            naming: true,
        }
    }

    /// Names one more free index (an index a report introduces, such as a
    /// data row), preferring the names in `prefer`, and keeps that name off
    /// bound indices; returns the name.
    pub fn add_free(&mut self, ix: u32, prefer: &[&str]) -> String {
        let used: BTreeSet<String> = self.index.values().cloned().collect();
        let free = |s: &&&str| !self.taken.contains(**s) && !used.contains(**s);
        let name = prefer
            .iter()
            .chain(FREE_NAMES)
            .find(free)
            .map_or_else(|| format!("i{}", self.index.len() + 1), |s| s.to_string());
        self.bound.retain(|b| *b != name);
        self.index
            .insert(crate::lang::index_symbol(ix), name.clone());
        name
    }

    /// The printed name of a free index.
    pub fn name_of(&self, ix: u32) -> String {
        self.index_name(crate::lang::index_symbol(ix), &BTreeMap::new())
    }

    fn index_name(&self, s: Symbol, overrides: &BTreeMap<Symbol, String>) -> String {
        if let Some(n) = overrides.get(&s) {
            return n.clone();
        }
        if let Some(n) = self.index.get(&s) {
            return n.clone();
        }
        match s
            .as_str()
            .strip_prefix("$b")
            .and_then(|h| h.parse::<usize>().ok())
        {
            Some(h) => self
                .bound
                .get(h)
                .cloned()
                .unwrap_or_else(|| format!("a{h}")),
            None => s.as_str().trim_start_matches(['$', '%']).to_string(),
        }
    }
}

/// Renders expressions against a [`Names`] table.
pub struct Printer<'a> {
    /// The names.
    pub names: &'a mut Names,
    /// Text or LaTeX.
    pub syntax: Syntax,
    /// Index symbols printed differently (empty: drop the subscript).
    pub overrides: BTreeMap<Symbol, String>,
}

// Binding strength of printed forms.
const SUM: u8 = 1;
const PRODUCT: u8 = 2;
const ATOM: u8 = 4;

impl Printer<'_> {
    fn latex(&self) -> bool {
        self.syntax == Syntax::Latex
    }

    /// A number: an integer, an exact fraction (`3/8`, `\frac{3}{8}`), or
    /// a decimal when it is neither (a float the user typed stays one).
    fn num(&self, v: f64) -> String {
        if v.fract() == 0.0 && v.abs() < 1e15 {
            return format!("{}", v as i64);
        }
        match crate::compact::as_fraction(v).filter(|_| self.names.exact) {
            Some((p, q)) if self.latex() => {
                let sign = if p < 0 { "-" } else { "" };
                format!("{sign}\\frac{{{}}}{{{q}}}", p.abs())
            }
            Some((p, q)) => format!("{p}/{q}"),
            None => format!("{v}"),
        }
    }

    /// Binding strength of a printed number: a text fraction binds like a
    /// product (`x^(3/8)`).
    fn num_strength(&self, v: f64) -> u8 {
        if !self.latex()
            && self.names.exact
            && v.fract() != 0.0
            && crate::compact::as_fraction(v).is_some()
        {
            PRODUCT
        } else {
            ATOM
        }
    }

    /// `base^e` for `e > 0`: `sqrt(b)` for one half.
    fn power(&mut self, r: &RecExpr<Math>, b: Id, e: f64) -> (String, u8) {
        let l = self.latex();
        if e == 1.0 {
            return self.node(r, b);
        }
        if e == 0.5 {
            let b = self.node(r, b).0;
            return if l {
                (format!("\\sqrt{{{b}}}"), ATOM)
            } else {
                (format!("sqrt({b})"), ATOM)
            };
        }
        let base = self.node(r, b);
        let base = self.paren(base, ATOM);
        let ex = (self.num(e), self.num_strength(e));
        if l {
            (format!("{base}^{{{}}}", ex.0), ATOM)
        } else {
            (format!("{base}^{}", self.paren(ex, ATOM)), ATOM)
        }
    }

    /// `num/den` in the printer's syntax.
    fn fraction(&self, num: (String, u8), den: (String, u8)) -> (String, u8) {
        if self.latex() {
            (format!("\\frac{{{}}}{{{}}}", num.0, den.0), ATOM)
        } else {
            let n = self.paren(num, PRODUCT);
            let d = self.paren(den, ATOM);
            (format!("{n}/{d}"), PRODUCT)
        }
    }

    fn minus(&self) -> &'static str {
        if self.latex() {
            "-"
        } else {
            "−"
        }
    }

    fn sub(&self, base: &str, idx: &[String]) -> String {
        let idx: Vec<&String> = idx.iter().filter(|s| !s.is_empty()).collect();
        if idx.is_empty() {
            return base.to_string();
        }
        let joined = if idx.iter().all(|s| s.chars().count() == 1) {
            idx.iter().map(|s| s.as_str()).collect::<String>()
        } else {
            idx.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
        };
        if self.latex() {
            format!("{base}_{{{joined}}}")
        } else {
            format!("{base}_{joined}")
        }
    }

    fn idx(&self, r: &RecExpr<Math>, id: Id) -> String {
        match &r[id] {
            Math::Symbol(s) => self.names.index_name(*s, &self.overrides),
            _ => "?".into(),
        }
    }

    fn dim(&self, r: &RecExpr<Math>, id: Id) -> String {
        match &r[id] {
            Math::Num(n) => self.num(n.0 .0),
            Math::Symbol(s) => s.as_str().trim_start_matches('%').to_string(),
            _ => "?".into(),
        }
    }

    /// Renders the whole expression.
    pub fn show(&mut self, r: &RecExpr<Math>) -> String {
        let root = Id::from(r.len() - 1);
        self.node(r, root).0
    }

    fn paren(&self, (s, p): (String, u8), need: u8) -> String {
        if p >= need {
            s
        } else if self.latex() {
            format!("\\left({s}\\right)")
        } else {
            format!("({s})")
        }
    }

    /// Names a softmax or simple sum; returns the name.
    fn part(&mut self, kind: &str, def: String, key: String) -> String {
        if !self.names.naming && kind != "rows" {
            return def;
        }
        if let Some((n, _, _)) = self.names.parts.iter().find(|(_, _, k)| *k == key) {
            return n.clone();
        }
        let base = match kind {
            "softmax" => "p",
            "rows" => "A",
            _ => "s",
        };
        let count = self
            .names
            .parts
            .iter()
            .filter(|(n, _, _)| n.starts_with(base))
            .count();
        let name = if count == 0 {
            base.to_string()
        } else {
            format!("{base}{}", count + 1)
        };
        self.names.parts.push((name.clone(), def, key));
        name
    }

    /// The body of a binder over `k`, printed as a whole vector (the bound
    /// index dropped), when that reads naturally.
    fn vector_body(&mut self, r: &RecExpr<Math>, k: Id, body: Id) -> String {
        let Math::Symbol(ks) = &r[k] else {
            return "?".into();
        };
        let saved = self.overrides.insert(*ks, String::new());
        let sub = extract(r, body);
        let s = self.show(&sub);
        match saved {
            Some(v) => self.overrides.insert(*ks, v),
            None => self.overrides.remove(ks),
        };
        s
    }

    /// `name_sub(arg)` in the printer's syntax.
    fn call(&self, name: &str, sub: Option<&str>, arg: &str) -> String {
        let f = self.func(name);
        match (sub, self.latex()) {
            (None, false) => format!("{f}({arg})"),
            (Some(k), false) => format!("{f}_{k}({arg})"),
            (None, true) => format!("{f}\\left({arg}\\right)"),
            (Some(k), true) => format!("{f}_{{{k}}}\\left({arg}\\right)"),
        }
    }

    fn func(&self, name: &str) -> String {
        if self.latex() {
            match name {
                "exp" | "log" | "sin" | "cos" | "tanh" => format!("\\{name}"),
                _ => format!("\\operatorname{{{name}}}"),
            }
        } else {
            name.to_string()
        }
    }

    fn node(&mut self, r: &RecExpr<Math>, id: Id) -> (String, u8) {
        let l = self.latex();
        match &r[id] {
            Math::Num(n) => {
                let v = n.0 .0;
                if v < 0.0 {
                    (format!("{}{}", self.minus(), self.num(-v)), PRODUCT)
                } else {
                    (self.num(v), self.num_strength(v))
                }
            }
            Math::Symbol(s) => (self.names.index_name(*s, &self.overrides), ATOM),
            Math::Add(kids) => {
                let mut out = String::new();
                for (n, k) in kids.iter().enumerate() {
                    let (s, p) = self.node(r, *k);
                    let neg = s.starts_with('−') || (l && s.starts_with('-'));
                    if n == 0 {
                        out.push_str(&s);
                    } else if neg {
                        let rest = s.trim_start_matches(['−', '-']);
                        out.push_str(&format!(" {} {rest}", self.minus()));
                    } else {
                        let _ = p;
                        out.push_str(&format!(" + {s}"));
                    }
                }
                (out, SUM)
            }
            Math::Mul(kids) => {
                let mut coef = 1.0;
                let mut parts: Vec<(String, u8, bool)> = Vec::new();
                let mut deltas: Vec<(String, Vec<String>)> = Vec::new();
                // Factors with a negative power make a denominator.
                let mut den: Vec<(String, u8)> = Vec::new();
                for k in kids.iter() {
                    if let Math::Pow([b, e]) = &r[*k] {
                        if let Math::Num(x) = &r[*e] {
                            if x.0 .0 < 0.0 {
                                den.push(self.power(r, *b, -x.0 .0));
                                continue;
                            }
                        }
                    }
                    match &r[*k] {
                        Math::Num(n) => coef *= n.0 .0,
                        Math::Delta([a, b]) => {
                            let (a, b) = (self.idx(r, *a), self.idx(r, *b));
                            match deltas.iter_mut().find(|(x, _)| *x == a) {
                                Some(d) => d.1.push(b),
                                None => deltas.push((a, vec![b])),
                            }
                        }
                        _ => {
                            let free = !crate::lang::free_symbols(r, *k).is_empty();
                            let (s, p) = self.node(r, *k);
                            parts.push((s, p, free));
                        }
                    }
                }
                for (a, bs) in deltas {
                    let mut idx = vec![a];
                    idx.extend(bs);
                    let d = if l { "\\delta" } else { "δ" };
                    parts.push((self.sub(d, &idx), ATOM, true));
                }
                // Scalars first, then indexed factors; `·` joins a scalar
                // to what follows, a space joins indexed factors.
                parts.sort_by_key(|(_, _, free)| *free);
                let mut out = String::new();
                let neg = coef < 0.0;
                let mut c = coef.abs();
                if !den.is_empty() && self.names.exact {
                    // An exact fractional coefficient joins the fraction.
                    if let Some((p, q)) = crate::compact::as_fraction(c) {
                        if q != 1 {
                            den.insert(0, (q.to_string(), ATOM));
                            c = p as f64;
                        }
                    }
                }
                if c != 1.0 || (parts.is_empty() && den.is_empty()) {
                    out.push_str(&self.num(c));
                }
                for (n, (s, p, free)) in parts.iter().enumerate() {
                    let s = if *p < PRODUCT || (*p == PRODUCT && s.starts_with('−')) {
                        self.paren((s.clone(), *p), ATOM)
                    } else {
                        s.clone()
                    };
                    if out.is_empty() {
                        out.push_str(&s);
                        continue;
                    }
                    let prev_free = n > 0 && parts[n - 1].2;
                    let sep = if *free && prev_free && *p >= PRODUCT {
                        if l {
                            "\\,"
                        } else {
                            " "
                        }
                    } else if n == 0 && *p >= PRODUCT && *free {
                        " "
                    } else if l {
                        " \\cdot "
                    } else {
                        "·"
                    };
                    out.push_str(sep);
                    out.push_str(&s);
                }
                let mut strength = PRODUCT;
                if !den.is_empty() {
                    let num = if out.is_empty() {
                        ("1".to_string(), ATOM)
                    } else if parts.len() == 1 && c == 1.0 {
                        // One factor over the line: the fraction brackets it
                        // where it needs to (text), or not at all (LaTeX).
                        (parts[0].0.clone(), parts[0].1)
                    } else if parts.len() + usize::from(c != 1.0) > 1 {
                        (out, PRODUCT)
                    } else {
                        let only = parts.first().map_or(ATOM, |p| p.1.max(PRODUCT));
                        (out, only)
                    };
                    let d = if den.len() == 1 {
                        den.pop().unwrap()
                    } else {
                        let sep = if l { " \\cdot " } else { "·" };
                        let joined: Vec<String> = den
                            .into_iter()
                            .map(|d| self.paren(d, PRODUCT + 1))
                            .collect();
                        (joined.join(sep), PRODUCT)
                    };
                    let (f, st) = self.fraction(num, d);
                    out = f;
                    strength = st;
                }
                if neg {
                    out = format!("{}{out}", self.minus());
                    strength = PRODUCT;
                }
                (out, strength)
            }
            Math::Pow([b, e]) => {
                let ev = match &r[*e] {
                    Math::Num(n) => Some(n.0 .0),
                    _ => None,
                };
                match ev {
                    Some(v) if v < 0.0 => {
                        let d = self.power(r, *b, -v);
                        self.fraction(("1".into(), ATOM), d)
                    }
                    Some(v) => self.power(r, *b, v),
                    None => {
                        let base = self.node(r, *b);
                        let base = self.paren(base, ATOM);
                        let ex = self.node(r, *e);
                        if l {
                            (format!("{base}^{{{}}}", ex.0), ATOM)
                        } else {
                            (format!("{base}^{}", self.paren(ex, ATOM)), ATOM)
                        }
                    }
                }
            }
            Math::Exp([u])
            | Math::Log([u])
            | Math::Sin([u])
            | Math::Cos([u])
            | Math::Tanh([u])
            | Math::Sigmoid([u])
            | Math::Softplus([u]) => {
                let name = r[id].to_string();
                let arg = self.node(r, *u).0;
                let f = self.func(&name);
                if l {
                    (format!("{f}\\left({arg}\\right)"), ATOM)
                } else {
                    (format!("{f}({arg})"), ATOM)
                }
            }
            Math::Var(kids) => {
                let name = match &r[kids[0]] {
                    Math::Symbol(s) => s.as_str().to_string(),
                    _ => "?".into(),
                };
                let idx: Vec<String> = kids[1..].iter().map(|k| self.idx(r, *k)).collect();
                (self.sub(&name, &idx), ATOM)
            }
            Math::Delta([a, b]) => {
                let idx = vec![self.idx(r, *a), self.idx(r, *b)];
                (self.sub(if l { "\\delta" } else { "δ" }, &idx), ATOM)
            }
            Math::Dim([d]) => (self.dim(r, *d), ATOM),
            Math::Sum([k, d, b]) => {
                // Σ_k x_k of a plain variable is a named part (s = sum(q)).
                if let Math::Var(vk) = &r[*b] {
                    if vk.len() == 2 && r[vk[1]] == r[*k] {
                        let body = self.vector_body(r, *k, *b);
                        let def = self.call("sum", None, &body);
                        let key = format!("sum {} {}", self.dim(r, *d), extract(r, *b));
                        return (self.part("sum", def, key), ATOM);
                    }
                }
                let kname = self.idx(r, *k);
                let body = self.node(r, *b);
                let body = self.paren(body, PRODUCT);
                if l {
                    (format!("\\sum_{{{kname}}} {body}"), SUM)
                } else {
                    (format!("Σ_{kname} {body}"), SUM)
                }
            }
            Math::Lse([k, _, b]) => {
                let body = self.vector_body(r, *k, *b);
                let f = self.func("logsumexp");
                if l {
                    (format!("{f}\\left({body}\\right)"), ATOM)
                } else {
                    (format!("{f}({body})"), ATOM)
                }
            }
            Math::Softmax([k, d, b, at]) => {
                // Indices of the body other than the bound one (matrix rows).
                let mut idx: Vec<String> = crate::lang::free_symbols(r, *b)
                    .into_iter()
                    .filter(|s| Some(*s) != symbol_at(r, *k))
                    .map(|s| self.names.index_name(s, &self.overrides))
                    .collect();
                let key = format!("softmax {} {}", self.dim(r, *d), extract(r, *b));
                let name = if idx.is_empty() {
                    let body = self.vector_body(r, *k, *b);
                    let def = self.call("softmax", None, &body);
                    self.part("softmax", def, key)
                } else if !self.names.naming {
                    // Unnamed row-wise: `softmax_j(…)` with the body
                    // written at the entry `j` itself.
                    if let (Some(ks), Some(ats)) = (symbol_at(r, *k), symbol_at(r, *at)) {
                        let body = crate::rules::substitute(&extract(r, *b), ks, ats);
                        let inner = self.show(&body);
                        let at_name = self.idx(r, *at);
                        return (self.call("softmax", Some(&at_name), &inner), ATOM);
                    }
                    "A".to_string()
                } else {
                    // Row-wise: `A_rj = softmax_j(…)`, the rows and the
                    // softmax index named in the definition.
                    let body = extract(r, *b);
                    let kname = self.idx(r, *k);
                    let inner = self.show(&body);
                    let mut lhs_idx = idx.clone();
                    lhs_idx.push(kname.clone());
                    let lhs = self.sub("A", &lhs_idx);
                    let rhs = self.call("softmax", Some(&kname), &inner);
                    self.part("rows", format!("{lhs} = {rhs}"), key)
                };
                idx.push(self.idx(r, *at));
                (self.sub(&name, &idx), ATOM)
            }
            Math::Sym([n, t]) => {
                let count = match &r[*n] {
                    Math::Num(x) => self.num(x.0 .0),
                    _ => "?".into(),
                };
                let body = self.node(r, *t);
                let body = self.paren(body, PRODUCT);
                if l {
                    (format!("{body}\\,[{count}]"), ATOM)
                } else {
                    (format!("{body}[{count}]"), ATOM)
                }
            }
        }
    }
}

fn symbol_at(r: &RecExpr<Math>, id: Id) -> Option<Symbol> {
    match &r[id] {
        Math::Symbol(s) => Some(*s),
        _ => None,
    }
}

/// Moves the first term that satisfies `positive` to the front, so a sum
/// reads `s·p − q` rather than `−q + s·p`; the rest keep their order.
pub fn lead_with<T>(terms: &mut Vec<T>, positive: impl Fn(&T) -> bool) {
    if let Some(pos) = terms.iter().position(positive) {
        let first = terms.remove(pos);
        terms.insert(0, first);
    }
}

/// The subexpression rooted at `id`, as its own expression.
pub fn extract(r: &RecExpr<Math>, id: Id) -> RecExpr<Math> {
    let mut out = RecExpr::default();
    fn go(r: &RecExpr<Math>, id: Id, out: &mut RecExpr<Math>) -> Id {
        let node = r[id].clone().map_children(|c| go(r, c, out));
        out.add(node)
    }
    go(r, id, &mut out);
    out
}

use egg::Language as _;

/// The expression tree as JSON.
pub fn json_tree(r: &RecExpr<Math>, names: &Names) -> Value {
    fn go(r: &RecExpr<Math>, id: Id, names: &Names) -> Value {
        match &r[id] {
            Math::Num(n) => match crate::compact::as_fraction(n.0 .0) {
                // The exact value beside the float, when it is a fraction.
                Some((p, q)) if q != 1 && names.exact => {
                    json!({ "num": n.0 .0, "exact": format!("{p}/{q}") })
                }
                _ => json!({ "num": n.0 .0 }),
            },
            Math::Symbol(s) => {
                if symbol_index(*s).is_some() {
                    json!({ "index": names.index_name(*s, &BTreeMap::new()) })
                } else if let Some(d) = s.as_str().strip_prefix('%') {
                    json!({ "dim": d })
                } else {
                    json!({ "name": s.as_str() })
                }
            }
            node => {
                let args: Vec<Value> = node.children().iter().map(|c| go(r, *c, names)).collect();
                json!({ "op": node.to_string(), "args": args })
            }
        }
    }
    go(r, Id::from(r.len() - 1), names)
}

/// A compact form of a polynomial for debugging and test messages.
pub fn debug_poly(p: &Poly) -> String {
    let r = to_rec(p);
    let ids: Vec<u32> = p.free().into_iter().collect();
    let mut names = Names::new(&ids, &BTreeSet::new());
    let mut pr = Printer {
        names: &mut names,
        syntax: Syntax::Text,
        overrides: BTreeMap::new(),
    };
    pr.show(&r)
}

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

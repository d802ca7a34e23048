//! [`Printer`]: an e-graph term as text, LaTeX or a tree, with the fewest
//! parentheses the syntax needs.

use super::*;

impl Printer<'_> {
    pub(super) fn latex(&self) -> bool {
        self.syntax == Syntax::Latex
    }

    /// A number: an integer, an exact fraction (`3/8`, `\frac{3}{8}`), or
    /// a decimal when it is neither (a float the user typed stays one).
    pub(super) fn num(&self, v: f64) -> String {
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

    pub(super) fn minus(&self) -> &'static str {
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

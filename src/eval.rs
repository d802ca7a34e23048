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

/// Largest tensor `eval` will print.
pub const MAX_ENTRIES: usize = 10_000_000;

/// A literal value from `--at`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `1.5`
    Scalar(f64),
    /// `[1, 2]`
    Vec(Vec<f64>),
    /// `[[1, 2], [3, 4]]`, row-major with its column count.
    Mat(usize, Vec<f64>),
}

/// One binding from `--at`, with spans for messages.
#[derive(Clone, Debug)]
pub struct Binding {
    /// The name.
    pub name: String,
    /// Where the name is.
    pub name_span: Range<usize>,
    /// The value.
    pub value: Value,
    /// Where the value is.
    pub value_span: Range<usize>,
}

/// Parses `name=value; name=value`.
pub fn parse_point(src: &str) -> Result<Vec<Binding>> {
    let mut p = PointParser {
        s: src.as_bytes(),
        pos: 0,
    };
    let mut out: Vec<Binding> = Vec::new();
    loop {
        p.skip_ws();
        if p.pos >= p.s.len() {
            break;
        }
        let start = p.pos;
        while p.pos < p.s.len() && (p.s[p.pos].is_ascii_alphanumeric() || p.s[p.pos] == b'_') {
            p.pos += 1;
        }
        if p.pos == start || p.s[start].is_ascii_digit() {
            return Err(p.error(start, "expected a variable name"));
        }
        let name = src[start..p.pos].to_string();
        let name_span = start..p.pos;
        if let Some(prev) = out.iter().find(|b| b.name == name) {
            return Err(Error::new(format!("`{name}` is given twice"))
                .with_spot(Source::At, name_span, "second value")
                .with_spot(Source::At, prev.name_span.clone(), "first value"));
        }
        p.skip_ws();
        if !p.eat(b'=') {
            return Err(p.error(p.pos, "expected `=` after the name"));
        }
        p.skip_ws();
        let vstart = p.pos;
        let value = p.value()?;
        out.push(Binding {
            name,
            name_span,
            value,
            value_span: vstart..p.pos,
        });
        p.skip_ws();
        if p.pos < p.s.len() && !p.eat(b';') && !p.eat(b',') {
            return Err(p.error(p.pos, "expected `;` between values"));
        }
    }
    Ok(out)
}

struct PointParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl PointParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn error(&self, at: usize, msg: &str) -> Error {
        Error::new(format!("cannot read --at: {msg}")).with_spot(
            Source::At,
            at..(at + 1).min(self.s.len().max(at)),
            msg,
        )
    }

    fn number(&mut self) -> Result<f64> {
        let start = self.pos;
        while self.pos < self.s.len()
            && !matches!(self.s[self.pos], b',' | b';' | b']' | b'[')
            && !self.s[self.pos].is_ascii_whitespace()
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        // `1/3`: a fraction, as exact as a double can hold it.
        let parsed = match text.split_once('/') {
            Some((a, b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
                (Ok(a), Ok(b)) if b != 0.0 => Ok(a / b),
                (Ok(_), Ok(_)) => {
                    return Err(
                        Error::new(format!("cannot read --at: `{text}` divides by zero"))
                            .with_spot(Source::At, start..self.pos, "a zero denominator"),
                    )
                }
                _ => "not a number".parse::<f64>(),
            },
            None => text.parse::<f64>(),
        };
        match parsed {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(
                Error::new("cannot read --at: values must be finite numbers").with_spot(
                    Source::At,
                    start..self.pos,
                    "not a finite number",
                ),
            ),
            Err(_) if text.is_empty() => Err(self.error(start, "expected a number")),
            Err(_) => Err(
                Error::new(format!("cannot read --at: `{text}` is not a number")).with_spot(
                    Source::At,
                    start..self.pos,
                    "not a number",
                ),
            ),
        }
    }

    /// A number, or a bracketed list of numbers or of lists.
    fn value(&mut self) -> Result<Value> {
        if !self.eat(b'[') {
            return Ok(Value::Scalar(self.number()?));
        }
        self.skip_ws();
        if self.s.get(self.pos) == Some(&b'[') {
            let mut rows: Vec<Vec<f64>> = Vec::new();
            loop {
                self.skip_ws();
                let row_start = self.pos;
                match self.value()? {
                    Value::Vec(r) => {
                        if let Some(first) = rows.first() {
                            if first.len() != r.len() {
                                return Err(Error::new(format!(
                                    "ragged matrix in --at: row {} has {} entries, row 1 has {}",
                                    rows.len() + 1,
                                    r.len(),
                                    first.len()
                                ))
                                .with_spot(
                                    Source::At,
                                    row_start..self.pos,
                                    format!("{} entries", r.len()),
                                ));
                            }
                        }
                        rows.push(r);
                    }
                    _ => return Err(self.error(row_start, "expected a row `[...]`")),
                }
                self.skip_ws();
                if self.eat(b']') {
                    break;
                }
                // Rows may be separated by `,` or, as NumPy prints them,
                // by spaces alone.
                if !self.eat(b',') && self.s.get(self.pos) != Some(&b'[') {
                    return Err(self.error(self.pos, "expected `,` or `]`"));
                }
            }
            let cols = rows[0].len();
            return Ok(Value::Mat(cols, rows.concat()));
        }
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b']') && items.is_empty() {
                return Err(self.error(self.pos.saturating_sub(1), "empty vector"));
            }
            items.push(self.number()?);
            let before = self.pos;
            self.skip_ws();
            if self.eat(b']') {
                break;
            }
            // Items may be separated by `,` or, as NumPy prints them
            // (`[1. 2. 3.]`), by spaces alone.
            if !self.eat(b',') && self.pos == before {
                return Err(self.error(self.pos, "expected `,` or `]`"));
            }
        }
        Ok(Value::Vec(items))
    }
}

/// Input data bound to the variables, with the sizes of the dimensions.
pub struct Point {
    vars: HashMap<String, (Vec<usize>, Vec<f64>)>,
    sizes: HashMap<String, usize>,
}

impl Point {
    /// The numeric length of a dimension.
    pub fn size(&self, d: &Dim) -> usize {
        match d {
            Dim::Fixed(n) => *n,
            Dim::Named(s) => self.sizes[&**s],
        }
    }
}

/// The shapes of the values given, as hints for variables whose shape the
/// expression leaves open (lengths fixed by the data).
pub fn shape_hints(bindings: &[Binding]) -> Vec<(String, Shape)> {
    bindings
        .iter()
        .map(|b| {
            let shape = match &b.value {
                Value::Scalar(_) => Shape::Scalar,
                Value::Vec(v) => Shape::Vec(Dim::Fixed(v.len())),
                Value::Mat(c, v) => Shape::Mat(Dim::Fixed(v.len() / c.max(&1)), Dim::Fixed(*c)),
            };
            (b.name.clone(), shape)
        })
        .collect()
}

/// Checks the bindings against the program's variables and learns the
/// sizes of symbolic dimensions from them.
pub fn bind(typed: &Typed, bindings: &[Binding]) -> Result<Point> {
    let mut sizes: HashMap<String, (usize, Range<usize>, String)> = HashMap::new();
    let mut vars = HashMap::new();
    for b in bindings {
        let Some(shape) = typed.var_shape(&b.name) else {
            let known: Vec<&str> = typed.vars.iter().map(|(n, _)| n.as_str()).collect();
            return Err(
                Error::new(format!("`{}` is not a variable of the expression", b.name))
                    .with_spot(Source::At, b.name_span.clone(), "unknown name")
                    .with_note(format!(
                        "the expression's variables are: {}",
                        known.join(", ")
                    )),
            );
        };
        let (dims, data): (Vec<usize>, Vec<f64>) = match &b.value {
            Value::Scalar(v) => (vec![], vec![*v]),
            Value::Vec(v) => (vec![v.len()], v.clone()),
            Value::Mat(c, v) => (vec![v.len() / c, *c], v.clone()),
        };
        let want = shape.dims();
        if want.len() != dims.len() {
            let got = match dims.len() {
                0 => "a scalar".to_string(),
                1 => format!("a vector of length {}", dims[0]),
                _ => format!("a {}×{} matrix", dims[0], dims[1]),
            };
            return Err(Error::new(format!(
                "`{}` is {shape} in the expression, but --at gives {got}",
                b.name
            ))
            .with_spot(
                Source::At,
                b.value_span.clone(),
                format!("{got}, want {shape}"),
            ));
        }
        for (d, &len) in want.iter().zip(&dims) {
            match d {
                Dim::Fixed(n) if *n != len => {
                    return Err(Error::new(format!(
                        "`{}` is {shape}, but --at gives length {len} where {n} is declared",
                        b.name
                    ))
                    .with_spot(
                        Source::At,
                        b.value_span.clone(),
                        format!("length {len}, want {n}"),
                    ))
                }
                Dim::Named(s) => {
                    if let Some((prev, span, who)) = sizes.get(&**s) {
                        if *prev != len {
                            return Err(Error::new(format!(
                                "dimension `{s}` is {prev} for `{who}` but {len} for `{}`",
                                b.name
                            ))
                            .with_spot(
                                Source::At,
                                b.value_span.clone(),
                                format!("`{s}` = {len} here"),
                            )
                            .with_spot(
                                Source::At,
                                span.clone(),
                                format!("`{s}` = {prev} here"),
                            ));
                        }
                    } else {
                        sizes.insert(s.to_string(), (len, b.value_span.clone(), b.name.clone()));
                    }
                }
                _ => {}
            }
        }
        vars.insert(b.name.clone(), (dims, data));
    }
    for (name, _) in &typed.vars {
        if !vars.contains_key(name) {
            return Err(
                Error::new(format!("--at gives no value for `{name}`")).with_spot(
                    Source::At,
                    0..0,
                    format!("add `{name}=...`"),
                ),
            );
        }
    }
    Ok(Point {
        vars,
        sizes: sizes.into_iter().map(|(k, v)| (k, v.0)).collect(),
    })
}

#[doc(hidden)]
/// The numeric shape of a derivative tensor at a point.
pub fn tensor_shape(t: &Tensor, point: &Point) -> Vec<usize> {
    let mut shape: Vec<usize> = t.value_dims.iter().map(|d| point.size(d)).collect();
    for _ in 0..t.order() {
        shape.extend(t.wrt_dims.iter().map(|d| point.size(d)));
    }
    shape
}

#[doc(hidden)]
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

/// The value of index `ix` in an environment, innermost binding first.
fn lookup_in(env: &[(Ix, usize)], ix: Ix) -> usize {
    env.iter()
        .rev()
        .find(|(i, _)| *i == ix)
        .map(|(_, v)| *v)
        .expect("index bound in the environment")
}

/// A hash map with a multiply-rotate hasher (the one rustc uses, FxHash):
/// the caches here are keyed by small integers, for which SipHash's
/// protection against chosen keys costs a third of `eval`'s time.
type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// FxHash: `h = (h.rotl(5) ^ word) · K` per word.
#[derive(Default)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[doc(hidden)]
/// Evaluates atoms with caching.
pub struct Evaluator<'a> {
    point: &'a Point,
    /// Index values in scope, innermost last.
    env: Vec<(Ix, usize)>,
    cache: FastMap<(usize, Vec<usize>), f64>,
    softmax_cache: FastMap<(usize, Vec<usize>), Vec<f64>>,
    /// The free indices of each atom met, by address (computing them
    /// builds a set, once per atom rather than once per entry).
    free: FastMap<usize, Vec<Ix>>,
}

impl<'a> Evaluator<'a> {
    /// A new evaluator at `point`.
    pub fn new(point: &'a Point) -> Self {
        Evaluator {
            point,
            env: Vec::new(),
            cache: FastMap::default(),
            softmax_cache: FastMap::default(),
            free: FastMap::default(),
        }
    }

    fn lookup(&self, ix: Ix) -> usize {
        lookup_in(&self.env, ix)
    }

    fn entry_plain(&mut self, p: &Poly, t: &Tensor, key: &[usize]) -> f64 {
        self.env.clear();
        for (i, &ix) in t.value_idx.iter().enumerate() {
            self.env.push((ix, key[i]));
        }
        let nv = t.value_idx.len();
        for (g, ids) in t.groups.iter().enumerate() {
            for (r, &ix) in ids.iter().enumerate() {
                self.env.push((ix, key[nv + g * ids.len() + r]));
            }
        }
        self.poly(p)
    }

    /// The sum of the distinct permutations of class `c` at the entry `key`
    /// (value indices, then the sorted derivative indices), by counting the
    /// ways to assign the derivative positions to the class's blocks.
    fn class_entry(&mut self, c: &Class, t: &Tensor, key: &[usize]) -> f64 {
        let nv = t.value_idx.len();
        self.env.clear();
        for (i, &ix) in t.value_idx.iter().enumerate() {
            self.env.push((ix, key[i]));
        }
        let mut global = c.term.coef.0;
        for f in &c.global {
            global *= self.factor(f);
        }
        if global == 0.0 {
            return 0.0;
        }
        // Multiplicities of each distinct derivative index value.
        let mut mult: Vec<(usize, usize)> = Vec::new();
        for &v in &key[nv..] {
            match mult.iter_mut().find(|(u, _)| *u == v) {
                Some(m) => m.1 += 1,
                None => mult.push((v, 1)),
            }
        }
        // Block values: a block with value members sits at their value.
        let mut fixed: Vec<Option<usize>> = Vec::new();
        for b in &c.blocks {
            let vals: Vec<usize> = b
                .value_members
                .iter()
                .map(|m| key[t.value_idx.iter().position(|x| x == m).unwrap()])
                .collect();
            if vals.windows(2).any(|w| w[0] != w[1]) {
                return 0.0;
            }
            fixed.push(vals.first().copied());
        }
        // Atom products of each block at each candidate value (the few
        // distinct derivative index values, or the block's fixed value):
        // sparse, so an entry costs O(k), not O(n).
        let mut tables: Vec<Vec<(usize, f64)>> = Vec::new();
        for b in &c.blocks {
            let mut row = Vec::new();
            let candidates: Vec<usize> = match fixed[tables.len()] {
                Some(v) => vec![v],
                None => mult.iter().map(|(u, _)| *u).collect(),
            };
            for u in candidates {
                self.env.push((b.rep, u));
                let mut prod = 1.0;
                for f in &b.atoms {
                    prod *= self.factor(f);
                }
                self.env.pop();
                row.push((u, prod));
            }
            tables.push(row);
        }
        let sizes: Vec<usize> = c.blocks.iter().map(|b| b.wrt_count).collect();
        let within: f64 = sizes.iter().map(|&s| crate::sym::factorial(s)).product();
        let mut remaining: Vec<(usize, usize)> = mult.clone();
        let total = assign(
            0,
            &c.blocks,
            &fixed,
            &sizes,
            &tables,
            &mut remaining,
            &mut Vec::new(),
        );
        // Σ over all permutations = within · total; distinct ones = / stab.
        global * within * total / c.stab
    }

    /// Value of one factor in the current environment.
    fn factor(&mut self, f: &Factor) -> f64 {
        let v = self.atom(&f.atom);
        if f.exp.0 == 1.0 {
            v
        } else if f.exp.0.fract() == 0.0 && f.exp.0.abs() < 64.0 {
            v.powi(f.exp.0 as i32)
        } else {
            v.powf(f.exp.0)
        }
    }

    /// Value of a polynomial in the current environment.
    pub fn poly(&mut self, p: &Poly) -> f64 {
        p.terms.iter().map(|t| self.term(t)).sum()
    }

    fn term(&mut self, t: &Term) -> f64 {
        let mut v = t.coef.0;
        for f in &t.factors {
            if let Atom::Delta(a, b) = &*f.atom {
                if self.lookup(*a) != self.lookup(*b) {
                    return 0.0;
                }
                continue;
            }
            v *= self.factor(f);
            if v == 0.0 {
                return 0.0;
            }
        }
        v
    }

    fn key(&mut self, a: &Atom) -> (usize, Vec<usize>) {
        let address = a as *const Atom as usize;
        let free = self
            .free
            .entry(address)
            .or_insert_with(|| a.free().into_iter().collect());
        let values = free.iter().map(|&i| lookup_in(&self.env, i)).collect();
        (address, values)
    }

    fn atom(&mut self, a: &Atom) -> f64 {
        match a {
            Atom::Delta(x, y) => f64::from(u8::from(self.lookup(*x) == self.lookup(*y))),
            Atom::Var { name, idx } => {
                let (dims, data) = &self.point.vars[&**name];
                let mut flat = 0;
                for (d, &ix) in dims.iter().zip(idx) {
                    flat = flat * d + self.lookup(ix);
                }
                data[flat]
            }
            Atom::Dim(d) => self.point.sizes[&**d] as f64,
            // A softmax keeps its whole row in a cache of its own.
            Atom::Softmax { .. } => self.compound(a),
            _ => {
                let key = self.key(a);
                if let Some(v) = self.cache.get(&key) {
                    return *v;
                }
                let v = self.compound(a);
                self.cache.insert(key, v);
                v
            }
        }
    }

    fn compound(&mut self, a: &Atom) -> f64 {
        match a {
            Atom::Func(f, u) => f.apply(self.poly(u)),
            Atom::Group(p) => self.poly(p),
            Atom::Pow(b, e) => self.poly(b).powf(self.poly(e)),
            Atom::Sum { ix, dim, body } => {
                let n = self.point.size(dim);
                let mut s = 0.0;
                for k in 0..n {
                    self.env.push((*ix, k));
                    s += self.poly(body);
                    self.env.pop();
                }
                s
            }
            Atom::Lse { ix, dim, body } => {
                let xs = self.row(*ix, dim, body);
                let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            }
            Atom::Softmax { ix, dim, body, at } => {
                // The row depends on the body's free indices but `ix`.
                let address = a as *const Atom as usize;
                let free = self.free.entry(address).or_insert_with(|| {
                    let mut free = body.free();
                    free.remove(ix);
                    free.into_iter().collect()
                });
                let key = (
                    address,
                    free.iter()
                        .map(|&i| lookup_in(&self.env, i))
                        .collect::<Vec<_>>(),
                );
                let at = self.lookup(*at);
                if let Some(p) = self.softmax_cache.get(&key) {
                    return p[at];
                }
                let xs = self.row(*ix, dim, body);
                let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = xs.iter().map(|x| (x - m).exp()).collect();
                let s: f64 = e.iter().sum();
                let p: Vec<f64> = e.iter().map(|x| x / s).collect();
                let v = p[at];
                self.softmax_cache.insert(key, p);
                v
            }
            Atom::Delta(..) | Atom::Var { .. } | Atom::Dim(_) => unreachable!("simple atoms"),
        }
    }

    fn row(&mut self, ix: Ix, dim: &Dim, body: &Poly) -> Vec<f64> {
        let n = self.point.size(dim);
        (0..n)
            .map(|k| {
                self.env.push((ix, k));
                let v = self.poly(body);
                self.env.pop();
                v
            })
            .collect()
    }
}

/// Σ over maps of blocks to index values that use each value exactly as
/// often as it occurs: Π_values mult! / Π block sizes! · Π table entries.
fn assign(
    b: usize,
    blocks: &[crate::sym::Block],
    fixed: &[Option<usize>],
    sizes: &[usize],
    tables: &[Vec<(usize, f64)>],
    remaining: &mut Vec<(usize, usize)>,
    chosen: &mut Vec<(usize, usize)>,
) -> f64 {
    if b == blocks.len() {
        if remaining.iter().any(|(_, m)| *m != 0) {
            return 0.0;
        }
        // Multinomial: positions holding value u split among its blocks.
        let mut w = 1.0;
        let mut per_value: HashMap<usize, (usize, f64)> = HashMap::new();
        for &(u, size) in chosen.iter() {
            let e = per_value.entry(u).or_insert((0, 1.0));
            e.0 += size;
            e.1 *= crate::sym::factorial(size);
        }
        for (_, (total, denom)) in per_value {
            w *= crate::sym::factorial(total) / denom;
        }
        return w;
    }
    let size = sizes[b];
    let candidates: Vec<usize> = match fixed[b] {
        Some(v) => vec![v],
        None => remaining.iter().map(|(u, _)| *u).collect(),
    };
    let mut total = 0.0;
    for u in candidates {
        let slot = remaining.iter().position(|(x, _)| *x == u);
        let ok = match slot {
            Some(i) => remaining[i].1 >= size,
            None => size == 0,
        };
        if !ok {
            continue;
        }
        let val = tables[b]
            .iter()
            .find(|(w, _)| *w == u)
            .map_or(0.0, |(_, v)| *v);
        if val == 0.0 {
            continue;
        }
        if let Some(i) = slot {
            remaining[i].1 -= size;
        }
        chosen.push((u, size));
        total += val * assign(b + 1, blocks, fixed, sizes, tables, remaining, chosen);
        chosen.pop();
        if let Some(i) = slot {
            remaining[i].1 += size;
        }
    }
    total
}

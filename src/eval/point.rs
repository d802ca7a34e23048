//! The point of `--at "z=[1,2,3]; q=[0.2,0.3,0.5]"`: parsed, checked for
//! finite values, and bound to the variables of a typed program.

use super::*;

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
        Error::new(format!("cannot read the point: {msg}")).with_spot(
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
                    return Err(Error::new(format!(
                        "cannot read the point: `{text}` divides by zero"
                    ))
                    .with_spot(
                        Source::At,
                        start..self.pos,
                        "a zero denominator",
                    ))
                }
                _ => "not a number".parse::<f64>(),
            },
            None => text.parse::<f64>(),
        };
        match parsed {
            Ok(v) if v.is_finite() => Ok(v),
            Ok(_) => Err(
                Error::new("cannot read the point: values must be finite numbers").with_spot(
                    Source::At,
                    start..self.pos,
                    "not a finite number",
                ),
            ),
            Err(_) if text.is_empty() => Err(self.error(start, "expected a number")),
            Err(_) => {
                Err(
                    Error::new(format!("cannot read the point: `{text}` is not a number"))
                        .with_spot(Source::At, start..self.pos, "not a number"),
                )
            }
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
                                    "ragged matrix in the point: row {} has {} entries, row 1 has {}",
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
    pub(super) vars: HashMap<String, (Vec<usize>, Vec<f64>)>,
    pub(super) sizes: HashMap<String, usize>,
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

/// The size learned for each symbolic dimension, with the value that
/// fixed it (where, and for which variable).
type Sizes = HashMap<String, (usize, Range<usize>, String)>;

/// Checks the bindings against the program's variables and learns the
/// sizes of symbolic dimensions from them.
pub fn bind(typed: &Typed, bindings: &[Binding]) -> Result<Point> {
    let mut sizes: Sizes = HashMap::new();
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
        check_lengths(b, shape, &dims, &mut sizes)?;
        vars.insert(b.name.clone(), (dims, data));
    }
    for (name, _) in &typed.vars {
        if !vars.contains_key(name) {
            return Err(
                Error::new(format!("the point gives no value for `{name}`")).with_spot(
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

/// Checks the lengths `dims` of binding `b` against its variable's
/// `shape`: the rank, the fixed lengths, and each symbolic length against
/// what an earlier binding fixed (or fixes it).
fn check_lengths(b: &Binding, shape: &Shape, dims: &[usize], sizes: &mut Sizes) -> Result<()> {
    let want = shape.dims();
    if want.len() != dims.len() {
        let got = match dims.len() {
            0 => "a scalar".to_string(),
            1 => format!("a vector of length {}", dims[0]),
            _ => format!("a {}×{} matrix", dims[0], dims[1]),
        };
        return Err(Error::new(format!(
            "`{}` is {shape} in the expression, but the point gives {got}",
            b.name
        ))
        .with_spot(
            Source::At,
            b.value_span.clone(),
            format!("{got}, want {shape}"),
        ));
    }
    for (d, &len) in want.iter().zip(dims) {
        match d {
            Dim::Fixed(n) if *n != len => {
                return Err(Error::new(format!(
                    "`{}` is {shape}, but the point gives length {len} where {n} is declared",
                    b.name
                ))
                .with_spot(
                    Source::At,
                    b.value_span.clone(),
                    format!("length {len}, want {n}"),
                ))
            }
            Dim::Named(s) => match sizes.get(&**s) {
                Some((prev, span, who)) if *prev != len => {
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
                Some(_) => {}
                None => {
                    sizes.insert(s.to_string(), (len, b.value_span.clone(), b.name.clone()));
                }
            },
            _ => {}
        }
    }
    Ok(())
}

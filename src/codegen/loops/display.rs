//! The loop IR as text, for dumps and snapshot tests of each pass:
//!
//! ```text
//! reduce i0 < n { t0 += q[i0]; t1 max= z[i0] }
//! for i1 < n { out[i1] = t0 * exp(z[i1] - t1) }
//! ```
//!
//! `tN` is temporary N (scalar, or an array read `tN[i]`), `iN` loop
//! variable N; inputs print as `in0`, `in1`, … in parameter order.

use std::fmt;

use crate::codegen::loops::schedule::Schedule;
use crate::codegen::loops::*;

impl fmt::Display for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Array::Input(k) => write!(f, "in{k}"),
            Array::Temp(t) => write!(f, "t{t}"),
            Array::Out => f.write_str("out"),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let idx: Vec<String> = self.idx.iter().map(|(v, _)| format!("i{v}")).collect();
        write!(f, "{}[{}]", self.array, idx.join(", "))
    }
}

/// `in1[i3, ·]`: the row a loop walks, `·` for the loop's own index.
impl fmt::Display for Slice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut idx: Vec<String> = self.prefix.iter().map(|(v, _)| format!("i{v}")).collect();
        idx.push("·".into());
        write!(f, "{}[{}]", self.array, idx.join(", "))
    }
}

/// Slices as ` [rows …]`, nothing when there are none.
fn slices(label: &str, xs: &[Slice]) -> String {
    if xs.is_empty() {
        return String::new();
    }
    let xs: Vec<String> = xs.iter().map(|s| s.to_string()).collect();
    format!("; {label} {}", xs.join(" "))
}

/// ` (ranges on threads, i7 = row − lo: rows out t9; sums t7; own t3)`.
impl fmt::Display for RowSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |xs: &mut dyn Iterator<Item = String>| xs.collect::<Vec<_>>().join(" ");
        write!(f, " (ranges on threads, i{} = row − lo", self.local)?;
        for (label, xs) in [
            ("rows", names(&mut self.split.iter().map(|(a, _)| a.to_string()))),
            ("sums", names(&mut self.sums.iter().map(|t| format!("t{t}")))),
            ("own", names(&mut self.private.iter().map(|t| format!("t{t}")))),
        ] {
            if !xs.is_empty() {
                write!(f, "; {label} {xs}")?;
            }
        }
        f.write_str(")")
    }
}

fn list(f: &mut fmt::Formatter<'_>, xs: &[Scalar], sep: &str) -> fmt::Result {
    f.write_str("(")?;
    for (n, x) in xs.iter().enumerate() {
        if n > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{x}")?;
    }
    f.write_str(")")
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Num(v) => write!(f, "{v}"),
            Scalar::Temp(t) => write!(f, "t{t}"),
            Scalar::Load(a) => write!(f, "{a}"),
            Scalar::Dim(d) => write!(f, "{d}"),
            Scalar::Sum(xs) => list(f, xs, " + "),
            Scalar::Product(xs) => list(f, xs, " * "),
            Scalar::Sub(a, b) => write!(f, "({a} - {b})"),
            Scalar::Neg(a) => write!(f, "-{a}"),
            Scalar::Recip(a) => write!(f, "1/{a}"),
            Scalar::Powi(a, e) => write!(f, "{a}^{e}"),
            Scalar::Powf(a, e) => write!(f, "{a}^{e}"),
            Scalar::Sqrt(a) => write!(f, "sqrt({a})"),
            Scalar::Call(fun, a) => write!(f, "{}({a})", fun.name()),
            Scalar::ExpShifted(a) => write!(f, "exp_shifted({a})"),
            Scalar::Ln(a) => write!(f, "ln({a})"),
            Scalar::Delta(a, b) => write!(f, "δ(i{a}, i{b})"),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Temp(t) => write!(f, "t{t}"),
            Place::Elem(a) => write!(f, "{a}"),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            RedOp::Sum => "+=",
            RedOp::Max => "max=",
            RedOp::Shift => "shift=",
        };
        write!(f, "{} {op} {}", self.place, self.body)?;
        if let Some(k) = &self.keep {
            write!(f, " (kept in {k})")?;
        }
        Ok(())
    }
}

impl Stmt {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        let pad = "  ".repeat(depth);
        match self {
            Stmt::Loop {
                var,
                dim,
                body,
                slices: rows,
                split,
            } => {
                let rows = match slices("", rows) {
                    s if s.is_empty() => s,
                    s => format!(" (rows{})", &s[2..]),
                };
                let split = split.as_ref().map(|s| s.to_string()).unwrap_or_default();
                writeln!(f, "{pad}for i{var} < {dim}{rows}{split} {{")?;
                for s in body {
                    s.write(f, depth + 1)?;
                }
                writeln!(f, "{pad}}}")
            }
            Stmt::Symmetric {
                order,
                dim,
                classes,
            } => {
                writeln!(f, "{pad}symmetric out, order {order}, indices < {dim}: per sorted tuple, the sum of {{")?;
                for c in classes {
                    let v: Vec<String> = c.vars.iter().map(|(v, _)| format!("i{v}")).collect();
                    writeln!(
                        f,
                        "{pad}  blocks ({}) of sizes {:?}: {}",
                        v.join(", "),
                        c.sizes,
                        c.value
                    )?;
                }
                writeln!(f, "{pad}}}")
            }
            Stmt::Tile {
                a: (va, da),
                b: (vb, db),
                size,
                body,
                slices: rows,
                mirror,
            } => {
                let mut how = slices("rows", rows);
                if *mirror {
                    how.push_str("; upper tiles, mirrored");
                }
                let how = if how.is_empty() {
                    how
                } else {
                    format!(" ({})", &how[2..])
                };
                writeln!(f, "{pad}tile i{va} < {da}, i{vb} < {db} by {size}{how} {{")?;
                for s in body {
                    s.write(f, depth + 1)?;
                }
                writeln!(f, "{pad}}}")
            }
            Stmt::Pass {
                var,
                dim,
                parts,
                schedule,
                walk,
            } => {
                let how = match schedule {
                    Schedule::Single => "single",
                    Schedule::Lanes => "lanes",
                    Schedule::Blocks { restart: false } => "blocks",
                    Schedule::Blocks { restart: true } => "blocks, shift restart",
                };
                let mut how = how.to_string();
                how.push_str(&slices("rows", &walk.rows));
                how.push_str(&slices("per block", &walk.blocks));
                if !walk.prefetch.is_empty() {
                    let next: Vec<String> = walk
                        .prefetch
                        .iter()
                        .map(|r| format!("{}[i{} + 1, ·]", r.array, r.row))
                        .collect();
                    how.push_str(&format!("; prefetch {}", next.join(" ")));
                }
                let ps: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                writeln!(
                    f,
                    "{pad}pass i{var} < {dim} ({how}) {{ {} }}",
                    ps.join("; ")
                )
            }
            Stmt::Reduce { var, dim, parts } => {
                let ps: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
                writeln!(f, "{pad}reduce i{var} < {dim} {{ {} }}", ps.join("; "))
            }
            Stmt::Store { place, add, value } => {
                writeln!(f, "{pad}{place} {} {value}", if *add { "+=" } else { "=" })
            }
            Stmt::ZeroOut => writeln!(f, "{pad}out = 0"),
            Stmt::Scatter { vars, value, .. } => {
                let v: Vec<String> = vars.iter().map(|(v, _)| format!("i{v}")).collect();
                writeln!(
                    f,
                    "{pad}scatter over the orbit of ({}) += {value}",
                    v.join(", ")
                )
            }
            Stmt::Return(v) => writeln!(f, "{pad}return {v}"),
            Stmt::MatMul {
                sum: (s, n),
                left: (l, ln),
                right: (r, rn),
                out,
                summand,
                symmetric,
            } => writeln!(
                f,
                "{pad}matmul i{l} < {ln}, i{r} < {rn} {{ {out} += Σ_(i{s} < {n}) {summand} }}{}",
                if *symmetric { " (symmetric)" } else { "" }
            ),
        }
    }
}

impl fmt::Display for Stmt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

/// A statement list as text, one statement per line.
pub fn show(stmts: &[Stmt]) -> String {
    stmts.iter().map(|s| s.to_string()).collect()
}

//! Text to [`Program`]: the pest grammar in `grammar/symdiff.pest`, with
//! operator precedence folded by a `PrattParser`.

use std::sync::OnceLock;

use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use crate::ast::{BinOp, DimName, Expr, ExprKind, Program, Span, Statement, Type};
use crate::diag::{Error, Result};

mod derived {
    //! The parser pest derives from `grammar/symdiff.pest`. Its `Rule`
    //! enum has one generated variant per grammar rule, without docs.
    #![allow(missing_docs)]

    #[derive(pest_derive::Parser)]
    #[grammar = "../grammar/symdiff.pest"]
    pub struct Grammar;
}
use derived::{Grammar, Rule};

/// Deepest nesting accepted: brackets, calls, unary minus and the
/// right-associative `^` each add a level. The parser and every later stage
/// recurse over the tree, so deeper input is refused before parsing, in
/// well under a millisecond, with the place that crossed the limit.
pub const MAX_DEPTH: usize = 128;

/// Longest program text accepted, in bytes.
pub const MAX_SOURCE_BYTES: usize = 1 << 20;

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        // Loosest first: `+ -`, then `* / @`, then unary minus, then `^`
        // (right associative), so `-x^2` is `-(x^2)`.
        PrattParser::new()
            .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
            .op(Op::infix(Rule::mul, Assoc::Left)
                | Op::infix(Rule::div, Assoc::Left)
                | Op::infix(Rule::matmul, Assoc::Left))
            .op(Op::prefix(Rule::neg))
            .op(Op::infix(Rule::pow, Assoc::Right))
    })
}

/// The program on one line for headers and messages: comments dropped,
/// runs of white space (newlines too) made one space.
pub fn one_line(src: &str) -> String {
    src.lines()
        .map(|l| l.split_once('#').map_or(l, |(code, _)| code))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a whole program.
pub fn parse_program(src: &str) -> Result<Program> {
    if src.trim().is_empty() {
        return Err(Error::at(
            0..0,
            "empty expression",
            "expected an expression here",
        ));
    }
    check_depth(src)?;
    let mut pairs = Grammar::parse(Rule::program, src).map_err(|e| syntax_error(src, e))?;
    let program = pairs
        .next()
        .expect("the program rule always yields one pair");
    let mut statements = Vec::new();
    let mut body = None;
    for pair in program.into_inner() {
        match pair.as_rule() {
            Rule::def_stmt | Rule::let_stmt | Rule::decl => statements.push(statement(pair)?),
            Rule::expr => body = Some(expr(pair.into_inner())?),
            _ => {}
        }
    }
    let body = body.expect("the grammar requires a final expression");
    Ok(Program { statements, body })
}

/// Refuses input that would nest deeper than [`MAX_DEPTH`], by a scan of
/// the characters that can only overestimate the depth of the tree the
/// parser would build: per bracket level it counts the unary minuses and
/// `^` since the last looser operator (a run of them is one recursion
/// each in the Pratt parser), and each open bracket adds one.
fn check_depth(src: &str) -> Result<()> {
    if src.len() > MAX_SOURCE_BYTES {
        return Err(Error::at(
            MAX_SOURCE_BYTES..src.len(),
            format!("the program is longer than {MAX_SOURCE_BYTES} bytes"),
            "input past the limit starts here",
        ));
    }
    // Depth of the enclosing levels, and the run at the current level.
    let mut outer: Vec<usize> = Vec::new();
    let mut base = 0usize;
    let mut run = 0usize;
    // Whether the last token ends an operand (so a `-` after it is binary).
    let mut after_operand = false;
    let mut chars = src.char_indices();
    while let Some((pos, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '#' {
            // A comment runs to the end of the line.
            for (_, c) in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            continue;
        }
        let mut deeper = false;
        match c {
            '(' | '[' => {
                outer.push(run);
                base += run + 1;
                run = 0;
                after_operand = false;
                deeper = true;
            }
            ')' | ']' => {
                if let Some(r) = outer.pop() {
                    base -= r + 1;
                    run = r;
                }
                after_operand = true;
            }
            '^' => {
                run += 1;
                after_operand = false;
                deeper = true;
            }
            '-' if !after_operand => {
                run += 1;
                deeper = true;
            }
            '+' | '-' | '*' | '/' | '@' | ',' | ';' | '=' | ':' => {
                run = 0;
                after_operand = false;
            }
            _ => after_operand = true,
        }
        if deeper && base + run > MAX_DEPTH {
            return Err(Error::at(
                pos..pos + c.len_utf8(),
                format!("the expression nests more than {MAX_DEPTH} levels deep"),
                "this level is too deep",
            )
            .with_note(
                "brackets, calls, unary minus and each `^` of a chain add a level; name parts with `let` to flatten it",
            ));
        }
    }
    Ok(())
}

fn span_of(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    s.start()..s.end()
}

fn statement(pair: Pair<Rule>) -> Result<Statement> {
    let span = span_of(&pair);
    let rule = pair.as_rule();
    let mut inner = pair.into_inner();
    match rule {
        Rule::decl => {
            let name = inner.next().unwrap().as_str().to_string();
            let ty = type_(inner.next().unwrap())?;
            Ok(Statement::Decl { name, ty, span })
        }
        Rule::let_stmt => {
            let name = inner.next().unwrap().as_str().to_string();
            let value = expr(inner.next().unwrap().into_inner())?;
            Ok(Statement::Let { name, value })
        }
        Rule::def_stmt => {
            let name = inner.next().unwrap().as_str().to_string();
            let mut params = Vec::new();
            let mut body = None;
            for p in inner {
                match p.as_rule() {
                    Rule::name => params.push(p.as_str().to_string()),
                    Rule::expr => body = Some(expr(p.into_inner())?),
                    _ => {}
                }
            }
            Ok(Statement::Def {
                name,
                params,
                body: body.unwrap(),
                span,
            })
        }
        _ => unreachable!("statement rules are def, let and decl"),
    }
}

fn type_(pair: Pair<Rule>) -> Result<Type> {
    let rule = pair.as_rule();
    let dims: Vec<DimName> = pair.into_inner().map(dim).collect::<Result<_>>()?;
    Ok(match rule {
        Rule::scalar_ty => Type::Scalar,
        Rule::vec_ty => Type::Vec(dims[0].clone()),
        _ => Type::Mat(dims[0].clone(), dims[1].clone()),
    })
}

fn dim(pair: Pair<Rule>) -> Result<DimName> {
    let span = span_of(&pair);
    let inner = pair.into_inner().next().unwrap();
    match inner.as_rule() {
        Rule::integer => match inner.as_str().parse::<usize>() {
            Ok(n) if n > 0 => Ok(DimName::Fixed(n)),
            _ => Err(Error::at(
                span,
                "a dimension must be a positive integer",
                "not a valid length",
            )),
        },
        _ => Ok(DimName::Named(inner.as_str().to_string())),
    }
}

fn expr(pairs: Pairs<Rule>) -> Result<Expr> {
    pratt()
        .map_primary(primary)
        .map_prefix(|op, rhs| {
            let rhs = rhs?;
            let span = op.as_span().start()..rhs.span.end;
            Ok(Expr {
                kind: ExprKind::Neg(Box::new(rhs)),
                span,
            })
        })
        .map_infix(|lhs, op, rhs| {
            let (lhs, rhs) = (lhs?, rhs?);
            let op = match op.as_rule() {
                Rule::add => BinOp::Add,
                Rule::sub => BinOp::Sub,
                Rule::mul => BinOp::Mul,
                Rule::div => BinOp::Div,
                Rule::matmul => BinOp::MatMul,
                _ => BinOp::Pow,
            };
            let span = lhs.span.start..rhs.span.end;
            Ok(Expr {
                kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
                span,
            })
        })
        .parse(pairs)
}

fn primary(pair: Pair<Rule>) -> Result<Expr> {
    let span = span_of(&pair);
    match pair.as_rule() {
        Rule::number => {
            let value: f64 = pair
                .as_str()
                .parse()
                .map_err(|_| Error::at(span.clone(), "not a number", "cannot read this number"))?;
            if !value.is_finite() {
                return Err(Error::at(
                    span,
                    "number out of range",
                    "this overflows a double",
                ));
            }
            Ok(Expr {
                kind: ExprKind::Num(value),
                span,
            })
        }
        Rule::name => Ok(Expr {
            kind: ExprKind::Name(pair.as_str().to_string()),
            span,
        }),
        Rule::call => {
            let mut inner = pair.into_inner();
            let name_pair = inner.next().unwrap();
            let name = name_pair.as_str().to_string();
            let name_span = span_of(&name_pair);
            let args = inner.map(|p| expr(p.into_inner())).collect::<Result<_>>()?;
            Ok(Expr {
                kind: ExprKind::Call {
                    name,
                    name_span,
                    args,
                },
                span,
            })
        }
        Rule::expr => expr(pair.into_inner()),
        r => unreachable!("unexpected primary {r:?}"),
    }
}

/// Turns a pest error into what a person types next, at the place where
/// it goes: the rules pest expected, said once each in words, plus the
/// bracket that is open there (`,` or `)` inside a call).
fn syntax_error(src: &str, e: pest::error::Error<Rule>) -> Error {
    let pos = match e.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((a, _)) => a,
    };
    let positives = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => positives.clone(),
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // A declaration whose type is complete but not followed by `;`: pest
    // reports the start of the type; the fix goes after it.
    if positives.iter().all(|r| is_type_rule(*r)) && !positives.is_empty() {
        if let Some(end) = complete_type_end(src, pos) {
            return Error::at(
                end..end,
                "syntax error: a declaration must end with `;`",
                "expected `;` here",
            );
        }
    }
    let mut wanted: Vec<&str> = Vec::new();
    let mut want = |w: &'static str| {
        if !wanted.contains(&w) {
            wanted.push(w);
        }
    };
    for r in &positives {
        want(match r {
            Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::div
            | Rule::matmul
            | Rule::pow
            | Rule::infix => "an operator (`+ - * / @ ^`)",
            Rule::expr
            | Rule::primary
            | Rule::number
            | Rule::name
            | Rule::call
            | Rule::neg
            | Rule::prefix => "an expression",
            Rule::EOI => "the end of the input",
            Rule::type_ | Rule::scalar_ty | Rule::vec_ty | Rule::mat_ty => {
                "a type (`scalar`, `vec[n]` or `mat[m, n]`)"
            }
            Rule::dim => "a dimension (a name or a whole number)",
            Rule::integer => "a whole number",
            Rule::statement | Rule::decl | Rule::let_stmt | Rule::def_stmt => "a statement",
            Rule::program => "a program",
            Rule::WHITESPACE | Rule::COMMENT => "a space",
        });
    }
    match open_bracket(src, pos) {
        Some(Open::Call) => {
            want("`,`");
            want("`)`");
        }
        Some(Open::Paren) => want("`)`"),
        Some(Open::Square) => want("`]`"),
        None => {}
    }
    let what = match wanted.as_slice() {
        [] => "unexpected input".to_string(),
        [one] => format!("expected {one}"),
        [init @ .., last] => format!("expected {} or {last}", init.join(", ")),
    };
    let here = src[pos..].chars().next();
    let message = match here {
        Some(c) if !c.is_whitespace() => format!("syntax error: unexpected `{c}`"),
        Some(_) => "syntax error".to_string(),
        None => "syntax error: the input ends too early".to_string(),
    };
    let err = Error::at(pos..pos, message, what);
    // `3x`: a number right before a name is a product without its `*`.
    let before = src[..pos].chars().last();
    match (before, here) {
        (Some(d), Some(c)) if d.is_ascii_digit() && (c.is_alphabetic() || c == '(') => {
            err.with_note("a product needs its `*`: write `3*x`, not `3x`")
        }
        _ => err,
    }
}

fn is_type_rule(r: Rule) -> bool {
    matches!(
        r,
        Rule::type_ | Rule::scalar_ty | Rule::vec_ty | Rule::mat_ty
    )
}

/// Where a complete type that starts at `pos` (after spaces) ends.
fn complete_type_end(src: &str, pos: usize) -> Option<usize> {
    let rest = &src[pos..];
    let start = pos + (rest.len() - rest.trim_start().len());
    let text = &src[start..];
    if text.starts_with("scalar") {
        return Some(start + "scalar".len());
    }
    if text.starts_with("vec") || text.starts_with("mat") {
        let close = text.find(']')?;
        let open = text.find('[')?;
        (open < close && !text[..close].contains(';')).then_some(start + close + 1)
    } else {
        None
    }
}

enum Open {
    Call,
    Paren,
    Square,
}

/// The innermost bracket open at `pos` (comments skipped).
fn open_bracket(src: &str, pos: usize) -> Option<Open> {
    let mut stack: Vec<Open> = Vec::new();
    let mut prev_name = false;
    let mut chars = src[..pos.min(src.len())].chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                prev_name = false;
                continue;
            }
            '(' => stack.push(if prev_name { Open::Call } else { Open::Paren }),
            '[' => stack.push(Open::Square),
            ')' | ']' => {
                stack.pop();
            }
            _ => {}
        }
        if !c.is_whitespace() {
            prev_name = c.is_ascii_alphanumeric() || c == '_';
        }
    }
    stack.pop()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(src: &str) -> String {
        fn go(e: &Expr) -> String {
            match &e.kind {
                ExprKind::Num(v) => format!("{v}"),
                ExprKind::Name(n) => n.clone(),
                ExprKind::Call { name, args, .. } => {
                    format!(
                        "{name}({})",
                        args.iter().map(go).collect::<Vec<_>>().join(", ")
                    )
                }
                ExprKind::Neg(x) => format!("(-{})", go(x)),
                ExprKind::Binary(op, a, b) => format!("({} {} {})", go(a), op.symbol(), go(b)),
            }
        }
        go(&parse_program(src).unwrap().body)
    }

    #[test]
    fn precedence_follows_the_spec() {
        assert_eq!(show("-x^2"), "(-(x ^ 2))");
        assert_eq!(show("a + b * c"), "(a + (b * c))");
        assert_eq!(show("a - b - c"), "((a - b) - c)");
        assert_eq!(show("a ^ b ^ c"), "(a ^ (b ^ c))");
        assert_eq!(show("X @ W + b"), "((X @ W) + b)");
        assert_eq!(show("2 * -x"), "(2 * (-x))");
        assert_eq!(show("f(a, b) # comment\n / 1e-3"), "(f(a, b) / 0.001)");
    }

    #[test]
    fn syntax_errors_point_at_the_place() {
        let e = parse_program("xent(z, q").unwrap_err();
        assert_eq!(e.spots[0].span.start, 9);
        let e = parse_program("a +").unwrap_err();
        assert_eq!(e.spots[0].span.start, 3);
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for (src, place) in [
            ("(".repeat(20_000), MAX_DEPTH),
            (format!("{}x", "-".repeat(20_000)), MAX_DEPTH),
            (vec!["x"; 20_000].join("^"), 2 * MAX_DEPTH + 1),
            (
                format!("{}x{}", "exp(".repeat(200), ")".repeat(200)),
                4 * MAX_DEPTH + 3,
            ),
        ] {
            let e = parse_program(&src).unwrap_err();
            assert!(e.message.contains("nests more than"), "{}", e.message);
            assert_eq!(e.spots[0].span.start, place);
        }
        // A bracket in a comment is not a level.
        assert!(parse_program(&format!("# {}\nx", "(".repeat(500))).is_ok());
        // Long flat sums and products are not deep.
        assert!(parse_program(&vec!["x"; 20_000].join(" - ")).is_ok());
        assert!(parse_program(&format!("{}x", "-".repeat(MAX_DEPTH))).is_ok());
    }
}

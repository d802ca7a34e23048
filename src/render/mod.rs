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

mod matrix;
mod printer;

pub use matrix::matrix_form;

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

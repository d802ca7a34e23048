//! The functions a kernel emits, order by order (SPEC's kernel table):
//! `f` (order 0); `f_grad` and `f_value_grad` (1); `f_hvp`, `f_hessian`
//! and, for a scalar function of a vector, `f_hessian_diag` and what the
//! Hessian's structure allows (`f_hessian_factor`, `f_newton`,
//! `f_newton_least_norm`) (2); `f_d{k}` and `f_d{k}_dir` (3 and up).
//! Each is one [`Function`] and the lowering of its polynomial.

use proc_macro2::{Ident, TokenStream};
use quote::format_ident;

use super::emit::{Helpers, Names};
use super::loops::{merge_sums, Body, Stmt};
use super::*;
use crate::derive::Derivation;
use crate::diag::{Error, Result};
use crate::ir::Poly;
use crate::sym::Tensor;

/// What the functions of one kernel share while they are emitted.
pub(super) struct Kernel<'a> {
    spec: &'a KernelSpec,
    d: &'a Derivation,
    sig: Signature,
    names: Names,
    helpers: Helpers,
    /// Every function's plan, for the interpreter.
    pub(super) plans: Vec<(String, interp::Plan)>,
    /// The functions emitted so far.
    pub(super) items: TokenStream,
    /// Whether the value is computed at shifted logits (see
    /// [`value_at_shifted_logits`]).
    value_shifted: bool,
    /// Where directional derivatives centre their direction.
    centre: Option<Poly>,
}

impl<'a> Kernel<'a> {
    pub(super) fn new(
        spec: &'a KernelSpec,
        d: &'a Derivation,
        sig: Signature,
        names: Names,
    ) -> Self {
        // The value is computed at shifted logits where it can be (one
        // shift-invariance check, an e-graph run, for `f` and `f_value_grad`).
        let value_shifted = spec.min_order == 0
            && reads_outside_normalizers(&d.orders[0].expanded(), &d.wrt)
            && d.shift_invariant();
        // One shift-invariance check (an e-graph run) serves every `_d{k}_dir`.
        let centre = if spec.order >= 3 { centring(d) } else { None };
        Kernel {
            spec,
            d,
            sig,
            names,
            helpers: Helpers::default(),
            plans: Vec::new(),
            items: TokenStream::new(),
            value_shifted,
            centre,
        }
    }

    /// Emits the functions of every order the spec asks for, and returns
    /// the runtime helpers' source.
    pub(super) fn emit_all(&mut self) -> Result<String> {
        let spec = self.spec;
        for k in spec.min_order..=spec.order {
            match k {
                0 => self.value()?,
                1 => self.gradient()?,
                2 => self.second_order()?,
                _ => self.higher(k)?,
            }
        }
        let helpers = std::mem::take(&mut self.helpers);
        let runtime = runtime::source(&spec.name, spec.float, &helpers.runtime_names());
        self.items
            .extend(emit::helpers(&spec.name, spec.float, helpers));
        Ok(runtime)
    }

    fn name(&self, suffix: &str) -> Ident {
        format_ident!("{}{}", self.spec.name, suffix)
    }

    fn scalar_value(&self) -> bool {
        self.d.tensor.value_idx.is_empty()
    }

    /// `doc`, and the formula of order `k` as `derive` prints it, where
    /// that is short enough to read in a doc comment (orders up to 3).
    fn with_formula(&self, doc: &str, k: usize) -> String {
        match (k <= 3).then(|| self.d.formula(k)).flatten() {
            Some(f) => format!("{doc}\n\n{f}"),
            None => doc.to_string(),
        }
    }

    /// Emits `f`, its body lowered by `build`.
    fn add(&mut self, f: Function, build: impl FnOnce(&mut Body) -> Result<Lowered>) -> Result<()> {
        let items = f.emit(
            &self.sig,
            &self.names,
            &mut self.helpers,
            &mut self.plans,
            build,
        )?;
        self.items.extend(items);
        Ok(())
    }

    /// `f`.
    fn value(&mut self) -> Result<()> {
        let f = Function {
            tensor_out: !self.scalar_value(),
            ..Function::new(self.name(""), self.with_formula("The value.", 0))
        };
        let (d, shifted) = (self.d, self.value_shifted);
        self.add(f, |b| value(b, d, shifted))
    }

    /// `f_grad` (the Jacobian for a tensor value) and, with the value,
    /// `f_value_grad`.
    fn gradient(&mut self) -> Result<()> {
        let t = &self.d.orders[1];
        let doc = if self.scalar_value() {
            "The gradient."
        } else {
            "The Jacobian, value indices first."
        };
        let f = Function {
            tensor_out: true,
            ..Function::new(self.name("_grad"), self.with_formula(doc, 1))
        };
        self.add(f, |b| full(b, t))?;
        if self.scalar_value() && self.spec.min_order == 0 {
            self.value_grad()?;
        }
        Ok(())
    }

    /// JAX's `value_and_grad`: one body, so the value and the gradient
    /// share their passes (max, Σ exp).
    fn value_grad(&mut self) -> Result<()> {
        let name = &self.spec.name;
        let f = Function {
            tensor_out: true,
            value_too: true,
            ..Function::new(
                self.name("_value_grad"),
                format!(
                    "The value, returned, and the gradient, written into `out`, in one pass set (JAX's `value_and_grad`): [`{name}`] and [`{name}_grad`] together."
                ),
            )
        };
        let (d, shifted) = (self.d, self.value_shifted);
        self.add(f, |b| {
            let (Lowered::Poly(value, _), Lowered::Poly(grad, idx)) =
                (value(b, d, shifted)?, full(b, &d.orders[1])?)
            else {
                return Err(Error::new(
                    "internal error: a value or gradient that is not one polynomial",
                ));
            };
            let mut tail = b.output(&merge_sums(&grad), &idx);
            tail.push(Stmt::Return(b.scalar(&merge_sums(&value))));
            Ok(Lowered::Stmts(tail, idx))
        })
    }

    /// `f_hvp`, `f_hessian`, and for a scalar function of a vector or a
    /// matrix what [`Kernel::hessian_structure`] adds.
    fn second_order(&mut self) -> Result<()> {
        let t = &self.d.orders[2];
        let f = Function {
            direction: true,
            tensor_out: true,
            ..Function::new(
                self.name("_hvp"),
                "The Hessian times `v` (contracted in its last index), without forming the Hessian.",
            )
        };
        self.add(f, |_| hvp(t).map(Lowered::from))?;
        let f = Function {
            tensor_out: true,
            ..Function::new(
                self.name("_hessian"),
                self.with_formula("The full Hessian, row-major.", 2),
            )
        };
        self.add(f, |b| full(b, t))?;
        if self.scalar_value() && !t.wrt_dims.is_empty() {
            self.hessian_structure(t)?;
        }
        Ok(())
    }

    /// What gradient boosting takes (XGBoost, LightGBM), the exact
    /// diagonal in O(n), never the n×n matrix; and where the Hessian's
    /// structure gives them, its factor and O(n) Newton steps.
    fn hessian_structure(&mut self, t: &Tensor) -> Result<()> {
        let out = |name: Ident, doc: &str| Function {
            tensor_out: true,
            ..Function::new(name, doc)
        };
        let f = out(
            self.name("_hessian_diag"),
            "The diagonal of the Hessian, `H_ii`.",
        );
        self.add(f, |_| Ok(hessian_diagonal(t).into()))?;
        // S with H = SᵀS, where the structure gives it.
        if let Some(s) = crate::analyze::hessian_factor(t) {
            let doc = if t.wrt_dims.len() == 2 {
                "`S_r` with `H_r = S_rᵀS_r` for each row's block `H_r` of the (block-diagonal) Hessian: m·n·n entries, row by row, each n×n row-major (see `symdiff analyze`, which checks it)."
            } else {
                "`S` with `H = SᵀS`, row-major (see `symdiff analyze`, which checks it)."
            };
            self.add(out(self.name("_hessian_factor"), doc), |_| Ok(s.into()))?;
        }
        // A Newton step in O(n) where the Hessian is diagonal plus low rank.
        let step = newton_step(t).map(|s| (s, "`(H + λI)⁻¹ v` by Sherman–Morrison, O(n) (H is diagonal plus rank one; see `symdiff analyze`). Where H is singular (xent: `γ = 1`), λ must be positive (at λ = 0 the entries are not finite): use `_newton_least_norm` there."))
            .or_else(|| woodbury_step(t).map(|s| (s, "`(H + λI)⁻¹ v` by the Woodbury identity, O(n) (H is diagonal plus rank at most two; see `symdiff analyze`). λ must keep H + λI invertible.")));
        if let Some((step, doc)) = step {
            let f = Function {
                direction: true,
                lambda: true,
                ..out(self.name("_newton"), doc)
            };
            self.add(f, |_| Ok(step.into()))?;
        }
        // λ = 0 on a singular H: the least-norm solution.
        if let Some(x) = newton_least_norm(t) {
            let f = Function {
                direction: true,
                ..out(
                    self.name("_newton_least_norm"),
                    "The least-norm solution of `H x = v` where H is singular (`γ = 1`, see `symdiff analyze`): `x = v/d − (Σ w v/d / Σ w²)·w` with the null vector `w = u/d`, O(n). For `v` orthogonal to the null space (a gradient of a shift-invariant loss) it solves `H x = v` with `x` orthogonal to the null space: `x = H⁺ v`.",
                )
            };
            self.add(f, |_| Ok(x.into()))?;
        }
        Ok(())
    }

    /// `f_d{k}` and `f_d{k}_dir`.
    fn higher(&mut self, k: usize) -> Result<()> {
        let d = self.d;
        let t = &d.orders[k];
        let f = Function {
            tensor_out: true,
            ..Function::new(
                self.name(&format!("_d{k}")),
                self.with_formula(
                    &format!("The full derivative tensor of order {k}, row-major."),
                    k,
                ),
            )
        };
        self.add(f, |b| full(b, t))?;
        let f = Function {
            direction: true,
            tensor_out: !self.scalar_value(),
            ..Function::new(
                self.name(&format!("_d{k}_dir")),
                format!("`D^{k} f[v, …, v]`, without forming the tensor."),
            )
        };
        let centre = self.centre.clone();
        self.add(f, |b| {
            directional(b, d, k, centre.as_ref()).map(Lowered::from)
        })
    }
}

/// The value of order 0, at shifted logits when `shifted`.
fn value(b: &mut Body, d: &Derivation, shifted: bool) -> Result<Lowered> {
    if shifted {
        value_at_shifted_logits(b, d)
    } else {
        full(b, &d.orders[0])
    }
}

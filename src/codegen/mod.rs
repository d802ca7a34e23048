//! Kernel code generation: derivatives to dependency-free Rust functions.
//!
//! Every function is generated from the same simplified tensors that
//! `derive` prints and `eval` evaluates ([`crate::derive::Derivation`]).
//! Contractions with a direction `v` are formed in the index IR *before*
//! any loop exists, so the normal form turns `Σ_j H_ij v_j` into
//! `s·(p_i v_i − p_i Σ_b p_b v_b)` and `D^k f[v, …, v]` into products of
//! moments `Σ_b p_b v_b^r`: O(n) and O(k·n) by construction. `loops`
//! lowers each to loop nests, `emit` prints them with `quote`, and
//! `prettyplease` formats the module.

stages!(emit, loops, runtime, signature);
// The interpreter is a test oracle: only the crate's tests run plans with it.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod interp;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod interp;
mod spec;

pub(crate) use crate::kernel_algebra::*;
pub(crate) use signature::*;
pub use spec::*;

use std::collections::{BTreeSet, HashMap};

use proc_macro2::TokenStream;
use quote::format_ident;

use crate::derive::{derive, Request};
use crate::diag::{Error, Result};
use emit::{Helpers, Names};
use loops::Stmt;

/// The items of one kernel, unformatted, and the source of the runtime
/// helpers it uses (real Rust, compiled and tested in this crate, emitted
/// verbatim after the formatted items).
pub fn kernel_items(spec: &KernelSpec) -> Result<(TokenStream, String)> {
    let (items, _, runtime) = kernel_build(spec)?;
    Ok((items, runtime))
}

#[cfg(feature = "internals")]
#[doc(hidden)]
/// The loop nests of every function of a kernel, by function name (for
/// [`interp`], which runs them without compiling them).
pub fn kernel_plans(spec: &KernelSpec) -> Result<Vec<(String, interp::Plan)>> {
    Ok(kernel_build(spec)?.1)
}

type Built = (TokenStream, Vec<(String, interp::Plan)>, String);

/// The lengths fixed by `--dim` (`Builder::dim`), checked against the
/// expression's symbolic dimensions, which must also not clash with the
/// kernel's own names.
fn fixed_lengths(
    spec: &KernelSpec,
    d: &crate::derive::Derivation,
) -> Result<HashMap<String, usize>> {
    let symbolic = d.typed.symbolic_dims();
    for n in &symbolic {
        // Dimensions become `usize` parameters and locals under their own
        // names, so they must not be names the kernel makes itself.
        if parameter_name(n, &spec.name, &BTreeSet::new()) != n.to_lowercase() {
            return Err(Error::new(format!(
                "dimension `{n}` cannot be a parameter name in the generated code"
            ))
            .with_note(format!(
                "names that end in a digit, start with `{}_`, or are Rust keywords are the kernel's own; rename the dimension",
                spec.name
            )));
        }
    }
    let mut fixed = HashMap::new();
    for (n, v) in &spec.dims {
        if !symbolic.contains(n) {
            return Err(Error::new(format!(
                "dimension `{n}={v}`: `{n}` is not a dimension of the expression"
            ))
            .with_note(format!(
                "its dimensions are: {}",
                if symbolic.is_empty() {
                    "(none)".into()
                } else {
                    symbolic.join(", ")
                }
            )));
        }
        if *v == 0 {
            return Err(Error::new(format!(
                "dimension `{n}={v}`: a length must be at least 1"
            )));
        }
        fixed.insert(n.clone(), *v);
    }
    Ok(fixed)
}

fn kernel_build(spec: &KernelSpec) -> Result<Built> {
    check_ident(&spec.name)?;
    let mut req = Request::new(&spec.expr, spec.order);
    req.wrt = spec.wrt.clone();
    let d = derive(&req)?;
    let fixed = fixed_lengths(spec, &d)?;
    check_output_sizes(spec, &d, &fixed)?;
    let sig = Signature::new(&d, &fixed, &spec.name);
    let names = Names {
        kernel: spec.name.clone(),
        inputs: sig.inputs.clone(),
        scalar: sig.shapes.iter().map(|(_, dims)| dims.is_empty()).collect(),
        fixed,
        float: spec.float,
    };
    let mut items = TokenStream::new();
    let mut helpers = Helpers::default();
    let mut plans = Vec::new();
    let scalar_value = d.tensor.value_idx.is_empty();
    // One shift-invariance check (an e-graph run) serves every `_d{k}_dir`.
    let centre = if spec.order >= 3 { centring(&d) } else { None };
    let name = |suffix: &str| format_ident!("{}{}", spec.name, suffix);
    // A function's doc carries the formula it computes, as `derive` prints
    // it, where that is short enough to read there (orders up to 3).
    let with_formula = |doc: &str, k: usize| -> String {
        match (k <= 3).then(|| d.formula(k)).flatten() {
            Some(f) => format!("{doc}\n\n{f}"),
            None => doc.to_string(),
        }
    };

    // The value is computed at shifted logits where it can be (one
    // shift-invariance check, an e-graph run, for `f` and `f_value_grad`).
    let value_shifted = spec.min_order == 0
        && reads_outside_normalizers(&d.orders[0].expanded(), &d.wrt)
        && d.shift_invariant();

    // Every full tensor that will be emitted is sized before any is: a
    // kernel set that cannot be built is refused at once, not after its
    // lower orders took the time.
    for k in spec.min_order.max(3)..=spec.order {
        check_full_size(&d.orders[k])?;
    }
    for k in spec.min_order..=spec.order {
        let t = &d.orders[k];
        match k {
            0 => {
                let f = Function {
                    name: name(""),
                    doc: with_formula("The value.", 0),
                    direction: false,
                    tensor_out: !scalar_value,
                    value_too: false,
                    lambda: false,
                };
                items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| {
                    if value_shifted {
                        value_at_shifted_logits(b, &d)
                    } else {
                        full(b, t)
                    }
                })?);
            }
            1 => {
                let doc = if scalar_value {
                    "The gradient."
                } else {
                    "The Jacobian, value indices first."
                };
                let f = Function {
                    name: name("_grad"),
                    doc: with_formula(doc, 1),
                    direction: false,
                    tensor_out: true,
                    value_too: false,
                    lambda: false,
                };
                items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                if scalar_value && spec.min_order == 0 {
                    // JAX's `value_and_grad`: one body, so the value and
                    // the gradient share their passes (max, Σ exp).
                    let f = Function {
                        name: name("_value_grad"),
                        doc: format!(
                            "The value, returned, and the gradient, written into `out`, in one pass set (JAX's `value_and_grad`): [`{}`] and [`{}_grad`] together.",
                            spec.name, spec.name
                        ),
                        direction: false,
                        tensor_out: true,
                        value_too: true,
                        lambda: false,
                    };
                    let t0 = &d.orders[0];
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| {
                        let value = if value_shifted {
                            value_at_shifted_logits(b, &d)?
                        } else {
                            full(b, t0)?
                        };
                        let (Lowered::Poly(value, _), Lowered::Poly(grad, idx)) =
                            (value, full(b, t)?)
                        else {
                            return Err(Error::new(
                                "internal error: a value or gradient that is not one polynomial",
                            ));
                        };
                        let mut tail = b.output(&loops::merge_sums(&grad), &idx);
                        tail.push(Stmt::Return(b.scalar(&loops::merge_sums(&value))));
                        Ok(Lowered::Stmts(tail, idx))
                    })?);
                }
            }
            _ => {
                if k == 2 {
                    let f = Function {
                        name: name("_hvp"),
                        doc: "The Hessian times `v` (contracted in its last index), without forming the Hessian.".into(),
                        direction: true,
                        tensor_out: true,
                        value_too: false,
                        lambda: false,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |_| {
                        hvp(t).map(Lowered::from)
                    })?);
                    let f = Function {
                        name: name("_hessian"),
                        doc: with_formula("The full Hessian, row-major.", 2),
                        direction: false,
                        tensor_out: true,
                        value_too: false,
                        lambda: false,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                    // What gradient boosting takes (XGBoost, LightGBM): the
                    // exact diagonal, O(n), never the n×n matrix.
                    if scalar_value && !t.wrt_dims.is_empty() {
                        let f = Function {
                            name: name("_hessian_diag"),
                            doc: "The diagonal of the Hessian, `H_ii`.".into(),
                            direction: false,
                            tensor_out: true,
                            value_too: false,
                            lambda: false,
                        };
                        items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |_| {
                            Ok(hessian_diagonal(t).into())
                        })?);
                        // S with H = SᵀS, where the structure gives it.
                        if let Some(s) = crate::analyze::hessian_factor(t) {
                            let f = Function {
                                name: name("_hessian_factor"),
                                doc: if t.wrt_dims.len() == 2 {
                                    "`S_r` with `H_r = S_rᵀS_r` for each row's block `H_r` of the (block-diagonal) Hessian: m·n·n entries, row by row, each n×n row-major (see `symdiff analyze`, which checks it).".into()
                                } else {
                                    "`S` with `H = SᵀS`, row-major (see `symdiff analyze`, which checks it).".into()
                                },
                                direction: false,
                                tensor_out: true,
                                value_too: false,
                                lambda: false,
                            };
                            items.extend(
                                f.emit(&sig, &names, &mut helpers, &mut plans, |_| Ok(s.into()))?,
                            );
                        }
                        // A Newton step in O(n) where the Hessian is
                        // diagonal plus rank one (Sherman–Morrison).
                        let step = newton_step(t).map(|s| (s, "`(H + λI)⁻¹ v` by Sherman–Morrison, O(n) (H is diagonal plus rank one; see `symdiff analyze`). Where H is singular (xent: `γ = 1`), λ must be positive (at λ = 0 the entries are not finite): use `_newton_least_norm` there."))
                            .or_else(|| woodbury_step(t).map(|s| (s, "`(H + λI)⁻¹ v` by the Woodbury identity, O(n) (H is diagonal plus rank at most two; see `symdiff analyze`). λ must keep H + λI invertible.")));
                        if let Some((step, doc)) = step {
                            let f = Function {
                                name: name("_newton"),
                                doc: doc.into(),
                                direction: true,
                                tensor_out: true,
                                value_too: false,
                                lambda: true,
                            };
                            items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |_| {
                                Ok(step.into())
                            })?);
                        }
                        // λ = 0 on a singular H: the least-norm solution.
                        if let Some(x) = newton_least_norm(t) {
                            let f = Function {
                                name: name("_newton_least_norm"),
                                doc: "The least-norm solution of `H x = v` where H is singular (`γ = 1`, see `symdiff analyze`): `x = v/d − (Σ w v/d / Σ w²)·w` with the null vector `w = u/d`, O(n). For `v` orthogonal to the null space (a gradient of a shift-invariant loss) it solves `H x = v` with `x` orthogonal to the null space: `x = H⁺ v`.".into(),
                                direction: true,
                                tensor_out: true,
                                value_too: false,
                                lambda: false,
                            };
                            items.extend(
                                f.emit(&sig, &names, &mut helpers, &mut plans, |_| Ok(x.into()))?,
                            );
                        }
                    }
                } else {
                    let f = Function {
                        name: name(&format!("_d{k}")),
                        doc: with_formula(
                            &format!("The full derivative tensor of order {k}, row-major."),
                            k,
                        ),
                        direction: false,
                        tensor_out: true,
                        value_too: false,
                        lambda: false,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                    let f = Function {
                        name: name(&format!("_d{k}_dir")),
                        doc: format!("`D^{k} f[v, …, v]`, without forming the tensor."),
                        direction: true,
                        tensor_out: !scalar_value,
                        value_too: false,
                        lambda: false,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| {
                        directional(b, &d, k, centre.as_ref()).map(Lowered::from)
                    })?);
                }
            }
        }
    }
    items.extend(emit::helpers(&spec.name, spec.float, helpers));
    let runtime = runtime::source(&spec.name, spec.float, &helpers.runtime_names());
    Ok((items, plans, runtime))
}

/// A whole module: header, then the items of each kernel, formatted.
pub fn module(kernels: &[KernelSpec], command: &str) -> Result<String> {
    for (i, k) in kernels.iter().enumerate() {
        check_ident(&k.name)?;
        crate::derive::check_order(k.order)?;
        // Every item of kernel `f` is `f` or starts with `f_`.
        for other in &kernels[..i] {
            let (a, b) = (&other.name, &k.name);
            let within = |x: &str, y: &str| x == y || y.starts_with(&format!("{x}_"));
            if within(a, b) || within(b, a) {
                return Err(Error::new(format!(
                    "kernels `{a}` and `{b}` would define the same functions"
                ))
                .with_note("the items of a kernel named `f` are `f` and `f_…` (`f_grad`, `f_hvp`, …); rename one of them"));
            }
        }
    }
    crate::budget::run(crate::budget::DEFAULT_DEADLINE, || {
        module_within_budget(kernels, command)
    })
}

fn module_within_budget(kernels: &[KernelSpec], command: &str) -> Result<String> {
    let mut items = TokenStream::new();
    let mut runtime = String::new();
    for k in kernels {
        let (tokens, helpers) = kernel_items(k)
            .map_err(|e| e.with_note(format!("while generating kernel `{}`", k.name)))?;
        items.extend(tokens);
        runtime.push_str(&helpers);
    }
    format_module(kernels, items, &runtime, command)
}

/// The header for `kernels`, the formatted `items`, then the runtime
/// helpers' source as it is written (comments included).
pub fn format_module(
    kernels: &[KernelSpec],
    items: TokenStream,
    runtime: &str,
    command: &str,
) -> Result<String> {
    let file: syn::File = syn::parse2(items).map_err(|e| {
        Error::new(format!(
            "internal error: generated code does not parse: {e}"
        ))
    })?;
    let mut out = header(kernels, command);
    // prettyplease drops comments; the one each `unsafe` block needs is put
    // back beside it.
    for line in prettyplease::unparse(&file).lines() {
        if line.trim_start().starts_with("return unsafe {") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(indent);
            out.push_str(SAFETY_AVX2);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if !runtime.is_empty() {
        out.push('\n');
        out.push_str(runtime);
    }
    Ok(out)
}

/// Why the dispatch to the AVX2 entry point is sound.
const SAFETY_AVX2: &str =
    "// SAFETY: the CPU has AVX2 and FMA, checked just above; the callee only adds `target_feature`s.";

/// The `symdiff codegen` command that generates `spec`, quoted for a shell.
pub fn command_line(spec: &KernelSpec) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let expr = crate::parse::one_line(&spec.expr);
    let mut c = format!(
        "symdiff codegen {} --name {} --order {}",
        quote(&expr),
        spec.name,
        spec.order
    );
    if let Some(w) = &spec.wrt {
        c.push_str(&format!(" --wrt {w}"));
    }
    for (n, v) in &spec.dims {
        c.push_str(&format!(" --dim {n}={v}"));
    }
    if spec.float == Float::F32 {
        c.push_str(" --float f32");
    }
    c
}

fn header(kernels: &[KernelSpec], command: &str) -> String {
    let mut h = format!(
        "// generated by symdiff {} — do not edit; regenerate with:\n//   {command}\n",
        env!("CARGO_PKG_VERSION")
    );
    for k in kernels {
        let expr = crate::parse::one_line(&k.expr);
        h.push_str(&format!(
            "// kernel `{}`: f = {expr}, orders {}..={}{}, {}\n",
            k.name,
            k.min_order,
            k.order,
            k.wrt.as_ref().map(|w| format!(" with respect to {w}")).unwrap_or_default(),
            match k.float {
                Float::F64 => "f64".to_string(),
                Float::F32 => "f32 data and arithmetic, sums accumulated in f64 (an f32 sum of n terms loses up to n·2⁻²⁴ relative)".into(),
            }
        ));
        if !k.dims.is_empty() {
            let d: Vec<String> = k.dims.iter().map(|(n, v)| format!("{n} = {v}")).collect();
            h.push_str(&format!("//   specialized to {}\n", d.join(", ")));
        }
    }
    h.push('\n');
    h
}

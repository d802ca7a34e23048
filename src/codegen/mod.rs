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
mod functions;
// The interpreter is a test oracle: only the crate's tests run plans with it.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod interp;
#[cfg(not(feature = "internals"))]
#[allow(dead_code)]
pub(crate) mod interp;
mod spec;
mod threads;

pub(crate) use crate::kernel_algebra::*;
pub(crate) use signature::*;
pub use spec::*;

use std::collections::{BTreeSet, HashMap};

use proc_macro2::TokenStream;

use crate::derive::{derive, Request};
use crate::diag::{Error, Result};
use emit::Names;

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
    // Every full tensor that will be emitted is sized before any is: a
    // kernel set that cannot be built is refused at once, not after its
    // lower orders took the time.
    for k in spec.min_order.max(3)..=spec.order {
        check_full_size(&d.orders[k])?;
    }
    let sig = Signature::new(&d, &fixed, &spec.name);
    let names = Names {
        kernel: spec.name.clone(),
        inputs: sig.inputs.clone(),
        scalar: sig.shapes.iter().map(|(_, dims)| dims.is_empty()).collect(),
        fixed,
        float: spec.float,
    };
    let mut kernel = functions::Kernel::new(spec, &d, sig, names);
    let runtime = kernel.emit_all()?;
    Ok((kernel.items, kernel.plans, runtime))
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
    let text = prettyplease::unparse(&file);
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let code = line.trim_start();
        let safety = if code.starts_with("return unsafe {") {
            Some(SAFETY_AVX2)
        } else if code == "unsafe {" && lines.peek().is_some_and(|l| l.contains("_mm_prefetch")) {
            Some(SAFETY_PREFETCH)
        } else {
            None
        };
        if let Some(note) = safety {
            out.push_str(&line[..line.len() - code.len()]);
            out.push_str(note);
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

/// Why a prefetch is sound whatever its address.
const SAFETY_PREFETCH: &str =
    "// SAFETY: a prefetch is a hint that never faults, whatever the address; `wrapping_add` computes it without claiming it is in bounds.";

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

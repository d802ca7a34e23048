//! Kernel code generation: derivatives to dependency-free Rust functions.
//!
//! Every function is generated from the same simplified tensors that
//! `derive` prints and `eval` evaluates ([`crate::derive::Derivation`]).
//! Contractions with a direction `v` are formed in the index IR *before*
//! any loop exists, so the normal form turns `Σ_j H_ij v_j` into
//! `s·(p_i v_i − p_i Σ_b p_b v_b)` and `D^k f[v, …, v]` into products of
//! moments `Σ_b p_b v_b^r`: O(n) and O(k·n) by construction. [`loops`]
//! lowers each to loop nests, [`emit`] prints them with `quote`, and
//! `prettyplease` formats the module.

pub mod emit;
pub mod interp;
pub mod loops;

use std::collections::{BTreeSet, HashMap};

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::derive::{derive, Derivation, Request};
use crate::diag::{Error, Result};
use crate::ir::{fresh, Atom, Dim, Ix, Poly};
use crate::shape::Shape;
use crate::sym::Tensor;
use emit::{Emitter, Helpers, Names};
use loops::{Body, Stmt};

/// Float type of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Float {
    /// `f64` throughout.
    #[default]
    F64,
    /// `f32` data and arithmetic; sums accumulate in `f64`.
    F32,
}

impl Float {
    /// The Rust type, as tokens.
    fn rust_type(self) -> TokenStream {
        match self {
            Float::F64 => quote!(f64),
            Float::F32 => quote!(f32),
        }
    }
}

/// One kernel to generate.
#[derive(Clone, Debug)]
pub struct KernelSpec {
    /// Function name prefix.
    pub name: String,
    /// The program text.
    pub expr: String,
    /// Highest order: functions for every order up to it are emitted.
    pub order: usize,
    /// Lowest order emitted (0: from the value on).
    pub min_order: usize,
    /// Variable to differentiate with respect to (default: the first).
    pub wrt: Option<String>,
    /// Lengths fixed at generation time, such as `n = 8`.
    pub dims: Vec<(String, usize)>,
    /// Float type.
    pub float: Float,
}

impl KernelSpec {
    /// A spec with defaults: order 1, f64, no fixed lengths.
    pub fn new(name: &str, expr: &str) -> KernelSpec {
        KernelSpec {
            name: name.into(),
            expr: expr.into(),
            order: 1,
            min_order: 0,
            wrt: None,
            dims: Vec::new(),
            float: Float::F64,
        }
    }
}

/// The full-tensor function `f_d{k}` is refused beyond this many terms.
const MAX_TENSOR_TERMS: f64 = 20_000.0;

/// Symmetric tensors of scalar functions with more terms than this are
/// emitted by class ([`scattered`]) rather than term by term.
const SCATTER_FROM: f64 = 64.0;

/// Stands for a block's own index in its signature.
const SIGNATURE_IX: Ix = Ix::MAX - 7;

/// Direction variable in the IR (a name no program can use).
const DIRECTION: &str = "·v";
/// The centred direction `v − c`.
const CENTRED: &str = "·w";
/// The IR name of the variable read less its maximum (see
/// [`value_at_shifted_logits`]).
const SHIFTED: &str = "·z";

/// The items of one kernel (all its functions and helpers), unformatted.
pub fn kernel_items(spec: &KernelSpec) -> Result<TokenStream> {
    Ok(kernel_build(spec)?.0)
}

/// The loop nests of every function of a kernel, by function name (for
/// [`interp`], which runs them without compiling them).
pub fn kernel_plans(spec: &KernelSpec) -> Result<Vec<(String, interp::Plan)>> {
    Ok(kernel_build(spec)?.1)
}

fn kernel_build(spec: &KernelSpec) -> Result<(TokenStream, Vec<(String, interp::Plan)>)> {
    check_ident(&spec.name)?;
    let mut req = Request::new(&spec.expr, spec.order);
    req.wrt = spec.wrt.clone();
    let d = derive(&req)?;
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
                "--dim `{n}={v}`: `{n}` is not a dimension of the expression"
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
                "--dim `{n}={v}`: a length must be at least 1"
            )));
        }
        fixed.insert(n.clone(), *v);
    }
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
                    doc: "The value.".into(),
                    direction: false,
                    tensor_out: !scalar_value,
                };
                let shift = reads_outside_normalizers(&t.expanded(), &d.wrt) && d.shift_invariant();
                items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| {
                    if shift {
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
                    doc: doc.into(),
                    direction: false,
                    tensor_out: true,
                };
                items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                if scalar_value && spec.min_order == 0 {
                    items.extend(value_grad(&sig, &names, spec));
                }
            }
            _ => {
                if k == 2 {
                    let f = Function {
                        name: name("_hvp"),
                        doc: "The Hessian times `v` (contracted in its last index), without forming the Hessian.".into(),
                        direction: true,
                        tensor_out: true,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |_| {
                        hvp(t).map(Lowered::from)
                    })?);
                    let f = Function {
                        name: name("_hessian"),
                        doc: "The full Hessian, row-major.".into(),
                        direction: false,
                        tensor_out: true,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                } else {
                    let f = Function {
                        name: name(&format!("_d{k}")),
                        doc: format!("The full derivative tensor of order {k}, row-major."),
                        direction: false,
                        tensor_out: true,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| full(b, t))?);
                    let f = Function {
                        name: name(&format!("_d{k}_dir")),
                        doc: format!("`D^{k} f[v, …, v]`, without forming the tensor."),
                        direction: true,
                        tensor_out: !scalar_value,
                    };
                    items.extend(f.emit(&sig, &names, &mut helpers, &mut plans, |b| {
                        directional(b, &d, k, centre.as_ref()).map(Lowered::from)
                    })?);
                }
            }
        }
    }
    items.extend(emit::helpers(&spec.name, spec.float, helpers));
    Ok((items, plans))
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
    for k in kernels {
        items.extend(
            kernel_items(k)
                .map_err(|e| e.with_note(format!("while generating kernel `{}`", k.name)))?,
        );
    }
    format_module(kernels, items, command)
}

/// The header for `kernels` and the formatted `items`.
pub fn format_module(kernels: &[KernelSpec], items: TokenStream, command: &str) -> Result<String> {
    let file: syn::File = syn::parse2(items).map_err(|e| {
        Error::new(format!(
            "internal error: generated code does not parse: {e}"
        ))
    })?;
    let mut out = header(kernels, command);
    out.push_str(&prettyplease::unparse(&file));
    Ok(out)
}

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

fn check_ident(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && syn::parse_str::<Ident>(name).is_ok();
    if ok {
        Ok(())
    } else if syn::parse_str::<Ident>(&format!("r#{name}")).is_ok()
        || name == "self"
        || name == "Self"
    {
        Err(Error::new(format!(
            "kernel name `{name}` is a Rust keyword; pick another (`{name}_loss`, say)"
        )))
    } else {
        Err(
            Error::new(format!("kernel name `{name}` is not a Rust identifier"))
                .with_note("use letters, digits and `_`, starting with a letter"),
        )
    }
}

/// Refuses fixed lengths (`--dim`) whose full tensors could not be
/// addressed: the entry count of every function that writes `out` must
/// fit in memory's address range.
fn check_output_sizes(
    spec: &KernelSpec,
    d: &Derivation,
    fixed: &HashMap<String, usize>,
) -> Result<()> {
    let len = |dim: &Dim| match dim {
        Dim::Fixed(k) => *k,
        Dim::Named(n) => fixed.get(&**n).copied().unwrap_or(1),
    };
    let value: Option<usize> = d
        .tensor
        .value_dims
        .iter()
        .try_fold(1usize, |a, x| a.checked_mul(len(x)));
    let wrt: Option<usize> = d
        .tensor
        .wrt_dims
        .iter()
        .try_fold(1usize, |a, x| a.checked_mul(len(x)));
    let limit = isize::MAX as usize / std::mem::size_of::<f64>();
    for k in spec.min_order..=spec.order {
        let entries = (0..k).try_fold(value.unwrap_or(usize::MAX), |a, _| a.checked_mul(wrt?));
        match entries {
            Some(e) if e <= limit && value.is_some() => {}
            _ => {
                return Err(Error::new(format!(
                    "the order-{k} tensor has more entries than a slice can hold at these lengths"
                ))
                .with_note("lower --order or the fixed --dim lengths; the directional and Hessian-vector kernels do not form it"))
            }
        }
    }
    Ok(())
}

/// `f_value_grad(…, out) -> f64`: the value, and the gradient into `out`,
/// in one call (JAX's `value_and_grad`), for a training step. It calls
/// `f_grad` and then `f`; the two share no pass yet.
fn value_grad(sig: &Signature, names: &Names, spec: &KernelSpec) -> TokenStream {
    let ty = spec.float.rust_type();
    let (params, args) = sig.inputs_and_lengths(names);
    let value = format_ident!("{}", spec.name);
    let grad = format_ident!("{}_grad", spec.name);
    let both = format_ident!("{}_value_grad", spec.name);
    let doc = format!(
        " The value, with the gradient written into `out`, in one call (JAX's `value_and_grad`): [`{grad}`] then [`{value}`]."
    );
    quote! {
        #[doc = #doc]
        #[allow(clippy::too_many_arguments, dead_code, unused_variables)]
        pub fn #both(#(#params,)* out: &mut [#ty]) -> #ty {
            #grad(#(#args,)* out);
            #value(#(#args),*)
        }
    }
}

/// Parameters shared by every function of a kernel.
struct Signature {
    /// Length parameters (`usize`), in order of first appearance.
    dim_params: Vec<String>,
    /// Input parameter names.
    inputs: Vec<Ident>,
    /// Each input's IR name and dims.
    shapes: Vec<(String, Vec<Dim>)>,
    /// Lengths read off a vector argument: dim → input position.
    from_input: Vec<(String, usize)>,
    /// The direction's parameter name.
    direction: Ident,
    /// Dims of `wrt`.
    wrt_dims: Vec<Dim>,
}

impl Signature {
    /// The parameters every function of the kernel starts with — the
    /// lengths (`usize`), then the inputs (`f64` scalars, `&[f64]` slices)
    /// — and the same names as call arguments.
    fn inputs_and_lengths(&self, names: &Names) -> (Vec<TokenStream>, Vec<Ident>) {
        let ty = names.float.rust_type();
        let mut params = Vec::new();
        let mut args = Vec::new();
        for d in &self.dim_params {
            let i = Ident::new(d, Span::call_site());
            params.push(quote!(#i: usize));
            args.push(i);
        }
        for (k, n) in names.inputs[..self.shapes.len()].iter().enumerate() {
            if names.scalar[k] {
                params.push(quote!(#n: #ty));
            } else {
                params.push(quote!(#n: &[#ty]));
            }
            args.push(n.clone());
        }
        (params, args)
    }

    fn new(d: &Derivation, fixed: &HashMap<String, usize>, kernel: &str) -> Signature {
        let mut taken: BTreeSet<String> = ["out"].iter().map(|s| s.to_string()).collect();
        taken.extend(d.typed.symbolic_dims());
        taken.insert(kernel.to_string());
        let mut inputs = Vec::new();
        let mut shapes = Vec::new();
        for (n, s) in &d.typed.vars {
            let name = parameter_name(n, kernel, &taken);
            taken.insert(name.clone());
            inputs.push(Ident::new(&name, Span::call_site()));
            shapes.push((n.clone(), s.dims()));
        }
        let direction = parameter_name("v", kernel, &taken);
        let mut from_input: Vec<(String, usize)> = Vec::new();
        for (k, (_, s)) in d.typed.vars.iter().enumerate() {
            if let Shape::Vec(Dim::Named(n)) = s {
                if !fixed.contains_key(&**n) && !from_input.iter().any(|(m, _)| **m == **n) {
                    from_input.push((n.to_string(), k));
                }
            }
        }
        let dim_params = d
            .typed
            .symbolic_dims()
            .into_iter()
            .filter(|n| !fixed.contains_key(n) && !from_input.iter().any(|(m, _)| m == n))
            .collect();
        Signature {
            dim_params,
            inputs,
            shapes,
            from_input,
            direction: Ident::new(&direction, Span::call_site()),
            wrt_dims: d.tensor.wrt_dims.clone(),
        }
    }
}

/// The Rust parameter for program variable `var`: its name in lower case,
/// unless that could clash with what the kernel names itself, then with
/// `_in` appended until it cannot. Every local the generated code makes
/// ends in a digit (`sum5`, `acc3_0`, `i2`), and every item of kernel `k`
/// is `k` or starts with `k_`; `out`, the dimension parameters, Rust
/// keywords and `_` are taken too.
fn parameter_name(var: &str, kernel: &str, taken: &BTreeSet<String>) -> String {
    let name = var.to_lowercase();
    let clashes = |n: &str| {
        taken.contains(n)
            || n.ends_with(|c: char| c.is_ascii_digit())
            || n == kernel
            || n.starts_with(&format!("{kernel}_"))
            || n == "FMA"
            || syn::parse_str::<Ident>(n).is_err()
    };
    // Candidates: the name, `name_in`, `in_name`, then `arg_a`, `par_a`,
    // `arg_b`, … (two first letters, so at most one family can start with
    // the kernel's prefix; `taken` is finite, so this ends).
    let fallback = (0usize..).flat_map(|k| {
        let mut tag = String::new();
        let mut x = k;
        loop {
            tag.insert(0, (b'a' + (x % 26) as u8) as char);
            x /= 26;
            if x == 0 {
                break;
            }
        }
        [format!("arg_{tag}"), format!("par_{tag}")]
    });
    [name.clone(), format!("{name}_in"), format!("in_{name}")]
        .into_iter()
        .chain(fallback)
        .find(|n| !clashes(n))
        .expect("an unbounded sequence of distinct names")
}

/// One function of a kernel.
struct Function {
    name: Ident,
    doc: String,
    /// Takes a direction `v`.
    direction: bool,
    /// Writes to `out` (else returns a scalar).
    tensor_out: bool,
}

impl Function {
    fn emit(
        &self,
        sig: &Signature,
        names: &Names,
        helpers: &mut Helpers,
        plans: &mut Vec<(String, interp::Plan)>,
        build: impl FnOnce(&mut Body) -> Result<Lowered>,
    ) -> Result<TokenStream> {
        let mut shapes = sig.shapes.clone();
        shapes.push((DIRECTION.to_string(), sig.wrt_dims.clone()));
        let mut body = Body::new(shapes);
        let (tail, out_idx) = match build(&mut body)? {
            Lowered::Poly(poly, out_idx) => {
                let poly = loops::merge_sums(&poly);
                let tail = if self.tensor_out {
                    body.output(&poly, &out_idx)
                } else {
                    vec![Stmt::Return(body.scalar(&poly))]
                };
                (tail, out_idx)
            }
            Lowered::Stmts(tail, out_idx) => (tail, out_idx),
        };
        let (stmts, temps) = body.finish(tail);
        plans.push((
            self.name.to_string(),
            interp::Plan {
                stmts: stmts.clone(),
                temps: temps.clone(),
                out_len: out_idx.iter().map(|(_, d)| d.clone()).collect(),
                returns: !self.tensor_out,
            },
        ));
        let mut inputs = names.inputs.clone();
        inputs.push(sig.direction.clone());
        let mut scalar = names.scalar.clone();
        scalar.push(false);
        let names = Names {
            kernel: names.kernel.clone(),
            inputs,
            scalar,
            fixed: names.fixed.clone(),
            float: names.float,
        };
        let em = Emitter::new(&names, &temps);
        for s in &stmts {
            helpers.note_stmt(s);
        }
        let ty = names.float.rust_type();

        // Which parameters the body reads.
        let mut used = BTreeSet::new();
        for s in &stmts {
            loops::visit_stmt(s, &mut |e| {
                if let loops::Scalar::Load(loops::Access {
                    array: loops::Array::Input(k),
                    ..
                }) = e
                {
                    used.insert(*k);
                }
            });
        }

        // Parameters, and the same names as arguments (for the dispatch).
        let (mut params, mut args) = sig.inputs_and_lengths(&names);
        if self.direction {
            let n = &sig.direction;
            params.push(quote!(#n: &[#ty]));
            args.push(n.clone());
        }
        if self.tensor_out {
            params.push(quote!(out: &mut [#ty]));
            args.push(format_ident!("out"));
        }

        // Lengths: read off vector arguments, then every argument checked once.
        let mut entry = TokenStream::new();
        for (dname, k) in &sig.from_input {
            let d = Ident::new(dname, Span::call_site());
            let a = &names.inputs[*k];
            entry.extend(quote!(let #d = #a.len();));
        }
        let mut check = |arg: &Ident, dims: &[Dim], skip: bool| {
            if skip {
                return;
            }
            let arg_name = arg.to_string();
            let len = em.product(dims);
            let shown: Vec<String> = dims
                .iter()
                .map(|d| {
                    names
                        .fixed
                        .get(&d.to_string())
                        .map(|v| v.to_string())
                        .unwrap_or(d.to_string())
                })
                .collect();
            let msg = format!(
                "`{arg_name}` must have length {}",
                if shown.is_empty() {
                    "1".into()
                } else {
                    shown.join("·")
                }
            );
            entry.extend(quote!(assert_eq!(#arg.len(), #len, #msg);));
        };
        for (k, (_, dims)) in sig.shapes.iter().enumerate() {
            let derived = sig.from_input.iter().any(|(_, j)| *j == k) && dims.len() == 1;
            let unused = !used.contains(&k) && !derived;
            if unused || names.scalar[k] {
                continue;
            }
            check(&names.inputs[k], dims, derived);
        }
        if self.direction {
            check(&sig.direction, &sig.wrt_dims, false);
        }
        if self.tensor_out {
            check(
                &format_ident!("out"),
                &out_idx.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>(),
                false,
            );
        }
        let mut alloc = em.allocations();
        alloc.extend(em.orbits(&stmts));
        let code = em.stmts(&stmts);
        let name = &self.name;
        let doc = format!(" {}", self.doc);
        let ret = if self.tensor_out {
            quote!()
        } else {
            quote!(-> #ty)
        };
        // The body is compiled twice: for the target's baseline and, chosen
        // at run time, for AVX2 with fused multiply-adds, which runs the
        // polynomial `exp` on four lanes at once (the baseline of x86_64 has
        // two, and no FMA).
        let body_name = format_ident!("{}_body", name);
        let wide_name = format_ident!("{}_avx2", name);
        let wide_doc = format!(
            " [`{name}`] compiled for AVX2 and FMA: call it only on a CPU that has both, as [`{name}`] checks."
        );
        let body_doc = format!(" The body of [`{name}`], with or without fused multiply-adds.");
        Ok(quote! {
            #[doc = #doc]
            #[allow(clippy::too_many_arguments, dead_code, unused_variables)]
            pub fn #name(#(#params),*) #ret {
                #[cfg(target_arch = "x86_64")]
                {
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU has AVX2 and FMA, checked just above.
                        return unsafe { #wide_name(#(#args),*) };
                    }
                }
                #body_name::<false>(#(#args),*)
            }

            #[doc = #wide_doc]
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            #[allow(clippy::too_many_arguments, dead_code, unused_variables)]
            fn #wide_name(#(#params),*) #ret {
                #body_name::<true>(#(#args),*)
            }

            #[doc = #body_doc]
            #[inline(always)]
            #[allow(clippy::needless_range_loop, clippy::too_many_arguments, clippy::excessive_precision, dead_code, unused_variables)]
            fn #body_name<const FMA: bool>(#(#params),*) #ret {
                #entry
                #alloc
                #code
            }
        })
    }
}

/// The output indices of a tensor, row-major.
fn out_indices(t: &Tensor) -> Vec<(Ix, Dim)> {
    let mut out: Vec<(Ix, Dim)> = t
        .value_idx
        .iter()
        .copied()
        .zip(t.value_dims.iter().cloned())
        .collect();
    for g in &t.groups {
        out.extend(g.iter().copied().zip(t.wrt_dims.iter().cloned()));
    }
    out
}

/// What a function's body computes: one polynomial (its entries, or its
/// value), or statements already lowered.
enum Lowered {
    Poly(Poly, Vec<(Ix, Dim)>),
    Stmts(Vec<Stmt>, Vec<(Ix, Dim)>),
}

impl From<(Poly, Vec<(Ix, Dim)>)> for Lowered {
    fn from((p, out): (Poly, Vec<(Ix, Dim)>)) -> Self {
        Lowered::Poly(p, out)
    }
}

/// How a full tensor is emitted: its term count (orbits expanded), and
/// whether it can go class by class (scattered over each orbit).
fn full_terms(t: &Tensor) -> (f64, bool) {
    let k = t.order();
    let terms: f64 = if t.symmetric {
        t.classes.iter().map(|c| c.orbit(k)).sum()
    } else {
        t.classes.len() as f64
    };
    let scalar_blocks = t.symmetric
        && t.value_idx.is_empty()
        && t.groups.iter().all(|g| g.len() == 1)
        && t.classes.iter().all(|c| !c.blocks.is_empty());
    (terms, terms > SCATTER_FROM && scalar_blocks)
}

/// Refuses a full tensor too large to emit term by term.
fn check_full_size(t: &Tensor) -> Result<()> {
    let (terms, scattered) = full_terms(t);
    if terms > MAX_TENSOR_TERMS && !scattered {
        let k = t.order();
        return Err(Error::new(format!(
            "the full order-{k} tensor has {terms} terms, too many to emit as code (limit {MAX_TENSOR_TERMS})"
        ))
        .with_note(format!("the directional derivative `_d{k}_dir` stays small; generate a lower --order to get the full tensors")));
    }
    Ok(())
}

/// The whole tensor (value, gradient, Hessian, `f_d{k}`).
fn full(b: &mut Body, t: &Tensor) -> Result<Lowered> {
    if full_terms(t).1 {
        return scattered(b, t);
    }
    check_full_size(t)?;
    Ok(Lowered::Poly(t.expanded(), out_indices(t)))
}

/// The full tensor of a scalar function as its symmetry classes: each
/// class's value is computed once per choice of its blocks' indices and
/// added to every entry its distinct terms put it in (the orbit, which the
/// kernel enumerates at entry). Code stays one loop nest per class — 42
/// for xent at order 10 — instead of one per term (115,975).
fn scattered(b: &mut Body, t: &Tensor) -> Result<Lowered> {
    let k = t.order();
    let dim = t.wrt_dims[0].clone();
    let mut tail = vec![Stmt::ZeroOut];
    for c in &t.classes {
        // The class value: the representative without its deltas.
        let value = Poly {
            terms: vec![crate::ir::Term {
                factors: c
                    .term
                    .factors
                    .iter()
                    .filter(|f| !matches!(&*f.atom, Atom::Delta(..)))
                    .cloned()
                    .collect(),
                coef: c.term.coef,
            }],
        };
        // Blocks with the same size and atoms are interchangeable.
        let signature = |blk: &crate::sym::Block| {
            let atoms: Vec<String> = blk
                .atoms
                .iter()
                .map(|f| format!("{:?}^{}", f.atom.rename(blk.rep, SIGNATURE_IX), f.exp.0))
                .collect();
            format!("{} {atoms:?}", blk.wrt_count)
        };
        let sigs: Vec<String> = c.blocks.iter().map(signature).collect();
        let kinds: Vec<usize> = sigs
            .iter()
            .map(|s| sigs.iter().position(|x| x == s).expect("present"))
            .collect();
        let sizes: Vec<usize> = c.blocks.iter().map(|blk| blk.wrt_count).collect();
        let count = loops::orbit_rows(&sizes, &kinds).len() as f64;
        if count != c.orbit(k) {
            return Err(Error::new(format!(
                "internal: a symmetry class of order {k} has {} terms but its blocks give {count}",
                c.orbit(k)
            )));
        }
        let reps: Vec<Ix> = c.blocks.iter().map(|blk| blk.rep).collect();
        tail.push(b.scatter(&value, &reps, sizes, kinds, &dim));
    }
    Ok(Lowered::Stmts(tail, out_indices(t)))
}

/// `t` contracted with the direction in the derivative groups `from..`.
fn contract(p: &Poly, t: &Tensor, from: usize, dir: &str) -> Poly {
    contract_with(p, t, from, |idx| Poly::var(dir, idx))
}

/// `t` contracted in the groups `from..` with the vector `with(indices)`.
pub(crate) fn contract_with(
    p: &Poly,
    t: &Tensor,
    from: usize,
    with: impl Fn(Vec<Ix>) -> Poly,
) -> Poly {
    let mut p = p.clone();
    for g in &t.groups[from..] {
        let fresh_ids: Vec<Ix> = g.iter().map(|_| fresh()).collect();
        for (&old, &new) in g.iter().zip(&fresh_ids) {
            p = p.rename(old, new);
        }
        p = p.mul(&with(fresh_ids.clone()));
        for (&k, d) in fresh_ids.iter().zip(&t.wrt_dims).rev() {
            p = Poly::sum_over(k, d, &p);
        }
    }
    p
}

/// `Σ_j H_ij v_j`.
fn hvp(t: &Tensor) -> Result<(Poly, Vec<(Ix, Dim)>)> {
    let p = contract(&t.expanded(), t, 1, DIRECTION);
    let mut out = out_indices(t);
    out.truncate(t.value_idx.len() + t.wrt_dims.len());
    Ok((p, out))
}

/// `D^k f[v, …, v]`: each symmetry class contracted once and weighted by
/// its orbit (every member contracts to the same number). With a `centre`
/// (see [`centring`]), the direction is first centred there, which keeps
/// the moments small and the cumulants free of cancellation.
fn directional(
    b: &mut Body,
    d: &Derivation,
    k: usize,
    centre: Option<&Poly>,
) -> Result<(Poly, Vec<(Ix, Dim)>)> {
    let t = &d.orders[k];
    let dir = if centre.is_some() { CENTRED } else { DIRECTION };
    let p = if t.symmetric {
        let mut acc = Poly::zero();
        for c in &t.classes {
            let term = Poly {
                terms: vec![c.term.clone()],
            };
            acc = acc.add(&contract(&term, t, 0, dir).scale(c.orbit(k)));
        }
        acc
    } else {
        contract(&t.expanded(), t, 0, dir)
    };
    if let Some(c) = centre {
        let minus = b.scalar(c);
        let v_input = d.typed.vars.len();
        b.shift(CENTRED, v_input, minus);
    }
    let out = out_indices(t)[..t.value_idx.len()].to_vec();
    Ok((p, out))
}

/// Whether `p` reads variable `var` other than through a softmax or a
/// logsumexp (which shift their arguments themselves): `q·z` in xent,
/// `z_i` in log_softmax. Only then can a common offset of `var` cancel in
/// floating point.
fn reads_outside_normalizers(p: &Poly, var: &str) -> bool {
    p.terms
        .iter()
        .flat_map(|t| &t.factors)
        .any(|f| match &*f.atom {
            Atom::Var { name, .. } => &**name == var,
            Atom::Softmax { .. } | Atom::Lse { .. } | Atom::Delta(..) | Atom::Dim(_) => false,
            Atom::Func(_, q) | Atom::Group(q) | Atom::Sum { body: q, .. } => {
                reads_outside_normalizers(q, var)
            }
            Atom::Pow(a, b) => {
                reads_outside_normalizers(a, var) || reads_outside_normalizers(b, var)
            }
        })
}

/// The value of a shift-invariant `f`, computed at `z − max(z)`: the
/// logits' common offset cancels symbolically instead of in floating
/// point. (`s·logsumexp(z) − q·z` at z = 1e300·1 is `s·ln n`; evaluated
/// as written both terms are 1e300·s and their difference 0.) Costs one
/// pass over `z` for its maximum.
fn value_at_shifted_logits(b: &mut Body, d: &Derivation) -> Result<Lowered> {
    let t = &d.orders[0];
    let input = d
        .typed
        .vars
        .iter()
        .position(|(n, _)| *n == d.wrt)
        .expect("the variable is an input");
    let max = b.max_of(&d.wrt, &t.wrt_dims[0]);
    b.shift(SHIFTED, input, max);
    Ok(Lowered::Poly(
        t.expanded().rename_var(&d.wrt, SHIFTED),
        out_indices(t),
    ))
}

/// `Σ_b p_b v_b` for the softmax `p` of the variable, when `f` does not
/// change along `1` (its Hessian times `1` simplifies to zero).
fn centring(d: &Derivation) -> Option<Poly> {
    let t2 = d.orders.get(2)?;
    if t2.wrt_dims.len() != 1 {
        return None;
    }
    let ones = contract_with(&t2.expanded(), t2, 1, |_| Poly::constant(1.0));
    let (h1, _) = crate::simplify::simplify_poly(
        &ones,
        &crate::rules::identities(),
        crate::simplify::Limits::default(),
        "centring check",
    );
    if !h1.is_zero() {
        return None;
    }
    let wrt_dim = &t2.wrt_dims[0];
    let p = find_softmax(&d.orders[1].expanded(), &d.wrt, wrt_dim)?;
    let Atom::Softmax { at, .. } = &p else {
        unreachable!()
    };
    let k = fresh();
    let pk = crate::ir::Poly::atom(std::sync::Arc::new(p.clone())).rename(*at, k);
    Some(Poly::sum_over(
        k,
        wrt_dim,
        &pk.mul(&Poly::var(DIRECTION, vec![k])),
    ))
}

/// A vector softmax over `dim` of an expression of `wrt`.
fn find_softmax(p: &Poly, wrt: &str, dim: &Dim) -> Option<Atom> {
    for t in &p.terms {
        for f in &t.factors {
            if let Atom::Softmax {
                dim: d, body, at, ..
            } = &*f.atom
            {
                if d == dim
                    && body.uses_var(wrt)
                    && f.atom.free().len() == 1
                    && f.atom.free().contains(at)
                {
                    return Some((*f.atom).clone());
                }
            }
        }
    }
    None
}

/// A file of kernels that symdiff generates for itself into `generated/`.
pub struct OwnFile {
    /// File name under `generated/`.
    pub file: &'static str,
    /// Its kernels.
    pub kernels: Vec<KernelSpec>,
}

/// The command that regenerates `generated/` (and the stale-check test).
pub const REGENERATE: &str = "UPDATE_GENERATED=1 cargo test --release --test generated";

/// A linear softmax classifier over a batch.
const CLASSIFIER: &str =
    "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m";

/// The kernels committed in `generated/`.
pub fn own_kernels() -> Vec<OwnFile> {
    let spec = |name: &str, expr: &str, order: usize, wrt: Option<&str>| KernelSpec {
        order,
        wrt: wrt.map(str::to_string),
        ..KernelSpec::new(name, expr)
    };
    vec![
        OwnFile {
            file: "xent.rs",
            kernels: vec![spec("xent", "xent(z, q)", 10, None)],
        },
        OwnFile {
            file: "softmax.rs",
            kernels: vec![spec("softmax", "softmax(z)", 2, None)],
        },
        OwnFile {
            file: "log_softmax.rs",
            kernels: vec![spec("log_softmax", "log_softmax(z)", 2, None)],
        },
        OwnFile {
            file: "logsumexp.rs",
            kernels: vec![spec("logsumexp", "logsumexp(z)", 3, None)],
        },
        OwnFile {
            file: "batched_xent.rs",
            kernels: vec![spec(
                "batched_xent",
                "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
                1,
                None,
            )],
        },
        OwnFile {
            file: "linear_classifier.rs",
            kernels: vec![
                spec("linear_w", CLASSIFIER, 1, Some("W")),
                spec("linear_b", CLASSIFIER, 1, Some("b")),
            ],
        },
    ]
}

/// The text of one file of `generated/`.
pub fn own_file(f: &OwnFile) -> Result<String> {
    module(&f.kernels, REGENERATE)
}

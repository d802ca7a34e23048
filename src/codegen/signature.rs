//! Kernel functions: which functions an order emits, their signatures,
//! and how each is lowered (full tensors, scattered classes, contractions).

use std::collections::{BTreeSet, HashMap};

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote};

use crate::codegen::emit::{Emitter, Helpers, Names};
use crate::codegen::loops::{Body, Stmt};
use crate::codegen::threads::Threaded;
use crate::codegen::*;
use crate::derive::Derivation;
use crate::diag::{Error, Result};
use crate::ir::{Atom, Dim, Ix, Poly};

use crate::shape::Shape;
use crate::sym::Tensor;

/// The full-tensor function `f_d{k}` is refused beyond this many terms.
pub(crate) const MAX_TENSOR_TERMS: f64 = 20_000.0;

/// Symmetric tensors of scalar functions with more terms than this are
/// emitted by class ([`scattered`]) rather than term by term.
pub(crate) const SCATTER_FROM: f64 = 64.0;

/// Stands for a block's own index in its signature.
pub(crate) const SIGNATURE_IX: Ix = Ix::MAX - 7;

/// Parameters shared by every function of a kernel.
pub(crate) struct Signature {
    /// Length parameters (`usize`), in order of first appearance.
    pub(crate) dim_params: Vec<String>,
    /// Input parameter names.
    pub(crate) inputs: Vec<Ident>,
    /// Each input's IR name and dims.
    pub(crate) shapes: Vec<(String, Vec<Dim>)>,
    /// Lengths read off a vector argument: dim → input position.
    pub(crate) from_input: Vec<(String, usize)>,
    /// The direction's parameter name.
    pub(crate) direction: Ident,
    /// Dims of `wrt`.
    pub(crate) wrt_dims: Vec<Dim>,
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

    pub(crate) fn new(d: &Derivation, fixed: &HashMap<String, usize>, kernel: &str) -> Signature {
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
pub(crate) fn parameter_name(var: &str, kernel: &str, taken: &BTreeSet<String>) -> String {
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
pub(crate) struct Function {
    pub(crate) name: Ident,
    pub(crate) doc: String,
    /// Takes a direction `v`.
    pub(crate) direction: bool,
    /// Writes to `out` (else returns a scalar).
    pub(crate) tensor_out: bool,
    /// Also returns a scalar while writing `out` (`f_value_grad`).
    pub(crate) value_too: bool,
    /// Takes a scalar `lambda` after the direction (`f_newton`).
    pub(crate) lambda: bool,
}

impl Function {
    /// A function named `name` that returns a scalar and takes the
    /// kernel's inputs only; the fields say what else it takes and gives.
    pub(crate) fn new(name: Ident, doc: impl Into<String>) -> Function {
        Function {
            name,
            doc: doc.into(),
            direction: false,
            tensor_out: false,
            value_too: false,
            lambda: false,
        }
    }

    /// The function's items: its public entry point(s), the AVX2 copy and
    /// the body; its plan is pushed to `plans` for the interpreter.
    pub(crate) fn emit(
        &self,
        sig: &Signature,
        names: &Names,
        helpers: &mut Helpers,
        plans: &mut Vec<(String, interp::Plan)>,
        build: impl FnOnce(&mut Body) -> Result<Lowered>,
    ) -> Result<TokenStream> {
        let (stmts, temps, out_idx) = self.lower(sig, names, build)?;
        plans.push((
            self.name.to_string(),
            interp::Plan {
                stmts: stmts.clone(),
                temps: temps.clone(),
                out_len: out_idx.iter().map(|(_, d)| d.clone()).collect(),
                returns: !self.tensor_out,
            },
        ));
        let names = self.body_names(sig, names);
        let em = Emitter::new(&names, &temps);
        for s in &stmts {
            helpers.note_stmt(s);
        }
        let (params, args) = self.params(sig, &names);
        let entry = self.entry_checks(sig, &names, &em, &stmts, &out_idx);
        let mut body = em.allocations(&stmts);
        body.extend(em.orbits(&stmts));
        body.extend(em.stmts(&stmts));
        if em.folded.get() {
            helpers.fold = true;
        }
        let ty = names.float.rust_type();
        let ret = if self.tensor_out && !self.value_too {
            quote!()
        } else {
            quote!(-> #ty)
        };
        // Matrix products and row loops can be split over threads: the
        // body takes a thread count, `{name}` passes 1 and `{name}_threads`
        // the caller's.
        let threaded = Threaded::of(&stmts);
        let mut items = self.entry_points(&params, &args, &ret, threaded);
        let (mut params, mut args) = (params, args);
        if threaded.any() {
            params.push(quote!(threads: usize));
            args.push(format_ident!("threads"));
        }
        items.extend(self.bodies(&params, &args, &ret, quote!(#entry #body)));
        Ok(items)
    }

    /// The public entry points: `name`, and `name_threads` when the body
    /// takes a thread count. Each runs the AVX2 copy of the body on a CPU
    /// that has AVX2 and FMA, else the baseline body.
    fn entry_points(
        &self,
        params: &[TokenStream],
        args: &[Ident],
        ret: &TokenStream,
        threaded: Threaded,
    ) -> TokenStream {
        let name = &self.name;
        let (body_name, wide_name) = (self.body_name(), self.wide_name());
        // One `///` line per line of the doc.
        let doc: Vec<String> = self
            .doc
            .lines()
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!(" {l}")
                }
            })
            .collect();
        let dispatch = |call: &[TokenStream]| {
            quote! {
                #[cfg(target_arch = "x86_64")]
                {
                    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                        // SAFETY: the CPU has AVX2 and FMA, checked just above.
                        return unsafe { #wide_name(#(#call),*) };
                    }
                }
                #body_name::<false>(#(#call),*)
            }
        };
        let mut call: Vec<TokenStream> = args.iter().map(|a| quote!(#a)).collect();
        let mut threads_entry = TokenStream::new();
        if threaded.any() {
            let many = dispatch(&[call.clone(), vec![quote!(threads)]].concat());
            call.push(quote!(1));
            let threads_name = format_ident!("{}_threads", name);
            let threads_doc = threaded.doc(&name.to_string());
            threads_entry = quote! {
                #[doc = #threads_doc]
                #[allow(clippy::too_many_arguments, dead_code, unused_variables)]
                pub fn #threads_name(#(#params,)* threads: usize) #ret {
                    #many
                }
            };
        }
        let one = dispatch(&call);
        quote! {
            #(#[doc = #doc])*
            #[allow(clippy::too_many_arguments, dead_code, unused_variables)]
            pub fn #name(#(#params),*) #ret {
                #one
            }

            #threads_entry
        }
    }

    /// The body is compiled twice: for the target's baseline and, chosen
    /// at run time, for AVX2 with fused multiply-adds, which runs the
    /// polynomial `exp` on four lanes at once (the baseline of x86_64 has
    /// two, and no FMA).
    fn bodies(
        &self,
        params: &[TokenStream],
        args: &[Ident],
        ret: &TokenStream,
        body: TokenStream,
    ) -> TokenStream {
        let name = &self.name;
        let (body_name, wide_name) = (self.body_name(), self.wide_name());
        let wide_doc = format!(
            " [`{name}`] compiled for AVX2 and FMA: call it only on a CPU that has both, as [`{name}`] checks."
        );
        let body_doc = format!(" The body of [`{name}`], with or without fused multiply-adds.");
        quote! {
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
                #body
            }
        }
    }

    fn body_name(&self) -> Ident {
        format_ident!("{}_body", self.name)
    }

    fn wide_name(&self) -> Ident {
        format_ident!("{}_avx2", self.name)
    }

    /// The body as a finished loop plan: built, lowered, through the passes.
    #[allow(clippy::type_complexity)]
    fn lower(
        &self,
        sig: &Signature,
        names: &Names,
        build: impl FnOnce(&mut Body) -> Result<Lowered>,
    ) -> Result<(Vec<Stmt>, loops::Temps, Vec<(Ix, Dim)>)> {
        let mut shapes = sig.shapes.clone();
        shapes.push((DIRECTION.to_string(), sig.wrt_dims.clone()));
        if self.lambda {
            shapes.push((LAMBDA.to_string(), Vec::new()));
        }
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
        let (stmts, temps) = body.finish(tail, &names.fixed);
        Ok((stmts, temps, out_idx))
    }

    /// The names the body is printed with: the inputs, then the direction
    /// and `lambda` where the function takes them.
    fn body_names(&self, sig: &Signature, names: &Names) -> Names {
        let mut inputs = names.inputs.clone();
        inputs.push(sig.direction.clone());
        let mut scalar = names.scalar.clone();
        scalar.push(false);
        if self.lambda {
            inputs.push(format_ident!("lambda"));
            scalar.push(true);
        }
        Names {
            kernel: names.kernel.clone(),
            inputs,
            scalar,
            fixed: names.fixed.clone(),
            float: names.float,
        }
    }

    /// Parameters, and the same names as arguments (for the dispatch).
    fn params(&self, sig: &Signature, names: &Names) -> (Vec<TokenStream>, Vec<Ident>) {
        let ty = names.float.rust_type();
        let (mut params, mut args) = sig.inputs_and_lengths(names);
        if self.direction {
            let n = &sig.direction;
            params.push(quote!(#n: &[#ty]));
            args.push(n.clone());
        }
        if self.lambda {
            params.push(quote!(lambda: #ty));
            args.push(format_ident!("lambda"));
        }
        if self.tensor_out {
            params.push(quote!(out: &mut [#ty]));
            args.push(format_ident!("out"));
        }

        (params, args)
    }

    /// Lengths read off vector arguments, then every argument the body
    /// reads checked once.
    fn entry_checks(
        &self,
        sig: &Signature,
        names: &Names,
        em: &Emitter,
        stmts: &[Stmt],
        out_idx: &[(Ix, Dim)],
    ) -> TokenStream {
        // Which parameters the body reads.
        let mut used = BTreeSet::new();
        for s in stmts {
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
        entry
    }
}

/// The output indices of a tensor, row-major.
pub(crate) fn out_indices(t: &Tensor) -> Vec<(Ix, Dim)> {
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
pub(crate) enum Lowered {
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
pub(crate) fn full_terms(t: &Tensor) -> (f64, bool) {
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
pub(crate) fn check_full_size(t: &Tensor) -> Result<()> {
    let (terms, scattered) = full_terms(t);
    if terms > MAX_TENSOR_TERMS && !scattered {
        let k = t.order();
        return Err(Error::new(format!(
            "the full order-{k} tensor has {terms} terms, too many to emit as code (limit {MAX_TENSOR_TERMS})"
        ))
        .with_note(format!("the directional derivative `_d{k}_dir` stays small; generate a lower order to get the full tensors")));
    }
    Ok(())
}

/// The whole tensor (value, gradient, Hessian, `f_d{k}`).
pub(crate) fn full(b: &mut Body, t: &Tensor) -> Result<Lowered> {
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
pub(crate) fn scattered(b: &mut Body, t: &Tensor) -> Result<Lowered> {
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
        // Blocks with the same size and atoms (at a common index) are
        // interchangeable.
        let signature = |blk: &crate::sym::Block| {
            let atoms: Vec<(Poly, crate::ir::Real)> = blk
                .atoms
                .iter()
                .map(|f| (f.atom.rename(blk.rep, SIGNATURE_IX), f.exp))
                .collect();
            (blk.wrt_count, atoms)
        };
        let sigs: Vec<_> = c.blocks.iter().map(signature).collect();
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


//! Expressions: the loop IR's scalars printed as Rust, with the fewest
//! parentheses, numbers in the kernel's float type, and `powi`, `sqrt`,
//! the runtime helpers' calls.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use super::{Emitter, POSTFIX, PRODUCT, SUM, UNARY};
use crate::codegen::loops::{Array, Scalar};
use crate::codegen::Float;
use crate::ir::Fun;

impl Emitter<'_> {
    pub(super) fn num(&self, c: f64) -> TokenStream {
        if !c.is_finite() {
            // Constant folding can overflow (`1e308 * 10`) or leave the
            // domain (`sqrt(-1)`): name the value, there is no literal.
            let ty = self.ty();
            return match (c.is_nan(), c > 0.0) {
                (true, _) => quote!(#ty::NAN),
                (false, true) => quote!(#ty::INFINITY),
                (false, false) => quote!(#ty::NEG_INFINITY),
            };
        }
        let l = match self.names.float {
            Float::F64 => Literal::f64_unsuffixed(c.abs()),
            Float::F32 => Literal::f32_unsuffixed(c.abs() as f32),
        };
        if c < 0.0 {
            quote!(-#l)
        } else {
            quote!(#l)
        }
    }

    /// `a` as the receiver of a method call: a literal gets its type
    /// suffix (`2.0_f64.ln()`; a bare `2.0.ln()` is ambiguous to rustc).
    pub(super) fn receiver(&self, a: &Scalar) -> TokenStream {
        let fixed = match a {
            Scalar::Num(c) => Some(*c),
            Scalar::Dim(d) => self.fixed(d).map(|k| k as f64),
            _ => None,
        };
        match fixed {
            Some(c) if c.is_finite() => {
                let l = match self.names.float {
                    Float::F64 => Literal::f64_suffixed(c.abs()),
                    Float::F32 => Literal::f32_suffixed(c.abs() as f32),
                };
                if c < 0.0 {
                    quote!((-#l))
                } else {
                    quote!(#l)
                }
            }
            _ => self.at(a, POSTFIX),
        }
    }

    /// An expression at precedence at least `need`.
    pub(super) fn at(&self, x: &Scalar, need: u8) -> TokenStream {
        let (t, level) = self.expr(x);
        if level < need {
            quote!((#t))
        } else {
            t
        }
    }

    /// An expression and its precedence level.
    pub fn expr(&self, x: &Scalar) -> (TokenStream, u8) {
        let ty = self.ty();
        match x {
            Scalar::Num(c) => (
                self.num(*c),
                if *c < 0.0 || c.is_nan() {
                    UNARY
                } else {
                    POSTFIX
                },
            ),
            Scalar::Temp(t) => {
                let n = &self.temp_names[t.0];
                (quote!(#n), POSTFIX)
            }
            Scalar::Load(a) => match a.array {
                Array::Temp(t) if self.wide(t) => {
                    let x = self.access(a);
                    (quote!((#x as f32)), POSTFIX)
                }
                _ => (self.access(a), POSTFIX),
            },
            Scalar::Dim(d) => match self.fixed(d) {
                Some(k) => (self.num(k as f64), POSTFIX),
                None => {
                    let d = self.dim(d);
                    (quote!((#d as #ty)), POSTFIX)
                }
            },
            Scalar::Sum(xs) => {
                let mut out = TokenStream::new();
                // A positive term first reads better: `s·p − q`, not `−q + s·p`.
                let mut xs = xs.clone();
                if let Some(k) = xs.iter().position(|y| !split_sign(y).0) {
                    let first = xs.remove(k);
                    xs.insert(0, first);
                }
                for (k, y) in xs.iter().enumerate() {
                    let (neg, body) = split_sign(y);
                    let t = self.at(&body, if k == 0 && !neg { SUM } else { PRODUCT });
                    out.extend(match (k, neg) {
                        (0, false) => t,
                        (0, true) => {
                            let t = self.at(&body, UNARY);
                            quote!(-#t)
                        }
                        (_, false) => quote!(+ #t),
                        (_, true) => quote!(- #t),
                    });
                }
                (out, SUM)
            }
            Scalar::Sub(a, b) => {
                let (a, b) = (self.at(a, SUM), self.at(b, PRODUCT));
                (quote!(#a - #b), SUM)
            }
            Scalar::Product(xs) => {
                let mut out = TokenStream::new();
                for (k, y) in xs.iter().enumerate() {
                    match (k, y) {
                        (0, Scalar::Recip(r)) => {
                            let one = self.num(1.0);
                            let r = self.at(r, UNARY);
                            out.extend(quote!(#one / #r));
                        }
                        (_, Scalar::Recip(r)) => {
                            let r = self.at(r, UNARY);
                            out.extend(quote!(/ #r));
                        }
                        (0, _) => out.extend(self.at(y, UNARY)),
                        _ => {
                            let t = self.at(y, UNARY);
                            out.extend(quote!(* #t));
                        }
                    }
                }
                (out, PRODUCT)
            }
            Scalar::Neg(a) => {
                let a = self.at(a, UNARY);
                (quote!(-#a), UNARY)
            }
            Scalar::Recip(a) => {
                let one = self.num(1.0);
                let a = self.at(a, UNARY);
                (quote!(#one / #a), PRODUCT)
            }
            Scalar::Powi(a, k) => {
                let a = self.receiver(a);
                let k = Literal::i32_unsuffixed(*k);
                (quote!(#a.powi(#k)), POSTFIX)
            }
            Scalar::Powf(a, b) => {
                let a = self.receiver(a);
                let b = self.at(b, SUM);
                (quote!(#a.powf(#b)), POSTFIX)
            }
            Scalar::Sqrt(a) => {
                let a = self.receiver(a);
                (quote!(#a.sqrt()), POSTFIX)
            }
            Scalar::Ln(a) => {
                let a = self.receiver(a);
                (quote!(#a.ln()), POSTFIX)
            }
            Scalar::ExpShifted(a) => {
                let f = self.helper("exp_shifted");
                let a = self.at(a, SUM);
                (quote!(#f::<FMA>(#a)), POSTFIX)
            }
            Scalar::Call(f, a) => {
                let method = |m: &str| {
                    let m = format_ident!("{}", m);
                    let a = self.receiver(a);
                    (quote!(#a.#m()), POSTFIX)
                };
                let helper = |h: &str| {
                    let h = self.helper(h);
                    let a = self.at(a, SUM);
                    (quote!(#h::<FMA>(#a)), POSTFIX)
                };
                match f {
                    Fun::Exp => helper("exp"),
                    Fun::Sigmoid => helper("sigmoid"),
                    Fun::Softplus => helper("softplus"),
                    Fun::Log => method("ln"),
                    Fun::Sin => method("sin"),
                    Fun::Cos => method("cos"),
                    Fun::Tanh => method("tanh"),
                }
            }
            Scalar::Delta(a, b) => {
                let (a, b) = (Self::var(*a), Self::var(*b));
                let (one, zero) = (self.num(1.0), self.num(0.0));
                (quote!((if #a == #b { #one } else { #zero })), POSTFIX)
            }
        }
    }
}

/// A term's sign, for printing `a - b` rather than `a + -b`.
pub(super) fn split_sign(x: &Scalar) -> (bool, Scalar) {
    match x {
        Scalar::Neg(a) => (true, (**a).clone()),
        Scalar::Num(c) if *c < 0.0 => (true, Scalar::Num(-c)),
        Scalar::Product(fs) => match fs.first() {
            Some(Scalar::Num(c)) if *c < 0.0 => {
                let mut fs = fs.clone();
                if *c == -1.0 {
                    fs.remove(0);
                } else {
                    fs[0] = Scalar::Num(-c);
                }
                (
                    true,
                    if fs.len() == 1 {
                        fs.pop().unwrap()
                    } else {
                        Scalar::Product(fs)
                    },
                )
            }
            _ => (false, x.clone()),
        },
        _ => (false, x.clone()),
    }
}

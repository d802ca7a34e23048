//! What the kernel tests share: a reproducible generator and `eval`
//! through the library.
#![allow(dead_code)]

/// A small deterministic generator (xorshift), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
    /// `n` uniform numbers.
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
    /// Logits of one of several scales, up to ±1e4.
    pub fn logits(&mut self, n: usize) -> Vec<f64> {
        let scale = [1.0, 5.0, 50.0, 1e3, 1e4][(self.next() * 5.0) as usize % 5];
        self.vec(n, -scale, scale)
    }
}

/// symdiff's `eval` of `expr` at order `order` (wrt the default or
/// `wrt`) at the point `at` (`--at` syntax), through the library.
pub fn eval(expr: &str, order: usize, wrt: Option<&str>, at: &str) -> Vec<f64> {
    let bindings = symdiff::eval::parse_point(at).unwrap();
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    let d = symdiff::derive(&req).unwrap();
    let point = symdiff::eval::bind(d.typed(), &bindings).unwrap();
    symdiff::eval::evaluate(d.tensor(), &point).unwrap()
}
pub mod programs;

//! Newton iterations to fit a leaf's class scores: the exact Hessian
//! (`xent_newton`, O(n)) against the diagonal bound (`xent_hessian_diag`).
//! Run: `cargo run --release -p symdiff-example --example newton`.

use symdiff_example::newton;

fn main() {
    let q = newton::counts();
    let (lambda, tol) = (1e-3, 1e-9);
    println!("class counts {q:?}, λ = {lambda}, stop when |gradient| < {tol}");
    let (it, loss) = newton::exact(&q, lambda, tol, 10_000);
    println!("exact Hessian (xent_newton):       {it:>5} iterations, loss {loss:.12}");
    let (it, loss) = newton::diagonal(&q, lambda, tol, 10_000_000);
    println!("diagonal bound (xent_hessian_diag): {it:>5} iterations, loss {loss:.12}");
}

//! Exact values of xent's derivatives at z = (1, 1, 1), q = (1, 0, 0),
//! where p = 1/3: rationals printed by a Mathematica session.

use std::collections::BTreeSet;

fn eval(expr: &str, at: &str, order: usize) -> Vec<f64> {
    let program = symdiff::parse::parse_program(expr).unwrap();
    let typed = symdiff::shape::check_with_hints(&program, &[]).unwrap();
    let point = symdiff::eval::bind(&typed, &symdiff::eval::parse_point(at).unwrap()).unwrap();
    let d = symdiff::derive(&symdiff::Request::new(expr, order)).unwrap();
    symdiff::eval::evaluate(d.tensor(), &point).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 * b.abs().max(1.0)
}

#[test]
fn xent_at_the_uniform_point_matches_exact_rationals() {
    let at = "z=[1,1,1]; q=[1,0,0]";
    let o2 = eval("xent(z,q)", at, 2);
    assert!(
        close(o2[0], 2.0 / 9.0) && close(o2[1], -1.0 / 9.0),
        "{o2:?}"
    );
    let o3 = eval("xent(z,q)", at, 3);
    assert!(
        close(o3[0], 2.0 / 27.0) && close(o3[1], -1.0 / 27.0),
        "{:?}",
        &o3[..3]
    );
    let o10 = eval("xent(z,q)", at, 10);
    assert_eq!(o10.len(), 59049);
    assert!(close(o10[0], -2518.0 / 729.0), "{}", o10[0]);
    assert!(close(o10[1], 1259.0 / 729.0), "{}", o10[1]);
    let distinct: BTreeSet<i64> = o10
        .iter()
        .map(|v| (v * 729.0 * 3f64.powi(8)).round() as i64)
        .collect();
    assert_eq!(distinct.len(), 14);
}

#[test]
fn every_order_up_to_ten_is_finite() {
    for k in 2..=10 {
        let v = eval("xent(z,q)", "z=[1,1,1]; q=[1,0,0]", k);
        assert!(v.iter().all(|x| x.is_finite()), "order {k}");
    }
}

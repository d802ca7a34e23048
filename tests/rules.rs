//! One test per rule, in the style of egg's `test_fn!`: an expression
//! (derived at order 0, so only simplification acts on it) and the index
//! form it must print. Rules over n-ary products are tested with extra
//! factors, which fixed-arity patterns would not see.

fn index_form(expr: &str) -> String {
    let d = symdiff::derive(&symdiff::Request::new(expr, 0)).unwrap();
    let (text, _) = d.report(symdiff::Syntax::Text, symdiff::Limits::default());
    text.lines()
        .find_map(|l| l.strip_prefix("index form:"))
        .unwrap_or_else(|| panic!("no index form in:\n{text}"))
        .trim()
        .to_string()
}

macro_rules! rule_test {
    ($name:ident, $input:expr => $expected:expr) => {
        #[test]
        fn $name() {
            assert_eq!(index_form($input), $expected, "{}", $input);
        }
    };
}

rule_test!(softmax_from_exp_ratio, "exp(z)/sum(exp(z))" => "p_i");
rule_test!(softmax_from_exp_ratio_with_a_coefficient, "2*exp(z)/sum(exp(z))" => "2 p_i");
rule_test!(softmax_from_exp_ratio_with_other_factors, "exp(z)*c/sum(exp(z))" => "c_i p_i");
rule_test!(softmax_sum_to_one, "sum(softmax(z))" => "1");
rule_test!(logexp_log_of_exp, "log(exp(x))" => "x");

/// The point of the n-ary match: the ratio with a coefficient is a
/// softmax, so it evaluates stably where exp(1000) overflows.
#[test]
fn a_scaled_exp_ratio_evaluates_at_large_logits() {
    let e = symdiff::eval::run("2*exp(z)/sum(exp(z))", "z=[1000,0]", 0, None).unwrap();
    assert_eq!(e.values, vec![2.0, 0.0]);
}

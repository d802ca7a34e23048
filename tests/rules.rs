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

// Identities over whole sums and quotients (`ratfun`, `rules/logistic.rs`,
// `rules/trig.rs`), and the printed form (`compact`).
rule_test!(ratfun_cancel_a_common_factor, "(x^2 - 1)/(x - 1)" => "1 + x");
rule_test!(ratfun_square_free_denominator, "1/(1 + 2*x + x^2)" => "1/(1 + x)^2");
rule_test!(ratfun_sigmoid_from_exp, "exp(x)/(1 + exp(x))" => "sigmoid(x)");
rule_test!(ratfun_sigmoid_from_exp_of_negative, "1/(1 + exp(-x))" => "sigmoid(x)");
rule_test!(ratfun_tanh_from_exp, "(exp(2*x) - 1)/(exp(2*x) + 1)" => "tanh(x)");
rule_test!(ratfun_tanh_from_exp_of_both_signs, "(exp(x) - exp(-x))/(exp(x) + exp(-x))" => "tanh(x)");
rule_test!(logistic_sigmoid_of_negative, "sigmoid(x) + sigmoid(-x)" => "1");
rule_test!(logistic_softplus_of_negative, "softplus(x) - softplus(-x)" => "x");
rule_test!(logexp_exp_of_log, "exp(log(x))" => "x");
rule_test!(trig_pythagoras, "sin(x)^2 + cos(x)^2" => "1");
rule_test!(trig_double_angle_cos, "cos(x)^2 - sin(x)^2" => "cos(2·x)");
rule_test!(trig_double_angle_sin, "2*sin(x)*cos(x)" => "sin(2·x)");
rule_test!(powers_of_one_base_merge, "sqrt(x)/x" => "1/sqrt(x)");
rule_test!(exact_coefficients, "3*x/8" => "3/8·x");
rule_test!(floats_the_user_typed_stay_floats, "0.7978845608*x/2" => "0.3989422804·x");
rule_test!(binomial_square_in_a_sum, "s^2 - mu^2 + 2*mu*x - x^2" => "s^2 − (mu − x)^2");

/// The condition of a rule that holds on part of the domain is reported.
#[test]
fn exp_of_log_states_its_condition() {
    let d = symdiff::derive(&symdiff::Request::new("exp(log(x))", 1)).unwrap();
    assert_eq!(d.conditions.len(), 1);
    let (text, _) = d.report(symdiff::Syntax::Text, symdiff::Limits::default());
    assert!(
        text.contains("valid where: exp(log(u)) = u holds where log(u) is defined: u > 0"),
        "{text}"
    );
}

//! Logarithms and exponentials.

use egg::rewrite as rw;

use super::Rule;

/// The rules of this domain.
pub fn rules() -> Vec<Rule> {
    vec![
        // log(exp(x)) = x, for every real x.
        rw!("logexp-log-of-exp"; "(log (exp ?x))" => "?x"),
        // log Σ_k exp(b_k) = logsumexp_k(b): the stable form, evaluated with
        // a max shift.
        rw!("logexp-log-sum-exp"; "(log (sum ?k ?n (exp ?b)))" => "(lse ?k ?n ?b)"),
        // exp(log(x)) = x, where log(x) is defined (x > 0); the derivation
        // reports the condition when this rule fires.
        rw!("logexp-exp-of-log"; "(exp (log ?x))" => "?x"),
        // exp(logsumexp_k(b)) = Σ_k exp(b_k)
        rw!("logexp-exp-of-lse"; "(exp (lse ?k ?n ?b))" => "(sum ?k ?n (exp ?b))"),
    ]
}

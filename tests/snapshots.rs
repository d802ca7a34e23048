//! `derive` output and error reports as insta snapshots in `snapshots/`,
//! reviewed like code (`cargo insta review`).

fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    s
}

fn derive(expr: &str, order: usize, wrt: Option<&str>, assume: &[&str]) -> String {
    let mut req = symdiff::Request::new(expr, order);
    req.wrt = wrt.map(str::to_string);
    req.assume = assume
        .iter()
        .map(|a| symdiff::Fact::parse(a).unwrap())
        .collect();
    match symdiff::derive(&req) {
        Ok(d) => d.report(symdiff::Syntax::Text, req.limits).0,
        Err(e) => e.render(expr, None),
    }
}

macro_rules! snap {
    ($name:ident, $expr:expr, $order:expr) => {
        snap!($name, $expr, $order, None, &[]);
    };
    ($name:ident, $expr:expr, $order:expr, $wrt:expr, $assume:expr) => {
        #[test]
        fn $name() {
            settings().bind(|| {
                insta::with_settings!({ description => format!("derive {:?} --order {}", $expr, $order) }, {
                    insta::assert_snapshot!(stringify!($name), derive($expr, $order, $wrt, $assume));
                });
            });
        }
    };
}

snap!(xent_order_1, "xent(z,q)", 1);
snap!(
    xent_order_1_sum_q_is_one,
    "xent(z,q)",
    1,
    None,
    &["sum(q)=1"]
);
snap!(xent_order_2, "xent(z,q)", 2);
snap!(xent_order_3, "xent(z,q)", 3);
snap!(xent_order_4, "xent(z,q)", 4);
snap!(xent_order_10, "xent(z,q)", 10);
snap!(softmax_order_1, "softmax(z)", 1);
snap!(log_softmax_order_1, "log_softmax(z)", 1);
snap!(logsumexp_order_2, "logsumexp(z)", 2);
snap!(sigmoid_order_2, "sigmoid(x)", 2);
snap!(tanh_order_2, "tanh(x)", 2);
snap!(softplus_order_2, "softplus(x)", 2);
snap!(
    def_nll_order_2,
    "def nll(z, y) = -dot(y, log_softmax(z)); nll(z, y) + 0.01 * dot(z, z)",
    2
);
snap!(softmax_by_hand_order_0, "exp(z) / sum(exp(z))", 0);
snap!(error_unknown_function, "softmin(z)", 1);
snap!(error_shape_conflict, "z: vec[3]; q: vec[4]; xent(z, q)", 1);
snap!(error_recursion, "def f(x) = f(x); f(z)", 1);
snap!(error_syntax, "xent(z, q", 1);

/// The module `symdiff codegen` prints.
fn codegen(
    expr: &str,
    name: &str,
    order: usize,
    wrt: Option<&str>,
    dims: &[(&str, usize)],
    float: symdiff::Float,
) -> String {
    let mut spec = symdiff::codegen::KernelSpec::new(name, expr);
    spec.order = order;
    spec.wrt = wrt.map(str::to_string);
    spec.dims = dims.iter().map(|(n, v)| (n.to_string(), *v)).collect();
    spec.float = float;
    match symdiff::codegen::module(
        std::slice::from_ref(&spec),
        &symdiff::codegen::command_line(&spec),
    ) {
        Ok(text) => text,
        Err(e) => e.render(expr, None),
    }
}

macro_rules! snap_code {
    ($name:ident, $expr:expr, $kernel:expr, $order:expr) => {
        snap_code!($name, $expr, $kernel, $order, None, &[], symdiff::Float::F64);
    };
    ($name:ident, $expr:expr, $kernel:expr, $order:expr, $wrt:expr, $dims:expr, $float:expr) => {
        #[test]
        fn $name() {
            settings().bind(|| {
                insta::with_settings!({ description => format!("codegen {:?} --name {} --order {}", $expr, $kernel, $order) }, {
                    insta::assert_snapshot!(stringify!($name), codegen($expr, $kernel, $order, $wrt, $dims, $float));
                });
            });
        }
    };
}

snap_code!(codegen_xent_order_2, "xent(z, q)", "xent", 2);
snap_code!(codegen_softmax_order_1, "softmax(z)", "softmax", 1);
snap_code!(
    codegen_def_nll_order_1,
    "def nll(z, y) = -dot(y, log_softmax(z)); nll(z, y) + 0.01 * dot(z, z)",
    "nll",
    1
);
snap_code!(
    codegen_xent_dim_8_f32,
    "xent(z, q)",
    "xent8",
    1,
    None,
    &[("n", 8)],
    symdiff::Float::F32
);
snap_code!(
    codegen_batched_xent,
    "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
    "batched_xent",
    1
);
snap_code!(
    codegen_linear_classifier_wrt_w,
    "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m",
    "linear",
    1,
    Some("W"),
    &[],
    symdiff::Float::F64
);
snap_code!(
    codegen_error_bad_dim,
    "xent(z, q)",
    "xent",
    1,
    None,
    &[("k", 8)],
    symdiff::Float::F64
);

const CLASSIFIER: &str =
    "X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m";
snap!(classifier_wrt_w_order_1, CLASSIFIER, 1, Some("W"), &[]);
snap!(
    classifier_wrt_w_order_1_onehot,
    CLASSIFIER,
    1,
    Some("W"),
    &["onehot(Y)"]
);
snap!(
    classifier_wrt_w_order_2,
    CLASSIFIER,
    2,
    Some("W"),
    &["onehot(Y)"]
);
snap!(
    classifier_wrt_b_order_1,
    CLASSIFIER,
    1,
    Some("b"),
    &["onehot(Y)"]
);
snap!(
    classifier_wrt_b_order_2,
    CLASSIFIER,
    2,
    Some("b"),
    &["onehot(Y)"]
);
snap!(
    classifier_wrt_x_order_1,
    CLASSIFIER,
    1,
    Some("X"),
    &["onehot(Y)"]
);
snap!(
    classifier_wrt_x_order_2,
    CLASSIFIER,
    2,
    Some("X"),
    &["onehot(Y)"]
);
snap!(softmax_matrix_jacobian, "Z: mat[m, n]; softmax(Z)", 1);
snap!(
    batched_xent_order_1,
    "Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m",
    1
);

// Matrix forms of the layers people write (merged row sums, elementwise
// row weights): least squares, logistic regression with an L2 term, a
// tanh and a sigmoid layer.
const LEAST_SQUARES: &str = "X: mat[m, d]; w: vec[d]; y: vec[m]; sum((X @ w - y)^2)/m";
const LOGISTIC: &str =
    "X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y-1) * (X @ w)))/m + 0.0005*dot(w,w)";
snap!(least_squares_order_1, LEAST_SQUARES, 1, Some("w"), &[]);
snap!(least_squares_order_2, LEAST_SQUARES, 2, Some("w"), &[]);
snap!(logistic_regression_order_1, LOGISTIC, 1, Some("w"), &[]);
snap!(logistic_regression_order_2, LOGISTIC, 2, Some("w"), &[]);
snap!(
    tanh_layer_order_2,
    "X: mat[m, d]; w: vec[d]; sum(tanh(X @ w))",
    2,
    Some("w"),
    &[]
);
snap!(
    sigmoid_layer_order_2,
    "X: mat[m, d]; w: vec[d]; sum(sigmoid(X @ w))",
    2,
    Some("w"),
    &[]
);

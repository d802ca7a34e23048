//! Codegen parity: every expression `eval` accepts compiles, and its
//! order-K kernel agrees with `eval` at the same point.
//!
//! The cases are every value case of the shared oracle corpus
//! (`../shared/oracle/public.json`, when it is there) and `PARITY_CASES`
//! (default 2000) random programs of the whole language — scalars, vectors
//! and matrices, orders 0–4 — from a fixed seed (`PARITY_SEED`). Each
//! accepted case is generated (only its order-K functions), all modules
//! are compiled by `rustc` into one program that prints every kernel's
//! output, and each output is compared with `eval` to 1e-9, relative to the
//! largest entry of the tensor. A failing random case is shrunk (subtrees
//! replaced by their children, lower orders; each round compiled as one
//! batch) and the smallest failing program is reported with the command
//! that reproduces it.

mod common;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::programs::Case;
use common::Rng;
use symdiff::eval::Value;

/// One kernel to check: program, point, variable, order.
#[derive(Clone, Debug)]
struct Check {
    label: String,
    program: String,
    at: String,
    wrt: Option<String>,
    order: usize,
}

/// What happened to one check before compiling.
enum Prepared {
    /// `eval` refused it: nothing to compare.
    Refused,
    /// `eval` accepted it but codegen did not (a parity failure).
    CodegenFailed(String),
    /// Ready: the module, the call that fills `out`, and eval's values.
    Ready {
        module: String,
        call: String,
        expected: Vec<f64>,
    },
}

fn prepare(k: usize, c: &Check) -> Prepared {
    let Ok(ev) = symdiff::eval::run(&c.program, &c.at, c.order, c.wrt.as_deref()) else {
        return Prepared::Refused;
    };
    let name = format!("k{k}");
    let mut spec = symdiff::codegen::KernelSpec::new(&name, &c.program);
    spec.order = c.order;
    spec.min_order = c.order;
    spec.wrt = Some(ev.wrt.clone());
    let module = match symdiff::codegen::module(&[spec], "parity") {
        Ok(m) => m,
        Err(e) => return Prepared::CodegenFailed(e.render(&c.program, None)),
    };
    let function = match c.order {
        0 => name.clone(),
        1 => format!("{name}_grad"),
        2 => format!("{name}_hessian"),
        k => format!("{name}_d{k}"),
    };
    match call(&module, &function, &format!("m{k}"), c, &ev) {
        Ok(call) => Prepared::Ready {
            module,
            call,
            expected: ev.values,
        },
        Err(e) => Prepared::CodegenFailed(e),
    }
}

/// The call of `function` with the point's data, as Rust source that
/// evaluates to the output `Vec<f64>`; the parameters are read off the
/// generated signature (lengths by name, inputs in order of appearance).
fn call(
    module: &str,
    function: &str,
    path: &str,
    c: &Check,
    ev: &symdiff::eval::Evaluation,
) -> Result<String, String> {
    let file =
        syn::parse_file(module).map_err(|e| format!("generated code does not parse: {e}"))?;
    let sig = file
        .items
        .iter()
        .find_map(|item| match item {
            syn::Item::Fn(f) if f.sig.ident == function => Some(f.sig.clone()),
            _ => None,
        })
        .ok_or_else(|| format!("no function `{function}` in the generated module"))?;
    let bindings = symdiff::eval::parse_point(&c.at).map_err(|e| e.message)?;
    let program = symdiff::parse::parse_program(&c.program).map_err(|e| e.message)?;
    let hints = symdiff::eval::shape_hints(&bindings);
    let typed = symdiff::shape::check_with_hints(&program, &hints).map_err(|e| e.message)?;
    // Sizes of the symbolic dimensions, from the data.
    let mut sizes: HashMap<String, usize> = HashMap::new();
    let mut data: Vec<(Vec<f64>, bool)> = Vec::new();
    for (name, shape) in &typed.vars {
        let b = bindings.iter().find(|b| b.name == *name).ok_or("unbound")?;
        let (dims, values) = match &b.value {
            Value::Scalar(v) => (vec![], vec![*v]),
            Value::Vec(v) => (vec![v.len()], v.clone()),
            Value::Mat(cols, v) => (vec![v.len() / cols, *cols], v.clone()),
        };
        for (d, len) in shape.dims().iter().zip(&dims) {
            sizes.insert(d.to_string(), *len);
        }
        data.push((values, dims.is_empty()));
    }
    let list = |xs: &[f64]| {
        let items: Vec<String> = xs
            .iter()
            .map(|x| format!("f64::from_bits({:#x})", x.to_bits()))
            .collect();
        format!("[{}]", items.join(", "))
    };
    let out_len: usize = ev.shape.iter().product();
    let mut args = Vec::new();
    let mut next_input = 0;
    let mut returns_out = false;
    for input in &sig.inputs {
        let syn::FnArg::Typed(pt) = input else {
            return Err("a receiver in a kernel".into());
        };
        let syn::Pat::Ident(id) = &*pt.pat else {
            return Err("a pattern parameter".into());
        };
        let name = id.ident.to_string();
        let ty = quote::ToTokens::to_token_stream(&*pt.ty).to_string();
        match ty.as_str() {
            "usize" => args.push(format!(
                "{}",
                sizes
                    .get(&name)
                    .ok_or(format!("no size for parameter `{name}`"))?
            )),
            "& mut [f64]" => {
                args.push("&mut out".into());
                returns_out = true;
            }
            "f64" | "& [f64]" => {
                let (values, scalar) = data.get(next_input).ok_or("more inputs than variables")?;
                next_input += 1;
                if *scalar != (ty == "f64") {
                    return Err(format!(
                        "parameter `{name}: {ty}` for a {} value",
                        if *scalar { "scalar" } else { "tensor" }
                    ));
                }
                args.push(if *scalar {
                    format!("f64::from_bits({:#x})", values[0].to_bits())
                } else {
                    format!("&{}", list(values))
                });
            }
            other => return Err(format!("parameter `{name}` has type `{other}`")),
        }
    }
    let args = args.join(", ");
    Ok(if returns_out {
        format!("{{ let mut out = vec![0.0f64; {out_len}]; {path}::{function}({args}); out }}")
    } else {
        format!("{{ vec![{path}::{function}({args})] }}")
    })
}

/// Compiles the ready checks into one program, runs it, and returns each
/// one's output (by position in `ready`).
fn run_compiled(dir: &Path, ready: &[(usize, String, String)]) -> Result<Vec<Vec<f64>>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut main = String::from("#![allow(clippy::all, unused)]\n");
    for (k, module, _) in ready {
        let file = format!("m{k}.rs");
        std::fs::write(dir.join(&file), module).map_err(|e| e.to_string())?;
        writeln!(main, "mod m{k} {{ include!(\"{file}\"); }}").unwrap();
    }
    main.push_str("fn main() {\n");
    for (k, _, call) in ready {
        writeln!(
            main,
            "    {{ let v: Vec<f64> = {call}; let bits: Vec<String> = v.iter().map(|x| format!(\"{{:x}}\", x.to_bits())).collect(); println!(\"{k} {{}}\", bits.join(\" \")); }}"
        )
        .unwrap();
    }
    main.push_str("}\n");
    std::fs::write(dir.join("main.rs"), main).map_err(|e| e.to_string())?;
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let bin = dir.join("parity_bin");
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-C",
            "opt-level=0",
            "-C",
            "debuginfo=0",
            "-C",
            "codegen-units=16",
            "-o",
        ])
        .arg(&bin)
        .arg(dir.join("main.rs"))
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the generated kernels do not compile:\n{}",
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(4000)
                .collect::<String>()
        ));
    }
    let run = Command::new(&bin).output().map_err(|e| e.to_string())?;
    if !run.status.success() {
        return Err(format!(
            "the compiled kernels failed:\n{}",
            String::from_utf8_lossy(&run.stderr)
                .chars()
                .take(4000)
                .collect::<String>()
        ));
    }
    let mut results: HashMap<usize, Vec<f64>> = HashMap::new();
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        let mut words = line.split_whitespace();
        let k: usize = words.next().unwrap().parse().unwrap();
        let values = words
            .map(|w| f64::from_bits(u64::from_str_radix(w, 16).unwrap()))
            .collect();
        results.insert(k, values);
    }
    Ok(ready
        .iter()
        .map(|(k, _, _)| results.remove(k).unwrap_or_default())
        .collect())
}

/// Whether kernel output `got` agrees with `eval`'s `want`: every entry
/// within 1e-9 of the largest entry's magnitude (or of itself), and 1e-12
/// absolutely (an identically zero derivative, such as that of
/// `logsumexp(log_softmax(x)) = 0`, is rounding noise in one and exact in
/// the other; the points have entries of order one).
fn agrees(got: &[f64], want: &[f64]) -> bool {
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= 1e-9 * scale.max(w.abs()) + 1e-12)
}

/// Checks a batch; returns the failures (label, what went wrong).
fn check_batch(dir: &Path, checks: &[Check]) -> (Vec<(usize, String)>, usize, usize) {
    let mut failures = Vec::new();
    let mut ready = Vec::new();
    let mut expected = Vec::new();
    let mut refused = 0;
    for (k, c) in checks.iter().enumerate() {
        match prepare(k, c) {
            Prepared::Refused => refused += 1,
            Prepared::CodegenFailed(e) => {
                failures.push((k, format!("eval accepts it, codegen fails: {e}")))
            }
            Prepared::Ready {
                module,
                call,
                expected: want,
            } => {
                ready.push((k, module, call));
                expected.push(want);
            }
        }
    }
    let compile = std::time::Instant::now();
    let compiled = run_compiled(dir, &ready);
    if ready.len() > 100 {
        eprintln!(
            "parity: compiled and ran {} kernels in {:.1?}",
            ready.len(),
            compile.elapsed()
        );
    }
    match compiled {
        Err(e) => {
            // One bad module spoils the batch: find it by compiling each.
            if ready.len() == 1 {
                failures.push((ready[0].0, e));
            } else {
                for (i, r) in ready.iter().enumerate() {
                    let (fails, _, _) =
                        check_batch(&dir.join(format!("one{i}")), &[checks[r.0].clone()]);
                    failures.extend(fails.into_iter().map(|(_, e)| (r.0, e)));
                }
            }
        }
        Ok(outputs) => {
            for ((k, _, _), (got, want)) in ready.iter().zip(outputs.iter().zip(&expected)) {
                if !agrees(got, want) {
                    failures.push((*k, format!("kernel {got:?}\n      eval   {want:?}")));
                }
            }
        }
    }
    (failures, refused, ready.len())
}

fn oracle_checks() -> Vec<Check> {
    let shared = std::env::var("SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let Ok(text) = std::fs::read_to_string(shared.join("oracle/public.json")) else {
        eprintln!(
            "note: no oracle corpus at {}; only generated cases",
            shared.display()
        );
        return Vec::new();
    };
    let cases: Vec<serde_json::Value> = serde_json::from_str(&text).expect("oracle JSON");
    cases
        .iter()
        .map(|c| Check {
            label: c["id"].as_str().unwrap().to_string(),
            program: c["expr"].as_str().unwrap().to_string(),
            at: c["at"].as_str().unwrap().to_string(),
            wrt: c["wrt"].as_str().map(str::to_string),
            order: c["order"].as_u64().unwrap() as usize,
        })
        .collect()
}

fn random_check(case: &Case, label: String) -> Check {
    Check {
        label,
        program: case.program(),
        at: case.point(),
        wrt: Some(case.wrt.to_string()),
        order: case.order,
    }
}

/// The smallest failing case reachable from `case` by shrink steps.
fn shrink(dir: &Path, mut case: Case) -> Case {
    for round in 0..40 {
        let candidates = case.shrinks();
        if candidates.is_empty() {
            break;
        }
        let checks: Vec<Check> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| random_check(c, format!("shrink {round}.{i}")))
            .collect();
        let (fails, _, _) = check_batch(&dir.join(format!("shrink{round}")), &checks);
        match fails.first() {
            Some((k, _)) => case = candidates[*k].clone(),
            None => break,
        }
    }
    case
}

#[test]
fn every_kernel_agrees_with_eval() {
    let count: usize = std::env::var("PARITY_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let seed: u64 = std::env::var("PARITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let dir = std::env::temp_dir().join(format!("symdiff-parity-{}", std::process::id()));
    let oracle = oracle_checks();
    let mut rng = Rng(seed);
    let cases: Vec<Case> = (0..count).map(|_| Case::random(&mut rng)).collect();
    let mut checks = oracle.clone();
    checks.extend(
        cases
            .iter()
            .enumerate()
            .map(|(i, c)| random_check(c, format!("random #{i}"))),
    );
    let (failures, refused, compiled) = check_batch(&dir, &checks);
    let generated_compiled = compiled.saturating_sub(oracle.len());
    eprintln!(
        "parity: {} oracle cases, {count} random programs (seed {seed:#x}): {compiled} compiled and compared, {refused} refused by eval, {} failed",
        oracle.len(),
        failures.len()
    );
    let mut report = String::new();
    for (k, why) in failures.iter().take(10) {
        let c = &checks[*k];
        let (c, note) = if *k >= oracle.len() {
            let small = shrink(&dir.join("shrink"), cases[*k - oracle.len()].clone());
            (
                random_check(&small, format!("{} (shrunk)", c.label)),
                "shrunk",
            )
        } else {
            (c.clone(), "oracle")
        };
        writeln!(
            report,
            "\n{} [{note}]: {why}\n  symdiff eval '{}' --at '{}' --order {} --wrt {}",
            c.label,
            c.program,
            c.at,
            c.order,
            c.wrt.as_deref().unwrap_or("-")
        )
        .unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        failures.is_empty(),
        "{} parity failures:{report}",
        failures.len()
    );
    // Most random programs must get through: a generator that only makes
    // refused programs would test nothing.
    assert!(
        generated_compiled * 2 >= count,
        "only {generated_compiled} of {count} random programs were accepted by eval"
    );
}

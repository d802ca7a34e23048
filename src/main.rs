//! The `symdiff` command line: a thin front door onto the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use symdiff::{Fact, Request, Syntax};

#[derive(Parser)]
#[command(
    name = "symdiff",
    version,
    about = "Exact n-th order derivatives in index notation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Latex,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the simplified derivative.
    #[command(after_help = "Examples:
  symdiff derive \"xent(z,q)\" --order 3
  symdiff derive \"xent(z,q)\" --assume \"sum(q)=1\"
  symdiff derive \"X: mat[m, d]; W: mat[d, k]; b: vec[k]; Y: mat[m, k]; xent(X @ W + b, Y) / m\" --wrt W
  symdiff derive \"softmax(z)\" --format latex
  symdiff derive \"xent(z,q)\" --explain
  symdiff derive @model.sd --order 2

`symdiff functions` lists the built-in functions; docs/language.md has the whole language.")]
    Derive {
        /// The expression (program); `-` reads it from standard input,
        /// `@FILE` from a file.
        #[arg(allow_hyphen_values = true)]
        expr: String,
        /// Derivative order; 0 is the expression itself.
        #[arg(long, default_value_t = 1)]
        order: usize,
        /// Variable to differentiate with respect to (default: the first).
        #[arg(long)]
        wrt: Option<String>,
        /// A fact that may be used to simplify: `sum(q)=1`, `onehot(q)`.
        #[arg(long)]
        assume: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Prints e-graph sizes and times to stderr.
        #[arg(long)]
        stats: bool,
        /// Prints the derivation step by step, each step naming the rule
        /// it applied (text, an align* body with --format latex, or the
        /// steps as data with --format json).
        #[arg(long)]
        explain: bool,
    },
    /// Evaluates the derivative at a point and prints JSON.
    #[command(
        after_help = "Prints {\"wrt\", \"order\", \"shape\", \"values\"}: the shape is the value's, then the
shape of the variable once per order (JAX's jacobian convention); values are row-major.

Examples:
  symdiff eval \"xent(z,q)\" --at \"z=[1,2,3]; q=[0.2,0.3,0.5]\" --order 2
  symdiff eval \"sin(u) * u\" --at \"u=[0.1 0.2 1.8]\"
  symdiff eval \"xent(z,q)\" --at @point.txt"
    )]
    Eval {
        /// The expression (program); `-` reads it from standard input,
        /// `@FILE` from a file.
        #[arg(allow_hyphen_values = true)]
        expr: String,
        /// The point: `z=[1,2,3]; q=[0.2,0.3,0.5]`, or `@FILE` to read it
        /// from a file (long vectors exceed the command line's limit).
        #[arg(long)]
        at: String,
        /// Derivative order; 0 is the expression itself.
        #[arg(long, default_value_t = 1)]
        order: usize,
        /// Variable to differentiate with respect to (default: the first).
        #[arg(long)]
        wrt: Option<String>,
    },
    /// Prints a Rust module of kernels: the value and derivatives up to --order.
    #[command(
        after_help = "Functions for --name f and --order K: f (K >= 0); f_grad and f_value_grad (K >= 1);
f_hvp, f_hessian, f_hessian_diag and (diagonal plus rank one Hessians) f_hessian_factor,
f_newton and (singular ones) f_newton_least_norm (K >= 2); f_d{k} and f_d{k}_dir (3 <= k <= K).

Examples:
  symdiff codegen \"xent(z,q)\" --name xent --order 3
  symdiff codegen \"xent(z,q)\" --name xent --dim n=8 --float f32
  symdiff codegen \"Z: mat[m, n]; Y: mat[m, n]; xent(Z, Y) / m\" --name batched"
    )]
    Codegen {
        /// The expression (program); `-` reads it from standard input,
        /// `@FILE` from a file.
        #[arg(allow_hyphen_values = true)]
        expr: String,
        /// Kernel name: functions are `NAME`, `NAME_grad`, `NAME_hvp`, ...
        #[arg(long)]
        name: String,
        /// Highest order emitted.
        #[arg(long, default_value_t = 1)]
        order: usize,
        /// Variable to differentiate with respect to (default: the first).
        #[arg(long)]
        wrt: Option<String>,
        /// Fixes a length at generation time: `--dim n=8` (repeatable).
        #[arg(long, value_parser = parse_dim)]
        dim: Vec<(String, usize)>,
        /// Float type of data and arithmetic.
        #[arg(long, value_enum, default_value_t = FloatArg::F64)]
        float: FloatArg,
    },
    /// States the structure of the Hessian: diagonal plus low rank, Xᵀ D X,
    /// rank, null space, definiteness, a factorization H = SᵀS.
    #[command(after_help = "Examples:
  symdiff analyze \"xent(z,q)\"
  symdiff analyze \"X: mat[m, d]; w: vec[d]; y: vec[m]; sum(softplus(-(2*y-1) * (X @ w)))/m + 0.0005*dot(w,w)\"
  symdiff analyze \"logsumexp(z)\" --format json")]
    Analyze {
        /// The expression (program); `-` reads it from standard input,
        /// `@FILE` from a file.
        #[arg(allow_hyphen_values = true)]
        expr: String,
        /// Variable of the Hessian (default: as for derive).
        #[arg(long)]
        wrt: Option<String>,
        /// Output format: text or json.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Lists the built-in functions with their definitions.
    Functions,
}

#[derive(Clone, Copy, ValueEnum)]
enum FloatArg {
    F64,
    F32,
}

fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=LENGTH, as in n=8"))?;
    let value: usize = value
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a length (a whole number)", value.trim()))?;
    Ok((name.trim().to_string(), value))
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    // A panic is a bug: its message has been printed by the panic hook;
    // say so and exit with a status of its own.
    std::panic::catch_unwind(|| run(cli)).unwrap_or_else(|_| {
        eprintln!("error: internal failure (this is a bug in symdiff)");
        ExitCode::from(3)
    })
}

/// `-` is standard input and `@FILE` a file's text (an expression cannot
/// start with `@`); anything else is the text itself.
fn read_arg(arg: &mut String, what: &str) -> Result<(), String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| format!("cannot read the {what} from standard input: {e}"))?;
        *arg = text;
    } else if let Some(path) = arg.strip_prefix('@') {
        *arg = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the {what} from `{path}`: {e}"))?;
    }
    Ok(())
}

fn run(mut cli: Cli) -> ExitCode {
    let expr = match &mut cli.command {
        Command::Derive { expr, .. }
        | Command::Eval { expr, .. }
        | Command::Analyze { expr, .. }
        | Command::Codegen { expr, .. } => expr,
        Command::Functions => {
            print!("{}", symdiff::FUNCTIONS);
            return ExitCode::SUCCESS;
        }
    };
    if let Err(e) = read_arg(expr, "expression") {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    // `--at @FILE`: the point is the file's text (errors point into it).
    if let Command::Eval { at, .. } = &mut cli.command {
        if let Some(path) = at.strip_prefix('@') {
            match std::fs::read_to_string(path) {
                Ok(text) => *at = text,
                Err(e) => {
                    eprintln!("error: cannot read --at file `{path}`: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let (expr, at) = match &cli.command {
        Command::Derive { expr, .. } => (expr.clone(), None),
        Command::Eval { expr, at, .. } => (expr.clone(), Some(at.clone())),
        Command::Codegen { expr, .. } | Command::Analyze { expr, .. } => (expr.clone(), None),
        Command::Functions => (String::new(), None),
    };
    // The whole command, printing included, runs within one deadline on
    // the library's large-stack worker.
    match symdiff::budget::run(symdiff::budget::DEFAULT_DEADLINE, || execute(cli.command)) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}", e.render_named(&expr, at.as_deref(), "--at"));
            ExitCode::from(2)
        }
    }
}

fn execute(command: Command) -> symdiff::Result<String> {
    match command {
        Command::Functions => Ok(symdiff::FUNCTIONS.to_string()),
        Command::Analyze { expr, wrt, format } => {
            let a = symdiff::analyze::analyze(&expr, wrt.as_deref())?;
            Ok(match format {
                Format::Json => format!("{}\n", serde_json::to_string_pretty(&a.json).unwrap()),
                _ => a.text,
            })
        }
        Command::Codegen {
            expr,
            name,
            order,
            wrt,
            dim,
            float,
        } => {
            let mut spec = symdiff::codegen::KernelSpec::new(&name, &expr);
            spec.order = order;
            spec.wrt = wrt;
            spec.dims = dim;
            spec.float = match float {
                FloatArg::F64 => symdiff::codegen::Float::F64,
                FloatArg::F32 => symdiff::codegen::Float::F32,
            };
            let command = symdiff::codegen::command_line(&spec);
            symdiff::codegen::module(&[spec], &command)
        }
        Command::Derive {
            expr,
            order,
            wrt,
            assume,
            format,
            stats,
            explain,
        } => {
            let mut req = Request::new(&expr, order);
            req.wrt = wrt;
            req.assume = assume
                .iter()
                .map(|a| Fact::parse(a))
                .collect::<symdiff::Result<_>>()?;
            if explain {
                explain_command(&req, format)
            } else {
                derive_command(&req, format, stats)
            }
        }
        Command::Eval {
            expr,
            at,
            order,
            wrt,
        } => Ok(symdiff::eval::run(&expr, &at, order, wrt.as_deref())?.json()),
    }
}

/// `derive --explain`: the steps from the expression to the result.
fn explain_command(req: &Request, format: Format) -> symdiff::Result<String> {
    let e = symdiff::explain::explain(req)?;
    Ok(match format {
        Format::Text => e.text(),
        Format::Latex => e.latex(),
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&e.json()).unwrap()),
    })
}

/// `derive`: the report in `format`; on stderr, a note for every e-graph
/// run a limit stopped, and with `stats` a table of all runs.
fn derive_command(req: &Request, format: Format, stats: bool) -> symdiff::Result<String> {
    let d = symdiff::derive(req)?;
    let (out, display) = match format {
        Format::Text => d.report(Syntax::Text, req.limits),
        Format::Latex => d.report(Syntax::Latex, req.limits),
        Format::Json => {
            let (json, s) = d.json(req.limits);
            (
                format!("{}\n", serde_json::to_string_pretty(&json).unwrap()),
                s,
            )
        }
    };
    let mut all = d.stats.clone();
    all.push(display);
    for s in all.iter().filter(|s| s.hit_limit) {
        eprintln!(
            "note: e-graph run `{}` stopped at its {}; the result is exact but may be less simplified",
            s.pass, s.stop
        );
    }
    if stats {
        print_stats(&all);
    }
    Ok(out)
}

/// `--stats`: one line per e-graph run, on stderr.
fn print_stats(runs: &[symdiff::RunStats]) {
    eprintln!(
        "{:<18} {:>8} {:>8} {:>6} {:>10}  stop / rules fired",
        "pass", "e-nodes", "classes", "iters", "time"
    );
    for s in runs {
        let rules: Vec<String> = s.applied.iter().map(|(n, c)| format!("{n}×{c}")).collect();
        eprintln!(
            "{:<18} {:>8} {:>8} {:>6} {:>8.2}ms  {}; {}",
            s.pass,
            s.nodes,
            s.classes,
            s.iterations,
            s.time.as_secs_f64() * 1e3,
            s.stop,
            if rules.is_empty() {
                "-".to_string()
            } else {
                rules.join(" ")
            }
        );
    }
}

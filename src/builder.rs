//! The build-script API: kernels generated into `OUT_DIR` at build time.
//!
//! Generation (the module text, [`Builder::generate`]) is separate from
//! writing it ([`Builder::write`], [`Builder::write_to_out_dir`]), so a
//! build script can inspect or post-process the code, and a test can check
//! it without touching the file system.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};

use crate::codegen::{format_module, kernel_items, Float, KernelSpec};
use crate::diag::Error;

/// A kernel that could not be generated, or a file that could not be
/// written: the structured diagnostic, with the kernel and its expression
/// so that it can be drawn under the expression (`Display` does).
#[derive(Clone)]
pub struct BuildError {
    /// The kernel concerned (empty for errors about the output file).
    pub kernel: String,
    /// The kernel's expression, which the diagnostic's places point into
    /// (empty when the error is not about one).
    pub expr: String,
    /// What went wrong: message, places in the expression, notes.
    pub error: Error,
}

impl BuildError {
    /// An error with no place in an expression.
    fn plain(kernel: impl Into<String>, message: impl Into<String>) -> BuildError {
        BuildError {
            kernel: kernel.into(),
            expr: String::new(),
            error: Error::new(message),
        }
    }

    /// The one-line summary (without the drawing).
    pub fn message(&self) -> &str {
        &self.error.message
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = if self.expr.is_empty() && self.error.spots.is_empty() {
            let mut m = self.error.message.clone();
            for n in &self.error.notes {
                m.push_str(&format!("\n  = note: {n}"));
            }
            m
        } else {
            self.error.render(&self.expr, None)
        };
        if self.kernel.is_empty() {
            write!(f, "symdiff: {body}")
        } else {
            write!(f, "symdiff kernel `{}`: {body}", self.kernel)
        }
    }
}

/// The same text as `Display`: a build script's `.unwrap()` prints the
/// error with `Debug`, and should show the diagnostic drawn under the
/// expression, not a struct dump on one line.
impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f)?;
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for BuildError {}

/// Generates kernels from a build script.
///
/// Settings ([`orders`](Builder::orders), [`wrt`](Builder::wrt),
/// [`dim`](Builder::dim), [`float`](Builder::float)) apply to the kernel
/// added last; before the first kernel, they set the defaults of the
/// kernels added after them.
///
/// ```no_run
/// // build.rs
/// fn main() {
///     symdiff::Builder::new()
///         .kernel("xent", "xent(z, q)")
///         .orders(0..=3)
///         .write_to_out_dir("kernels.rs")
///         .unwrap();
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Builder {
    defaults: Settings,
    kernels: Vec<Entry>,
    out_dir: Option<PathBuf>,
    /// Files read (for `cargo:rerun-if-changed`).
    read: Vec<PathBuf>,
    /// The first error met while configuring, reported by `generate`.
    error: Option<BuildError>,
}

#[derive(Clone, Debug, Default)]
struct Settings {
    orders: Option<(usize, usize)>,
    wrt: Option<String>,
    dims: Vec<(String, usize)>,
    float: Float,
}

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    expr: String,
    settings: Settings,
}

impl Builder {
    /// A builder with no kernels.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds a kernel: functions `name`, `name_grad`, … for the expression.
    pub fn kernel(mut self, name: &str, expr: &str) -> Builder {
        self.kernels.push(Entry {
            name: name.into(),
            expr: expr.into(),
            settings: self.defaults.clone(),
        });
        self
    }

    /// Adds a kernel whose expression is read from a file (relative to the
    /// package root, where build scripts run). Cargo is told to rerun the
    /// build script when the file changes.
    pub fn kernel_file(mut self, name: &str, path: impl AsRef<Path>) -> Builder {
        let path = path.as_ref();
        match std::fs::read_to_string(path) {
            Ok(expr) => {
                self.read.push(path.to_path_buf());
                self.kernel(name, &expr)
            }
            Err(e) => {
                self.error.get_or_insert(BuildError::plain(
                    name,
                    format!("cannot read {}: {e}", path.display()),
                ));
                self
            }
        }
    }

    fn settings(&mut self) -> &mut Settings {
        match self.kernels.last_mut() {
            Some(k) => &mut k.settings,
            None => &mut self.defaults,
        }
    }

    /// The orders to emit: `0..=3` gives the value, `_grad`, `_hvp`,
    /// `_hessian`, `_d3` and `_d3_dir`. The default is `0..=1`.
    pub fn orders(mut self, range: impl RangeBounds<usize>) -> Builder {
        let lo = match range.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => a + 1,
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&b) => Some(b),
            Bound::Excluded(&b) => b.checked_sub(1),
            Bound::Unbounded => None,
        };
        match hi {
            Some(hi) if hi >= lo => self.settings().orders = Some((lo, hi)),
            _ => {
                let name = self
                    .kernels
                    .last()
                    .map(|k| k.name.clone())
                    .unwrap_or_default();
                self.error.get_or_insert(BuildError::plain(
                    name,
                    "orders must be a bounded, non-empty range such as 0..=3",
                ));
            }
        }
        self
    }

    /// The variable to differentiate with respect to (default: the first).
    pub fn wrt(mut self, var: &str) -> Builder {
        self.settings().wrt = Some(var.into());
        self
    }

    /// Fixes a length at generation time (`dim("n", 8)`): fixed-size
    /// temporaries and loops the compiler can unroll.
    pub fn dim(mut self, name: &str, len: usize) -> Builder {
        self.settings().dims.push((name.into(), len));
        self
    }

    /// The float type (default `f64`).
    pub fn float(mut self, float: Float) -> Builder {
        self.settings().float = float;
        self
    }

    /// Where [`write_to_out_dir`](Builder::write_to_out_dir) writes
    /// (default: the `OUT_DIR` cargo gives build scripts).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.out_dir = Some(dir.into());
        self
    }

    fn specs(&self) -> Vec<(KernelSpec, usize)> {
        self.kernels
            .iter()
            .map(|k| {
                let (lo, hi) = k.settings.orders.unwrap_or((0, 1));
                let spec = KernelSpec {
                    order: hi,
                    wrt: k.settings.wrt.clone(),
                    dims: k.settings.dims.clone(),
                    float: k.settings.float,
                    ..KernelSpec::new(&k.name, &k.expr)
                };
                (spec, lo)
            })
            .collect()
    }

    /// The module text: a header, then every kernel, formatted.
    pub fn generate(&self) -> Result<String, BuildError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let specs = self.specs();
        for (i, k) in self.kernels.iter().enumerate() {
            if self.kernels[..i].iter().any(|o| o.name == k.name) {
                return Err(BuildError::plain(
                    k.name.clone(),
                    "two kernels have this name",
                ));
            }
        }
        let mut all = Vec::new();
        let mut items = proc_macro2::TokenStream::new();
        let mut runtime = String::new();
        for (spec, lo) in &specs {
            let mut s = spec.clone();
            s.min_order = *lo;
            // One by one, so the error names its kernel and points into its expression.
            let (tokens, helpers) = kernel_items(&s).map_err(|e| BuildError {
                kernel: s.name.clone(),
                expr: s.expr.clone(),
                error: e,
            })?;
            items.extend(tokens);
            runtime.push_str(&helpers);
            all.push(s);
        }
        format_module(
            &all,
            items,
            &runtime,
            "symdiff::Builder, from a build script",
        )
        .map_err(|error| BuildError {
            kernel: String::new(),
            expr: String::new(),
            error,
        })
    }

    /// Generates and writes the module to `path` (only when its content
    /// changed, so unchanged kernels do not trigger rebuilds), and tells
    /// cargo about the files it read.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), BuildError> {
        let path = path.as_ref();
        let text = self.generate()?;
        if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(path, text).map_err(|e| {
                BuildError::plain(
                    String::new(),
                    format!("cannot write {}: {e}", path.display()),
                )
            })?;
        }
        for f in &self.read {
            println!("cargo:rerun-if-changed={}", f.display());
        }
        // Inside a build script, the kernels' expressions are in the build
        // script itself (or in the files above): say so, or cargo reruns it
        // after every edit anywhere in the package.
        if std::env::var_os("OUT_DIR").is_some() {
            if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
                let script = Path::new(&dir).join("build.rs");
                if script.exists() {
                    println!("cargo:rerun-if-changed=build.rs");
                }
            }
        }
        Ok(())
    }

    /// Writes the module to `file_name` in the output directory.
    pub fn write_to_out_dir(&self, file_name: &str) -> Result<(), BuildError> {
        let dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR").map(PathBuf::from).ok_or_else(|| BuildError::plain(String::new(), "OUT_DIR is not set: call write_to_out_dir from a build script, or set out_dir(...)"))?,
        };
        self.write(dir.join(file_name))
    }
}

//! Errors with source spans, rendered as a one-screen report.
//!
//! Every failure a user can cause is a [`Error`]: a message, the input it
//! points into (the expression or the point of an evaluation), a byte range
//! and a label. Messages name no command-line flag; the CLI names the
//! point's input after its flag (`--at`) when it renders them.
//! The CLI renders it with `codespan-reporting` and exits with status 2.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

/// Which user input a span points into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The expression (program) text.
    Expr,
    /// The point of an evaluation (the CLI's `--at`).
    At,
}

/// A labelled place in an input.
#[derive(Clone, Debug)]
pub struct Spot {
    /// The input.
    pub source: Source,
    /// Byte range into it.
    pub span: Range<usize>,
    /// What is wrong there.
    pub label: String,
}

/// A user-facing error: what went wrong, where, and why.
#[derive(Clone, Debug)]
pub struct Error {
    /// One-line summary.
    pub message: String,
    /// Places in the inputs; the first is the primary one.
    pub spots: Vec<Spot>,
    /// Extra sentences (hints).
    pub notes: Vec<String>,
}

/// Result with a symdiff [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error that points nowhere in particular.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
            spots: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// An error pointing at `span` of the expression.
    pub fn at(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Self {
        Error::new(message).with_spot(Source::Expr, span, label)
    }

    /// Adds a labelled place.
    pub fn with_spot(
        mut self,
        source: Source,
        span: Range<usize>,
        label: impl Into<String>,
    ) -> Self {
        self.spots.push(Spot {
            source,
            span,
            label: label.into(),
        });
        self
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Changes which input the spots point into (for text parsed out of `--at`).
    pub fn in_source(mut self, source: Source) -> Self {
        for s in &mut self.spots {
            s.source = source;
        }
        self
    }

    /// Renders the report, with line:column and a caret under each place;
    /// places in the point are shown in an input named `point`.
    pub fn render(&self, expr: &str, at: Option<&str>) -> String {
        self.render_named(expr, at, "point")
    }

    /// [`Error::render`] with the point's input named `at_name` (the CLI
    /// names it after its flag, `--at`).
    pub fn render_named(&self, expr: &str, at: Option<&str>, at_name: &str) -> String {
        let mut files = SimpleFiles::new();
        let expr_id = files.add("expr", expr.to_string());
        let at_id = files.add(at_name, at.unwrap_or("").to_string());
        let mut labels = Vec::new();
        for (n, spot) in self.spots.iter().enumerate() {
            let (id, text) = match spot.source {
                Source::Expr => (expr_id, expr),
                Source::At => (at_id, at.unwrap_or("")),
            };
            let span = clamp(&spot.span, text);
            let label = if n == 0 {
                Label::primary(id, span)
            } else {
                Label::secondary(id, span)
            };
            labels.push(label.with_message(spot.label.clone()));
        }
        let diagnostic = Diagnostic::error()
            .with_message(self.message.clone())
            .with_labels(labels)
            .with_notes(self.notes.clone());
        term::emit_into_string(&term::Config::default(), &files, &diagnostic)
            .unwrap_or_else(|_| format!("error: {}\n", self.message))
    }
}

/// Keeps a span inside the text and on character boundaries.
fn clamp(span: &Range<usize>, text: &str) -> Range<usize> {
    let mut start = span.start.min(text.len());
    let mut end = span.end.clamp(start, text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for s in &self.spots {
            write!(
                f,
                " [{:?} {}..{}: {}]",
                s.source, s.span.start, s.span.end, s.label
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

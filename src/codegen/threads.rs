//! What of a kernel function threads can share: its matrix products (the
//! `gemm` runtime helper splits them) and its loops over ranges of rows
//! (the `rows` pass marks them). A function with either gets a
//! `{name}_threads` entry point whose body takes the thread count.

use super::loops::Stmt;

/// The work of a function that threads can share.
#[derive(Clone, Copy, Default)]
pub(crate) struct Threaded {
    /// Matrix products (split by rows of their longer side).
    pub(crate) products: bool,
    /// Loops over the rows of a batch (split into ranges of rows).
    pub(crate) rows: bool,
}

impl Threaded {
    /// What of the body `stmts` threads can share, in one walk.
    pub(crate) fn of(stmts: &[Stmt]) -> Threaded {
        let mut found = Threaded::default();
        found.note(stmts);
        found
    }

    fn note(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            match s {
                Stmt::MatMul { .. } => self.products = true,
                Stmt::Loop { split, body, .. } => {
                    self.rows |= split.is_some();
                    self.note(body);
                }
                Stmt::Tile { body, .. } => self.note(body),
                _ => {}
            }
        }
    }

    /// Whether any work can be shared (the body then takes `threads`).
    pub(crate) fn any(self) -> bool {
        self.products || self.rows
    }

    /// The doc of `{name}_threads`.
    pub(crate) fn doc(self, name: &str) -> String {
        let products = " Matrix products are split by rows of their longer side, each entry summed as with one thread; worth it from about a million multiply-adds per thread.";
        let rows = " Loops over the rows of the batch give each thread a range of rows; sums over rows are added per range, so they can differ from one thread's in the last bits. A range gets at least about 16 thousand entries.";
        let mut doc = format!(" [`{name}`] on `threads` threads (`std::thread::scope`); fewer are used where the work is too small to share.");
        if self.products {
            doc.push_str(products);
        }
        if self.rows {
            doc.push_str(rows);
        }
        doc
    }
}

//! Typed errors. A [`Problem`] is one finding of `check` (file, field or line,
//! what is wrong, the fix); [`Error`] is what a command fails with.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a brand, named precisely enough to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// File, relative to the brand folder where possible (`brand.toml`, `certs/ca.cer`).
    pub file: String,
    /// Line number, when the problem sits on a line.
    pub line: Option<usize>,
    /// Field or slot name (`rpc_port`, `artwork.header`), when there is one.
    pub field: Option<String>,
    /// What is wrong.
    pub what: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// A problem in `file` about `field`.
    pub fn field(file: &str, field: &str, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { file: file.into(), line: None, field: Some(field.into()), what: what.into(), fix: fix.into() }
    }

    /// A problem in a whole file.
    pub fn file(file: &str, what: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { file: file.into(), line: None, field: None, what: what.into(), fix: fix.into() }
    }

    /// Sets the line.
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " [{field}]")?;
        }
        write!(f, ": {}\n    fix: {}", self.what, self.fix)
    }
}

/// Every problem found in a brand, printed one after another.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} problem{} found:", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            writeln!(f, "- {p}")?;
        }
        Ok(())
    }
}

/// Errors of the builder's commands.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The brand has problems; nothing was changed.
    #[error("the brand in {dir} is not valid; nothing was changed.\n{problems}")]
    Invalid {
        /// Brand folder.
        dir: PathBuf,
        /// What `check` found.
        problems: Problems,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Refused to replace something that exists.
    #[error("{0} already exists; the builder never overwrites a brand: choose another --dir or remove it yourself")]
    Exists(PathBuf),
    /// An external tool is missing or failed.
    #[error("{tool}: {msg}")]
    Tool {
        /// Tool name (`cargo`, `makensis`, ...).
        tool: String,
        /// What happened and what to do.
        msg: String,
    },
    /// Prerequisites are missing; nothing was built.
    #[error("missing prerequisites; nothing was built:\n{0}")]
    Missing(String),
    /// A certificate could not be made.
    #[error("certificate generation failed: {0}")]
    Cert(String),
    /// A template failed to render (a bug in a template or a missing variable).
    #[error("template {name}: {msg}")]
    Template {
        /// Template name.
        name: String,
        /// Handlebars' message.
        msg: String,
    },
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// An original customisation that cannot be imported; nothing was written.
    #[error("the original customisation in {dir} cannot be imported; nothing was written.\n{problems}")]
    Import {
        /// The original's `src` folder.
        dir: PathBuf,
        /// What is wrong, by file and line.
        problems: Problems,
    },
}

/// Result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    /// Names `path` in the error.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io { path: path.into(), source })
    }
}

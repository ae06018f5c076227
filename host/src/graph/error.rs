//! Where a graph file is wrong and why: [`Location`] (`FILE:LINE:COLUMN`), one
//! [`GraphError`] per problem, and [`GraphErrors`], all of them at once.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// A position in a graph file: the file as given by the user, 1-based line and column
/// (columns count characters). Displays as `FILE:LINE:COLUMN`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// The graph file, spelled as the user gave it (shared by every location of one file).
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One problem in a graph file. Every variant names where it is; `Display` renders
/// `FILE:LINE:COLUMN: message`, one paragraph a user can act on.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// The text is not valid YAML, or it exceeds a limit (size, depth, alias expansion).
    #[error("{loc}: {message}")]
    Yaml {
        /// Where the parser stopped.
        loc: Location,
        /// The parser's message, or which limit was exceeded.
        message: String,
    },
    /// Valid YAML in the wrong shape: unknown or missing key, wrong type, bad metaparam.
    #[error("{loc}: {message}")]
    Invalid {
        /// The offending key or value.
        loc: Location,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A resource name or mapping key declared twice; the message names the first place.
    #[error("{loc}: {message}")]
    Duplicate {
        /// The second declaration.
        loc: Location,
        /// Includes the location of the first declaration.
        message: String,
    },
    /// A resource kind no loaded plugin provides.
    #[error("{loc}: {message}")]
    UnknownKind {
        /// The kind's key under `resources:` (or the `kind:` of a collect entry).
        loc: Location,
        /// Names the known kinds.
        message: String,
    },
    /// An edge whose `from` or `to` is not a resource of this graph.
    #[error("{loc}: {message}")]
    DanglingEdge {
        /// The edge's `from` or `to`.
        loc: Location,
        /// Names the missing resource.
        message: String,
    },
    /// A param rejected by the kind's JSON schema or by its plugin's validate.
    #[error("{loc}: {message}")]
    Param {
        /// The param (its value, or its key for an unknown param), else the resource entry.
        loc: Location,
        /// Names the resource `kind[name]` and the param.
        message: String,
    },
    /// A dependency cycle; the message lists the resources around it with their locations.
    #[error("{loc}: {message}")]
    Cycle {
        /// The first resource of the cycle.
        loc: Location,
        /// `cycle: a -> b -> a (…locations…)`.
        message: String,
    },
}

impl GraphError {
    /// Where the problem is.
    pub fn location(&self) -> &Location {
        match self {
            GraphError::Yaml { loc, .. }
            | GraphError::Invalid { loc, .. }
            | GraphError::Duplicate { loc, .. }
            | GraphError::UnknownKind { loc, .. }
            | GraphError::DanglingEdge { loc, .. }
            | GraphError::Param { loc, .. }
            | GraphError::Cycle { loc, .. } => loc,
        }
    }

    /// The message without the location prefix.
    pub fn message(&self) -> &str {
        match self {
            GraphError::Yaml { message, .. }
            | GraphError::Invalid { message, .. }
            | GraphError::Duplicate { message, .. }
            | GraphError::UnknownKind { message, .. }
            | GraphError::DanglingEdge { message, .. }
            | GraphError::Param { message, .. }
            | GraphError::Cycle { message, .. } => message,
        }
    }
}

/// Every problem found in a graph file, sorted by position; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphErrors(pub Vec<GraphError>);

impl GraphErrors {
    /// Sorts `errors` by file, line and column (stable, so same-position errors keep their
    /// order) and drops exact repeats.
    pub fn new(mut errors: Vec<GraphError>) -> Self {
        errors.sort_by(|a, b| a.location().cmp(b.location()));
        errors.dedup();
        GraphErrors(errors)
    }

    /// `Ok(())` when `errors` is empty, else the sorted errors.
    pub fn check(errors: Vec<GraphError>) -> Result<(), GraphErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(GraphErrors::new(errors))
        }
    }

    /// The errors, in position order.
    pub fn iter(&self) -> std::slice::Iter<'_, GraphError> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never true for a returned `Err`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for GraphErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphErrors {}

impl From<GraphError> for GraphErrors {
    fn from(e: GraphError) -> Self {
        GraphErrors(vec![e])
    }
}

impl<'a> IntoIterator for &'a GraphErrors {
    type Item = &'a GraphError;
    type IntoIter = std::slice::Iter<'a, GraphError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

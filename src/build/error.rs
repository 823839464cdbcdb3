//! Why a build or test failed.

use std::path::PathBuf;

use crate::solve::SolveError;
use crate::spec::SpecError;
use crate::storage::StorageError;

/// Everything that can stop a build, a source collection or a test.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The spec file could not be loaded.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The package repository failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The spfs store or a runtime failed.
    #[error(transparent)]
    Spfs(#[from] spfs::Error),
    /// The solved environment's layers cannot be stacked.
    #[error(transparent)]
    Stack(#[from] crate::env::StackError),
    /// The build environment could not be solved.
    #[error("cannot solve the {stage} environment of {ident}: {source}")]
    Solve {
        /// The package being built.
        ident: String,
        /// Which environment (build, test).
        stage: String,
        /// The solver's explanation.
        source: Box<SolveError>,
    },
    /// The recipe cannot be built as asked.
    #[error("{ident}: {message}")]
    Invalid {
        /// The package.
        ident: String,
        /// What is wrong.
        message: String,
        /// What to do.
        help: Option<String>,
    },
    /// A source could not be collected.
    #[error("{ident}: source {index} ({kind}) failed: {message}")]
    Source {
        /// The package.
        ident: String,
        /// Position in `sources` (1-based).
        index: usize,
        /// `path`, `git`, `tar` or `script`.
        kind: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A build, source or test script exited non-zero.
    #[error("{what} of {ident} failed with exit status {code}")]
    ScriptFailed {
        /// The package.
        ident: String,
        /// Which script (`the build script`, `test 2 (install stage)`).
        what: String,
        /// Its exit status.
        code: i32,
        /// The saved output.
        log: Option<PathBuf>,
        /// The last lines of the output.
        tail: Vec<String>,
        /// The command that re-enters this environment.
        reenter: Option<String>,
    },
    /// The build's output breaks a validation rule.
    #[error("{ident} breaks validation rule {rule}: {message}")]
    Validation {
        /// The package.
        ident: String,
        /// The rule's name.
        rule: String,
        /// What it found.
        message: String,
        /// The offending paths (at most a few).
        paths: Vec<String>,
    },
    /// A file operation of the build failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: String,
        /// On which path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A signal stopped the build; nothing was published.
    #[error("interrupted; nothing was published")]
    Interrupted,
}

impl spfs::Help for BuildError {
    fn help(&self) -> Vec<String> {
        match self {
            BuildError::Invalid { help, .. } => help.iter().cloned().collect(),
            BuildError::Spec(e) => e.help.iter().cloned().collect(),
            BuildError::Solve { .. } => {
                vec!["build or publish the missing packages first, or change the build options with -o".into()]
            }
            BuildError::ScriptFailed { log, reenter, .. } => {
                let mut out = Vec::new();
                if let Some(l) = log {
                    out.push(format!("the whole output is in {}", l.display()));
                }
                if let Some(r) = reenter {
                    out.push(format!("enter this environment to debug it: {r}"));
                }
                out
            }
            BuildError::Validation { rule, .. } => vec![format!(
                "fix the build, or allow it in the spec: build: {{validation: {{rules: [{{allow: {rule}}}]}}}}"
            )],
            BuildError::Stack(_) => vec!["build or pull the package again".into()],
            BuildError::Source { kind, .. } if *kind == "git" => {
                vec!["check the url and the ref (a tag, a branch or a commit sha)".into()]
            }
            _ => Vec::new(),
        }
    }
}

impl BuildError {
    /// Detail lines printed under the error (log tails, offending paths).
    pub fn details(&self) -> Vec<String> {
        match self {
            BuildError::ScriptFailed { tail, .. } => tail.clone(),
            BuildError::Validation { paths, .. } => paths.clone(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn io(
        action: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let (action, path) = (action.into(), path.into());
        move |source| BuildError::Io {
            action,
            path,
            source,
        }
    }
}

/// Result of build operations.
pub type Result<T, E = BuildError> = std::result::Result<T, E>;

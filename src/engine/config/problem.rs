//! The validation report: each problem with its JSON path, line:column, kind, what was expected, a fix in words
//! and, when one exists, the mechanical repair `fix-config --auto-fix` applies.

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not valid JSON.
    Syntax,
    /// A key no section knows (or that is misspelled).
    UnknownKey,
    /// A known key in the wrong section (or a legacy key at the top level).
    MisplacedKey,
    /// The same key twice in one object.
    DuplicateKey,
    /// The JSON type is wrong.
    WrongType,
    /// A number outside its allowed range.
    OutOfRange,
    /// The right type but not an allowed value.
    InvalidValue,
}

impl ProblemKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProblemKind::Syntax => "syntax",
            ProblemKind::UnknownKey => "unknown_key",
            ProblemKind::MisplacedKey => "misplaced_key",
            ProblemKind::DuplicateKey => "duplicate_key",
            ProblemKind::WrongType => "wrong_type",
            ProblemKind::OutOfRange => "out_of_range",
            ProblemKind::InvalidValue => "invalid_value",
        }
    }
}

/// A mechanical repair `fix-config --auto-fix` can apply. Sections are top-level keys; `None` means the root.
#[derive(Debug, Clone, PartialEq)]
pub enum FixAction {
    /// Replace the value of `section.key` in place.
    SetValue {
        section: String,
        key: String,
        value: Value,
    },
    /// Remove `section.key` so its default applies.
    RemoveKey { section: String, key: String },
    /// Replace a whole section's value (null → {}).
    SetSection { section: String, value: Value },
    /// Rename a key in place (keeps its position and value).
    RenameKey {
        section: Option<String>,
        from: String,
        to: String,
    },
    /// Move a key to another section (appended there), possibly renaming it.
    MoveKey {
        from_section: Option<String>,
        from_key: String,
        to_section: String,
        to_key: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// JSON path: `downloads.max_retries`, `storage.wanted_models[2]`; empty for the document itself.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub kind: ProblemKind,
    pub message: String,
    pub expected: String,
    pub fix: String,
    #[serde(skip)]
    pub action: Option<FixAction>,
}

impl Problem {
    /// `file:line:col: path: problem (expected …) — fix: …`
    pub fn human(&self, file: &Path) -> String {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        format!(
            "{}:{}:{}: {}: {} (expected {}) — fix: {}",
            file.display(),
            self.line,
            self.column,
            path,
            self.message,
            self.expected,
            self.fix
        )
    }
}

/// The outcome of validating one text.
#[derive(Debug, Clone)]
pub struct Validation {
    pub problems: Vec<Problem>,
    /// The parsed document, when the text is valid JSON.
    pub document: Option<Value>,
    /// The document has a key twice in one object (a `Value` cannot represent it, so it must not be rewritten).
    pub has_duplicates: bool,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// Syntax errors make every other check impossible.
    pub fn is_syntax_error(&self) -> bool {
        self.problems
            .first()
            .is_some_and(|p| p.kind == ProblemKind::Syntax)
    }
}

//! The README's configuration reference table, generated from the schema table (a unit test keeps the README
//! current).

use super::schema::{Kind, SCHEMA, default_value, fmt_num};

/// The short type name for the README.
pub fn type_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Bool => "bool",
        Kind::UInt { .. } => "integer",
        Kind::Float { .. } => "number",
        Kind::Text => "string",
        Kind::OptText | Kind::DbUrl => "string or null",
        Kind::TextList => "array of strings",
        Kind::FreeMap => "object",
        Kind::FallbackRules => "object or array",
    }
}

/// The README's configuration reference, generated from this table.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str("| Key | Type | Default | Meaning |\n");
    out.push_str("| --- | --- | --- | --- |\n");
    for s in SCHEMA {
        for key in s.keys {
            let default = match key.default_note {
                Some(note) => note.to_string(),
                None => format!("`{}`", default_value(s.name, key.name)),
            };
            let ty = match key.kind {
                Kind::UInt { min, max } if max >= u32::MAX as u64 => format!("integer ≥ {min}"),
                Kind::UInt { min, max } => format!("integer {min}–{max}"),
                Kind::Float {
                    min,
                    min_exclusive,
                    max,
                } => match (min_exclusive, max) {
                    (true, None) => format!("number > {}", fmt_num(min)),
                    (false, None) => format!("number ≥ {}", fmt_num(min)),
                    (_, Some(max)) => format!("number {}–{}", fmt_num(min), fmt_num(max)),
                },
                _ => type_name(key.kind).to_string(),
            };
            out.push_str(&format!(
                "| `{}.{}` | {} | {} | {} |\n",
                s.name,
                key.name,
                ty,
                default,
                key.doc.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod readme {
    /// The README's configuration reference is generated from the schema table. Regenerate with
    /// `EMA_UPDATE_README=1 cargo test --lib readme_reference_is_current`.
    #[test]
    fn readme_reference_is_current() {
        const START: &str = "<!-- config-reference:start -->\n";
        const END: &str = "<!-- config-reference:end -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (Some(a), Some(b)) = (readme.find(START), readme.find(END)) else {
            panic!("README.md lacks the {START:?} … {END:?} markers");
        };
        let current = &readme[a + START.len()..b];
        let wanted = super::reference_markdown();
        if current != wanted {
            if std::env::var_os("EMA_UPDATE_README").is_some() {
                let new = format!("{}{START}{wanted}{}", &readme[..a], &readme[b..]);
                std::fs::write(&path, new).unwrap();
            } else {
                panic!(
                    "the README's configuration reference is out of date; run \
                     `EMA_UPDATE_README=1 cargo test --lib readme_reference_is_current`"
                );
            }
        }
    }
}

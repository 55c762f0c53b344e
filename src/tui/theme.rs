//! Themes: a default built from the 16 ANSI colour names (it follows the terminal's own palette and works in
//! 256-colour terminals), with partial overrides from `themes/*.toml`. The shipped themes are embedded in the
//! binary; a file of the same name in `<config dir>/themes/` or `./themes/` overrides them, and a path to a `.toml`
//! file works too. `NO_COLOR` gives a monochrome theme that carries state with BOLD/REVERSED/DIM and symbols.

use std::path::{Path, PathBuf};

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::engine::error::{EmaError, Result};

pub const BUILTIN: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Every style the console uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub monochrome: bool,
    pub text: Style,
    pub dim: Style,
    pub border: Style,
    pub border_focused: Style,
    pub title: Style,
    pub header: Style,
    pub selected: Style,
    pub ok: Style,
    pub warn: Style,
    pub error: Style,
    pub info: Style,
    pub accent: Style,
    pub gauge: Style,
    pub sparkline: Style,
    pub status_bar: Style,
    pub dialog: Style,
}

/// A theme file: every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    #[serde(default)]
    colors: ColorOverrides,
    #[serde(default)]
    bold: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ColorOverrides {
    text: Option<String>,
    dim: Option<String>,
    border: Option<String>,
    border_focused: Option<String>,
    title: Option<String>,
    header: Option<String>,
    selected_fg: Option<String>,
    selected_bg: Option<String>,
    ok: Option<String>,
    warn: Option<String>,
    error: Option<String>,
    info: Option<String>,
    accent: Option<String>,
    gauge: Option<String>,
    sparkline: Option<String>,
    status_bar_fg: Option<String>,
    status_bar_bg: Option<String>,
    dialog_fg: Option<String>,
    dialog_bg: Option<String>,
}

fn fg(c: Color) -> Style {
    Style::default().fg(c)
}

impl Theme {
    /// The base every theme file overrides: ANSI colour names only.
    pub fn base() -> Self {
        Theme {
            name: "base".into(),
            monochrome: false,
            text: Style::default(),
            dim: fg(Color::DarkGray),
            border: fg(Color::Gray),
            border_focused: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            title: fg(Color::Cyan).add_modifier(Modifier::BOLD),
            header: fg(Color::Yellow).add_modifier(Modifier::BOLD),
            selected: Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
            ok: fg(Color::Green),
            warn: fg(Color::Yellow),
            error: fg(Color::Red).add_modifier(Modifier::BOLD),
            info: fg(Color::Blue),
            accent: fg(Color::Magenta),
            gauge: fg(Color::Cyan),
            sparkline: fg(Color::Green),
            status_bar: Style::default().fg(Color::Black).bg(Color::Gray),
            dialog: Style::default().fg(Color::White).bg(Color::Blue),
        }
    }

    /// No colour at all: state is carried by symbols and modifiers.
    pub fn monochrome() -> Self {
        let plain = Style::default();
        Theme {
            name: "no-color".into(),
            monochrome: true,
            text: plain,
            dim: plain.add_modifier(Modifier::DIM),
            border: plain,
            border_focused: plain.add_modifier(Modifier::BOLD),
            title: plain.add_modifier(Modifier::BOLD),
            header: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            selected: plain.add_modifier(Modifier::REVERSED),
            ok: plain,
            warn: plain.add_modifier(Modifier::BOLD),
            error: plain.add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
            info: plain,
            accent: plain.add_modifier(Modifier::BOLD),
            gauge: plain,
            sparkline: plain,
            status_bar: plain.add_modifier(Modifier::REVERSED),
            dialog: plain.add_modifier(Modifier::REVERSED),
        }
    }

    /// Apply a theme file's overrides to `self`.
    fn overlay(mut self, name: &str, text: &str, origin: &str) -> Result<Self> {
        let f: ThemeFile = toml::from_str(text).map_err(|e| {
            EmaError::Config(format!(
                "theme {origin} is invalid: {e}; fix the file or choose another theme with --theme"
            ))
        })?;
        let parse = |key: &str, v: &Option<String>| -> Result<Option<Color>> {
            match v {
                None => Ok(None),
                Some(s) => s.parse::<Color>().map(Some).map_err(|_| {
                    EmaError::Config(format!(
                        "theme {origin}: colors.{key} = {s:?} is not a colour; use one of the 16 ANSI names \
                         (black, red, green, yellow, blue, magenta, cyan, gray, darkgray, lightred, …, white), \
                         \"reset\", or an index 0-255"
                    ))
                }),
            }
        };
        let c = &f.colors;
        macro_rules! set_fg {
            ($field:ident) => {
                if let Some(col) = parse(stringify!($field), &c.$field)? {
                    self.$field = self.$field.fg(col);
                }
            };
        }
        set_fg!(text);
        set_fg!(dim);
        set_fg!(border);
        set_fg!(border_focused);
        set_fg!(title);
        set_fg!(header);
        set_fg!(ok);
        set_fg!(warn);
        set_fg!(error);
        set_fg!(info);
        set_fg!(accent);
        set_fg!(gauge);
        set_fg!(sparkline);
        if let Some(col) = parse("selected_fg", &c.selected_fg)? {
            self.selected = self.selected.fg(col);
        }
        if let Some(col) = parse("selected_bg", &c.selected_bg)? {
            self.selected = self.selected.bg(col);
        }
        if let Some(col) = parse("status_bar_fg", &c.status_bar_fg)? {
            self.status_bar = self.status_bar.fg(col);
        }
        if let Some(col) = parse("status_bar_bg", &c.status_bar_bg)? {
            self.status_bar = self.status_bar.bg(col);
        }
        if let Some(col) = parse("dialog_fg", &c.dialog_fg)? {
            self.dialog = self.dialog.fg(col);
        }
        if let Some(col) = parse("dialog_bg", &c.dialog_bg)? {
            self.dialog = self.dialog.bg(col);
        }
        for b in &f.bold {
            let s = match b.as_str() {
                "text" => &mut self.text,
                "ok" => &mut self.ok,
                "warn" => &mut self.warn,
                "info" => &mut self.info,
                "border" => &mut self.border,
                "accent" => &mut self.accent,
                "status_bar" => &mut self.status_bar,
                other => {
                    return Err(EmaError::Config(format!(
                        "theme {origin}: bold = [{other:?}] is not a style that can be made bold; use text, ok, \
                         warn, info, border, accent or status_bar"
                    )));
                }
            };
            *s = s.add_modifier(Modifier::BOLD);
        }
        self.name = name.to_string();
        Ok(self)
    }

    /// Resolve a theme by name or path. `no_color` wins over everything.
    pub fn load(name: &str, no_color: bool, config_dir: Option<&Path>) -> Result<Self> {
        if no_color {
            return Ok(Theme::monochrome());
        }
        let looks_like_path = name.ends_with(".toml") || name.contains('/');
        if looks_like_path {
            let p = PathBuf::from(name);
            let text = std::fs::read_to_string(&p)
                .map_err(|e| EmaError::io("cannot read theme file", &p, e))?;
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| name.to_string());
            return Theme::base().overlay(&stem, &text, &p.display().to_string());
        }
        let mut candidates = Vec::new();
        if let Some(d) = config_dir {
            candidates.push(d.join("themes").join(format!("{name}.toml")));
        }
        candidates.push(PathBuf::from("themes").join(format!("{name}.toml")));
        for c in &candidates {
            if let Ok(text) = std::fs::read_to_string(c) {
                return Theme::base().overlay(name, &text, &c.display().to_string());
            }
        }
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Theme::base().overlay(n, text, &format!("(built-in) {n}")),
            None => Err(EmaError::Config(format!(
                "unknown theme {name:?}; choose one of {} or give a path to a .toml theme file",
                BUILTIN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

/// `NO_COLOR` set to anything non-empty.
pub fn no_color_env() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_and_use_only_ansi_or_indexed_colours() {
        for (name, _) in BUILTIN {
            let t = Theme::load(name, false, None).unwrap();
            for s in [
                t.text,
                t.ok,
                t.warn,
                t.error,
                t.selected,
                t.status_bar,
                t.dialog,
            ] {
                for c in [s.fg, s.bg].into_iter().flatten() {
                    assert!(!matches!(c, Color::Rgb(..)), "{name}: truecolor {c:?}");
                }
            }
        }
        assert_ne!(
            Theme::load("light", false, None).unwrap(),
            Theme::load("dark", false, None).unwrap()
        );
    }

    #[test]
    fn no_color_is_monochrome_and_overrides_work() {
        let t = Theme::load("light", true, None).unwrap();
        assert!(t.monochrome && t.ok.fg.is_none());
        assert!(t.selected.add_modifier.contains(Modifier::REVERSED));
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("themes")).unwrap();
        std::fs::write(
            d.path().join("themes").join("dark.toml"),
            "[colors]\nok = \"lightgreen\"\n",
        )
        .unwrap();
        let t = Theme::load("dark", false, Some(d.path())).unwrap();
        assert_eq!(t.ok.fg, Some(Color::LightGreen));
        assert!(Theme::load("nope", false, None).is_err());
        std::fs::write(d.path().join("bad.toml"), "[colors]\nok = \"chartreuse\"\n").unwrap();
        let e = Theme::load(d.path().join("bad.toml").to_str().unwrap(), false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("colors.ok"), "{e}");
    }
}

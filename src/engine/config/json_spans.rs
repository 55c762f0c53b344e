//! A small strict JSON parser (RFC 8259, the same grammar serde_json accepts) that keeps the line:column of every
//! value and object key, so configuration problems can be reported where they are in the file. Duplicate keys are
//! kept (serde_json's typed deserialization rejects them; validation reports them).

use serde_json::{Number, Value};

/// A position in the text: 1-based line and 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spanned {
    pub pos: Pos,
    pub node: Node,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_pos: Pos,
    pub value: Spanned,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Spanned>),
    Object(Vec<Member>),
}

impl Node {
    /// The JSON type name, for messages ("a string", "an object", …).
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(n) if n.is_f64() => "a decimal number",
            Node::Number(_) => "an integer",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }
}

impl Spanned {
    /// Convert to a `serde_json::Value` (for duplicate keys the last one wins, as in serde_json).
    pub fn to_value(&self) -> Value {
        match &self.node {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Number(n) => Value::Number(n.clone()),
            Node::String(s) => Value::String(s.clone()),
            Node::Array(a) => Value::Array(a.iter().map(Spanned::to_value).collect()),
            Node::Object(members) => {
                let mut m = serde_json::Map::new();
                for mem in members {
                    m.insert(mem.key.clone(), mem.value.to_value());
                }
                Value::Object(m)
            }
        }
    }

    pub fn members(&self) -> Option<&[Member]> {
        match &self.node {
            Node::Object(m) => Some(m),
            _ => None,
        }
    }
}

/// A syntax error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.column, self.message)
    }
}

/// Same nesting limit as serde_json.
const MAX_DEPTH: usize = 128;

/// Parse a complete JSON document.
pub fn parse(text: &str) -> Result<Spanned, SyntaxError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    // A UTF-8 byte order mark is not JSON (serde_json rejects it too), but say so clearly.
    if p.peek() == Some('\u{feff}') {
        return Err(
            p.err("the file starts with a byte order mark (BOM); save it as UTF-8 without BOM")
        );
    }
    p.skip_ws();
    if p.peek().is_none() {
        return Err(p.err("the file is empty; expected a JSON object such as {}"));
    }
    let v = p.value(0)?;
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.err(&format!(
            "unexpected {} after the end of the JSON document",
            describe(c)
        )));
    }
    Ok(v)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

fn describe(c: char) -> String {
    match c {
        '\n' => "end of line".to_string(),
        c if c.is_control() => format!("control character U+{:04X}", c as u32),
        c => format!("'{c}'"),
    }
}

impl Parser {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.col,
        }
    }

    fn err(&self, message: &str) -> SyntaxError {
        SyntaxError {
            pos: self.pos(),
            message: message.to_string(),
        }
    }

    fn err_at(&self, pos: Pos, message: &str) -> SyntaxError {
        SyntaxError {
            pos,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.get(self.i).copied()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, ' ' | '\t' | '\n' | '\r') {
                self.bump();
            } else {
                break;
            }
        }
    }

    fn unexpected(&self, expected: &str) -> SyntaxError {
        match self.peek() {
            None => self.err(&format!("unexpected end of file; expected {expected}")),
            Some('/') => self.err(&format!(
                "comments are not allowed in JSON; expected {expected}"
            )),
            Some(c) => self.err(&format!("unexpected {}; expected {expected}", describe(c))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Spanned, SyntaxError> {
        let pos = self.pos();
        if depth > MAX_DEPTH {
            return Err(self.err("nesting is too deep (more than 128 levels)"));
        }
        let node = match self.peek() {
            Some('{') => self.object(depth)?,
            Some('[') => self.array(depth)?,
            Some('"') => Node::String(self.string()?),
            Some('t') => self.literal("true", Node::Bool(true))?,
            Some('f') => self.literal("false", Node::Bool(false))?,
            Some('n') => self.literal("null", Node::Null)?,
            Some(c) if c == '-' || c.is_ascii_digit() => self.number()?,
            Some('\'') => {
                return Err(self.err("strings must use double quotes (\"), not single quotes"));
            }
            _ => {
                return Err(
                    self.unexpected("a value (object, array, string, number, true, false or null)")
                );
            }
        };
        Ok(Spanned { pos, node })
    }

    fn literal(&mut self, word: &str, node: Node) -> Result<Node, SyntaxError> {
        let start = self.pos();
        for expected in word.chars() {
            if self.peek() != Some(expected) {
                return Err(self.err_at(
                    start,
                    &format!("invalid literal; expected `{word}` (JSON literals are lowercase)"),
                ));
            }
            self.bump();
        }
        Ok(node)
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start_pos = self.pos();
        let start = self.i;
        if self.peek() == Some('-') {
            self.bump();
        }
        match self.peek() {
            Some('0') => {
                self.bump();
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.err_at(start_pos, "numbers cannot have leading zeros"));
                }
            }
            Some(c) if c.is_ascii_digit() => {
                while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    self.bump();
                }
            }
            _ => return Err(self.unexpected("a digit")),
        }
        if self.peek() == Some('.') {
            self.bump();
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.unexpected("a digit after the decimal point"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.unexpected("a digit in the exponent"));
            }
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
            }
        }
        let text: String = self.chars[start..self.i].iter().collect();
        match serde_json::from_str::<Number>(&text) {
            Ok(n) => Ok(Node::Number(n)),
            Err(_) => Err(self.err_at(start_pos, "number out of range")),
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos();
        self.bump(); // opening quote
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(self.err_at(
                        start,
                        "unterminated string (end of file before the closing \")",
                    ));
                }
                Some('"') => {
                    self.bump();
                    return Ok(s);
                }
                Some('\\') => {
                    self.bump();
                    let esc_pos = self.pos();
                    match self.bump() {
                        Some('"') => s.push('"'),
                        Some('\\') => s.push('\\'),
                        Some('/') => s.push('/'),
                        Some('b') => s.push('\u{8}'),
                        Some('f') => s.push('\u{c}'),
                        Some('n') => s.push('\n'),
                        Some('r') => s.push('\r'),
                        Some('t') => s.push('\t'),
                        Some('u') => {
                            let hi = self.hex4()?;
                            if (0xD800..0xDC00).contains(&hi) {
                                if self.peek() == Some('\\') {
                                    self.bump();
                                    if self.bump() != Some('u') {
                                        return Err(self
                                            .err_at(esc_pos, "unpaired surrogate in \\u escape"));
                                    }
                                    let lo = self.hex4()?;
                                    if !(0xDC00..0xE000).contains(&lo) {
                                        return Err(self
                                            .err_at(esc_pos, "unpaired surrogate in \\u escape"));
                                    }
                                    let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                                    s.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                } else {
                                    return Err(
                                        self.err_at(esc_pos, "unpaired surrogate in \\u escape")
                                    );
                                }
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(
                                    self.err_at(esc_pos, "unpaired surrogate in \\u escape")
                                );
                            } else {
                                s.push(char::from_u32(hi).unwrap_or('\u{fffd}'));
                            }
                        }
                        _ => {
                            return Err(self.err_at(
                                esc_pos,
                                "invalid escape in string (write a backslash as \\\\, e.g. \"C:\\\\models\")",
                            ));
                        }
                    }
                }
                Some(c) if (c as u32) < 0x20 => {
                    return Err(self.err(&format!(
                        "{} inside a string; escape it (\\n, \\t) or close the string",
                        describe(c)
                    )));
                }
                Some(c) => {
                    self.bump();
                    s.push(c);
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            match self.peek().and_then(|c| c.to_digit(16)) {
                Some(d) => {
                    v = v * 16 + d;
                    self.bump();
                }
                None => return Err(self.unexpected("four hex digits after \\u")),
            }
        }
        Ok(v)
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.bump(); // [
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.bump();
            return Ok(Node::Array(items));
        }
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                return Err(
                    self.err("trailing comma before ']' is not allowed in JSON; remove the comma")
                );
            }
            items.push(self.value(depth + 1)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some(']') => {
                    self.bump();
                    return Ok(Node::Array(items));
                }
                _ => return Err(self.unexpected("',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        self.bump(); // {
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some('}') {
            self.bump();
            return Ok(Node::Object(members));
        }
        loop {
            self.skip_ws();
            match self.peek() {
                Some('"') => {}
                Some('}') => {
                    return Err(self.err(
                        "trailing comma before '}' is not allowed in JSON; remove the comma",
                    ));
                }
                Some(c) if c.is_alphabetic() || c == '_' => {
                    return Err(self.err("object keys must be double-quoted strings"));
                }
                _ => return Err(self.unexpected("a double-quoted key")),
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(':') {
                return Err(self.unexpected("':' after the key"));
            }
            self.bump();
            self.skip_ws();
            let value = self.value(depth + 1)?;
            members.push(Member {
                key,
                key_pos,
                value,
            });
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.bump();
                }
                Some('}') => {
                    self.bump();
                    return Ok(Node::Object(members));
                }
                Some('"') => {
                    return Err(self.err("missing ',' between members; add a comma"));
                }
                _ => return Err(self.unexpected("',' or '}'")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let t = "{\n  \"a\": 1,\n  \"b\": {\"c\": [true, null]}\n}";
        let v = parse(t).unwrap();
        let m = v.members().unwrap();
        assert_eq!(m[0].key_pos, Pos { line: 2, column: 3 });
        assert_eq!(m[0].value.pos, Pos { line: 2, column: 8 });
        let inner = m[1].value.members().unwrap();
        assert_eq!(inner[0].key_pos, Pos { line: 3, column: 9 });
        assert_eq!(
            inner[0].value.pos,
            Pos {
                line: 3,
                column: 14
            }
        );
        assert_eq!(v.to_value(), serde_json::from_str::<Value>(t).unwrap());
    }

    #[test]
    fn columns_count_characters() {
        let v = parse("{\"é\": \"ü\", \"x\": 2}").unwrap();
        assert_eq!(
            v.members().unwrap()[1].key_pos,
            Pos {
                line: 1,
                column: 12
            }
        );
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(e.pos, Pos { line: 3, column: 1 });
        assert!(e.message.contains("trailing comma"), "{}", e.message);
        let e = parse("{\"a\": 1 \"b\": 2}").unwrap_err();
        assert_eq!(e.pos.column, 9);
        let e = parse("{\"a\": tru}").unwrap_err();
        assert_eq!(e.pos.column, 7);
        let e = parse("").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = parse("{} x").unwrap_err();
        assert_eq!(e.pos.column, 4);
        assert!(parse("[01]").is_err());
        assert!(parse("\"a\\qb\"").is_err());
        assert!(parse("{'a': 1}").is_err());
        assert!(parse("{a: 1}").is_err());
    }

    #[test]
    fn agrees_with_serde_json_on_valid_documents() {
        for t in [
            "{}",
            "[]",
            "[1, -2, 3.5, 1e3, -0.0, 1E-2]",
            "{\"s\": \"\\u00e9\\ud83d\\ude00\\n\\\"\"}",
            "  {\"a\" : [ {} , [ ] ] }  ",
            "18446744073709551615",
            "-9223372036854775808",
        ] {
            let ours = parse(t).unwrap().to_value();
            let theirs: Value = serde_json::from_str(t).unwrap();
            assert_eq!(ours, theirs, "{t}");
        }
    }

    #[test]
    fn duplicate_keys_are_kept() {
        let v = parse("{\"a\": 1, \"a\": 2}").unwrap();
        assert_eq!(v.members().unwrap().len(), 2);
    }
}

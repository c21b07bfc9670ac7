//! A few helpers to write JSON by hand, for the report's answers and the threat events: they
//! are flat lists of numbers and short strings, and writing them straight into one buffer
//! keeps a page of a million rows cheap.

use std::fmt::Write;

/// Appends `s` as a JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` too, so a value can never close a script element if it lands in one.
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `s` as a JSON string, or `null`.
pub fn opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

/// Appends the strings as a JSON array.
pub fn strings<S: AsRef<str>>(out: &mut String, items: impl IntoIterator<Item = S>) {
    out.push('[');
    for (i, s) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, s.as_ref());
    }
    out.push(']');
}

/// Appends `"key":` after a comma when the object already has members.
pub fn key(out: &mut String, first: &mut bool, k: &str) {
    if !*first {
        out.push(',');
    }
    *first = false;
    string(out, k);
    out.push(':');
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_what_json_and_html_need() {
        let mut s = String::new();
        super::string(&mut s, "a\"b\\c\n</script>\u{1}é");
        assert_eq!(s, r#""a\"b\\c\n\u003c/script\u003e\u0001é""#);
    }
}

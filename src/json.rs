//! A few helpers to write JSON by hand, for the report's answers and the threat events: they
//! are flat lists of numbers and short strings, and writing them straight into one buffer
//! keeps a page of a million rows cheap.

use std::fmt::Write;

/// Appends `s` as a JSON string literal: the runs between bytes that need escaping are
/// copied whole, where a push per character cost several instructions a byte.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    let mut copied = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        // `<`, `>` and `&` too, so a value can never close a script element if it lands in
        // one. Every byte escaped is ASCII, so the runs end on character boundaries.
        // `None`: written as a `\u` escape.
        let escape = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            b'<' | b'>' | b'&' => None,
            _ if b < 0x20 => None,
            _ => continue,
        };
        out.push_str(&s[copied..i]);
        copied = i + 1;
        match escape {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
    }
    out.push_str(&s[copied..]);
    out.push('"');
}

/// Appends `v` in decimal (digits: ASCII, so the text check cannot fail).
pub fn uint(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    let n = crate::decimal::write(&mut buf, v);
    out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
}

/// Appends `v` in decimal, with its sign.
pub fn int(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    uint(out, v.unsigned_abs());
}

/// Appends an address as a JSON string (its text is ASCII, as `uint`'s).
pub fn addr(out: &mut String, a: &crate::addr::Addr) {
    let mut buf = [0u8; crate::addr::text::ROOM];
    let n = crate::addr::text::write(&mut buf, a);
    out.push('"');
    out.push_str(std::str::from_utf8(&buf[..n]).unwrap_or_default());
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

    #[test]
    fn every_character_is_escaped_on_its_own() {
        // Strings of characters that need escaping, plain ASCII and multi-byte ones, in every
        // order: the literal is each character's own literal, in turn.
        let alphabet = [
            'a', '"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '<', '>', '&', 'é', '€', '𝄞', ' ',
        ];
        let one = |c: char| {
            let mut s = String::new();
            super::string(&mut s, &c.to_string());
            s[1..s.len() - 1].to_string()
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut y = x;
            let text: String = (0..len % 23)
                .map(|_| {
                    y = y.rotate_left(5) ^ 0x9e37_79b9;
                    alphabet[(y % alphabet.len() as u64) as usize]
                })
                .collect();
            let want: String = text.chars().map(one).collect();
            let mut got = String::new();
            super::string(&mut got, &text);
            assert_eq!(got, format!("\"{want}\""), "{text:?}");
        }
        assert_eq!(one('\u{1f}'), "\\u001f");
        let mut n = String::new();
        for v in [0, 9, -1, 10, -10, i64::MIN, i64::MAX, 1_710_113_416] {
            n.clear();
            super::int(&mut n, v);
            assert_eq!(n, v.to_string());
        }
        let a = crate::addr::Addr::from("2001:db8::7".parse::<std::net::IpAddr>().unwrap());
        n.clear();
        super::addr(&mut n, &a);
        assert_eq!(n, "\"2001:db8::7\"");
        assert_eq!(one('€'), "€");
    }
}

//! Text that people supply and others see: the one rule for names (user
//! names, dataset titles, application titles), and CSV cells that a
//! spreadsheet cannot run as formulas.

use std::fmt;

/// Longest user name, in bytes.
pub const MAX_USER_NAME_BYTES: usize = 100;
/// Longest title (of a dataset, an application), in bytes.
pub const MAX_TITLE_BYTES: usize = 300;

/// Why a name was refused. It never repeats the name: a refused name may
/// hold escape sequences meant for a terminal or a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong {
        max: usize,
    },
    /// A control character (C0, DEL, C1: newlines, tabs, ANSI escapes) at
    /// this 1-based character position.
    Control {
        position: usize,
    },
    /// An invisible formatting character (bidirectional override or
    /// isolate, zero-width character, byte-order mark, tag).
    Invisible {
        position: usize,
    },
    /// `/` or `\`.
    PathSeparator {
        position: usize,
    },
    /// Whitespace other than the plain space (U+0020).
    Whitespace {
        position: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "must not be empty"),
            NameError::TooLong { max } => write!(f, "must be at most {max} bytes"),
            NameError::Control { position } => {
                write!(
                    f,
                    "must not contain control characters (character {position} is one)"
                )
            }
            NameError::Invisible { position } => write!(
                f,
                "must not contain invisible formatting characters such as bidirectional overrides (character {position} is one)"
            ),
            NameError::PathSeparator { position } => {
                write!(f, "must not contain / or \\ (character {position})")
            }
            NameError::Whitespace { position } => write!(
                f,
                "must not contain whitespace other than plain spaces (character {position})"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Characters that change how text is laid out without being seen:
/// bidirectional marks, embeddings, overrides and isolates (the "Trojan
/// Source" characters), zero-width characters, the byte-order mark,
/// interlinear annotations and tags.
pub fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{061c}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{e0001}' | '\u{e0020}'..='\u{e007f}')
}

/// The rule for every name a person gives and others read: trimmed of
/// surrounding whitespace, then 1 to `max_bytes` bytes, printable (no
/// control character, no invisible formatting character, no whitespace but
/// the plain space) and without a path separator. Returns the trimmed name.
///
/// Dataset names keep their stricter rule (`schema::is_valid_name`): they
/// become SQL table names and file names.
pub fn check_name(value: &str, max_bytes: usize) -> Result<&str, NameError> {
    let name = value.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max_bytes {
        return Err(NameError::TooLong { max: max_bytes });
    }
    for (i, c) in name.chars().enumerate() {
        let position = i + 1;
        if c.is_control() {
            return Err(NameError::Control { position });
        }
        if is_invisible_format(c) {
            return Err(NameError::Invisible { position });
        }
        if c == '/' || c == '\\' {
            return Err(NameError::PathSeparator { position });
        }
        if c.is_whitespace() && c != ' ' {
            return Err(NameError::Whitespace { position });
        }
    }
    Ok(name)
}

/// One CSV field for a text value, safe to open in a spreadsheet (OWASP,
/// "CSV Injection"): a value starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'`, so it is shown as text instead of
/// being evaluated as a formula; then the field is always quoted, with
/// every `"` doubled (RFC 4180), so no separator or quote inside it can
/// start a new cell. Numbers the platform formats itself are written
/// without this (a number cannot hold a formula).
pub fn csv_text_field(value: &str) -> String {
    let neutralise = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let mut out = String::with_capacity(value.len() + 3);
    out.push('"');
    if neutralise {
        out.push('\'');
    }
    for c in value.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_one_rule() {
        fn ok(s: &str) -> Result<&str, NameError> {
            check_name(s, 20)
        }
        assert_eq!(ok("  Ada Quill "), Ok("Ada Quill"));
        assert_eq!(ok("Zoë-Ørsted_2"), Ok("Zoë-Ørsted_2"));
        assert_eq!(ok("   "), Err(NameError::Empty));
        assert_eq!(ok(&"x".repeat(21)), Err(NameError::TooLong { max: 20 }));
        for (bad, want) in [
            ("a\nb", NameError::Control { position: 2 }),
            ("a\u{1b}[31mb", NameError::Control { position: 2 }),
            ("ab\u{7f}", NameError::Control { position: 3 }),
            ("a\u{9b}31m", NameError::Control { position: 2 }),
            ("a\tb", NameError::Control { position: 2 }),
            ("a\u{202e}b", NameError::Invisible { position: 2 }),
            ("a\u{2066}b", NameError::Invisible { position: 2 }),
            ("a\u{200b}b", NameError::Invisible { position: 2 }),
            ("../etc", NameError::PathSeparator { position: 3 }),
            ("a\\b", NameError::PathSeparator { position: 2 }),
            ("a\u{a0}b", NameError::Whitespace { position: 2 }),
            ("a\u{2028}b", NameError::Whitespace { position: 2 }),
        ] {
            assert_eq!(ok(bad), Err(want.clone()), "{bad:?}");
            let message = want.to_string();
            assert!(!message.contains(bad), "{message}");
        }
    }

    #[test]
    fn csv_fields_cannot_start_a_formula_or_a_cell() {
        for (value, want) in [
            ("=1+1", "\"'=1+1\""),
            ("+A1", "\"'+A1\""),
            ("-2", "\"'-2\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\tx", "\"'\tx\""),
            ("\rx", "\"'\rx\""),
            ("plain", "\"plain\""),
            ("a,=b", "\"a,=b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=HYPERLINK(\"x\")", "\"'=HYPERLINK(\"\"x\"\")\""),
            ("", "\"\""),
        ] {
            assert_eq!(csv_text_field(value), want, "{value:?}");
        }
    }
}

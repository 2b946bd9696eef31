//! Numbers as people read them in a table.

/// A released number with at most 4 decimals and no trailing zeros;
/// large magnitudes with 1 decimal.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "—".to_owned();
    }
    let text = if v.abs() >= 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    };
    let trimmed = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if trimmed == "-0" {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn numbers_read_as_in_a_report() {
        assert_eq!(number(12.0), "12");
        assert_eq!(number(0.12345), "0.1235");
        assert_eq!(number(-0.00001), "0");
        assert_eq!(number(123456.78), "123456.8");
        assert_eq!(number(f64::NAN), "—");
    }
}

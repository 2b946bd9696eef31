//! Unit checks of the rules; the end-to-end totality fuzz is in `crate::tests`.

use super::*;

#[test]
fn widening_casts_are_infallible_and_narrowing_ones_are_not() {
    use DataType::*;
    for (from, to) in [
        (Int32, Int64),
        (Int64, Float64),
        (UInt32, Int64),
        (Int64, Utf8),
        (Boolean, Int64),
        (Utf8, Utf8View),
    ] {
        assert!(infallible_cast(&from, &to), "{from} -> {to}");
    }
    for (from, to) in [
        (Int64, Int32),
        (Float64, Int64),
        (Utf8, Int64),
        (Int64, UInt64),
        (Utf8, Boolean),
        (UInt64, Int64),
    ] {
        assert!(!infallible_cast(&from, &to), "{from} -> {to}");
    }
}

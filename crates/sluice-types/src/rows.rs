//! Rows grouped by privacy unit, as the sandbox hands them to code that
//! computes per unit (training, WASM guests). Only the sandbox ever builds
//! one from data; the type lives here so that engines and learners share it
//! without depending on each other.

/// Row-major values of `width` columns; unit `i` owns rows
/// `unit_starts[i]..unit_starts[i + 1]`. NULL is NaN.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UnitRows {
    pub width: usize,
    pub values: Vec<f64>,
    pub unit_starts: Vec<usize>,
}

impl UnitRows {
    pub fn units(&self) -> usize {
        self.unit_starts.len().saturating_sub(1)
    }

    pub fn rows(&self) -> usize {
        self.unit_starts.last().copied().unwrap_or(0)
    }

    /// The rows of unit `i`, row-major.
    pub fn unit(&self, i: usize) -> &[f64] {
        &self.values[self.unit_starts[i] * self.width..self.unit_starts[i + 1] * self.width]
    }

    /// Builds from one vector per unit (row-major each).
    pub fn from_units(width: usize, units: &[Vec<f64>]) -> UnitRows {
        let mut out = UnitRows {
            width,
            values: Vec::with_capacity(units.iter().map(Vec::len).sum()),
            unit_starts: vec![0],
        };
        for u in units {
            out.values.extend_from_slice(u);
            out.unit_starts.push(out.values.len() / width.max(1));
        }
        out
    }
}

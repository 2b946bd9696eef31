//! Typing raw cells against the schema as they are read, pseudonymising
//! identifiers on the spot, and building the stored batch.
//!
//! Readers push records into a [`Sink`]; it keeps one typed column per schema
//! column, so the only copy of the data is the typed one, and a raw
//! identifier lives only for the duration of one `push`. The sink enforces
//! the limits every format shares: cell size, rows, columns and parsed size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use sluice_crypto::Pseudonymizer;
use sluice_types::schema::{ColumnRole, ColumnType, DatasetSchema};

use crate::limits::{Limit, over};
use crate::{ColumnProblem, IngestError, IngestLimits, MAX_ROWS_LISTED, column_label};

/// What a row costs besides its cells: its place in the sort order, its
/// secret order key, its position in its unit and its duplicate-row hash.
const ROW_COST: u64 = 64;
/// An `Option<String>` (the pointer, length and capacity).
const TEXT_CELL: u64 = 24;

/// Bytes a stored cell takes, heap allocation included (a malloc chunk holds
/// 8 bytes of header, is 16-byte aligned and at least 32 bytes).
fn cell_cost(data: &ColumnData, cell: &Option<Cell>) -> u64 {
    match (data, cell) {
        (_, Some(Cell::Text(s))) => TEXT_CELL + ((s.len() as u64 + 23) & !15).max(32),
        (ColumnData::Text(_), _) => TEXT_CELL,
        (ColumnData::Bool(_), _) => 1,
        (ColumnData::Int(_) | ColumnData::Float(_), _) => 16,
    }
}

/// A cell as the source format gave it, before typing. Strings are borrowed
/// from the reader for the duration of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Raw<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// A value the format cannot give as a scalar (nested JSON, an Excel
    /// error cell): a type error whatever the declared type.
    Invalid,
}

/// A parse failure; carries nothing, so no value can leak through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadValue;

type Parsed<T> = Result<Option<T>, BadValue>;

/// An integer; also a decimal whose fraction is all zeros ("17000.0") and an
/// integral float.
pub fn parse_int(raw: &Raw<'_>) -> Parsed<i64> {
    match raw {
        Raw::Null => Ok(None),
        Raw::Int(i) => Ok(Some(*i)),
        Raw::Float(f) => float_to_int(*f).map(Some).ok_or(BadValue),
        Raw::Str(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            int_text(s).map(Some).ok_or(BadValue)
        }
        Raw::Bool(_) | Raw::Invalid => Err(BadValue),
    }
}

fn float_to_int(f: f64) -> Option<i64> {
    // 2^63 is exactly representable; every integral f64 in [-2^63, 2^63) fits.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (f.is_finite() && f.fract() == 0.0 && (-LIMIT..LIMIT).contains(&f)).then_some(f as i64)
}

fn int_text(s: &str) -> Option<i64> {
    if let Ok(i) = s.parse() {
        return Some(i);
    }
    let (int, frac) = s.split_once('.')?;
    if !frac.is_empty() && frac.bytes().all(|b| b == b'0') {
        int.parse().ok()
    } else {
        None
    }
}

/// A finite float.
pub fn parse_float(raw: &Raw<'_>) -> Parsed<f64> {
    let f = match raw {
        Raw::Null => return Ok(None),
        Raw::Int(i) => *i as f64,
        Raw::Float(f) => *f,
        Raw::Str(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse().map_err(|_| BadValue)?
        }
        Raw::Bool(_) | Raw::Invalid => return Err(BadValue),
    };
    if f.is_finite() {
        Ok(Some(f))
    } else {
        Err(BadValue)
    }
}

/// true/false/1/0, case-insensitive.
pub fn parse_bool(raw: &Raw<'_>) -> Parsed<bool> {
    match raw {
        Raw::Null => Ok(None),
        Raw::Bool(b) => Ok(Some(*b)),
        Raw::Int(0) => Ok(Some(false)),
        Raw::Int(1) => Ok(Some(true)),
        Raw::Float(f) if *f == 0.0 => Ok(Some(false)),
        Raw::Float(f) if *f == 1.0 => Ok(Some(true)),
        Raw::Str(s) => {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(BadValue),
            }
        }
        _ => Err(BadValue),
    }
}

/// Text as is (an empty string is null); numbers and booleans in their
/// canonical form ("17", not "17.0").
pub fn parse_text<'a>(raw: &Raw<'a>) -> Parsed<Cow<'a, str>> {
    match raw {
        Raw::Null => Ok(None),
        Raw::Str("") => Ok(None),
        Raw::Str(s) => Ok(Some(Cow::Borrowed(s))),
        Raw::Int(i) => Ok(Some(Cow::Owned(i.to_string()))),
        Raw::Float(f) if f.is_finite() => Ok(Some(Cow::Owned(f.to_string()))),
        Raw::Bool(b) => Ok(Some(Cow::Owned(b.to_string()))),
        Raw::Float(_) | Raw::Invalid => Err(BadValue),
    }
}

/// A typed, stored cell.
enum Cell {
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
}

/// One column of stored values (pseudonyms for pseudonymised columns), in
/// source row order.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

/// A hashable view of a stored cell (floats by their bits, -0 as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key<'a> {
    Int(i64),
    Float(u64),
    Text(&'a str),
    Bool(bool),
}

impl Key<'_> {
    pub fn float(f: f64) -> Self {
        Key::Float(if f == 0.0 { 0.0f64 } else { f }.to_bits())
    }
    pub fn as_f64(self) -> Option<f64> {
        match self {
            Key::Int(i) => Some(i as f64),
            Key::Float(bits) => Some(f64::from_bits(bits)),
            _ => None,
        }
    }
}

impl ColumnData {
    fn new(ty: ColumnType) -> Self {
        match ty {
            ColumnType::Int => ColumnData::Int(Vec::new()),
            ColumnType::Float => ColumnData::Float(Vec::new()),
            ColumnType::Text => ColumnData::Text(Vec::new()),
            ColumnType::Bool => ColumnData::Bool(Vec::new()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnData::Int(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Text(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }

    fn push(&mut self, cell: Option<Cell>) {
        match (self, cell) {
            (ColumnData::Int(v), Some(Cell::Int(i))) => v.push(Some(i)),
            (ColumnData::Float(v), Some(Cell::Float(f))) => v.push(Some(f)),
            (ColumnData::Text(v), Some(Cell::Text(s))) => v.push(Some(s)),
            (ColumnData::Bool(v), Some(Cell::Bool(b))) => v.push(Some(b)),
            // A cell always has its column's type; anything else is null.
            (ColumnData::Int(v), _) => v.push(None),
            (ColumnData::Float(v), _) => v.push(None),
            (ColumnData::Text(v), _) => v.push(None),
            (ColumnData::Bool(v), _) => v.push(None),
        }
    }

    /// The cell of row `r` (0-based), `None` for null.
    pub fn key(&self, r: usize) -> Option<Key<'_>> {
        match self {
            ColumnData::Int(v) => v[r].map(Key::Int),
            ColumnData::Float(v) => v[r].map(Key::float),
            ColumnData::Text(v) => v[r].as_deref().map(Key::Text),
            ColumnData::Bool(v) => v[r].map(Key::Bool),
        }
    }

    /// Builds the Arrow array with rows in `order`.
    fn to_array(&self, order: &[usize]) -> ArrayRef {
        match self {
            ColumnData::Int(v) => Arc::new(Int64Array::from_iter(order.iter().map(|&i| v[i]))),
            ColumnData::Float(v) => Arc::new(Float64Array::from_iter(order.iter().map(|&i| v[i]))),
            ColumnData::Text(v) => Arc::new(StringArray::from_iter(
                order.iter().map(|&i| v[i].as_deref()),
            )),
            ColumnData::Bool(v) => Arc::new(BooleanArray::from_iter(order.iter().map(|&i| v[i]))),
        }
    }
}

/// A count of rows and the first few of them.
#[derive(Debug, Default)]
struct RowList {
    count: u64,
    rows: Vec<u64>,
}

impl RowList {
    fn add(&mut self, row: u64) {
        self.count += 1;
        if self.rows.len() < MAX_ROWS_LISTED {
            self.rows.push(row);
        }
    }
    fn problem(&self, column: &str, expected: &'static str) -> Option<ColumnProblem> {
        (self.count > 0).then(|| ColumnProblem {
            column: column.to_owned(),
            expected,
            count: self.count,
            rows: self.rows.clone(),
        })
    }
}

struct ColumnBuilder {
    ty: ColumnType,
    pseudonymised: bool,
    nullable: bool,
    /// Whether the source has this column at all.
    seen: bool,
    data: ColumnData,
    type_errors: RowList,
    forbidden_nulls: RowList,
}

/// Receives the records of one file, in order, and types them.
pub struct Sink<'s> {
    schema: &'s DatasetSchema,
    pseudonymizer: &'s Pseudonymizer,
    columns: Vec<ColumnBuilder>,
    by_name: HashMap<&'s str, usize>,
    rows: u64,
    limits: IngestLimits,
    /// Bytes counted against [`IngestLimits::parsed_bytes`].
    parsed: u64,
}

impl<'s> Sink<'s> {
    pub fn new(
        schema: &'s DatasetSchema,
        pseudonymizer: &'s Pseudonymizer,
        limits: &IngestLimits,
    ) -> Self {
        let columns = schema
            .columns
            .iter()
            .map(|c| ColumnBuilder {
                ty: c.ty,
                pseudonymised: c.role.is_pseudonymised(),
                nullable: c.nullable,
                seen: false,
                data: ColumnData::new(c.stored_type()),
                type_errors: RowList::default(),
                forbidden_nulls: RowList::default(),
            })
            .collect();
        let by_name = schema
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        Sink {
            schema,
            pseudonymizer,
            columns,
            by_name,
            rows: 0,
            limits: *limits,
            parsed: 0,
        }
    }

    /// Counts memory a reader keeps for the whole parse (the XLSX shared
    /// strings) against the parsed size; the reader has checked it fits.
    pub fn reserve(&mut self, bytes: u64) {
        self.parsed = self.parsed.saturating_add(bytes);
    }

    fn charge(&mut self, bytes: u64) -> Result<(), IngestError> {
        self.parsed = self.parsed.saturating_add(bytes);
        if self.parsed > self.limits.parsed_bytes {
            return Err(over(
                Limit::ParsedSize,
                format!(
                    "the values up to row {} take more than {} bytes once parsed",
                    self.rows + 1,
                    self.limits.parsed_bytes
                ),
            ));
        }
        Ok(())
    }

    /// Records read so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// For formats with a header: the schema index of every source column.
    /// Names are trimmed. Repeated, unknown and missing columns are errors.
    pub fn header(&mut self, names: &[String]) -> Result<Vec<usize>, IngestError> {
        self.check_width(names.len())?;
        let mut mapping = Vec::with_capacity(names.len());
        for (position, name) in names.iter().enumerate() {
            let index = self.column(name.trim(), position + 1)?;
            if mapping.contains(&index) {
                return Err(IngestError::DuplicateColumn(column_label(
                    name.trim(),
                    position + 1,
                    self.schema,
                )));
            }
            mapping.push(index);
        }
        self.check_missing()?;
        Ok(mapping)
    }

    /// How the file's column `name` at `position` appears in an error.
    pub fn label(&self, name: &str, position: usize) -> String {
        column_label(name, position, self.schema)
    }

    /// A file with `width` columns is within the columns limit.
    pub fn check_width(&self, width: usize) -> Result<(), IngestError> {
        if width > self.limits.columns {
            return Err(over(
                Limit::Columns,
                format!(
                    "the file has {width} columns, more than {}",
                    self.limits.columns
                ),
            ));
        }
        Ok(())
    }

    /// The cell-size limit, for readers that stop a long value early.
    pub fn cell_bytes(&self) -> usize {
        self.limits.cell_bytes
    }

    /// The error for a value over the cell size in column `index` of the
    /// current record.
    pub fn cell_too_large(&self, index: usize) -> IngestError {
        over(
            Limit::CellSize,
            format!(
                "row {}, column \"{}\" has a value of more than {} bytes",
                self.rows + 1,
                self.schema.columns[index].name,
                self.limits.cell_bytes
            ),
        )
    }

    /// For keyed formats (JSON, XML): the schema index of a source column
    /// name (trimmed); `position` (1-based) names it in an error when the
    /// name does not look like one.
    pub fn column(&mut self, name: &str, position: usize) -> Result<usize, IngestError> {
        let name = name.trim();
        let index = *self
            .by_name
            .get(name)
            .ok_or_else(|| IngestError::UnknownColumn(self.label(name, position)))?;
        self.columns[index].seen = true;
        Ok(index)
    }

    fn check_missing(&self) -> Result<(), IngestError> {
        match self.columns.iter().position(|c| !c.seen) {
            Some(i) => Err(IngestError::MissingColumn(
                self.schema.columns[i].name.clone(),
            )),
            None => Ok(()),
        }
    }

    /// Whether column `index` already has a value in the current record.
    pub fn is_filled(&self, index: usize) -> bool {
        self.columns[index].data.len() as u64 > self.rows
    }

    /// Adds one cell of the current record. Each column at most once per
    /// record (readers check; a second value is ignored).
    pub fn push(&mut self, index: usize, raw: Raw<'_>) -> Result<(), IngestError> {
        if self.is_filled(index) {
            return Ok(());
        }
        if let Raw::Str(s) = raw
            && s.len() > self.limits.cell_bytes
        {
            return Err(self.cell_too_large(index));
        }
        let row = self.rows + 1;
        let schema = self.schema;
        let id_space = &schema.id_space;
        let pseudonymizer = self.pseudonymizer;
        let col = &mut self.columns[index];
        let typed: Parsed<Cell> = if col.pseudonymised {
            let canonical = if col.ty == ColumnType::Int {
                parse_int(&raw).map(|v| v.map(|i| Cow::Owned(i.to_string())))
            } else {
                parse_text(&raw)
            };
            canonical.map(|v| v.map(|raw| Cell::Text(pseudonymizer.pseudonym(id_space, &raw))))
        } else {
            match col.ty {
                ColumnType::Int => parse_int(&raw).map(|v| v.map(Cell::Int)),
                ColumnType::Float => parse_float(&raw).map(|v| v.map(Cell::Float)),
                ColumnType::Bool => parse_bool(&raw).map(|v| v.map(Cell::Bool)),
                ColumnType::Text => parse_text(&raw).map(|v| v.map(|s| Cell::Text(s.into_owned()))),
            }
        };
        let cell = match typed {
            Ok(Some(cell)) => Some(cell),
            Ok(None) => {
                if !col.nullable {
                    col.forbidden_nulls.add(row);
                }
                None
            }
            Err(BadValue) => {
                col.type_errors.add(row);
                None
            }
        };
        let cost = cell_cost(&col.data, &cell);
        col.data.push(cell);
        self.charge(cost)
    }

    /// Ends the current record: columns it did not give are null.
    pub fn end_record(&mut self) -> Result<(), IngestError> {
        for index in 0..self.columns.len() {
            if !self.is_filled(index) {
                self.push(index, Raw::Null)?;
            }
        }
        if self.rows >= self.limits.rows {
            return Err(over(
                Limit::Rows,
                format!("the file has more than {} rows", self.limits.rows),
            ));
        }
        self.rows += 1;
        self.charge(ROW_COST)
    }

    /// All records read: the typed columns, or every type error (then every
    /// forbidden null) at once.
    pub fn finish(self) -> Result<Vec<ColumnData>, IngestError> {
        if self.rows == 0 {
            return Err(IngestError::Empty);
        }
        self.check_missing()?;
        let specs = &self.schema.columns;
        let type_errors: Vec<ColumnProblem> = self
            .columns
            .iter()
            .zip(specs)
            .filter_map(|(c, spec)| c.type_errors.problem(&spec.name, spec.ty.as_str()))
            .collect();
        if !type_errors.is_empty() {
            return Err(IngestError::TypeErrors(type_errors));
        }
        let nulls: Vec<ColumnProblem> = self
            .columns
            .iter()
            .zip(specs)
            .filter_map(|(c, spec)| c.forbidden_nulls.problem(&spec.name, "a value"))
            .collect();
        if !nulls.is_empty() {
            return Err(IngestError::NullsNotAllowed(nulls));
        }
        Ok(self.columns.into_iter().map(|c| c.data).collect())
    }
}

/// Builds the stored batch: with a privacy-unit column, rows sorted by its
/// pseudonym (nulls last) and, within a unit, by a secret keyed order, with
/// each row's position in its unit in `UNIT_ROW_COLUMN`; otherwise in
/// source order.
pub fn to_batch(
    columns: &[ColumnData],
    schema: &DatasetSchema,
    pseudonymizer: &Pseudonymizer,
) -> Result<RecordBatch, IngestError> {
    let n = columns.first().map_or(0, ColumnData::len);
    let mut order: Vec<usize> = (0..n).collect();
    let unit = schema
        .columns
        .iter()
        .position(|c| c.role == ColumnRole::PrivacyUnit);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 1);
    if let Some(ColumnData::Text(units)) = unit.map(|u| &columns[u]) {
        let secret: Vec<u64> = (0..n)
            .map(|i| {
                units[i]
                    .as_deref()
                    .map_or(0, |u| pseudonymizer.row_order_key(u, i as u64))
            })
            .collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| (units[i].is_none(), units[i].as_deref(), secret[i], i);
            key(a).cmp(&key(b))
        });
        arrays.extend(columns.iter().map(|c| c.to_array(&order)));
        let mut position = Vec::with_capacity(n);
        for (k, &i) in order.iter().enumerate() {
            position.push(match &units[i] {
                None => None,
                Some(u) if k > 0 && units[order[k - 1]].as_ref() == Some(u) => {
                    position.last().copied().flatten().map(|p: i64| p + 1)
                }
                Some(_) => Some(1),
            });
        }
        arrays.push(Arc::new(Int64Array::from(position)));
    } else {
        arrays.extend(columns.iter().map(|c| c.to_array(&order)));
    }
    Ok(RecordBatch::try_new(crate::arrow_schema(schema), arrays)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ints() {
        let cases: &[(Raw, Parsed<i64>)] = &[
            (Raw::Str("17000.0"), Ok(Some(17000))),
            (Raw::Str("17000.00"), Ok(Some(17000))),
            (Raw::Str("-3"), Ok(Some(-3))),
            (Raw::Str(" 42 "), Ok(Some(42))),
            (Raw::Str(""), Ok(None)),
            (Raw::Str("  "), Ok(None)),
            (Raw::Str("17000.5"), Err(BadValue)),
            (Raw::Str("17."), Err(BadValue)),
            (Raw::Str(".0"), Err(BadValue)),
            (Raw::Str("1e3"), Err(BadValue)),
            (Raw::Str("abc"), Err(BadValue)),
            (Raw::Float(3.0), Ok(Some(3))),
            (Raw::Float(3.5), Err(BadValue)),
            (Raw::Float(1e19), Err(BadValue)),
            (Raw::Float(f64::NAN), Err(BadValue)),
            (Raw::Bool(true), Err(BadValue)),
            (Raw::Null, Ok(None)),
            (Raw::Invalid, Err(BadValue)),
        ];
        for (raw, expected) in cases {
            assert_eq!(&parse_int(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn parses_floats_bools_and_text() {
        assert_eq!(parse_float(&Raw::Str("1.5")), Ok(Some(1.5)));
        assert_eq!(parse_float(&Raw::Int(2)), Ok(Some(2.0)));
        for bad in ["inf", "NaN", "-infinity", "x", "1,5"] {
            assert_eq!(parse_float(&Raw::Str(bad)), Err(BadValue), "{bad}");
        }
        assert_eq!(parse_float(&Raw::Float(f64::INFINITY)), Err(BadValue));
        for (s, b) in [("TRUE", true), ("false", false), ("1", true), ("0", false)] {
            assert_eq!(parse_bool(&Raw::Str(s)), Ok(Some(b)), "{s}");
        }
        assert_eq!(parse_bool(&Raw::Str("yes")), Err(BadValue));
        assert_eq!(parse_bool(&Raw::Int(2)), Err(BadValue));
        assert_eq!(parse_bool(&Raw::Float(1.0)), Ok(Some(true)));
        assert_eq!(parse_text(&Raw::Int(7)).unwrap().as_deref(), Some("7"));
        assert_eq!(
            parse_text(&Raw::Float(17.0)).unwrap().as_deref(),
            Some("17")
        );
        assert_eq!(
            parse_text(&Raw::Float(0.5)).unwrap().as_deref(),
            Some("0.5")
        );
        assert_eq!(
            parse_text(&Raw::Str(" a ")).unwrap().as_deref(),
            Some(" a ")
        );
        assert_eq!(parse_text(&Raw::Str("")), Ok(None));
        assert_eq!(parse_text(&Raw::Invalid), Err(BadValue));
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(Key::float(-0.0), Key::float(0.0));
        assert_ne!(Key::float(1.0), Key::float(-1.0));
    }
}

//! XLSX: the first worksheet; its first row with a value is the header.
//! Blank rows are skipped (they are not records); numbers may arrive as
//! floats; date cells become ISO 8601 text.
//!
//! An XLSX file is a zip of XML parts, and calamine decompresses each part
//! without bound and keeps every shared string and style in memory. So
//! before calamine opens the workbook, [`prescan`] checks the declared sizes
//! of all entries, then decompresses each one through a cap (its declared
//! size, within the decompressed-size limit) and measures its XML as it
//! streams: no value or tag over the cell size, no sheet over the rows or
//! columns limits, and what calamine will keep within the parsed size. The
//! sheet itself is then read cell by cell (calamine's cell reader), never
//! as a whole range.

use std::io::{Cursor, Read};

use calamine::{Data, DataRef, ExcelDateTime, Reader, Xlsx, XlsxError, open_workbook_from_rs};

use super::malformed;
use crate::convert::{Raw, Sink};
use crate::limits::{Capped, Limit, over};
use crate::{IngestError, IngestLimits};

const XLSX: &str = "XLSX";
/// Memory calamine keeps per XML element outside sheet data (a shared
/// string, a style, a relationship): a `String` or a small struct and its
/// allocation.
const ELEMENT_COST: u64 = 40;
/// Bytes a tag may have besides one value-sized attribute.
const TAG_MARKUP: u64 = 4096;

pub fn read(input: &[u8], sink: &mut Sink<'_>, limits: &IngestLimits) -> Result<(), IngestError> {
    let kept = prescan(input, limits)?;
    sink.reserve(kept);
    // calamine's errors can quote cell contents: only their kind is kept.
    let mut book: Xlsx<_> = open_workbook_from_rs(Cursor::new(input))
        .map_err(|_| malformed(XLSX, "not a readable workbook"))?;
    let Some(name) = book.sheet_names().first().cloned() else {
        return Err(malformed(XLSX, "the workbook has no worksheet"));
    };
    let mut cells = match book.worksheet_cells_reader(&name) {
        Ok(cells) => cells,
        // A chart sheet: no cells.
        Err(XlsxError::NotAWorksheet(_)) => return Err(IngestError::Empty),
        Err(_) => return Err(malformed(XLSX, "the first worksheet cannot be read")),
    };
    // Cells with a value, in document order: (row, column, value).
    let mut next = || loop {
        match cells.next_cell() {
            Ok(Some(c)) if matches!(c.get_value(), DataRef::Empty) => {}
            Ok(Some(c)) => {
                let (row, col) = c.get_position();
                return Ok(Some((row, col, c.get_value().clone())));
            }
            Ok(None) => return Ok(None),
            Err(_) => return Err(malformed(XLSX, "the first worksheet cannot be read")),
        }
    };

    // The header: every cell of the first row that has a value.
    let Some(first) = next()? else {
        return Err(IngestError::Empty);
    };
    let header_row = first.0;
    let mut header = vec![first];
    let mut pending = None;
    while let Some(cell) = next()? {
        if cell.0 == header_row {
            header.push(cell);
        } else {
            pending = Some(cell);
            break;
        }
    }
    let first_col = header.iter().map(|c| c.1).min().unwrap_or(0);
    let width = header.iter().map(|c| c.1 - first_col).max().unwrap_or(0) as usize + 1;
    sink.check_width(width)?;
    let mut names = vec![String::new(); width];
    for (_, col, value) in header {
        names[(col - first_col) as usize] = match value {
            DataRef::String(s) => s.trim().to_owned(),
            DataRef::SharedString(s) => s.trim().to_owned(),
            other => Data::from(other).to_string(),
        };
    }
    let mapping = sink.header(&names)?;

    // Records, one sheet row at a time.
    let mut row = vec![DataRef::Empty; width];
    let mut current = header_row;
    let mut found = 0usize;
    loop {
        let cell = match pending.take() {
            Some(c) => Some(c),
            None => next()?,
        };
        if found > 0 && cell.as_ref().is_none_or(|c| c.0 != current) {
            flush(sink, &mapping, &mut row, found)?;
            found = 0;
        }
        let Some((r, col, value)) = cell else { break };
        if r < current || (r == current && found == 0) {
            return Err(malformed(
                XLSX,
                format!("the rows after row {} are out of order", sink.rows()),
            ));
        }
        current = r;
        let Some(i) = col.checked_sub(first_col) else {
            return Err(malformed(
                XLSX,
                format!(
                    "row {} has a value left of the header's first column",
                    sink.rows() + 1
                ),
            ));
        };
        let i = i as usize;
        found = found.max(i + 1);
        if let Some(slot) = row.get_mut(i) {
            *slot = value;
        }
    }
    Ok(())
}

/// Hands one sheet row to the sink; `found` is one past its last value.
fn flush(
    sink: &mut Sink<'_>,
    mapping: &[usize],
    row: &mut [DataRef<'_>],
    found: usize,
) -> Result<(), IngestError> {
    if found > row.len() {
        return Err(IngestError::Ragged {
            row: sink.rows() + 1,
            expected: row.len(),
            found,
        });
    }
    for (&index, cell) in mapping.iter().zip(row.iter_mut()) {
        let date;
        let raw = match &*cell {
            DataRef::Empty => Raw::Null,
            DataRef::Int(v) => Raw::Int(*v),
            DataRef::Float(v) => Raw::Float(*v),
            DataRef::Bool(v) => Raw::Bool(*v),
            DataRef::SharedString(s) => Raw::Str(s),
            DataRef::String(s) | DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => Raw::Str(s),
            DataRef::DateTime(d) if d.is_datetime() => {
                date = iso_date(d);
                Raw::Str(&date)
            }
            DataRef::DateTime(d) => Raw::Float(d.as_f64()),
            DataRef::Error(_) => Raw::Invalid,
        };
        sink.push(index, raw)?;
        *cell = DataRef::Empty;
    }
    sink.end_record()
}

/// "2025-10-13" for a whole day, "2025-10-13T12:59:02.400" otherwise.
fn iso_date(d: &ExcelDateTime) -> String {
    let (y, mo, day, h, mi, s, ms) = d.to_ymd_hms_milli();
    match (h, mi, s, ms) {
        (0, 0, 0, 0) => format!("{y:04}-{mo:02}-{day:02}"),
        (_, _, _, 0) => format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}"),
        _ => format!("{y:04}-{mo:02}-{day:02}T{h:02}:{mi:02}:{s:02}.{ms:03}"),
    }
}

/// Checks every zip entry within the limits (see the module doc) without
/// keeping any of it; returns the bytes calamine will keep outside sheet
/// data. Entry names come from the file, so errors name only the kind of
/// part.
fn prescan(input: &[u8], limits: &IngestLimits) -> Result<u64, IngestError> {
    let unreadable = || malformed(XLSX, "not a readable workbook");
    let mut zip = zip::ZipArchive::new(Cursor::new(input)).map_err(|_| unreadable())?;
    // Declared sizes first: an honest bomb is refused before any inflating.
    let mut declared = 0u64;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|_| unreadable())?;
        declared = declared.saturating_add(entry.size());
    }
    if declared > limits.decompressed_bytes {
        return Err(over(
            Limit::DecompressedSize,
            format!(
                "the XLSX workbook decompresses to more than {} bytes",
                limits.decompressed_bytes
            ),
        ));
    }
    // Then the bytes themselves: a part may not exceed its declared size, so
    // all of them together stay within the limit.
    let mut scan = XmlScan::new(limits);
    let mut buf = vec![0u8; 64 * 1024];
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|_| unreadable())?;
        let size = entry.size();
        let part = Part::of(entry.name());
        let xml = {
            let name = entry.name().to_ascii_lowercase();
            name.ends_with(".xml") || name.ends_with(".rels")
        };
        scan.start(part);
        let mut capped = Capped::new(&mut entry, size);
        loop {
            let n = match capped.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) if capped.over => {
                    return Err(over(
                        Limit::DecompressedSize,
                        format!(
                            "the XLSX {} decompresses to more than the {size} bytes its zip entry declares",
                            part.name()
                        ),
                    ));
                }
                Err(_) => {
                    return Err(malformed(
                        XLSX,
                        format!("a {} part cannot be decompressed", part.name()),
                    ));
                }
            };
            if xml {
                scan.feed(&buf[..n])?;
            }
        }
    }
    Ok(scan.kept)
}

/// What kind of workbook part an entry is, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Sheet,
    SharedStrings,
    Other,
}

impl Part {
    fn of(name: &str) -> Self {
        let name = name.to_ascii_lowercase();
        if name.contains("worksheets/") {
            Part::Sheet
        } else if name.ends_with("sharedstrings.xml") {
            Part::SharedStrings
        } else {
            Part::Other
        }
    }

    fn name(self) -> &'static str {
        match self {
            Part::Sheet => "sheet",
            Part::SharedStrings => "shared string table",
            Part::Other => "workbook",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Text,
    /// Just after `<`.
    Open,
    /// In a tag's name (after `<` or `</`).
    Name,
    /// In a tag, after its name.
    Tag,
    Quote(u8),
    /// After `<!`: a comment, CDATA or a declaration, told apart by what follows.
    Bang,
    Comment,
    CData,
    Pi,
}

/// Measures XML as it streams, a byte at a time, keeping nothing but
/// counters: the length of the current value (an entity reference counts
/// as one byte, so never more than the value's decoded length) or tag, the
/// rows and cells of sheet data, and what calamine keeps of other parts.
struct XmlScan<'l> {
    limits: &'l IngestLimits,
    part: Part,
    state: State,
    /// Bytes of the current text value or markup token.
    token: u64,
    /// Bytes since `&` in text, while it may still be an entity reference.
    entity: Option<u8>,
    /// Local name of the current tag (the first 9 bytes: enough for
    /// `sheetData`), whether it is longer, and whether it is an end tag.
    name: [u8; 9],
    name_len: usize,
    name_long: bool,
    closing: bool,
    /// The bytes before the current one, to find `-->`, `]]>`, `?>`, `/>`.
    last: [u8; 2],
    bang: Vec<u8>,
    in_sheet_data: bool,
    rows: u64,
    cells: u64,
    kept: u64,
}

impl<'l> XmlScan<'l> {
    fn new(limits: &'l IngestLimits) -> Self {
        XmlScan {
            limits,
            part: Part::Other,
            state: State::Text,
            token: 0,
            entity: None,
            name: [0; 9],
            name_len: 0,
            name_long: false,
            closing: false,
            last: [0; 2],
            bang: Vec::new(),
            in_sheet_data: false,
            rows: 0,
            cells: 0,
            kept: 0,
        }
    }

    fn start(&mut self, part: Part) {
        let kept = self.kept;
        *self = XmlScan::new(self.limits);
        self.part = part;
        self.kept = kept;
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        for &b in bytes {
            self.byte(b)?;
            self.last = [self.last[1], b];
        }
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), IngestError> {
        match self.state {
            State::Text => match b {
                b'<' => {
                    self.end_text()?;
                    self.token = 1;
                    self.state = State::Open;
                }
                _ => {
                    self.entity = match (self.entity, b) {
                        (None, b'&') => {
                            self.token += 1;
                            Some(0)
                        }
                        (None, _) => {
                            self.token += 1;
                            None
                        }
                        (Some(_), b';') => None,
                        // Not a reference after all: count what it was.
                        (Some(n), _) if n >= 16 => {
                            self.token += u64::from(n) + 1;
                            None
                        }
                        (Some(n), _) => Some(n + 1),
                    };
                    // Sheets and shared strings hold values; other parts'
                    // text is bounded like a tag.
                    let (cap, what) = match self.part {
                        Part::Sheet | Part::SharedStrings => {
                            (self.limits.cell_bytes as u64, "a value")
                        }
                        Part::Other => (self.limits.cell_bytes as u64 + TAG_MARKUP, "a text"),
                    };
                    if self.token > cap {
                        return Err(self.too_long(what, cap));
                    }
                }
            },
            State::CData => {
                self.token += 1;
                if self.token > self.limits.cell_bytes as u64 + 3 {
                    return Err(self.too_long("a value", self.limits.cell_bytes as u64));
                }
                self.markup(b)?;
            }
            _ => {
                self.token += 1;
                // A tag holds at most a value-sized attribute and its markup.
                let cap = self.limits.cell_bytes as u64 + TAG_MARKUP;
                if self.token > cap {
                    return Err(self.too_long("an XML tag or comment", cap));
                }
                self.markup(b)?;
            }
        }
        Ok(())
    }

    fn markup(&mut self, b: u8) -> Result<(), IngestError> {
        match self.state {
            State::Text => {}
            State::Open => match b {
                b'!' => {
                    self.bang.clear();
                    self.state = State::Bang;
                }
                b'?' => self.state = State::Pi,
                b'/' => {
                    self.begin_name(true);
                }
                _ => {
                    self.begin_name(false);
                    self.name_byte(b)?;
                }
            },
            State::Name => self.name_byte(b)?,
            State::Tag => match b {
                b'"' | b'\'' => self.state = State::Quote(b),
                b'>' => self.end_tag(self.last[1] == b'/'),
                _ => {}
            },
            State::Quote(q) => {
                if b == q {
                    self.state = State::Tag;
                }
            }
            State::Bang => {
                self.bang.push(b);
                if self.bang == b"--" {
                    self.state = State::Comment;
                } else if self.bang == b"[CDATA[" {
                    // Its content is a value (the closing "]]>" is allowed for).
                    self.token = 0;
                    self.state = State::CData;
                } else if !(b"--".starts_with(&self.bang) || b"[CDATA[".starts_with(&self.bang)) {
                    // A declaration (DOCTYPE): read as a tag.
                    self.state = State::Tag;
                    if b == b'>' {
                        self.end_markup();
                    }
                }
            }
            State::Comment if b == b'>' && self.last == *b"--" => self.end_markup(),
            State::CData if b == b'>' && self.last == *b"]]" => self.end_markup(),
            State::Pi if b == b'>' && self.last[1] == b'?' => self.end_markup(),
            State::Comment | State::CData | State::Pi => {}
        }
        Ok(())
    }

    fn begin_name(&mut self, closing: bool) {
        self.closing = closing;
        self.name_len = 0;
        self.name_long = false;
        self.state = State::Name;
    }

    fn name_byte(&mut self, b: u8) -> Result<(), IngestError> {
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>' => {
                self.named()?;
                self.state = State::Tag;
                if b == b'>' {
                    self.end_tag(false);
                }
            }
            // A namespace prefix: only the local name counts.
            b':' => {
                self.name_len = 0;
                self.name_long = false;
            }
            _ if self.name_len < self.name.len() => {
                self.name[self.name_len] = b;
                self.name_len += 1;
            }
            _ => self.name_long = true,
        }
        Ok(())
    }

    fn local_name(&self) -> &[u8] {
        if self.name_long {
            b""
        } else {
            &self.name[..self.name_len]
        }
    }

    /// A tag's name is complete: count rows, cells and kept elements.
    fn named(&mut self) -> Result<(), IngestError> {
        let name = self.local_name();
        if self.closing {
            if name == b"sheetData" {
                self.in_sheet_data = false;
            }
            return Ok(());
        }
        if name == b"sheetData" {
            self.in_sheet_data = true;
        } else if self.in_sheet_data && name == b"row" {
            self.rows += 1;
            self.cells = 0;
            // The header row is a row of the sheet too.
            if self.rows > self.limits.rows.saturating_add(1) {
                return Err(over(
                    Limit::Rows,
                    format!(
                        "the XLSX {} has more than {} rows",
                        self.part.name(),
                        self.limits.rows
                    ),
                ));
            }
        } else if self.in_sheet_data && name == b"c" {
            self.cells += 1;
            if self.cells > self.limits.columns as u64 {
                return Err(over(
                    Limit::Columns,
                    format!(
                        "row {} of the XLSX {} has more than {} cells",
                        self.rows,
                        self.part.name(),
                        self.limits.columns
                    ),
                ));
            }
        } else if !self.in_sheet_data {
            self.keep(ELEMENT_COST)?;
        }
        Ok(())
    }

    fn end_tag(&mut self, empty: bool) {
        if empty && !self.closing && self.local_name() == b"sheetData" {
            self.in_sheet_data = false;
        }
        self.end_markup();
    }

    fn end_markup(&mut self) {
        self.token = 0;
        self.entity = None;
        self.state = State::Text;
    }

    fn end_text(&mut self) -> Result<(), IngestError> {
        if !self.in_sheet_data {
            self.keep(self.token)?;
        }
        self.entity = None;
        Ok(())
    }

    fn keep(&mut self, bytes: u64) -> Result<(), IngestError> {
        self.kept = self.kept.saturating_add(bytes);
        if self.kept > self.limits.parsed_bytes {
            return Err(over(
                Limit::ParsedSize,
                format!(
                    "the XLSX shared strings and styles take more than {} bytes once parsed",
                    self.limits.parsed_bytes
                ),
            ));
        }
        Ok(())
    }

    fn too_long(&self, what: &str, cap: u64) -> IngestError {
        over(
            Limit::CellSize,
            format!(
                "the XLSX {} has {what} of more than {cap} bytes",
                self.part.name()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(xml: &str, limits: &IngestLimits) -> Result<u64, IngestError> {
        let mut s = XmlScan::new(limits);
        s.start(Part::Sheet);
        // Byte by byte and whole: chunk borders must not matter.
        for chunk in xml.as_bytes().chunks(3) {
            s.feed(chunk)?;
        }
        Ok(s.kept)
    }

    fn small() -> IngestLimits {
        IngestLimits {
            cell_bytes: 8,
            rows: 2,
            columns: 2,
            ..IngestLimits::default()
        }
    }

    #[test]
    fn values_tags_rows_and_cells_are_measured() {
        let l = small();
        let ok = [
            "<w><sheetData><row><c><v>12345678</v></c><c/></row><row/><row/></sheetData></w>",
            // Entity references count as one byte; comments, CDATA and
            // quoted '>' are not tags.
            "<w><sheetData><row><c><v>&amp;&amp;&amp;&amp;&amp;&amp;&amp;&amp;</v></c></row></sheetData></w>",
            "<w a='>'><!-- x --><![CDATA[12345]]><?p?><x:sheetData/><row/><row/><row/><row/></w>",
        ];
        for xml in ok {
            assert!(scan(xml, &l).is_ok(), "{xml}");
        }
        let long_tag = format!(
            "<w><sheetData><row r='{}'/></sheetData></w>",
            "1".repeat(4100)
        );
        let long_comment = format!("<w><!-- {} --></w>", "x".repeat(4100));
        let refused: &[(&str, Limit)] = &[
            (
                "<w><sheetData><row><c><v>123456789</v></c></row></sheetData></w>",
                Limit::CellSize,
            ),
            (
                "<w><sheetData><row><c><v>&amp;123456789</v></c></row></sheetData></w>",
                Limit::CellSize,
            ),
            (
                "<w><sheetData><row><c><v><![CDATA[123456789]]></v></c></row></sheetData></w>",
                Limit::CellSize,
            ),
            (&long_tag, Limit::CellSize),
            (&long_comment, Limit::CellSize),
            (
                "<w><sheetData><row/><row/><row/><row/></sheetData></w>",
                Limit::Rows,
            ),
            (
                "<w><x:sheetData><x:row><x:c/><x:c/><x:c/></x:row></x:sheetData></w>",
                Limit::Columns,
            ),
        ];
        for (xml, limit) in refused {
            match scan(xml, &l) {
                Err(IngestError::Limit { limit: got, .. }) => assert_eq!(got, *limit, "{xml}"),
                other => panic!("{xml}: {other:?}"),
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::limits::fuzz_config(1000))]

        /// Any bytes in any chunks: a count or a limit error, never a
        /// panic; and the chunking never changes the outcome.
        #[test]
        fn fuzz_xml_scan(
            bytes in proptest::collection::vec(proptest::sample::select(&b"<>/!?-[]CDAT\"' =&;:rowcsheetDatasi x"[..]), 0..300),
            chunk in 1usize..50,
        ) {
            let l = small();
            let whole = {
                let mut s = XmlScan::new(&l);
                s.start(Part::Sheet);
                s.feed(&bytes).map(|()| s.kept).map_err(|e| e.to_string())
            };
            let mut s = XmlScan::new(&l);
            s.start(Part::Sheet);
            let chunked = bytes
                .chunks(chunk)
                .try_for_each(|c| s.feed(c))
                .map(|()| s.kept)
                .map_err(|e| e.to_string());
            proptest::prop_assert_eq!(whole, chunked);
        }
    }

    #[test]
    fn parts_outside_sheet_data_are_kept() {
        let l = IngestLimits {
            parsed_bytes: 100,
            ..IngestLimits::default()
        };
        // Two elements (40 each) and 4 bytes of text.
        assert_eq!(scan("<sst><si>abcd</si></sst>", &l).unwrap(), 84);
        assert!(matches!(
            scan("<sst><si/><si/><si/></sst>", &l),
            Err(IngestError::Limit {
                limit: Limit::ParsedSize,
                ..
            })
        ));
    }
}

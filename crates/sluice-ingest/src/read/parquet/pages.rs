//! Parquet page headers, read without decompressing anything. The parquet
//! crate keeps its page-header reader private, so this reads the few fields
//! ingest checks from the Thrift compact encoding and skips the rest.

/// `PageType` values.
pub const DICTIONARY_PAGE: i32 = 2;
pub const DATA_PAGE: i32 = 0;
pub const DATA_PAGE_V2: i32 = 3;
/// `Encoding` values.
pub const PLAIN_DICTIONARY: i32 = 2;
pub const DELTA_BYTE_ARRAY: i32 = 7;
pub const RLE_DICTIONARY: i32 = 8;

/// Nesting deeper than this is not a page header ingest reads.
const DEPTH: u8 = 16;

/// The fields of a page header that ingest checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageHeader {
    pub kind: i32,
    pub uncompressed: i32,
    pub compressed: i32,
    /// The values' encoding (data and dictionary pages).
    pub encoding: Option<i32>,
    /// Version 2 data pages: bytes of levels stored before the data, and
    /// whether the data is compressed.
    pub levels: i32,
    pub is_compressed: bool,
    /// Bytes of the header itself.
    pub len: usize,
}

/// Reads the page header at the start of `buf`; `None` if it is not one.
pub fn read_header(buf: &[u8]) -> Option<PageHeader> {
    let mut c = Compact { buf, pos: 0 };
    let mut h = PageHeader {
        kind: -1,
        uncompressed: -1,
        compressed: -1,
        encoding: None,
        levels: 0,
        is_compressed: true,
        len: 0,
    };
    let (mut definition, mut repetition) = (0i32, 0i32);
    c.fields(DEPTH, &mut |c, id, ty| {
        Some(match (id, ty) {
            (1, I32) => {
                h.kind = c.i32()?;
                true
            }
            (2, I32) => {
                h.uncompressed = c.i32()?;
                true
            }
            (3, I32) => {
                h.compressed = c.i32()?;
                true
            }
            // DataPageHeader, DictionaryPageHeader: the encoding is field 2.
            (5 | 7, STRUCT) => {
                c.fields(DEPTH - 1, &mut |c, id, ty| {
                    Some(match (id, ty) {
                        (2, I32) => {
                            h.encoding = Some(c.i32()?);
                            true
                        }
                        _ => false,
                    })
                })?;
                true
            }
            (8, STRUCT) => {
                c.fields(DEPTH - 1, &mut |c, id, ty| {
                    Some(match (id, ty) {
                        (4, I32) => {
                            h.encoding = Some(c.i32()?);
                            true
                        }
                        (5, I32) => {
                            definition = c.i32()?;
                            true
                        }
                        (6, I32) => {
                            repetition = c.i32()?;
                            true
                        }
                        (7, TRUE) => {
                            h.is_compressed = true;
                            true
                        }
                        (7, FALSE) => {
                            h.is_compressed = false;
                            true
                        }
                        _ => false,
                    })
                })?;
                true
            }
            _ => false,
        })
    })?;
    if h.kind < 0 || h.uncompressed < 0 || h.compressed < 0 || definition < 0 || repetition < 0 {
        return None;
    }
    h.levels = definition.checked_add(repetition)?;
    h.len = c.pos;
    Some(h)
}

// Compact protocol type codes.
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const I32: u8 = 5;
const STRUCT: u8 = 12;

struct Compact<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Field<'f, 'a> = dyn FnMut(&mut Compact<'a>, i16, u8) -> Option<bool> + 'f;

impl<'a> Compact<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn advance(&mut self, n: u64) -> Option<()> {
        let end = self.pos.checked_add(usize::try_from(n).ok()?)?;
        (end <= self.buf.len()).then(|| self.pos = end)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn zigzag(&mut self) -> Option<i64> {
        let v = self.varint()?;
        Some(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Option<i32> {
        i32::try_from(self.zigzag()?).ok()
    }

    /// Visits a struct's fields: `each` reads the value of a field it wants
    /// and returns true, or returns false to have it skipped.
    fn fields(&mut self, depth: u8, each: &mut Field<'_, 'a>) -> Option<()> {
        let mut last = 0i16;
        loop {
            let header = self.byte()?;
            if header == 0 {
                return Some(());
            }
            let ty = header & 0x0f;
            let id = match header >> 4 {
                0 => i16::try_from(self.zigzag()?).ok()?,
                delta => last.checked_add(i16::from(delta))?,
            };
            last = id;
            if !each(self, id, ty)? {
                self.skip(ty, depth)?;
            }
        }
    }

    fn skip(&mut self, ty: u8, depth: u8) -> Option<()> {
        let depth = depth.checked_sub(1)?;
        match ty {
            // A boolean field's value is in its type code.
            TRUE | FALSE => Some(()),
            3 => self.advance(1),
            4..=6 => self.varint().map(drop),
            7 => self.advance(8),
            8 => {
                let n = self.varint()?;
                self.advance(n)
            }
            9 | 10 => {
                let h = self.byte()?;
                let n = match h >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                // Every element takes at least a byte: a bad count ends at
                // the end of the buffer.
                for _ in 0..n {
                    self.element(h & 0x0f, depth)?;
                }
                Some(())
            }
            11 => {
                let n = self.varint()?;
                if n > 0 {
                    let kv = self.byte()?;
                    for _ in 0..n {
                        self.element(kv >> 4, depth)?;
                        self.element(kv & 0x0f, depth)?;
                    }
                }
                Some(())
            }
            STRUCT => self.fields(depth, &mut |_, _, _| Some(false)),
            // UUID
            13 => self.advance(16),
            _ => None,
        }
    }

    /// A list, set or map element; booleans there take a byte each.
    fn element(&mut self, ty: u8, depth: u8) -> Option<()> {
        match ty {
            TRUE | FALSE => self.advance(1),
            _ => self.skip(ty, depth),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A version 2 data page header: type DATA_PAGE_V2 (3), sizes 100 and
    /// 40, a crc, then a v2 header with a statistics struct, levels 3 + 2
    /// and is_compressed=false; then one byte of page data.
    const V2: &[u8] = &[
        0x15, 0x06, // field 1, i32: 3
        0x15, 0xc8, 0x01, // field 2, i32: 100
        0x15, 0x50, // field 3, i32: 40
        0x15, 0x02, // field 4 (crc), i32: 1
        0x4c, // field 8 (delta 4), struct
        0x15, 0x04, // 1: num_values 2
        0x15, 0x00, // 2: num_nulls 0
        0x15, 0x04, // 3: num_rows 2
        0x15, 0x10, // 4: encoding 8 (RLE_DICTIONARY)
        0x15, 0x06, // 5: definition levels 3
        0x15, 0x04, // 6: repetition levels 2
        0x12, // 7: is_compressed = false
        0x1c, // 8: statistics struct
        0x18, 0x02, 0xaa, 0xbb, // 1: binary of 2 bytes
        0x19, 0x21, 0x01, 0x02, // 2: a list of two booleans
        0x00, // end of statistics
        0x00, // end of v2 header
        0x00, // end of page header
        0xff, // the page data
    ];

    #[test]
    fn reads_the_checked_fields_and_skips_the_rest() {
        let bytes = V2;
        let h = read_header(bytes).unwrap();
        assert_eq!(
            h,
            PageHeader {
                kind: DATA_PAGE_V2,
                uncompressed: 100,
                compressed: 40,
                encoding: Some(RLE_DICTIONARY),
                levels: 5,
                is_compressed: false,
                len: bytes.len() - 1,
            }
        );
        // Every truncation fails cleanly.
        for cut in 0..bytes.len() - 1 {
            assert_eq!(read_header(&bytes[..cut]), None, "cut at {cut}");
        }
        // A required size that is negative is not a header.
        assert_eq!(
            read_header(&[0x15, 0x06, 0x15, 0x01, 0x15, 0x02, 0x00]),
            None
        );
    }

    proptest! {
        #![proptest_config(crate::limits::fuzz_config(2000))]

        /// Any bytes, or a header with bytes changed: a header or None,
        /// never a panic, and never longer than its input.
        #[test]
        fn fuzz_page_header_reader(
            noise in prop::collection::vec(any::<u8>(), 0..48),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        ) {
            let mut edited = V2.to_vec();
            for (i, v) in &edits {
                let p = i.index(edited.len());
                edited[p] = *v;
            }
            for bytes in [noise, edited] {
                if let Some(h) = read_header(&bytes) {
                    prop_assert!(h.len <= bytes.len());
                    prop_assert!(h.uncompressed >= 0 && h.compressed >= 0 && h.levels >= 0);
                }
            }
        }
    }
}

//! Builders of decompression bombs: valid files, small on disk, that
//! decompress to more than a gibibyte. The compressed streams are written by
//! hand (a run of bytes is a few back-references), because compressing a
//! gibibyte through the real encoders takes half a minute in a debug build.

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::{Compression, Encoding, GzipLevel, ZstdLevel};
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedPageWriter, TrackedWrite};
use parquet::schema::parser::parse_message_type;
use parquet::schema::types::SchemaDescriptor;

/// A periodic byte sequence: `unit` repeated to `len` bytes.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub unit: &'a [u8],
    pub len: usize,
}

impl Run<'_> {
    fn byte(&self, i: usize) -> u8 {
        self.unit[i % self.unit.len()]
    }
}

/// Content made of literal parts and runs.
pub enum Piece<'a> {
    Bytes(&'a [u8]),
    Run(Run<'a>),
}

pub fn len(pieces: &[Piece<'_>]) -> usize {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Bytes(b) => b.len(),
            Piece::Run(r) => r.len,
        })
        .sum()
}

/// CRC-32 of the content without materialising it: runs by doubling with
/// crc32fast's combine.
pub fn crc32(pieces: &[Piece<'_>]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => crc.update(b),
            Piece::Run(r) => {
                // Blocks of whole periods, then the tail.
                let block_len = r.unit.len() * (65536 / r.unit.len()).max(1);
                let block: Vec<u8> = (0..block_len).map(|i| r.byte(i)).collect();
                let mut power = crc32fast::Hasher::new();
                power.update(&block);
                let mut blocks = r.len / block_len;
                while blocks > 0 {
                    if blocks & 1 == 1 {
                        crc.combine(&power);
                    }
                    let twice = power.clone();
                    power.combine(&twice);
                    blocks >>= 1;
                }
                let tail: Vec<u8> = (0..r.len % block_len).map(|i| r.byte(i)).collect();
                crc.update(&tail);
            }
        }
    }
    crc.finalize()
}

/// A raw DEFLATE stream (one block, fixed Huffman codes): literals, and
/// each run as its first period followed by 258-byte back-references.
pub fn deflate(pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut w = Bits::default();
    w.put(1, 1); // last block
    w.put(1, 2); // fixed codes
    for piece in pieces {
        match piece {
            Piece::Bytes(b) => b.iter().for_each(|&b| w.literal(b)),
            Piece::Run(r) => {
                let period = r.unit.len();
                assert!(period <= 32768);
                let mut done = 0;
                while done < r.len.min(period) {
                    w.literal(r.byte(done));
                    done += 1;
                }
                let (code, extra, base) = distance_code(period);
                while r.len - done >= 258 {
                    w.huffman(0b1100_0101, 8); // length 258: code 285
                    w.huffman(code, 5);
                    w.put(u32::try_from(period - base).unwrap(), extra);
                    done += 258;
                }
                while done < r.len {
                    w.literal(r.byte(done));
                    done += 1;
                }
            }
        }
    }
    w.huffman(0, 7); // end of block
    w.finish()
}

/// (code, extra bits, base distance) of a DEFLATE distance.
fn distance_code(d: usize) -> (u32, u32, usize) {
    if d <= 4 {
        return (d as u32 - 1, 0, d);
    }
    (4..30)
        .map(|c: u32| {
            let extra = c / 2 - 1;
            let base = ((2 + (c as usize & 1)) << extra) + 1;
            (c, extra, base)
        })
        .find(|&(_, extra, base)| d >= base && d < base + (1 << extra))
        .expect("distance at most 32768")
}

#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// `count` bits of `v`, least significant first.
    fn put(&mut self, v: u32, count: u32) {
        self.acc |= u64::from(v) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: most significant bit first.
    fn huffman(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }

    fn literal(&mut self, b: u8) {
        if b < 144 {
            self.huffman(0x30 + u32::from(b), 8);
        } else {
            self.huffman(0x190 + u32::from(b) - 144, 9);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A gzip member around [`deflate`].
pub fn gzip(pieces: &[Piece<'_>]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.extend(deflate(pieces));
    out.extend(crc32(pieces).to_le_bytes());
    out.extend((len(pieces) as u32).to_le_bytes());
    out
}

/// A raw Snappy stream of `len` copies of `b`: one literal, then 64-byte
/// copies at offset 1 (Snappy's best ratio, about 21:1).
pub fn snappy_run(b: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len / 21 + 16);
    let mut v = len as u64;
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out.extend([0x00, b]); // a literal of one byte
    let mut left = len - 1;
    while left > 0 {
        let n = left.min(64);
        // copy with a 2-byte offset: tag, then the offset (1)
        out.extend([(((n - 1) as u8) << 2) | 2, 1, 0]);
        left -= n;
    }
    out
}

/// A zstd frame of `len` copies of `b`: RLE blocks of 128 KiB.
pub fn zstd_run(b: u8, len: usize) -> Vec<u8> {
    const BLOCK: usize = 128 * 1024;
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    out.push(0x00); // no content size, not single-segment, no checksum
    out.push(7 << 3); // window 2^(10 + 7) = 128 KiB
    let mut left = len;
    while left > 0 {
        let n = left.min(BLOCK);
        left -= n;
        let last = u32::from(left == 0);
        let header = last | (1 << 1) | ((n as u32) << 3); // RLE block
        out.extend(&header.to_le_bytes()[..3]);
        out.push(b);
    }
    out
}

/// A zip of `(name, content, declared uncompressed size)` entries: small
/// ones stored, the others deflated by [`deflate`]. The declared size may
/// lie, as an attacker's would.
pub struct ZipEntry<'a> {
    pub name: &'a str,
    pub pieces: Vec<Piece<'a>>,
    pub declared: Option<u32>,
}

pub fn zip(entries: &[ZipEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let size = len(&e.pieces);
        let (method, data) = if size < 1 << 20 {
            let mut flat = Vec::with_capacity(size);
            for p in &e.pieces {
                match p {
                    Piece::Bytes(b) => flat.extend_from_slice(b),
                    Piece::Run(r) => flat.extend((0..r.len).map(|i| r.byte(i))),
                }
            }
            (0u16, flat)
        } else {
            (8u16, deflate(&e.pieces))
        };
        let crc = crc32(&e.pieces);
        let declared = e.declared.unwrap_or(u32::try_from(size).unwrap());
        let offset = out.len() as u32;
        let fields = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes()); // made by
            }
            h.extend(20u16.to_le_bytes()); // needed
            h.extend(0u16.to_le_bytes()); // flags
            h.extend(method.to_le_bytes());
            h.extend(0u16.to_le_bytes()); // time
            h.extend(0x21u16.to_le_bytes()); // date: 1980-01-01
            h.extend(crc.to_le_bytes());
            h.extend((data.len() as u32).to_le_bytes());
            h.extend(declared.to_le_bytes());
            h.extend((e.name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            if central {
                h.extend([0u8; 6]); // comment, disk, internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(e.name.as_bytes());
            h
        };
        out.extend(fields(0x0403_4b50, false));
        out.extend(&data);
        central.extend(fields(0x0201_4b50, true));
    }
    let cd_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// The parts of a small valid workbook, to which a bomb adds or replaces one.
pub fn workbook_parts() -> Vec<(String, Vec<u8>)> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "note").unwrap();
    sheet.write_string(1, 0, "hello").unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_owned(), data)
        })
        .collect()
}

pub const SHEET: &str = "xl/worksheets/sheet1.xml";
pub const SHARED_STRINGS: &str = "xl/sharedStrings.xml";

/// A workbook whose part `name` is replaced by `pieces`, declared as
/// `declared` bytes (its true size if `None`).
pub fn workbook(name: &str, pieces: Vec<Piece<'_>>, declared: Option<u32>) -> Vec<u8> {
    let parts = workbook_parts();
    let mut entries: Vec<ZipEntry<'_>> = parts
        .iter()
        .filter(|(n, _)| n != name)
        .map(|(n, data)| ZipEntry {
            name: n,
            pieces: vec![Piece::Bytes(data)],
            declared: None,
        })
        .collect();
    entries.push(ZipEntry {
        name,
        pieces,
        declared,
    });
    zip(&entries)
}

pub const SHEET_START: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>"#;
pub const SHEET_END: &str = "</sheetData></worksheet>";

/// A one-column Parquet file (`required binary note (UTF8)`) made of the
/// given pages, already compressed with `codec`. `declared` replaces the
/// column chunk's total uncompressed size in the footer (a lie).
pub fn parquet(
    codec: Compression,
    pages: Vec<CompressedPage>,
    rows: i64,
    declared: Option<i64>,
) -> Vec<u8> {
    let schema =
        Arc::new(parse_message_type("message m { required binary note (UTF8); }").unwrap());
    let descr = SchemaDescriptor::new(schema.clone());
    let mut chunk = Vec::new();
    let mut tracked = TrackedWrite::new(&mut chunk);
    let (mut dictionary_offset, mut data_offset) = (None, None);
    let (mut values, mut uncompressed) = (0i64, 0i64);
    let mut encodings = vec![Encoding::PLAIN, Encoding::RLE];
    {
        let mut writer = SerializedPageWriter::new(&mut tracked);
        for page in pages {
            let is_dictionary = matches!(page.compressed_page(), Page::DictionaryPage { .. });
            encodings.push(page.encoding());
            let spec = writer.write_page(page).unwrap();
            if is_dictionary {
                dictionary_offset = Some(spec.offset as i64);
            } else {
                data_offset.get_or_insert(spec.offset as i64);
                values += i64::from(spec.num_values);
            }
            uncompressed += spec.uncompressed_size as i64
                + (spec.bytes_written as i64 - spec.compressed_size as i64);
        }
        writer.close().unwrap();
    }
    let written = tracked.bytes_written() as i64;
    drop(tracked);
    encodings.dedup();
    let meta = ColumnChunkMetaData::builder(descr.column(0))
        .set_compression(codec)
        .set_encodings(encodings)
        .set_num_values(values)
        .set_total_compressed_size(written)
        .set_total_uncompressed_size(declared.unwrap_or(uncompressed))
        .set_data_page_offset(data_offset.unwrap())
        .set_dictionary_page_offset(dictionary_offset)
        .build()
        .unwrap();
    let close = ColumnCloseResult {
        bytes_written: written as u64,
        rows_written: rows as u64,
        metadata: meta,
        bloom_filter: None,
        column_index: None,
        offset_index: None,
    };
    let props = Arc::new(WriterProperties::builder().set_compression(codec).build());
    let mut out = Vec::new();
    let mut file = SerializedFileWriter::new(&mut out, schema, props).unwrap();
    let mut rg = file.next_row_group().unwrap();
    rg.append_column(&Bytes::from(chunk), close).unwrap();
    rg.close().unwrap();
    file.close().unwrap();
    out
}

/// A PLAIN data page of one value of `len` bytes, every byte `b`, with its
/// 4-byte length prefix made of `b` too (so `len` is `b` repeated: the whole
/// page is one run). `compress` turns the page into the codec's stream.
pub fn one_value_page(
    b: u8,
    compress: impl FnOnce(usize) -> Vec<u8>,
    declared: Option<usize>,
) -> CompressedPage {
    let len = u32::from_le_bytes([b; 4]) as usize;
    let page_len = 4 + len;
    let page = Page::DataPage {
        buf: Bytes::from(compress(page_len)),
        num_values: 1,
        encoding: Encoding::PLAIN,
        def_level_encoding: Encoding::RLE,
        rep_level_encoding: Encoding::RLE,
        statistics: None,
    };
    CompressedPage::new(page, declared.unwrap_or(page_len))
}

/// Codec values for [`parquet`].
pub fn snappy() -> Compression {
    Compression::SNAPPY
}

pub fn zstd() -> Compression {
    Compression::ZSTD(ZstdLevel::default())
}

pub fn gzip_codec() -> Compression {
    Compression::GZIP(GzipLevel::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hand-made streams decode to what they claim, checked with the
    /// real decoders on small sizes.
    #[test]
    fn hand_made_streams_decode() {
        let run = Run {
            unit: b"<row><c><v>1</v></c></row>",
            len: 100_003,
        };
        let pieces = [
            Piece::Bytes(b"head"),
            Piece::Run(run),
            Piece::Bytes(b"tail"),
        ];
        let mut flat = b"head".to_vec();
        flat.extend((0..run.len).map(|i| run.byte(i)));
        flat.extend(b"tail");
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(&deflate(&pieces)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, flat);
        assert_eq!(crc32(&pieces), crc32fast::hash(&flat));
        out.clear();
        flate2::read::GzDecoder::new(&gzip(&pieces)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, flat);
        assert_eq!(
            snap::raw::Decoder::new()
                .decompress_vec(&snappy_run(b'A', 1000))
                .unwrap(),
            vec![b'A'; 1000]
        );
        assert_eq!(
            zstd::decode_all(&zstd_run(b'A', 300_000)[..]).unwrap(),
            vec![b'A'; 300_000]
        );
    }
}

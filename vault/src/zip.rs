//! A streaming ZIP writer for exports (PKWARE APPNOTE 6.3.10), sans I/O:
//! it returns the bytes to send and never holds an entry's content.
//!
//! Format choices:
//! - every entry is *stored* (method 0): documents are PDFs, images and
//!   office files that are compressed already, and the JSON files are small;
//!   storing keeps the CPU cost at the copy and the offsets predictable;
//! - sizes are known before an entry starts (the catalog has every
//!   document's size), the CRC-32 is not: general-purpose bit 3 is set, the
//!   local header carries zeros, and a data descriptor (signature
//!   `0x08074b50`, CRC, sizes) follows the data; the entry's byte count is
//!   checked against the size it announced, so a short document fails the
//!   export instead of producing a well-formed archive with a short file;
//! - names are UTF-8 (bit 11);
//! - ZIP64 where a value does not fit: an entry of 4 GiB or more gets the
//!   ZIP64 extra field (`0x0001`) in its local header and central record and
//!   8-byte sizes in its descriptor; an archive whose entries, central
//!   directory size or offset do not fit gets the ZIP64 end records;
//! - times are the entry's modification time in UTC, as DOS date and time
//!   (two-second resolution).

use chrono::{DateTime, Datelike, Timelike, Utc};

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const END_OF_CENTRAL: u32 = 0x0605_4b50;
const ZIP64_END_OF_CENTRAL: u32 = 0x0606_4b50;
const ZIP64_LOCATOR: u32 = 0x0706_4b50;
/// Bit 3 (sizes and CRC in a data descriptor) and bit 11 (UTF-8 names).
const FLAGS: u16 = (1 << 3) | (1 << 11);
const VERSION_ZIP64: u16 = 45;
const VERSION_PLAIN: u16 = 20;
/// "Made by": UNIX (3), spec version 4.5.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipError {
    #[error("entry {name:?} announced {announced} bytes but {written} were written")]
    SizeMismatch { name: String, announced: u64, written: u64 },
    #[error("entry name {0:?} is empty, too long or not relative")]
    BadName(String),
}

/// What the central directory needs of a finished entry.
#[derive(Debug, Clone)]
struct Finished {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
    dos_time: u16,
    dos_date: u16,
}

/// An entry being written: pass each chunk of its content through
/// [`Entry::update`], then hand it to [`ZipWriter::finish_entry`].
#[derive(Debug)]
pub struct Entry {
    name: String,
    size: u64,
    written: u64,
    crc: crc32fast::Hasher,
    offset: u64,
    dos_time: u16,
    dos_date: u16,
}

impl Entry {
    pub fn update(&mut self, chunk: &[u8]) {
        self.crc.update(chunk);
        self.written += chunk.len() as u64;
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The archive being written; see the module documentation.
#[derive(Debug, Default)]
pub struct ZipWriter {
    offset: u64,
    entries: Vec<Finished>,
}

fn dos_time(t: DateTime<Utc>) -> (u16, u16) {
    let year = t.year().clamp(1980, 2107) as u16;
    let date = ((year - 1980) << 9) | ((t.month() as u16) << 5) | t.day() as u16;
    let time = ((t.hour() as u16) << 11) | ((t.minute() as u16) << 5) | (t.second() as u16 / 2);
    (time, date)
}

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Does a value need ZIP64?
fn big(v: u64) -> bool {
    v >= 0xFFFF_FFFF
}

impl ZipWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.offset
    }

    /// Start an entry of `size` bytes: the local header to send, and the
    /// entry to pass its content through.
    pub fn begin_entry(
        &mut self,
        name: &str,
        size: u64,
        modified: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Entry), ZipError> {
        if name.is_empty() || name.len() > 0xFFFF - 64 || name.starts_with('/') || name.split('/').any(|p| p == "..") {
            return Err(ZipError::BadName(name.into()));
        }
        let (t, d) = dos_time(modified);
        let zip64 = big(size);
        let mut h = Vec::with_capacity(30 + name.len() + 20);
        u32le(&mut h, LOCAL_HEADER);
        u16le(&mut h, if zip64 { VERSION_ZIP64 } else { VERSION_PLAIN });
        u16le(&mut h, FLAGS);
        u16le(&mut h, 0); // stored
        u16le(&mut h, t);
        u16le(&mut h, d);
        u32le(&mut h, 0); // CRC: in the descriptor
        u32le(&mut h, if zip64 { u32::MAX } else { 0 });
        u32le(&mut h, if zip64 { u32::MAX } else { 0 });
        u16le(&mut h, name.len() as u16);
        u16le(&mut h, if zip64 { 20 } else { 0 });
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            u16le(&mut h, 0x0001);
            u16le(&mut h, 16);
            u64le(&mut h, 0);
            u64le(&mut h, 0);
        }
        let entry = Entry {
            name: name.into(),
            size,
            written: 0,
            crc: crc32fast::Hasher::new(),
            offset: self.offset,
            dos_time: t,
            dos_date: d,
        };
        self.offset += h.len() as u64;
        Ok((h, entry))
    }

    /// The entry's content has been sent: its data descriptor. Fails when
    /// the content was not exactly the size announced.
    pub fn finish_entry(&mut self, entry: Entry) -> Result<Vec<u8>, ZipError> {
        if entry.written != entry.size {
            return Err(ZipError::SizeMismatch { name: entry.name, announced: entry.size, written: entry.written });
        }
        self.offset += entry.written;
        let crc = entry.crc.finalize();
        let mut dd = Vec::with_capacity(24);
        u32le(&mut dd, DATA_DESCRIPTOR);
        u32le(&mut dd, crc);
        if big(entry.size) {
            u64le(&mut dd, entry.size);
            u64le(&mut dd, entry.size);
        } else {
            u32le(&mut dd, entry.size as u32);
            u32le(&mut dd, entry.size as u32);
        }
        self.offset += dd.len() as u64;
        self.entries.push(Finished {
            name: entry.name,
            crc,
            size: entry.size,
            offset: entry.offset,
            dos_time: entry.dos_time,
            dos_date: entry.dos_date,
        });
        Ok(dd)
    }

    /// A whole entry held in memory (the JSON files): header, content and
    /// descriptor in one buffer.
    pub fn entry(&mut self, name: &str, content: &[u8], modified: DateTime<Utc>) -> Result<Vec<u8>, ZipError> {
        let (mut out, mut e) = self.begin_entry(name, content.len() as u64, modified)?;
        e.update(content);
        out.extend_from_slice(content);
        out.extend_from_slice(&self.finish_entry(e)?);
        Ok(out)
    }

    /// The exact size of an archive of these entries (name, size), for a
    /// `Content-Length` and a progress bar before any byte is written.
    pub fn archive_size<'a>(entries: impl IntoIterator<Item = (&'a str, u64)>) -> Result<u64, ZipError> {
        let mut z = ZipWriter::new();
        let t = DateTime::<Utc>::UNIX_EPOCH;
        for (name, size) in entries {
            let (_, mut e) = z.begin_entry(name, size, t)?;
            e.written = size;
            z.finish_entry(e)?;
        }
        let body = z.offset;
        Ok(body + z.finish().len() as u64)
    }

    /// The central directory and the end records.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let cd_start = self.offset;
        for e in &self.entries {
            let (big_size, big_offset) = (big(e.size), big(e.offset));
            let mut extra = Vec::new();
            if big_size || big_offset {
                let mut data = Vec::new();
                if big_size {
                    u64le(&mut data, e.size);
                    u64le(&mut data, e.size);
                }
                if big_offset {
                    u64le(&mut data, e.offset);
                }
                u16le(&mut extra, 0x0001);
                u16le(&mut extra, data.len() as u16);
                extra.extend_from_slice(&data);
            }
            u32le(&mut out, CENTRAL_HEADER);
            u16le(&mut out, MADE_BY);
            u16le(&mut out, if big_size || big_offset { VERSION_ZIP64 } else { VERSION_PLAIN });
            u16le(&mut out, FLAGS);
            u16le(&mut out, 0);
            u16le(&mut out, e.dos_time);
            u16le(&mut out, e.dos_date);
            u32le(&mut out, e.crc);
            let size32 = if big_size { u32::MAX } else { e.size as u32 };
            u32le(&mut out, size32);
            u32le(&mut out, size32);
            u16le(&mut out, e.name.len() as u16);
            u16le(&mut out, extra.len() as u16);
            u16le(&mut out, 0); // comment
            u16le(&mut out, 0); // disk
            u16le(&mut out, 0); // internal attributes
            u32le(&mut out, 0o100644 << 16); // a regular file, rw-r--r--
            u32le(&mut out, if big_offset { u32::MAX } else { e.offset as u32 });
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(&extra);
        }
        let cd_size = out.len() as u64;
        let count = self.entries.len() as u64;
        let zip64 = count >= 0xFFFF || big(cd_size) || big(cd_start);
        if zip64 {
            let z64_start = cd_start + cd_size;
            u32le(&mut out, ZIP64_END_OF_CENTRAL);
            u64le(&mut out, 44);
            u16le(&mut out, MADE_BY);
            u16le(&mut out, VERSION_ZIP64);
            u32le(&mut out, 0);
            u32le(&mut out, 0);
            u64le(&mut out, count);
            u64le(&mut out, count);
            u64le(&mut out, cd_size);
            u64le(&mut out, cd_start);
            u32le(&mut out, ZIP64_LOCATOR);
            u32le(&mut out, 0);
            u64le(&mut out, z64_start);
            u32le(&mut out, 1);
        }
        u32le(&mut out, END_OF_CENTRAL);
        u16le(&mut out, 0);
        u16le(&mut out, 0);
        let count16 = if zip64 { u16::MAX } else { count as u16 };
        u16le(&mut out, count16);
        u16le(&mut out, count16);
        u32le(&mut out, if zip64 { u32::MAX } else { cd_size as u32 });
        u32le(&mut out, if zip64 { u32::MAX } else { cd_start as u32 });
        u16le(&mut out, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn an_archive_of_two_entries_has_the_layout_of_the_appnote() {
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 13, 45, 31).unwrap();
        let mut z = ZipWriter::new();
        let mut out = z.entry("client.json", b"{\"a\":1}", t).unwrap();
        let (h, mut e) = z.begin_entry("documents/x.txt", 5, t).unwrap();
        out.extend_from_slice(&h);
        e.update(b"he");
        e.update(b"llo");
        out.extend_from_slice(b"hello");
        out.extend_from_slice(&z.finish_entry(e).unwrap());
        let cd_start = out.len();
        assert_eq!(z.written() as usize, cd_start);
        out.extend_from_slice(&z.finish());

        assert_eq!(le32(&out, 0), LOCAL_HEADER);
        // The first entry's descriptor: CRC-32 of its content, then sizes.
        let dd = 30 + "client.json".len() + 7;
        assert_eq!(le32(&out, dd), DATA_DESCRIPTOR);
        assert_eq!(le32(&out, dd + 4), crc32fast::hash(b"{\"a\":1}"));
        assert_eq!((le32(&out, dd + 8), le32(&out, dd + 12)), (7, 7));
        assert_eq!(le32(&out, cd_start), CENTRAL_HEADER);
        // The end record: two entries, the directory's size and offset.
        let eocd = out.len() - 22;
        assert_eq!(le32(&out, eocd), END_OF_CENTRAL);
        assert_eq!(u16::from_le_bytes([out[eocd + 10], out[eocd + 11]]), 2);
        assert_eq!(le32(&out, eocd + 12) as usize, eocd - cd_start);
        assert_eq!(le32(&out, eocd + 16) as usize, cd_start);
        // DOS time: 13:45:30 (two-second steps), 2026-12-04.
        assert_eq!(dos_time(t), ((13 << 11) | (45 << 5) | 15, ((2026 - 1980) << 9) | (12 << 5) | 4));
    }

    #[test]
    fn another_implementation_reads_back_every_entry_byte_for_byte() {
        use std::io::Read;
        let t = Utc.with_ymd_and_hms(2026, 12, 4, 13, 45, 30).unwrap();
        let files: Vec<(String, Vec<u8>)> = (0..40)
            .map(|i| (format!("documents/{i:02}-rapport é.pdf"), (0..i * 997).map(|b| (b * 31 % 251) as u8).collect()))
            .collect();
        let mut z = ZipWriter::new();
        let mut out = Vec::new();
        for (name, content) in &files {
            let (h, mut e) = z.begin_entry(name, content.len() as u64, t).unwrap();
            out.extend_from_slice(&h);
            for chunk in content.chunks(1000) {
                e.update(chunk);
                out.extend_from_slice(chunk);
            }
            out.extend_from_slice(&z.finish_entry(e).unwrap());
        }
        out.extend_from_slice(&z.finish());
        let predicted = ZipWriter::archive_size(files.iter().map(|(n, c)| (n.as_str(), c.len() as u64))).unwrap();
        assert_eq!(predicted, out.len() as u64, "the size is known before the archive is written");
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
        assert_eq!(archive.len(), files.len());
        for (name, content) in &files {
            let mut f = archive.by_name(name).unwrap();
            let mut back = Vec::new();
            f.read_to_end(&mut back).unwrap();
            assert_eq!(&back, content, "{name}");
        }
    }

    #[test]
    fn an_archive_of_more_than_65535_entries_gets_the_zip64_end_records_and_reads_back() {
        use std::io::Read;
        let t = Utc::now();
        let n = 70_000usize;
        let mut z = ZipWriter::new();
        let mut out = Vec::new();
        let names: Vec<String> = (0..n).map(|i| format!("f/{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            out.extend_from_slice(&z.entry(name, i.to_string().as_bytes(), t).unwrap());
        }
        out.extend_from_slice(&z.finish());
        let predicted =
            ZipWriter::archive_size(names.iter().enumerate().map(|(i, n)| (n.as_str(), i.to_string().len() as u64)));
        assert_eq!(predicted.unwrap(), out.len() as u64);
        assert_eq!(le32(&out, out.len() - 22 - 20 - 56), ZIP64_END_OF_CENTRAL);
        let mut archive = ::zip::ZipArchive::new(std::io::Cursor::new(out)).unwrap();
        assert_eq!(archive.len(), n);
        for i in [0, 65_534, 65_535, 69_999] {
            let mut back = String::new();
            archive.by_name(&format!("f/{i}")).unwrap().read_to_string(&mut back).unwrap();
            assert_eq!(back, i.to_string());
        }
    }

    #[test]
    fn a_short_or_long_entry_fails_and_bad_names_are_refused() {
        let t = Utc::now();
        let mut z = ZipWriter::new();
        let (_, mut e) = z.begin_entry("a.txt", 10, t).unwrap();
        e.update(b"123");
        assert_eq!(
            z.finish_entry(e).unwrap_err(),
            ZipError::SizeMismatch { name: "a.txt".into(), announced: 10, written: 3 }
        );
        for bad in ["", "/etc/passwd", "documents/../x"] {
            assert!(matches!(z.begin_entry(bad, 1, t), Err(ZipError::BadName(_))), "{bad:?}");
        }
    }

    #[test]
    fn an_entry_of_four_gibibytes_gets_zip64_fields() {
        let mut z = ZipWriter::new();
        let size = 5u64 << 30;
        let (h, mut e) = z.begin_entry("big.bin", size, Utc::now()).unwrap();
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), VERSION_ZIP64);
        assert_eq!(le32(&h, 18), u32::MAX);
        // Pretend the content went by (the CRC is not checked here).
        e.written = size;
        let dd = z.finish_entry(e).unwrap();
        assert_eq!(dd.len(), 4 + 4 + 8 + 8, "8-byte sizes in the descriptor");
        let end = z.finish();
        // ZIP64 end record and locator, since the directory starts beyond 4 GiB.
        assert_eq!(le32(&end, end.len() - 22 - 20 - 56), ZIP64_END_OF_CENTRAL);
        assert_eq!(le32(&end, end.len() - 22 - 20), ZIP64_LOCATOR);
    }
}

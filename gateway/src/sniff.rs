//! Upload content-type detection by magic bytes (SPEC: "Content is checked by its magic bytes, not its name").
//!
//! The file name and the client's `Content-Type` are attacker-controlled, so [`sniff`] looks only at
//! the first [`SNIFF_LEN`] bytes. It answers one of three verdicts:
//!
//! * [`Sniffed::Accepted`]: PDF (`%PDF-` at offset 0), PNG (8-byte signature), JPEG (`FF D8 FF`),
//!   TIFF (`II*\0` / `MM\0*`), DOCX / XLSX / ODT (see below) and plain UTF-8 text.
//! * [`Sniffed::Refused`] (415 `unsupported_media_type`): something recognised and not allowed:
//!   executables (ELF, PE/`MZ`, Mach-O, WebAssembly, DEX), scripts (`#!`, `<?php`, documents
//!   carrying macros), markup (HTML, SVG, XML: a browser could run it), other archives, and
//!   formats known to carry active content (OLE2 `.doc`/`.xls`/`.msi`, RTF).
//! * [`Sniffed::Unknown`] (422): anything else, including the empty file, and text with `%PDF-` in
//!   its first KiB (Acrobat would open it as a PDF).
//!
//! Office documents are ZIP files. We walk the local file headers from offset 0: a header whose
//! sizes are known is skipped exactly (so the names of a ZIP *stored inside* an entry are never
//! read); one with the data-descriptor flag (bit 3, sizes 0, as Word and many libraries write them)
//! is followed by the next `PK\3\4` that a valid data descriptor ends right before. Any `word/`
//! entry means DOCX, `xl/` means XLSX; an ODT starts with a stored `mimetype` entry holding exactly
//! `application/vnd.oasis.opendocument.text`. Macros (`vbaProject.bin`, "macroEnabled" content
//! types, ODF `Basic/` and `Scripts/`) are refused when seen within the head; that check is best
//! effort, since parts past [`SNIFF_LEN`] are not looked at. OOXML/ODF markers without a decisive
//! entry give `Unknown`; a ZIP without any office marker is refused as an archive.
//!
//! Text must be valid UTF-8 (optional BOM; a character split by the [`SNIFF_LEN`] cut is allowed)
//! without control characters other than tab, LF, CR and form feed. Text that looks like markup
//! (after BOM and whitespace it starts with a tag such as `<html`, `<svg`, `<!doctype`, `<?xml`,
//! or it contains `<script`, `<iframe`, `<html` or `<svg` anywhere) is refused: served back, it
//! could be rendered by a browser. Binary signatures win over the text rules, so a text file that
//! happens to start with `MZ` or `#!` is refused: we prefer false refusals to false acceptances.

/// How many leading bytes [`sniff`] needs to decide (the caller buffers this much of the upload
/// first, or the whole file if shorter). Bytes past it are ignored.
pub const SNIFF_LEN: usize = 8192;

/// The verdict on an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A supported type: store it.
    Accepted(Kind),
    /// Recognised and not allowed: 415 `unsupported_media_type`.
    Refused(RefusedKind),
    /// Not recognised (or empty): 422.
    Unknown,
}

/// The accepted document types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Text,
    Docx,
    Xlsx,
    Odt,
}

impl Kind {
    /// The media type to serve the document with.
    pub fn mime(self) -> &'static str {
        self.names().0
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        self.names().1
    }

    fn names(self) -> (&'static str, &'static str) {
        match self {
            Kind::Pdf => ("application/pdf", "pdf"),
            Kind::Png => ("image/png", "png"),
            Kind::Jpeg => ("image/jpeg", "jpg"),
            Kind::Tiff => ("image/tiff", "tiff"),
            Kind::Text => ("text/plain; charset=utf-8", "txt"),
            Kind::Docx => ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
            Kind::Xlsx => ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
            Kind::Odt => ("application/vnd.oasis.opendocument.text", "odt"),
        }
    }
}

/// What a refused upload was recognised as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedKind {
    /// ELF, PE/MZ, Mach-O (also Java class files, which share `CA FE BA BE`), WebAssembly, DEX.
    Executable,
    /// `#!` shebang, `<?php`, or an office document carrying macros.
    Script,
    /// HTML, SVG, XML or text containing active markup.
    Html,
    /// A ZIP that is not an office document, gzip, 7z, RAR, xz, tar.
    Archive,
    /// A recognised document format that is not accepted (OLE2, RTF, other ODF types).
    Other,
}

impl RefusedKind {
    /// A short phrase for error messages ("the upload is ...").
    pub fn describe(self) -> &'static str {
        match self {
            RefusedKind::Executable => "an executable program",
            RefusedKind::Script => "a script or a document with macros",
            RefusedKind::Html => "HTML, SVG or XML markup",
            RefusedKind::Archive => "an archive",
            RefusedKind::Other => "a document format that is not accepted",
        }
    }
}

use RefusedKind::{Archive, Executable, Html, Other, Script};
use Sniffed::{Accepted, Refused, Unknown};

/// Signatures at offset 0, checked in order before any text rule.
const MAGICS: &[(&[u8], Sniffed)] = &[
    (b"%PDF-", Accepted(Kind::Pdf)),
    (b"\x89PNG\r\n\x1a\n", Accepted(Kind::Png)),
    (b"\xff\xd8\xff", Accepted(Kind::Jpeg)),
    (b"II*\0", Accepted(Kind::Tiff)),
    (b"MM\0*", Accepted(Kind::Tiff)),
    (b"\x7fELF", Refused(Executable)),
    (b"MZ", Refused(Executable)),
    (b"\xfe\xed\xfa\xce", Refused(Executable)),
    (b"\xfe\xed\xfa\xcf", Refused(Executable)),
    (b"\xce\xfa\xed\xfe", Refused(Executable)),
    (b"\xcf\xfa\xed\xfe", Refused(Executable)),
    (b"\xca\xfe\xba\xbe", Refused(Executable)),
    (b"\0asm", Refused(Executable)),
    (b"dex\n", Refused(Executable)),
    (b"#!", Refused(Script)),
    (b"\xef\xbb\xbf#!", Refused(Script)),
    (b"PK\x05\x06", Refused(Archive)), // empty ZIP
    (b"PK\x07\x08", Refused(Archive)), // spanned ZIP
    (b"\x1f\x8b", Refused(Archive)),
    (b"7z\xbc\xaf\x27\x1c", Refused(Archive)),
    (b"Rar!\x1a\x07", Refused(Archive)),
    (b"\xfd7zXZ\0", Refused(Archive)),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", Refused(Other)), // OLE2: legacy Office, MSI; macros
    (b"{\\rtf", Refused(Other)),                           // RTF embeds OLE objects
];

const BOM: &[u8] = b"\xef\xbb\xbf";
/// Text starting (after BOM and whitespace) with one of these is markup.
const MARKUP_STARTS: &str =
    "<!doctype <!-- <? <html <head <body <script <iframe <svg <style <object <embed <meta <link <frameset <xsl <math";
/// Text containing one of these anywhere in the head is markup.
const MARKUP_ANYWHERE: &[&[u8]] = &[b"<script", b"<iframe", b"<html", b"<svg"];
const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
const ODT_MIME: &[u8] = b"application/vnd.oasis.opendocument.text";
/// Entry-name prefixes that mark an OOXML or ODF package whose kind we could not decide.
const OFFICE_MARKERS: &[&[u8]] = &[b"[content_types].xml", b"_rels/", b"docprops/", b"meta-inf/manifest.xml"];

/// Decides what an upload is from `head`, its first `min(SNIFF_LEN, file size)` bytes.
pub fn sniff(head: &[u8]) -> Sniffed {
    let head = &head[..head.len().min(SNIFF_LEN)];
    if head.is_empty() {
        return Unknown;
    }
    if head.starts_with(ZIP_LOCAL) {
        return zip(head);
    }
    if let Some(&(_, verdict)) = MAGICS.iter().find(|(magic, _)| head.starts_with(magic)) {
        return verdict;
    }
    if head.get(257..262) == Some(b"ustar") {
        return Refused(Archive);
    }
    // Acrobat finds `%PDF-` anywhere in the first KiB: such a polyglot is not plain text.
    if contains_ci(&head[..head.len().min(1024)], b"%PDF-") {
        return Unknown;
    }
    if let Some(kind) = markup(head) {
        return Refused(kind);
    }
    if is_text(head) { Accepted(Kind::Text) } else { Unknown }
}

fn markup(head: &[u8]) -> Option<RefusedKind> {
    let body = head.strip_prefix(BOM).unwrap_or(head);
    let start = &body[body.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(body.len())..];
    if starts_with_ci(start, b"<?php") {
        Some(Script)
    } else if MARKUP_STARTS.split(' ').any(|p| starts_with_ci(start, p.as_bytes()))
        || MARKUP_ANYWHERE.iter().any(|n| contains_ci(head, n))
    {
        Some(Html)
    } else {
        None
    }
}

fn is_text(head: &[u8]) -> bool {
    let body = head.strip_prefix(BOM).unwrap_or(head);
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        // Incomplete final character: fine only where the caller cut the upload.
        Err(e) if e.error_len().is_none() && head.len() == SNIFF_LEN => {
            match std::str::from_utf8(&body[..e.valid_up_to()]) {
                Ok(text) => text,
                Err(_) => return false,
            }
        }
        Err(_) => return false,
    };
    !text.is_empty() && text.chars().all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// A ZIP local file header at some offset of the head.
struct Entry<'a> {
    name: &'a [u8],
    flags: u16,
    method: u16,
    compressed: u32,
    uncompressed: u32,
    /// Offset of the entry's data.
    data: usize,
}

fn zip(head: &[u8]) -> Sniffed {
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(entry) = local_header(head, at) {
        names.push(entry.name);
        match next_header(head, &entry) {
            Some(next) if next > at => at = next,
            _ => break,
        }
    }
    let has = |prefix: &[u8]| names.iter().any(|name| starts_with_ci(name, prefix));
    let macros = names.iter().any(|n| n.len() >= 14 && n[n.len() - 14..].eq_ignore_ascii_case(b"vbaproject.bin"))
        || contains_ci(head, b"vbaproject.bin")
        || contains_ci(head, b"macroenabled");
    if macros {
        return Refused(Script);
    }
    if let Some(first) = local_header(head, 0).filter(|e| e.name == b"mimetype") {
        let stored = first.method == 0 && first.flags & 8 == 0 && first.compressed == first.uncompressed;
        let content =
            usize::try_from(first.compressed).ok().and_then(|len| head.get(first.data..first.data.checked_add(len)?));
        return match (stored && content == Some(ODT_MIME), has(b"basic/") || has(b"scripts/")) {
            (true, true) => Refused(Script),
            (true, false) => Accepted(Kind::Odt),
            (false, _) => Refused(Other), // another ODF type (spreadsheet, template, ...) or malformed
        };
    }
    match (has(b"word/"), has(b"xl/")) {
        (true, false) => Accepted(Kind::Docx),
        (false, true) => Accepted(Kind::Xlsx),
        (true, true) => Unknown,
        (false, false) if names.is_empty() || OFFICE_MARKERS.iter().any(|m| has(m)) => Unknown,
        (false, false) => Refused(Archive),
    }
}

fn local_header(head: &[u8], at: usize) -> Option<Entry<'_>> {
    if head.get(at..at.checked_add(4)?)? != ZIP_LOCAL {
        return None;
    }
    let name_len = usize::from(u16::from_le_bytes(le(head, at + 26)?));
    let extra_len = usize::from(u16::from_le_bytes(le(head, at + 28)?));
    Some(Entry {
        name: head.get(at + 30..at + 30 + name_len)?,
        flags: u16::from_le_bytes(le(head, at + 6)?),
        method: u16::from_le_bytes(le(head, at + 8)?),
        compressed: u32::from_le_bytes(le(head, at + 18)?),
        uncompressed: u32::from_le_bytes(le(head, at + 22)?),
        data: at + 30 + name_len + extra_len,
    })
}

/// Offset of the local header after `entry`, if it can be located (it may lie beyond `head`).
fn next_header(head: &[u8], entry: &Entry) -> Option<usize> {
    if entry.flags & 8 == 0 {
        // 0xFFFFFFFF: ZIP64, the real size is in the extra field; stop there.
        return (entry.compressed != u32::MAX)
            .then(|| entry.data.checked_add(usize::try_from(entry.compressed).ok()?))?;
    }
    // Sizes follow the data in a data descriptor: the next header is the first `PK\3\4` that a
    // descriptor consistent with the distance travelled ends right before.
    (entry.data..head.len()).find(|&p| head[p..].starts_with(ZIP_LOCAL) && descriptor_ends_at(head, entry.data, p))
}

/// Whether a data descriptor for data starting at `data` ends at `end`: CRC-32, then compressed
/// and uncompressed sizes of 4 (or, for ZIP64, 8) bytes each, optionally preceded by `PK\7\8`.
fn descriptor_ends_at(head: &[u8], data: usize, end: usize) -> bool {
    [(12, 4), (20, 8)].into_iter().any(|(len, width)| {
        [false, true].into_iter().any(|signed| {
            let Some(start) = end.checked_sub(if signed { len + 4 } else { len }).filter(|&s| s >= data) else {
                return false;
            };
            let size_at = end - len + 4;
            let size = if width == 4 {
                le(head, size_at).map(u32::from_le_bytes).map(u64::from)
            } else {
                le(head, size_at).map(u64::from_le_bytes)
            };
            (!signed || head[start..].starts_with(b"PK\x07\x08")) && size == Some((start - data) as u64)
        })
    })
}

/// `N` bytes at `at`, for `uNN::from_le_bytes`.
fn le<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}
fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a test ZIP entry records its sizes: in the local header (stored), or with flag bit 3,
    /// sizes 0 and deflate as Word writes them, then a data descriptor with or without `PK\7\8`.
    const H: u8 = 0;
    const D: u8 = 1;
    const D_UNSIGNED: u8 = 2;
    const DEFLATED: &[u8] = b"\xad\x92\xcbn\xc20\x10E\xf7\x91\xf8\x87\xc8[\x94\xb8\xe9\xa2\xaa*\x12\x9a";

    fn zip(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut z = Vec::new();
        for &(name, data, how) in entries {
            let (flags, size) = if how == H { (0u16, data.len() as u32) } else { (8, 0) };
            let lengths = [size.to_le_bytes(), size.to_le_bytes(), (name.len() as u32).to_le_bytes()].concat();
            // Signature, version 2.0, flags, method (0 stored, 8 deflate), time, date, CRC-32.
            z.extend([ZIP_LOCAL, &[20, 0], &flags.to_le_bytes(), &flags.to_le_bytes(), &[0x21; 8]].concat());
            z.extend([&lengths, name.as_bytes(), data].concat()); // the extra-field length is 0
            if how != H {
                let sig: &[u8] = if how == D { b"PK\x07\x08" } else { b"" };
                z.extend([sig, &[0x21; 4], &(data.len() as u32).to_le_bytes(), &[0x99; 4]].concat());
            }
        }
        [z, b"PK\x01\x02\x14\0".to_vec()].concat() // the central directory would follow
    }

    fn docx(how: u8) -> Vec<u8> {
        zip(&[
            ("[Content_Types].xml", DEFLATED, how),
            ("_rels/.rels", DEFLATED, how),
            ("word/document.xml", DEFLATED, how),
        ])
    }

    fn odt(mime: &[u8], then: &str) -> Vec<u8> {
        zip(&[("mimetype", mime, H), (then, DEFLATED, D), ("content.xml", DEFLATED, H)])
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn table() {
        let cut = |tail: &[u8]| cat(&[&vec![b'a'; SNIFF_LEN - tail.len()], tail]);
        let odf = |kind: &str| format!("application/vnd.oasis.opendocument.{kind}").into_bytes();
        let cases: Vec<(&str, Vec<u8>, Sniffed)> = vec![
            ("empty", vec![], Unknown),
            ("pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj".to_vec(), Accepted(Kind::Pdf)),
            ("pdf not at 0", b"junk%PDF-1.7\n".to_vec(), Unknown),
            ("png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(), Accepted(Kind::Png)),
            ("jpeg", b"\xff\xd8\xff\xe0\0\x10JFIF\0".to_vec(), Accepted(Kind::Jpeg)),
            ("tiff le", b"II*\0\x08\0\0\0".to_vec(), Accepted(Kind::Tiff)),
            ("tiff be", b"MM\0*\0\0\0\x08".to_vec(), Accepted(Kind::Tiff)),
            ("docx sized", docx(H), Accepted(Kind::Docx)),
            ("docx descriptor", docx(D), Accepted(Kind::Docx)),
            ("docx unsigned descriptor", docx(D_UNSIGNED), Accepted(Kind::Docx)),
            (
                "xlsx",
                zip(&[("[Content_Types].xml", DEFLATED, D), ("xl/workbook.xml", DEFLATED, D)]),
                Accepted(Kind::Xlsx),
            ),
            ("odt", odt(ODT_MIME, "styles.xml"), Accepted(Kind::Odt)),
            ("ods", odt(&odf("spreadsheet"), "styles.xml"), Refused(Other)),
            ("odt template", odt(&odf("text-template"), "styles.xml"), Refused(Other)),
            ("odt with basic macros", odt(ODT_MIME, "Basic/Standard/Module1.xml"), Refused(Script)),
            ("odt mimetype deflated", zip(&[("mimetype", ODT_MIME, D), ("content.xml", DEFLATED, H)]), Refused(Other)),
            ("docm", zip(&[("_rels/.rels", DEFLATED, D), ("word/vbaProject.bin", DEFLATED, H)]), Refused(Script)),
            ("ooxml, parts past the head", zip(&[("[Content_Types].xml", DEFLATED, D)]), Unknown),
            ("big first entry", zip(&[("[Content_Types].xml", &[7; 2 * SNIFF_LEN], H), ("word/a", b"", H)]), Unknown),
            ("word and xl", zip(&[("word/document.xml", DEFLATED, H), ("xl/workbook.xml", DEFLATED, H)]), Unknown),
            ("plain zip", zip(&[("readme.txt", b"hello", H), ("setup.exe", b"MZ\x90\0", D)]), Refused(Archive)),
            ("zip storing a docx", zip(&[("inner.docx", &docx(H), H)]), Refused(Archive)),
            ("fake header in data", zip(&[("a.bin", &cat(&[b"xx", &docx(H)]), D), ("b", b"", H)]), Refused(Archive)),
            ("truncated zip header", b"PK\x03\x04\x14\0\0\0".to_vec(), Unknown),
            ("empty zip", b"PK\x05\x06\0\0\0\0".to_vec(), Refused(Archive)),
            ("gzip", b"\x1f\x8b\x08\0".to_vec(), Refused(Archive)),
            ("tar", cat(&[&[b'a'; 257], b"ustar\x0000"]), Refused(Archive)),
            ("elf", b"\x7fELF\x02\x01\x01\0".to_vec(), Refused(Executable)),
            ("pe", b"MZ\x90\0\x03\0\0\0".to_vec(), Refused(Executable)),
            ("mach-o 64", b"\xcf\xfa\xed\xfe\x07\0\0\x01".to_vec(), Refused(Executable)),
            ("mach-o fat", b"\xca\xfe\xba\xbe\0\0\0\x02".to_vec(), Refused(Executable)),
            ("wasm", b"\0asm\x01\0\0\0".to_vec(), Refused(Executable)),
            ("shebang", b"#!/bin/sh\nrm -rf /\n".to_vec(), Refused(Script)),
            ("shebang after bom", b"\xef\xbb\xbf#!/usr/bin/env python3\n".to_vec(), Refused(Script)),
            ("php", b"<?php system($_GET['c']); ?>".to_vec(), Refused(Script)),
            ("html", b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(), Refused(Html)),
            ("html upper", b"<HTML><BODY>".to_vec(), Refused(Html)),
            ("html bom+space", b"\xef\xbb\xbf \r\n\t<html lang=en>".to_vec(), Refused(Html)),
            ("comment", b"<!-- x --><p>hi".to_vec(), Refused(Html)),
            ("iframe", b"  <iframe src=x>".to_vec(), Refused(Html)),
            ("svg", b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>".to_vec(), Refused(Html)),
            ("xml svg", b"<?xml version=\"1.0\"?>\n<svg/>".to_vec(), Refused(Html)),
            ("script in text", b"Dear sir,\nsee <ScRiPt>alert(1)</script>".to_vec(), Refused(Html)),
            ("ole2 doc", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\0\0".to_vec(), Refused(Other)),
            ("rtf", b"{\\rtf1\\ansi hello}".to_vec(), Refused(Other)),
            ("text", b"Invoice 2024-17\r\nTotal:\t\xe2\x82\xac 12,50\x0c\n".to_vec(), Accepted(Kind::Text)),
            ("text with bom", b"\xef\xbb\xbfhello".to_vec(), Accepted(Kind::Text)),
            ("text with angle", b"1 < 2 and a <b> c".to_vec(), Accepted(Kind::Text)),
            ("bom only", BOM.to_vec(), Unknown),
            ("text with nul", b"hello\0world".to_vec(), Unknown),
            ("text with esc", b"hello \x1b[31mred".to_vec(), Unknown),
            ("text with del", b"hello\x7f".to_vec(), Unknown),
            ("text with c1 control", b"hello \xc2\x85".to_vec(), Unknown),
            ("utf-16", b"\xff\xfeh\0i\0".to_vec(), Unknown),
            ("latin-1", b"caf\xe9 cr\xe8me".to_vec(), Unknown),
            ("utf-8 split by the cut", cut(b"\xe2\x82"), Accepted(Kind::Text)),
            ("utf-8 truncated, whole file", b"caf\xc3".to_vec(), Unknown),
            ("invalid utf-8 at the cut", cut(b"\xff"), Unknown),
            ("longer head is cut", cat(&[&cut(b"\xc3"), b"\xa9 and more"]), Accepted(Kind::Text)),
            ("script past the cut", cat(&[&cut(b""), b"<script>"]), Accepted(Kind::Text)),
            ("random binary", vec![0x13, 0x37, 0x00, 0xff, 0x42], Unknown),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter(|(_, bytes, want)| sniff(bytes) != *want)
            .map(|(name, bytes, want)| format!("{name}: got {:?}, want {want:?}", sniff(bytes)))
            .collect();
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }

    #[test]
    fn names_and_descriptions() {
        for kind in [Kind::Pdf, Kind::Png, Kind::Jpeg, Kind::Tiff, Kind::Text, Kind::Docx, Kind::Xlsx, Kind::Odt] {
            assert!(kind.mime().contains('/') && !kind.extension().is_empty(), "{kind:?}");
        }
        assert_eq!(Kind::Odt.mime().as_bytes(), ODT_MIME);
        assert!([Executable, Script, Html, Archive, Other].iter().all(|r| !r.describe().is_empty()));
    }
}

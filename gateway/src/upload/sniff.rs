//! Upload content checks by magic bytes and structure (SPEC: "Content is checked by its magic
//! bytes, not its name").
//!
//! The file name and the client's `Content-Type` are attacker-controlled, so the content decides,
//! in two steps: [`sniff`] decides the type from the first [`SNIFF_LEN`] bytes, before anything is
//! stored; then an [`Inspector`] for the accepted [`Kind`] checks the *whole* upload as it streams
//! past, so that what hides after the head is caught too. Neither has dependencies or panics on
//! any input.
//!
//! # The head
//!
//! [`sniff`] answers one of three verdicts:
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
//! types, ODF `Basic/` and `Scripts/`) seen within the head are refused right away; the
//! [`Inspector`] finds them anywhere. OOXML/ODF markers without a decisive entry give `Unknown`; a
//! ZIP without any office marker is refused as an archive.
//!
//! Text must be valid UTF-8 (optional BOM; a character split by the [`SNIFF_LEN`] cut is allowed)
//! without control characters other than tab, LF, CR and form feed. Text that looks like markup
//! (after BOM and whitespace it starts with a tag such as `<html`, `<svg`, `<!doctype`, `<?xml`,
//! or it contains `<script`, `<iframe`, `<html` or `<svg` anywhere) is refused: served back, it
//! could be rendered by a browser. Binary signatures win over the text rules, so a text file that
//! happens to start with `MZ` or `#!` is refused: we prefer false refusals to false acceptances.
//!
//! # The whole file
//!
//! [`Inspector::feed`] takes the upload in order, in chunks of any size, from its very first byte
//! (the head again); [`Inspector::finish`] is called at its end. A refusal is a
//! [`RefusedKind`] and sticks. Memory is bounded whatever the file size: a few dozen bytes of
//! carry-over for text; for a ZIP the record being read (at most 192 KiB: a header with its name,
//! extra field and comment) and the offsets of at most 65 535 local headers (512 KiB).
//!
//! * Text: the head's rules over the whole file. Valid UTF-8 (a character may be split between
//!   chunks, but the file must not end inside one) and no control characters other than tab,
//!   LF, CR and form feed, else [`RefusedKind::Other`]; none of `<script`, `<iframe`, `<html`,
//!   `<svg` anywhere (case-insensitive, also when split between chunks), else
//!   [`RefusedKind::Html`]. The first offending byte decides, so the verdict does not depend on
//!   the chunking.
//! * DOCX, XLSX, ODT: the local file headers are walked as in the head (known sizes skipped
//!   exactly, ZIP64 sizes read from the extra field, data descriptors found as above), then the
//!   central directory, the optional ZIP64 end record and locator, and the end record, which
//!   must end the file. Every entry name, local or central (the central directory is what Office
//!   reads), is checked as it streams past. [`RefusedKind::Script`]: macros and active content
//!   (`vbaProject.bin`, `vbaData.xml` or `activeX/` anywhere in the name; `Basic/`, `Scripts/`,
//!   `xl/macrosheets/`, `xl/intlmacrosheets/` at its start), programs (`.exe`, `.dll`, `.com`,
//!   `.scr`, `.pif`, `.cpl`, `.msi`, `.jar`, `.js`, `.jse`, `.vbs`, `.vbe`, `.wsf`, `.hta`, `.bat`,
//!   `.cmd`, `.ps1`, `.lnk`) and macro-enabled Office files (`.docm`, `.xlsm`, ...);
//!   [`RefusedKind::Archive`]: nested archives (`.zip`, `.7z`, `.rar`, `.gz`, `.tgz`, `.tar`,
//!   `.xz`, `.bz2`, `.cab`, `.iso`; embedded `.xlsx` and the like are allowed, charts use them).
//!   Names are compared in ASCII lower case, `\` as `/`, without leading `/` or trailing dots and
//!   spaces. A `[Content_Types].xml` stored uncompressed is also searched for `macroEnabled`,
//!   `vbaProject`, `macrosheet` and `activeX` content types; a deflated one is not inflated (the
//!   names suffice). [`RefusedKind::Other`]: a malformed or ambiguous archive: a name with a NUL
//!   byte, a central directory entry that does not point at a local header the walk saw, an end
//!   record that does not give the central directory's actual offset, size and entry count, a
//!   second end record in its comment, bytes after it, an unknown or misplaced record, more than
//!   65 535 entries, a truncated file. A reader that starts from the end record thus reads exactly
//!   the entries that were checked.
//! * PDF, PNG, JPEG, TIFF: nothing more to check.

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
    !text.is_empty() && text.chars().all(allowed_char)
}

/// Whether `c` may appear in text: anything but control characters, except tab, LF, CR and form feed.
fn allowed_char(c: char) -> bool {
    !c.is_control() || matches!(c, '\t' | '\n' | '\r' | '\x0c')
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
    match (head.get(data..), end.checked_sub(data)) {
        (Some(from_data), Some(end)) => descriptor_fits(from_data, 0, end),
        _ => false,
    }
}

/// Whether a data descriptor ends at `buf[end]`, for an entry whose data starts `base` bytes before
/// `buf[0]` (the descriptor's sizes must equal the distance from the data start to the descriptor).
fn descriptor_fits(buf: &[u8], base: u64, end: usize) -> bool {
    [(12, 4), (20, 8)].into_iter().any(|(len, width)| {
        [false, true].into_iter().any(|signed| {
            let Some(start) = end.checked_sub(if signed { len + 4 } else { len }) else {
                return false;
            };
            let size_at = end - len + 4;
            let size = if width == 4 {
                le(buf, size_at).map(u32::from_le_bytes).map(u64::from)
            } else {
                le(buf, size_at).map(u64::from_le_bytes)
            };
            (!signed || buf[start..].starts_with(b"PK\x07\x08")) && size == base.checked_add(start as u64)
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

// ---------------------------------------------------------------------------------------------
// The streaming inspection of the whole upload.

/// Checks an upload's content as it streams past, after [`sniff`] accepted its head.
///
/// Feed every chunk of the upload in order, starting with its very first byte (the head too),
/// then call [`Inspector::finish`]. The first refusal sticks: later calls return it again.
/// Memory stays bounded whatever the file size (see the module documentation).
#[derive(Debug)]
pub struct Inspector {
    check: Check,
    refused: Option<RefusedKind>,
}

#[derive(Debug)]
enum Check {
    /// PDF and the images: the head was all there was to check.
    Nothing,
    Text(TextCheck),
    Zip(Box<ZipCheck>),
}

impl Inspector {
    /// An inspector for an upload that [`sniff`] accepted as `kind`.
    pub fn new(kind: Kind) -> Self {
        let check = match kind {
            Kind::Pdf | Kind::Png | Kind::Jpeg | Kind::Tiff => Check::Nothing,
            Kind::Text => Check::Text(TextCheck::new()),
            Kind::Docx | Kind::Xlsx | Kind::Odt => Check::Zip(Box::default()),
        };
        Inspector { check, refused: None }
    }

    /// Feed the next chunk (chunks arrive in order, any size, starting with the very first byte of
    /// the file, i.e. the head bytes too). Returns `Err` as soon as the content breaks the rules.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), RefusedKind> {
        if let Some(refused) = self.refused {
            return Err(refused);
        }
        let result = match &mut self.check {
            Check::Nothing => Ok(()),
            Check::Text(text) => text.feed(chunk),
            Check::Zip(zip) => zip.feed(chunk),
        };
        self.refused = result.err();
        result
    }

    /// The file ended: final checks (a text file must not end inside a UTF-8 sequence, a ZIP must
    /// end with its end-of-central-directory record).
    pub fn finish(self) -> Result<(), RefusedKind> {
        if let Some(refused) = self.refused {
            return Err(refused);
        }
        match self.check {
            Check::Nothing => Ok(()),
            Check::Text(text) => text.finish(),
            Check::Zip(zip) => zip.finish(),
        }
    }
}

/// The last (at most) `N` bytes of a stream.
#[derive(Debug, Clone)]
struct Tail<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Tail<N> {
    fn new() -> Self {
        Tail { buf: [0; N], len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `more`, keeping only the last `N` bytes.
    fn push(&mut self, more: &[u8]) {
        if more.len() >= N {
            self.buf.copy_from_slice(&more[more.len() - N..]);
            self.len = N;
            return;
        }
        let keep = (N - more.len()).min(self.len);
        self.buf.copy_within(self.len - keep..self.len, 0);
        self.buf[keep..keep + more.len()].copy_from_slice(more);
        self.len = keep + more.len();
    }
}

/// The longest needle [`Needles`] can find across chunk boundaries.
const NEEDLE_MAX: usize = 16;

/// Case-insensitive search for short ASCII needles in a stream, also where a chunk boundary
/// splits them: the last `NEEDLE_MAX - 1` bytes are kept for the next chunk.
#[derive(Debug)]
struct Needles {
    list: &'static [&'static [u8]],
    tail: Tail<{ NEEDLE_MAX - 1 }>,
}

impl Needles {
    fn new(list: &'static [&'static [u8]]) -> Self {
        Needles { list, tail: Tail::new() }
    }

    /// Whether one of the needles starts at `hay[at]` (and ends within `hay`).
    fn at(&self, hay: &[u8], at: usize) -> bool {
        hay.get(at..).is_some_and(|rest| self.list.iter().any(|needle| starts_with_ci(rest, needle)))
    }

    /// Whether a needle starts in the kept tail and ends in `chunk`, the stream's next bytes.
    fn across(&self, chunk: &[u8]) -> bool {
        let tail = self.tail.bytes();
        let next = &chunk[..chunk.len().min(NEEDLE_MAX - 1)];
        let mut joined = [0; 2 * (NEEDLE_MAX - 1)];
        joined[..tail.len()].copy_from_slice(tail);
        joined[tail.len()..tail.len() + next.len()].copy_from_slice(next);
        let joined = &joined[..tail.len() + next.len()];
        (0..tail.len()).any(|at| self.at(joined, at))
    }

    /// Remembers the end of `chunk` for the next [`Needles::across`].
    fn keep(&mut self, chunk: &[u8]) {
        self.tail.push(chunk);
    }

    /// Whether a needle ends in `chunk`, the stream's next bytes (a plain scan, for short streams).
    fn find(&mut self, chunk: &[u8]) -> bool {
        let found = self.across(chunk) || (0..chunk.len()).any(|at| self.at(chunk, at));
        self.keep(chunk);
        found
    }
}

// --- Text ------------------------------------------------------------------------------------

/// The text rules over the whole file: UTF-8, allowed characters, no markup.
#[derive(Debug)]
struct TextCheck {
    /// An incomplete UTF-8 sequence that ended the previous chunk (at most 3 bytes).
    partial: Tail<4>,
    /// [`MARKUP_ANYWHERE`], found across chunk boundaries.
    markup: Needles,
}

impl TextCheck {
    fn new() -> Self {
        TextCheck { partial: Tail::new(), markup: Needles::new(MARKUP_ANYWHERE) }
    }

    /// Checks the next chunk. Violations are reported in stream order (the first offending byte
    /// decides the kind), so the verdict does not depend on how the file is cut into chunks.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), RefusedKind> {
        // A needle started before this chunk precedes anything in it (it cannot overlap a partial
        // character: the needles are ASCII).
        if self.markup.across(chunk) {
            return Err(Html);
        }
        self.markup.keep(chunk);
        let rest = self.complete_char(chunk)?;
        let (valid, error) = match std::str::from_utf8(rest) {
            Ok(_) => (rest, None),
            Err(e) => (&rest[..e.valid_up_to()], Some(e)),
        };
        scan_text(valid)?;
        match error {
            None => Ok(()),
            // The chunk ends inside a character: keep its first bytes for the next chunk.
            Some(e) if e.error_len().is_none() => {
                self.partial.push(&rest[valid.len()..]);
                Ok(())
            }
            Some(_) => Err(Other),
        }
    }

    /// Completes the character the previous chunk ended in, with the first bytes of `chunk`;
    /// returns the rest of `chunk`.
    fn complete_char<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], RefusedKind> {
        let carried = self.partial.bytes();
        let Some(&lead) = carried.first() else {
            return Ok(chunk);
        };
        let width: usize = match lead {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            _ => return Err(Other),
        };
        let take = width.saturating_sub(carried.len()).min(chunk.len());
        let mut buf = [0; 4];
        buf[..carried.len()].copy_from_slice(carried);
        buf[carried.len()..carried.len() + take].copy_from_slice(&chunk[..take]);
        match std::str::from_utf8(&buf[..carried.len() + take]) {
            Ok(c) if c.chars().all(allowed_char) => self.partial.clear(),
            Ok(_) => return Err(Other),
            // Still incomplete: `chunk` was too short to finish it.
            Err(e) if e.error_len().is_none() => self.partial.push(&chunk[..take]),
            Err(_) => return Err(Other),
        }
        Ok(&chunk[take..])
    }

    fn finish(self) -> Result<(), RefusedKind> {
        if self.partial.bytes().is_empty() { Ok(()) } else { Err(Other) }
    }
}

/// Checks `text` (valid UTF-8 made of whole characters) for forbidden control characters and
/// for markup that starts in it: both refusals in the order they occur.
fn scan_text(text: &[u8]) -> Result<(), RefusedKind> {
    for (n, block) in text.chunks(BLOCK).enumerate() {
        let suspect = match <&[u8; BLOCK]>::try_from(block) {
            // Compiled to vector instructions: most blocks have nothing to look at.
            Ok(whole) => whole.iter().fold(false, |any, &byte| any | suspect(byte)),
            Err(_) => true, // the short last block
        };
        if suspect {
            check_block(text, n * BLOCK, block)?;
        }
    }
    Ok(())
}

/// Bytes examined at a time by the scans.
const BLOCK: usize = 32;

/// Whether [`check_block`] must look at `byte`: a control character other than tab, LF, form
/// feed and CR, DEL, `0xC2` (which starts the C1 controls, and U+00A0..=U+00BF), or `<`.
/// Without branches, so that a block's test compiles to vector instructions.
fn suspect(byte: u8) -> bool {
    let control = (byte < 0x20) & (byte != b'\t') & (byte != b'\n') & (byte != 0x0c) & (byte != b'\r');
    control | (byte == 0x7f) | (byte == 0xc2) | (byte == b'<')
}

/// Checks the `block` of `text` that starts at `start`, byte by byte.
fn check_block(text: &[u8], start: usize, block: &[u8]) -> Result<(), RefusedKind> {
    for (i, &byte) in block.iter().enumerate() {
        let at = start + i;
        match byte {
            b'<' if MARKUP_ANYWHERE.iter().any(|needle| starts_with_ci(&text[at..], needle)) => return Err(Html),
            // U+0080..=U+009F are the C1 controls.
            0xc2 if matches!(text.get(at + 1), Some(0x80..=0x9f)) => return Err(Other),
            0x7f => return Err(Other),
            0..0x20 if !matches!(byte, b'\t' | b'\n' | 0x0c | b'\r') => return Err(Other),
            _ => {}
        }
    }
    Ok(())
}

/// The first `byte` in `hay[from..]`, skipping blocks without one.
fn find_byte(hay: &[u8], from: usize, byte: u8) -> Option<usize> {
    let mut at = from;
    while let Some(Ok(block)) = hay.get(at..at + BLOCK).map(<&[u8; BLOCK]>::try_from) {
        if block.iter().fold(false, |any, &b| any | (b == byte)) {
            break;
        }
        at += BLOCK;
    }
    (at..hay.len()).find(|&i| hay[i] == byte)
}

// --- ZIP -------------------------------------------------------------------------------------

/// The most local entries a ZIP may have (the classic limit without ZIP64); their offsets are
/// kept to check the central directory against them.
const MAX_ENTRIES: usize = 65_535;
/// The longest ZIP64 end-of-central-directory record accepted (its extensible data is unused).
const MAX_ZIP64_END: usize = 65_536;
/// The ZIP64 extended-information extra field.
const ZIP64_EXTRA: u16 = 0x0001;
/// Bytes kept while looking for the end of an entry with a data descriptor: the descriptor can
/// take 24 bytes before the next signature, and the signature itself may be split (3 bytes).
const RECENT: usize = 27;

/// Entry names containing one of these (lower case, `\` as `/`) carry macros or active content.
const ACTIVE_PARTS: &[&[u8]] = &[b"vbaproject.bin", b"vbadata.xml", b"activex/"];
/// Entry names starting with one of these are macros: ODF Basic and scripts, Excel 4 macro sheets.
const ACTIVE_DIRS: &[&[u8]] = &[b"basic/", b"scripts/", b"xl/macrosheets/", b"xl/intlmacrosheets/"];
/// Extensions of programs and of macro-enabled Office files: refused as [`Script`].
const PROGRAM_EXTENSIONS: &str = "exe dll com scr pif cpl msi jar js jse vbs vbe wsf hta bat cmd ps1 lnk \
     docm dotm xlsm xltm xlam pptm potm ppsm ppam sldm";
/// Extensions of archives nested in the document: refused as [`Archive`]. (Embedded Office files
/// such as `word/embeddings/*.xlsx`, which charts use, are ZIPs too and are allowed.)
const ARCHIVE_EXTENSIONS: &str = "zip 7z rar gz tgz tar xz bz2 cab iso";
/// Searched in a `[Content_Types].xml` that is stored uncompressed.
const ACTIVE_TYPES: &[&[u8]] = &[b"macroenabled", b"vbaproject", b"macrosheet", b"activex"];

/// The ZIP records the walk knows, by signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Local,
    Central,
    Zip64End,
    Zip64Locator,
    End,
}

impl Sig {
    fn of(bytes: &[u8]) -> Option<Sig> {
        match bytes.get(..4)? {
            b"PK\x03\x04" => Some(Sig::Local),
            b"PK\x01\x02" => Some(Sig::Central),
            b"PK\x06\x06" => Some(Sig::Zip64End),
            b"PK\x06\x07" => Some(Sig::Zip64Locator),
            b"PK\x05\x06" => Some(Sig::End),
            _ => None,
        }
    }
}

/// Where the walk is in the archive's layout: local entries, central directory, (ZIP64 end record,
/// its locator), end record, nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Entries,
    Central,
    Zip64End,
    Zip64Located,
    Ended,
}

/// What the next bytes are.
#[derive(Debug, Default)]
enum ZipState {
    /// A record (header or end record), collected in [`ZipCheck::rec`].
    #[default]
    Record,
    /// An entry's data; `watch` searches it for [`ACTIVE_TYPES`].
    Data { body: Body, watch: Option<Needles> },
}

/// An entry's data, skipped.
#[derive(Debug)]
enum Body {
    /// The local header gave the size: this many bytes are left.
    Sized { left: u64 },
    /// Flag bit 3: the data ends with a data descriptor right before the next record signature.
    Described { seen: u64, recent: Tail<RECENT> },
}

/// Where the next record starts, found while skipping described data.
enum Boundary {
    /// At this index of the chunk.
    InChunk(usize),
    /// This many bytes before the chunk (the signature was split).
    InRecent(usize),
}

/// The values of a ZIP64 end-of-central-directory record.
#[derive(Debug, Clone, Copy)]
struct Zip64End {
    /// Offset of the record itself, which the locator must point at.
    at: u64,
    /// Entries on this disk, entries, central directory size, central directory offset.
    values: [u64; 4],
}

/// The ZIP walk over the whole file.
#[derive(Debug, Default)]
struct ZipCheck {
    /// Stream offset of the next byte fed.
    pos: u64,
    state: ZipState,
    phase: Phase,
    /// The record being collected (at most ~192 KiB: fixed part and three 16-bit lengths).
    rec: Vec<u8>,
    /// Offsets of the local headers walked, ascending.
    locals: Vec<u64>,
    /// The central directory: offset of its first record, offset past its last, entries.
    central_start: u64,
    central_end: u64,
    central_entries: u64,
    zip64_end: Option<Zip64End>,
}

impl ZipCheck {
    fn feed(&mut self, mut input: &[u8]) -> Result<(), RefusedKind> {
        while !input.is_empty() {
            if self.phase == Phase::Ended {
                return Err(Other); // bytes after the end record
            }
            let used = match self.state {
                ZipState::Record => self.read_record(input)?,
                ZipState::Data { .. } => self.read_data(input)?,
            };
            self.pos += used as u64;
            input = &input[used..];
        }
        Ok(())
    }

    /// The file must have ended right after the end record.
    fn finish(self) -> Result<(), RefusedKind> {
        let complete = self.phase == Phase::Ended && matches!(self.state, ZipState::Record) && self.rec.is_empty();
        if complete { Ok(()) } else { Err(Other) }
    }

    /// Collects the current record from `input`, handling it once complete; returns the bytes used.
    fn read_record(&mut self, input: &[u8]) -> Result<usize, RefusedKind> {
        let mut used = 0;
        loop {
            let (need, known) = record_len(&self.rec, self.phase)?;
            if known && self.rec.len() >= need {
                let start = (self.pos + used as u64).saturating_sub(self.rec.len() as u64);
                self.handle_record(start)?;
                return Ok(used);
            }
            let take = need.saturating_sub(self.rec.len()).min(input.len() - used);
            if take == 0 {
                return Ok(used);
            }
            self.rec.extend_from_slice(&input[used..used + take]);
            used += take;
        }
    }

    /// Handles the complete record in `rec`, which started at offset `start`.
    fn handle_record(&mut self, start: u64) -> Result<(), RefusedKind> {
        let rec = std::mem::take(&mut self.rec);
        let result = match Sig::of(&rec) {
            Some(Sig::Local) => self.local(&rec, start),
            Some(Sig::Central) => self.central(&rec, start),
            Some(Sig::Zip64End) => self.zip64_end(&rec, start),
            Some(Sig::Zip64Locator) => self.zip64_locator(&rec),
            Some(Sig::End) => self.end(&rec),
            None => Err(Other),
        };
        self.rec = rec;
        self.rec.clear(); // keep the allocation
        result
    }

    /// A local file header: its name, then how to skip its data.
    fn local(&mut self, rec: &[u8], start: u64) -> Result<(), RefusedKind> {
        let entry = local_header(rec, 0).ok_or(Other)?;
        refuse_name(entry.name)?;
        if self.locals.len() >= MAX_ENTRIES {
            return Err(Other); // too many entries
        }
        self.locals.push(start);
        let extra = rec.get(30 + entry.name.len()..).ok_or(Other)?;
        let body = if entry.flags & 8 != 0 {
            Body::Described { seen: 0, recent: Tail::new() }
        } else {
            match stored_size(&entry, extra).ok_or(Other)? {
                0 => return Ok(()), // no data: the next record follows
                left => Body::Sized { left },
            }
        };
        let content_types = entry.method == 0 && normalized(entry.name) == b"[content_types].xml";
        self.state = ZipState::Data { body, watch: content_types.then(|| Needles::new(ACTIVE_TYPES)) };
        Ok(())
    }

    /// A central directory header: its name, and it must point at a local header walked.
    fn central(&mut self, rec: &[u8], start: u64) -> Result<(), RefusedKind> {
        if self.phase == Phase::Entries {
            self.phase = Phase::Central;
            self.central_start = start;
        }
        let name_len = usize::from(u16::from_le_bytes(le(rec, 28).ok_or(Other)?));
        let extra_len = usize::from(u16::from_le_bytes(le(rec, 30).ok_or(Other)?));
        refuse_name(rec.get(46..46 + name_len).ok_or(Other)?)?;
        let extra = rec.get(46 + name_len..46 + name_len + extra_len).ok_or(Other)?;
        let offset = central_offset(rec, extra).ok_or(Other)?;
        if self.locals.binary_search(&offset).is_err() {
            return Err(Other); // Office would read an entry the walk did not see
        }
        self.central_entries += 1;
        self.central_end = start + rec.len() as u64;
        Ok(())
    }

    fn zip64_end(&mut self, rec: &[u8], start: u64) -> Result<(), RefusedKind> {
        let value = |at| le(rec, at).map(u64::from_le_bytes).ok_or(Other);
        let values = [value(24)?, value(32)?, value(40)?, value(48)?];
        self.zip64_end = Some(Zip64End { at: start, values });
        self.phase = Phase::Zip64End;
        Ok(())
    }

    fn zip64_locator(&mut self, rec: &[u8]) -> Result<(), RefusedKind> {
        let points_at = le(rec, 8).map(u64::from_le_bytes);
        if points_at != self.zip64_end.map(|end| end.at) {
            return Err(Other);
        }
        self.phase = Phase::Zip64Located;
        Ok(())
    }

    /// The end-of-central-directory record must describe the central directory walked (so that
    /// a reader that starts from it reads the same entries), and no second one may hide in its
    /// comment (a reader searching backwards would find that one first).
    fn end(&mut self, rec: &[u8]) -> Result<(), RefusedKind> {
        let comment = rec.get(22..).ok_or(Other)?;
        if comment.windows(4).any(|w| w == b"PK\x05\x06") {
            return Err(Other);
        }
        let small = |at| le(rec, at).map(|b| u64::from(u16::from_le_bytes(b))).ok_or(Other);
        let large = |at| le(rec, at).map(|b| u64::from(u32::from_le_bytes(b))).ok_or(Other);
        let fields = [small(8)?, small(10)?, large(12)?, large(16)?];
        let sentinels = [0xffff, 0xffff, 0xffff_ffff, 0xffff_ffff];
        let walked =
            [self.central_entries, self.central_entries, self.central_end - self.central_start, self.central_start];
        let zip64 = self.zip64_end.map(|end| end.values);
        let consistent = (0..4).all(|i| match zip64 {
            Some(values) => values[i] == walked[i] && (fields[i] == walked[i] || fields[i] == sentinels[i]),
            None => fields[i] == walked[i],
        });
        if !consistent {
            return Err(Other);
        }
        self.phase = Phase::Ended;
        Ok(())
    }

    /// Skips entry data in `input`; returns the bytes used.
    fn read_data(&mut self, input: &[u8]) -> Result<usize, RefusedKind> {
        let ZipState::Data { body, watch } = &mut self.state else {
            return Ok(0);
        };
        let (used, ended) = match body {
            Body::Sized { left } => {
                let used = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= used as u64;
                (used, *left == 0)
            }
            Body::Described { seen, recent } => match find_boundary(recent.bytes(), input, *seen) {
                None => {
                    *seen += input.len() as u64;
                    recent.push(input);
                    (input.len(), false)
                }
                Some(Boundary::InChunk(at)) => (at, true),
                Some(Boundary::InRecent(split)) => {
                    let bytes = recent.bytes();
                    self.rec.extend_from_slice(&bytes[bytes.len() - split..]);
                    (0, true)
                }
            },
        };
        if let Some(watch) = watch
            && watch.find(&input[..used])
        {
            return Err(Script);
        }
        if ended {
            self.state = ZipState::Record;
        }
        Ok(used)
    }
}

/// How long the record starting with `rec` is: `(n, true)` once known, else `(n, false)` (collect
/// up to `n` bytes, then ask again). A signature not allowed in this `phase` is refused.
fn record_len(rec: &[u8], phase: Phase) -> Result<(usize, bool), RefusedKind> {
    let Some(sig) = rec.get(..4) else {
        return Ok((4, false));
    };
    // The fixed part's length, then the offsets of the 16-bit lengths of the variable parts.
    let (fixed, lengths): (usize, &[usize]) = match (Sig::of(sig), phase) {
        (Some(Sig::Local), Phase::Entries) => (30, &[26, 28]),
        (Some(Sig::Central), Phase::Entries | Phase::Central) => (46, &[28, 30, 32]),
        (Some(Sig::Zip64End), Phase::Central) => (12, &[]),
        (Some(Sig::Zip64Locator), Phase::Zip64End) => (20, &[]),
        (Some(Sig::End), Phase::Central | Phase::Zip64Located) => (22, &[20]),
        _ => return Err(Other), // unknown, or out of place (e.g. no central directory)
    };
    if rec.len() < fixed {
        return Ok((fixed, false));
    }
    if Sig::of(sig) == Some(Sig::Zip64End) {
        let size = le(rec, 4).map(u64::from_le_bytes).ok_or(Other)?;
        // The record's size after its first 12 bytes: the fixed fields take 44.
        return match usize::try_from(size) {
            Ok(size) if (44..=MAX_ZIP64_END).contains(&size) => Ok((fixed + size, true)),
            _ => Err(Other),
        };
    }
    let variable: Option<usize> =
        lengths.iter().map(|&at| le(rec, at).map(|b| usize::from(u16::from_le_bytes(b)))).sum();
    Ok((fixed + variable.ok_or(Other)?, true))
}

/// The compressed size of a local entry without data descriptor, from its ZIP64 extra field if
/// the header holds 0xFFFFFFFF.
fn stored_size(entry: &Entry, extra: &[u8]) -> Option<u64> {
    if entry.compressed != u32::MAX {
        return Some(u64::from(entry.compressed));
    }
    // The local ZIP64 field holds both sizes, uncompressed first (APPNOTE 4.5.3); some writers
    // put only those whose header field is 0xFFFFFFFF.
    let zip64 = extra_field(extra, ZIP64_EXTRA)?;
    let at = match zip64.len() {
        16.. => 8,
        8.. if entry.uncompressed != u32::MAX => 0,
        _ => return None,
    };
    le(zip64, at).map(u64::from_le_bytes)
}

/// The local header offset of a central directory record `rec`, from its ZIP64 extra field if
/// the record holds 0xFFFFFFFF (that field holds, in order, only the values whose 32-bit field
/// is 0xFFFFFFFF: uncompressed size, compressed size, offset).
fn central_offset(rec: &[u8], extra: &[u8]) -> Option<u64> {
    let field = |at| le(rec, at).map(u32::from_le_bytes);
    let offset = field(42)?;
    if offset != u32::MAX {
        return Some(u64::from(offset));
    }
    let skip = [field(24)?, field(20)?].iter().filter(|&&size| size == u32::MAX).count() * 8;
    le(extra_field(extra, ZIP64_EXTRA)?, skip).map(u64::from_le_bytes)
}

/// The data of the extra field `id` in a header's extra fields.
fn extra_field(mut extra: &[u8], id: u16) -> Option<&[u8]> {
    while let (Some(tag), Some(len)) = (le(extra, 0).map(u16::from_le_bytes), le(extra, 2).map(u16::from_le_bytes)) {
        let end = 4 + usize::from(len);
        let data = extra.get(4..end)?;
        if tag == id {
            return Some(data);
        }
        extra = &extra[end..];
    }
    None
}

/// Finds where the next record starts in described data: the first ZIP record signature that a
/// valid data descriptor ends right before. `recent` holds the last bytes of the entry before
/// `chunk`, `seen` counts them all.
fn find_boundary(recent: &[u8], chunk: &[u8], seen: u64) -> Option<Boundary> {
    // Signatures or descriptors that straddle the chunk boundary: the candidates not yet
    // examined start at most 3 bytes before `chunk`.
    let head = &chunk[..chunk.len().min(RECENT)];
    let mut joined = [0; 2 * RECENT];
    joined[..recent.len()].copy_from_slice(recent);
    joined[recent.len()..recent.len() + head.len()].copy_from_slice(head);
    let joined = &joined[..recent.len() + head.len()];
    let base = seen.saturating_sub(recent.len() as u64);
    if let Some(at) = (recent.len().saturating_sub(3)..joined.len()).find(|&at| record_after_data(joined, base, at)) {
        return Some(match at.checked_sub(recent.len()) {
            Some(in_chunk) => Boundary::InChunk(in_chunk),
            None => Boundary::InRecent(recent.len() - at),
        });
    }
    // Candidates wholly in `chunk` (those before index RECENT - 3 were examined above).
    let mut from = RECENT - 3;
    while let Some(at) = find_byte(chunk, from, b'P') {
        if record_after_data(chunk, seen, at) {
            return Some(Boundary::InChunk(at));
        }
        from = at + 1;
    }
    None
}

/// Whether a record signature starts at `buf[at]` with a data descriptor right before it
/// (`base`: how far `buf[0]` is from the start of the entry's data).
fn record_after_data(buf: &[u8], base: u64, at: usize) -> bool {
    buf.get(at..).and_then(Sig::of).is_some_and(|sig| sig != Sig::Zip64Locator) && descriptor_fits(buf, base, at)
}

/// An entry name as the name rules compare it: ASCII lower case, `\` as `/`, without leading
/// `/` or trailing dots and spaces (Windows drops those).
fn normalized(name: &[u8]) -> Vec<u8> {
    let mut name: Vec<u8> = name.iter().map(|&b| if b == b'\\' { b'/' } else { b.to_ascii_lowercase() }).collect();
    while name.last().is_some_and(|&b| b == b'.' || b == b' ') {
        name.pop();
    }
    let leading = name.iter().take_while(|&&b| b == b'/').count();
    name.drain(..leading);
    name
}

/// The name rules, for local and central directory names alike.
fn refuse_name(name: &[u8]) -> Result<(), RefusedKind> {
    if name.contains(&0) {
        return Err(Other); // C-based readers cut the name there
    }
    let name = normalized(name);
    let file = name.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
    let extension = file.iter().rposition(|&b| b == b'.').map(|dot| &file[dot + 1..]);
    let listed = |list: &str| extension.is_some_and(|ext| list.split(' ').any(|e| e.as_bytes() == ext));
    if ACTIVE_PARTS.iter().any(|part| contains_ci(&name, part))
        || ACTIVE_DIRS.iter().any(|dir| name.starts_with(dir))
        || listed(PROGRAM_EXTENSIONS)
    {
        Err(Script)
    } else if listed(ARCHIVE_EXTENSIONS) {
        Err(Archive)
    } else {
        Ok(())
    }
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

    /// More ways to write an entry: stored with a data descriptor; stored with ZIP64 sizes.
    const STORED_D: u8 = 3;
    const ZIP64: u8 = 4;

    /// A local header, the data and, for a data descriptor, the descriptor.
    fn local_entry(name: &str, data: &[u8], how: u8) -> Vec<u8> {
        let (flags, method): (u16, u16) = match how {
            H | ZIP64 => (0, 0),
            STORED_D => (8, 0),
            _ => (8, 8),
        };
        let size = match how {
            H => data.len() as u32,
            ZIP64 => u32::MAX,
            _ => 0,
        };
        let len = (data.len() as u64).to_le_bytes();
        let extra = if how == ZIP64 { [&[1, 0, 16, 0][..], &len, &len].concat() } else { vec![] };
        // Signature, version 2.0, flags, method (0 stored, 8 deflate), time, date, CRC-32.
        let mut entry = [ZIP_LOCAL, &[20, 0], &flags.to_le_bytes(), &method.to_le_bytes(), &[0x21; 8]].concat();
        let lengths = [(name.len() as u16).to_le_bytes(), (extra.len() as u16).to_le_bytes()].concat();
        entry.extend([&size.to_le_bytes()[..], &size.to_le_bytes(), &lengths, name.as_bytes(), &extra, data].concat());
        if flags & 8 != 0 {
            let sig: &[u8] = if how == D_UNSIGNED { b"" } else { b"PK\x07\x08" };
            entry.extend([sig, &[0x21; 4], &(data.len() as u32).to_le_bytes(), &[0x99; 4]].concat());
        }
        entry
    }

    fn zip(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let z: Vec<u8> = entries.iter().flat_map(|&(name, data, how)| local_entry(name, data, how)).collect();
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

    // --- The streaming inspection -----------------------------------------------------------

    /// A whole ZIP: the local `entries`, a central directory naming them and `hidden` (names only
    /// it has, pointing at the first local header), ZIP64 end records if `zip64`, the end record.
    fn archive_with(entries: &[(&str, &[u8], u8)], hidden: &[&str], zip64: bool, comment: &[u8]) -> Vec<u8> {
        let mut z = Vec::new();
        let mut central = Vec::new();
        for &(name, data, how) in entries {
            central.extend(central_entry(name, z.len() as u64, zip64));
            z.extend(local_entry(name, data, how));
        }
        for name in hidden {
            central.extend(central_entry(name, 0, zip64));
        }
        let (count, size, offset) = (entries.len() + hidden.len(), central.len(), z.len());
        z.extend(central);
        if zip64 {
            let end64 = z.len() as u64;
            let values = [count as u64, count as u64, size as u64, offset as u64];
            z.extend([&b"PK\x06\x06"[..], &44u64.to_le_bytes(), &[20, 0, 20, 0], &[0; 8]].concat());
            z.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            z.extend([&b"PK\x06\x07"[..], &[0; 4], &end64.to_le_bytes(), &1u32.to_le_bytes()].concat());
        }
        let (count, size, offset) =
            if zip64 { (0xffff, u32::MAX, u32::MAX) } else { (count as u16, size as u32, offset as u32) };
        z.extend([&b"PK\x05\x06"[..], &[0; 4], &count.to_le_bytes(), &count.to_le_bytes()].concat());
        z.extend(
            [&size.to_le_bytes()[..], &offset.to_le_bytes(), &(comment.len() as u16).to_le_bytes(), comment].concat(),
        );
        z
    }

    fn archive(entries: &[(&str, &[u8], u8)]) -> Vec<u8> {
        archive_with(entries, &[], false, b"")
    }

    /// A central directory header (sizes 0: the walk does not read them).
    fn central_entry(name: &str, offset: u64, zip64: bool) -> Vec<u8> {
        let (offset, extra) = match zip64 {
            true => (u32::MAX, [&[1, 0, 8, 0][..], &offset.to_le_bytes()].concat()),
            false => (offset as u32, vec![]),
        };
        // Signature, versions, flags, method, time, date, CRC-32, sizes.
        let mut entry = [&b"PK\x01\x02"[..], &[20, 0, 20, 0], &[0; 4], &[0x21; 8], &[0; 8]].concat();
        entry.extend([(name.len() as u16).to_le_bytes(), (extra.len() as u16).to_le_bytes()].concat());
        // Comment length, disk, internal and external attributes, local header offset.
        entry.extend([&[0; 10][..], &offset.to_le_bytes(), name.as_bytes(), &extra].concat());
        entry
    }

    /// A small pseudo-random generator (xorshift64*), for test data and chunkings.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// Media entries that push what follows past the head: three of 3000 bytes under `dir`.
    fn padding_in(dir: &str) -> Vec<(String, Vec<u8>)> {
        let mut rng = Rng(7);
        (1..=3).map(|i| (format!("{dir}media/image{i}.png"), rng.bytes(3000))).collect()
    }

    fn padding() -> Vec<(String, Vec<u8>)> {
        padding_in("word/")
    }

    /// A DOCX: content types, relationships, the document, [`padding`], then `late` entries,
    /// all written as `how`.
    fn late_docx(how: u8, late: &[(&str, &[u8])]) -> Vec<u8> {
        late_archive(how, late, &[], false)
    }

    /// [`late_docx`] with names only in the central directory, and ZIP64 end records.
    fn late_archive(how: u8, late: &[(&str, &[u8])], hidden: &[&str], zip64: bool) -> Vec<u8> {
        let padding = padding();
        // The head walk stops at ZIP64 sizes: it must see `word/` before.
        let first = if how == ZIP64 { H } else { how };
        let mut entries = vec![
            ("[Content_Types].xml", DEFLATED, first),
            ("_rels/.rels", DEFLATED, first),
            ("word/document.xml", DEFLATED, first),
        ];
        entries.extend(padding.iter().map(|(name, data)| (name.as_str(), data.as_slice(), how)));
        entries.extend(late.iter().map(|&(name, data)| (name, data, how)));
        archive_with(&entries, hidden, zip64, b"")
    }

    /// Feeds `file` to an inspector in chunks of `size` bytes, then finishes.
    fn inspect_in(kind: Kind, file: &[u8], size: usize) -> Result<(), RefusedKind> {
        let mut inspector = Inspector::new(kind);
        for chunk in file.chunks(size.max(1)) {
            inspector.feed(chunk)?;
        }
        inspector.finish()
    }

    /// Sniffs `file` (its head must be accepted), then inspects it whole and in chunks of 1, 7 and
    /// 4096 bytes: all must agree.
    fn inspect(file: &[u8]) -> Result<(), RefusedKind> {
        let Accepted(kind) = sniff(file) else {
            panic!("the head is not accepted: {:?}", sniff(file));
        };
        let verdicts: Vec<_> = [file.len(), 1, 7, 4096].map(|size| inspect_in(kind, file, size)).to_vec();
        assert!(verdicts.iter().all(|v| *v == verdicts[0]), "chunkings disagree: {verdicts:?}");
        verdicts[0]
    }

    /// Runs [`inspect`] on each case; fails listing the cases that went wrong.
    fn check(cases: &[(&str, Vec<u8>, Result<(), RefusedKind>)]) {
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(name, file, want)| {
                let got = match sniff(file) {
                    Accepted(_) => inspect(file),
                    head => return Some(format!("{name}: the head is not accepted: {head:?}")),
                };
                (got != *want).then(|| format!("{name}: got {got:?}, want {want:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    }

    #[test]
    fn zip_whole_file() {
        const CT_MACROS: &[u8] = b"<Override ContentType=\"application/vnd.ms-word.document.macroEnabled.main+xml\"/>";
        let odt_late = |name: &str| {
            let padding = padding_in("Pictures/");
            let mut entries = vec![("mimetype", ODT_MIME, H), ("content.xml", DEFLATED, D)];
            entries.extend(padding.iter().map(|(name, data)| (name.as_str(), data.as_slice(), H)));
            entries.push((name, DEFLATED, D));
            archive(&entries)
        };
        let xlsx_late = |name: &str| {
            let padding = padding_in("xl/");
            let mut entries = vec![("[Content_Types].xml", DEFLATED, D), ("xl/workbook.xml", DEFLATED, D)];
            entries.extend(padding.iter().map(|(name, data)| (name.as_str(), data.as_slice(), D)));
            entries.push((name, DEFLATED, D));
            archive(&entries)
        };
        let docx = late_docx(H, &[]);
        let end = docx.len() - 22;
        let central = find(&docx, b"PK\x01\x02").unwrap();
        let patched = |at: usize, bytes: &[u8]| {
            let mut file = docx.clone();
            file[at..at + bytes.len()].copy_from_slice(bytes);
            file
        };
        let cases: Vec<(&str, Vec<u8>, Result<(), RefusedKind>)> = vec![
            ("docx, sized", late_docx(H, &[]), Ok(())),
            ("docx, descriptors", late_docx(D, &[]), Ok(())),
            ("docx, unsigned descriptors", late_docx(D_UNSIGNED, &[]), Ok(())),
            ("docx, stored with descriptors", late_docx(STORED_D, &[]), Ok(())),
            ("docx, zip64 sizes", late_docx(ZIP64, &[]), Ok(())),
            ("docx, zip64 end records", archive_with(&[("word/document.xml", DEFLATED, D)], &[], true, b""), Ok(())),
            ("docx, comment", archive_with(&[("word/a.xml", DEFLATED, H)], &[], false, b"made by hand"), Ok(())),
            ("docx, embedded xlsx", late_docx(D, &[("word/embeddings/Sheet1.xlsx", b"PK\x03\x04")]), Ok(())),
            ("docx, empty entries", late_docx(H, &[("word/empty/", b""), ("customXml/item1.xml", b"")]), Ok(())),
            ("late macros, sized", late_docx(H, &[("word/vbaProject.bin", b"\xd0\xcf")]), Err(Script)),
            ("late macros, descriptor", late_docx(D, &[("word/vbaProject.bin", DEFLATED)]), Err(Script)),
            ("late macros, unsigned", late_docx(D_UNSIGNED, &[("word/vbaProject.bin", DEFLATED)]), Err(Script)),
            ("late macros, stored d.", late_docx(STORED_D, &[("word/vbaProject.bin", DEFLATED)]), Err(Script)),
            ("late macros, zip64", late_docx(ZIP64, &[("word/vbaProject.bin", DEFLATED)]), Err(Script)),
            ("macros elsewhere", late_docx(H, &[("customUI/VBAPROJECT.BIN", b"x")]), Err(Script)),
            ("macros, backslash", late_docx(H, &[("word\\vbaProject.bin", b"x")]), Err(Script)),
            ("vba data", late_docx(H, &[("word/vbaData.xml", b"<wne:vbaSuppData/>")]), Err(Script)),
            ("activex", late_docx(H, &[("word/activeX/activeX1.xml", b"<ax/>")]), Err(Script)),
            ("executable", late_docx(D, &[("word/media/setup.exe", b"MZ")]), Err(Script)),
            ("executable, windows name", late_docx(D, &[("Invoice.PDF.Js. .", b"x")]), Err(Script)),
            ("powershell", late_docx(H, &[("run.ps1", b"x")]), Err(Script)),
            ("embedded docm", late_docx(H, &[("word/embeddings/a.docm", b"PK")]), Err(Script)),
            ("nested zip", late_docx(H, &[("word/media/more.zip", b"PK\x03\x04")]), Err(Archive)),
            ("nested 7z", late_docx(D, &[("x.7Z", b"7z")]), Err(Archive)),
            ("nul in name", late_docx(H, &[("word/a.xml\0.exe", b"")]), Err(Other)),
            ("late content type", late_docx(H, &[("[Content_Types].xml", CT_MACROS)]), Err(Script)),
            ("late content type, d.", late_docx(STORED_D, &[("[Content_Types].xml", CT_MACROS)]), Err(Script)),
            ("macros named only centrally", late_archive(H, &[], &["word/vbaProject.bin"], false), Err(Script)),
            ("exe named only centrally", late_archive(D, &[], &["a.exe"], true), Err(Script)),
            ("zip64, named only centrally", late_archive(ZIP64, &[], &["a.zip"], true), Err(Archive)),
            ("odt", odt_late("styles.xml"), Ok(())),
            ("odt, late basic", odt_late("Basic/Standard/Module1.xml"), Err(Script)),
            ("odt, late scripts", odt_late("Scripts/python/x.py"), Err(Script)),
            ("xlsx", xlsx_late("xl/worksheets/sheet1.xml"), Ok(())),
            ("xlsx, late macro sheet", xlsx_late("xl/macrosheets/sheet1.xml"), Err(Script)),
            ("end record cut off", docx[..end].to_vec(), Err(Other)),
            ("end record cut short", docx[..docx.len() - 1].to_vec(), Err(Other)),
            ("central directory cut", docx[..end - 10].to_vec(), Err(Other)),
            ("byte after the end", cat(&[&docx, b"\0"]), Err(Other)),
            ("second end record", cat(&[&docx, &docx[end..]]), Err(Other)),
            ("end record in comment", archive_with(&[("word/a", b"", H)], &[], false, b"PK\x05\x06"), Err(Other)),
            ("end record, wrong count", patched(end + 10, &[9, 0]), Err(Other)),
            ("end record, wrong offset", patched(end + 16, &[0, 0, 0, 0]), Err(Other)),
            ("end record, wrong size", patched(end + 12, &[1, 0, 0, 0]), Err(Other)),
            ("central offset off a header", patched(central + 42, &[1]), Err(Other)),
            (
                "local header after central",
                cat(&[&docx[..end], &local_entry("word/b.xml", b"", H), &docx[end..]]),
                Err(Other),
            ),
            ("no central directory", cat(&[&local_entry("word/a.xml", b"x", H), b"PK\x05\x06", &[0; 18]]), Err(Other)),
            ("unknown record", cat(&[&docx[..end], b"PK\x07\x08xxxxxxxxxxxx", &docx[end..]]), Err(Other)),
        ];
        check(&cases);
    }

    #[test]
    fn late_macros_pass_the_head() {
        // What the head alone accepts, and the inspection refuses.
        for how in [H, D, D_UNSIGNED, STORED_D, ZIP64] {
            let file = late_docx(how, &[("word/vbaProject.bin", DEFLATED)]);
            assert_eq!(sniff(&file), Accepted(Kind::Docx), "how {how}");
            assert_eq!(inspect(&file), Err(Script), "how {how}");
        }
        let hidden = late_archive(D, &[], &["word/vbaProject.bin"], false);
        assert_eq!(sniff(&hidden), Accepted(Kind::Docx));
        let central = find(&hidden, b"PK\x01\x02").unwrap();
        let mut inspector = Inspector::new(Kind::Docx);
        assert_eq!(inspector.feed(&hidden[..central]), Ok(()), "the local entries are fine");
        assert_eq!(inspector.feed(&hidden[central..]), Err(Script));
        assert_eq!(inspector.finish(), Err(Script));
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn every_cut_zip_is_refused() {
        for how in [H, D, D_UNSIGNED, STORED_D, ZIP64] {
            let file = archive_with(
                &[("[Content_Types].xml", DEFLATED, H), ("word/document.xml", b"<w:document/>", how)],
                &[],
                how == ZIP64,
                b"c",
            );
            assert_eq!(inspect(&file), Ok(()), "how {how}");
            for cut in 0..file.len() {
                assert_eq!(inspect_in(Kind::Docx, &file[..cut], 5), Err(Other), "how {how}, cut at {cut}");
            }
        }
    }

    #[test]
    fn too_many_entries() {
        let mut inspector = Inspector::new(Kind::Docx);
        let entry = local_entry("word/media/a.png", b"x", H);
        for _ in 0..MAX_ENTRIES {
            assert_eq!(inspector.feed(&entry), Ok(()));
        }
        assert_eq!(inspector.feed(&entry), Err(Other));
    }

    /// About `len` bytes (cut back to a character boundary) of text with multi-byte characters.
    fn prose(len: usize) -> Vec<u8> {
        let line = "Rapportage week 12: gesprek met cliënt, afspraken € 40 — vervolg op dinsdag.\r\n\t• 1 < 2\x0c\n";
        let mut text: Vec<u8> = line.bytes().cycle().take(len).collect();
        while std::str::from_utf8(&text).is_err() {
            text.pop();
        }
        text
    }

    /// `prose` of about `before` bytes, then `tail`.
    fn prose_then(before: usize, tail: &[u8]) -> Vec<u8> {
        cat(&[&prose(before), tail])
    }

    #[test]
    fn text_whole_file() {
        let cases: Vec<(&str, Vec<u8>, Result<(), RefusedKind>)> = vec![
            ("prose", prose(30_000), Ok(())),
            ("bom and prose", cat(&[BOM, &prose(20_000)]), Ok(())),
            ("angle brackets", prose_then(20_000, b"a <scrip t> <sv g <b> <htm l"), Ok(())),
            ("script at 20000", prose_then(20_000, b"<script>alert(1)</script>"), Err(Html)),
            ("script, mixed case", prose_then(9_000, b"<sCrIpT src=x>"), Err(Html)),
            ("iframe", prose_then(30_000, b"<IFRAME src=x>"), Err(Html)),
            ("html", prose_then(8_190, b"<html>"), Err(Html)),
            ("svg at the very end", prose_then(10_000, b"<svg"), Err(Html)),
            ("invalid utf-8", prose_then(9_000, b"caf\xe9"), Err(Other)),
            ("overlong encoding", prose_then(9_000, b"\xc0\xbc"), Err(Other)),
            ("surrogate", prose_then(9_000, b"\xed\xa0\x80"), Err(Other)),
            ("ends inside a character", prose_then(9_000, b"\xe2\x82"), Err(Other)),
            ("nul", prose_then(9_000, b"\0"), Err(Other)),
            ("escape", prose_then(9_000, b"\x1b[31m"), Err(Other)),
            ("del", prose_then(9_000, b"\x7f"), Err(Other)),
            ("c1 control", prose_then(9_000, b"\xc2\x85"), Err(Other)),
            ("latin-1 supplement", prose_then(9_000, b"\xc2\xa0\xc2\xbf"), Ok(())),
            ("control before markup", prose_then(9_000, b"\x01<script>"), Err(Other)),
            ("markup before control", prose_then(9_000, b"<script>\x01"), Err(Html)),
            ("markup before invalid", prose_then(9_000, b"<svg>\xff"), Err(Html)),
            ("invalid before markup", prose_then(9_000, b"\xff<svg>"), Err(Other)),
        ];
        check(&cases);
    }

    /// Feeds `file` in two chunks, cut at every possible place.
    fn every_split(file: &[u8]) -> Vec<Result<(), RefusedKind>> {
        (0..=file.len())
            .map(|cut| {
                let mut inspector = Inspector::new(Kind::Text);
                inspector
                    .feed(&file[..cut])
                    .and_then(|()| inspector.feed(&file[cut..]))
                    .and_then(|()| inspector.finish())
            })
            .collect()
    }

    #[test]
    fn text_split_across_chunks() {
        let needle = prose_then(50, b"<ScRiPt> and more");
        assert!(every_split(&needle).iter().all(|v| *v == Err(Html)));
        let chars = "héllo € 𝄞 ¿ \u{a0}".repeat(3);
        assert!(every_split(chars.as_bytes()).iter().all(|v| *v == Ok(())));
        let c1 = b"abc\xc2\x85def";
        assert!(every_split(c1).iter().all(|v| *v == Err(Other)));
        let invalid = b"abc\xe2\x82\x41def";
        assert!(every_split(invalid).iter().all(|v| *v == Err(Other)));
        // Chunks of one byte through a long needle-free stretch, then a needle.
        let mut inspector = Inspector::new(Kind::Text);
        for b in prose(300) {
            assert_eq!(inspector.feed(&[b]), Ok(()));
        }
        assert_eq!(inspector.feed(b"<i"), Ok(()));
        assert_eq!(inspector.feed(b""), Ok(()));
        assert_eq!(inspector.feed(b"fr"), Ok(()));
        assert_eq!(inspector.feed(b"ame"), Err(Html));
    }

    /// The text rules checked on the whole file at once: the first violation decides.
    fn text_reference(file: &[u8]) -> Result<(), RefusedKind> {
        let valid_up_to = std::str::from_utf8(file).map_or_else(|e| e.valid_up_to(), |_| file.len());
        let text = std::str::from_utf8(&file[..valid_up_to]).unwrap();
        let control = text.char_indices().find(|&(_, c)| !allowed_char(c)).map(|(at, _)| at);
        let markup = (0..valid_up_to).find(|&at| MARKUP_ANYWHERE.iter().any(|n| starts_with_ci(&file[at..], n)));
        match (control, markup) {
            (Some(c), Some(m)) => Err(if c < m { Other } else { Html }),
            (Some(_), None) => Err(Other),
            (None, Some(_)) => Err(Html),
            (None, None) if valid_up_to < file.len() => Err(Other),
            (None, None) => Ok(()),
        }
    }

    /// Feeds `file` in random chunk sizes (a few large, mostly small).
    fn inspect_randomly(kind: Kind, file: &[u8], rng: &mut Rng) -> Result<(), RefusedKind> {
        let mut inspector = Inspector::new(kind);
        let mut at = 0;
        while at < file.len() {
            let size = if rng.below(4) == 0 { rng.below(20_000) } else { rng.below(40) };
            let end = (at + size).min(file.len());
            inspector.feed(&file[at..end])?;
            at = end;
        }
        inspector.finish()
    }

    #[test]
    fn text_matches_the_whole_file_rules() {
        let mut rng = Rng(0x5eed);
        let alphabet: &[&[u8]] = &[
            b"a",
            b"S",
            b"<",
            b"<script",
            b"<svG",
            b"<ifram",
            b"e",
            b"\n",
            b"\t",
            b"\x01",
            b"\xc2",
            b"\x85",
            b"\xe2\x82\xac",
            b"\xe2",
            b"\xf0\x9d\x84\x9e",
            b"\xff",
        ];
        for round in 0..3000 {
            let len = rng.below(60);
            let file: Vec<u8> = (0..len).flat_map(|_| alphabet[rng.below(alphabet.len())].to_vec()).collect();
            let want = text_reference(&file);
            for size in [1, 2, 3, 5, file.len()] {
                assert_eq!(inspect_in(Kind::Text, &file, size), want, "round {round}, chunks of {size}: {file:?}");
            }
            assert_eq!(inspect_randomly(Kind::Text, &file, &mut rng), want, "round {round}: {file:?}");
        }
    }

    /// Damaged ZIPs tried by [`random_input_never_panics`] (run it with more in release mode).
    const FUZZ_ROUNDS: usize = 500;

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0xdead_beef);
        let kinds = [Kind::Pdf, Kind::Png, Kind::Jpeg, Kind::Tiff, Kind::Text, Kind::Docx, Kind::Xlsx, Kind::Odt];
        for _ in 0..500 {
            let len = rng.below(3000);
            let file = rng.bytes(len);
            for kind in kinds {
                let _ = inspect_randomly(kind, &file, &mut rng);
            }
        }
        // Damaged ZIPs get further into the walk; they must also give one verdict per file.
        let originals = [
            late_docx(H, &[]),
            late_docx(D, &[("word/vbaProject.bin", DEFLATED)]),
            late_docx(STORED_D, &[]),
            late_docx(ZIP64, &[("a.zip", b"")]),
            archive_with(&[("word/document.xml", DEFLATED, D_UNSIGNED)], &["x"], true, b"comment"),
        ];
        for round in 0..FUZZ_ROUNDS {
            let mut file = originals[round % originals.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(file.len());
                match rng.below(4) {
                    0 => file.truncate(at),
                    1 => file.insert(at, rng.next() as u8),
                    2 => drop(file.remove(at.min(file.len().saturating_sub(1)))),
                    _ => file[at] = rng.next() as u8,
                }
                if file.is_empty() {
                    break;
                }
            }
            let whole = inspect_in(Kind::Docx, &file, file.len());
            assert_eq!(inspect_randomly(Kind::Docx, &file, &mut rng), whole, "round {round}");
            assert_eq!(inspect_in(Kind::Docx, &file, 1), whole, "round {round}");
        }
    }

    #[test]
    fn other_kinds_and_sticky_refusals() {
        for kind in [Kind::Pdf, Kind::Png, Kind::Jpeg, Kind::Tiff] {
            assert_eq!(inspect_in(kind, &Rng(1).bytes(50_000), 333), Ok(()), "{kind:?}");
        }
        let mut inspector = Inspector::new(Kind::Text);
        assert_eq!(inspector.feed(b"fine\n"), Ok(()));
        assert_eq!(inspector.feed(b"\0"), Err(Other));
        assert_eq!(inspector.feed(b"fine again"), Err(Other));
        assert_eq!(inspector.finish(), Err(Other));
        assert_eq!(inspect_in(Kind::Text, b"", 1), Ok(()), "the empty file is sniff's business");
        assert!(MARKUP_ANYWHERE.iter().chain(ACTIVE_TYPES).all(|n| n.len() <= NEEDLE_MAX));
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Tail::<4>::new();
        let mut all = Vec::new();
        for piece in [&b""[..], b"a", b"bc", b"defgh", b"", b"i", b"jklmnopq", b"r"] {
            tail.push(piece);
            all.extend_from_slice(piece);
            assert_eq!(tail.bytes(), &all[all.len().saturating_sub(4)..]);
        }
    }
}

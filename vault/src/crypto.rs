//! Streaming envelope encryption of document content.
//!
//! The on-disk format is specified in `FORMAT.md` at the repository root; this
//! module is its only implementation. In short: a 32-byte header, then the
//! content in segments of 64 KiB plaintext, each sealed with AES-256-GCM under
//! the document's own data key. The nonce of segment `i` is
//! `nonce_prefix (7) || i as u32 big-endian (4) || last flag (1)` (the STREAM
//! construction), and every segment authenticates the whole header as
//! associated data, so the document id and the format version are bound to
//! every byte of ciphertext.
//!
//! Invariants:
//! - plaintext is only ever released in whole segments, after each one's
//!   tag verified; a stream that ends early, has segments swapped, dropped,
//!   appended or taken from another document fails with [`CryptoError`];
//! - decryption memory is bounded by one frame (a chosen number of segments,
//!   [`Decryptor`]) plus one input chunk, whatever the size; the tags are
//!   kept apart, so a frame's segments lie back to back and go out as one
//!   buffer, with one copy per byte (input chunk into frame);
//! - a [`DataKey`] is never reused across documents (a fresh random key per
//!   call to [`DataKey::generate`]) and is zeroed when dropped.

use std::collections::VecDeque;
use std::pin::Pin;

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::block::Block;

/// First bytes of every encrypted object.
pub const MAGIC: [u8; 5] = *b"KLUIS";
/// The version of the object format this module writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Algorithm id 1: AES-256-GCM, STREAM with a 32-bit big-endian counter.
pub const ALG_AES256GCM_STREAM_BE32: u8 = 1;
/// log2 of the plaintext segment size written by this implementation.
pub const SEGMENT_SIZE_LOG2: u8 = 16;
/// Plaintext bytes per segment (all segments but the last are full).
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SIZE_LOG2;
/// GCM authentication tag length.
pub const TAG_LEN: usize = 16;
/// Length of the object header.
pub const HEADER_LEN: usize = 32;
/// Length of the random per-object nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// A segment counter is 32 bits: at most this many segments per object.
pub const MAX_SEGMENTS: u64 = 1 << 32;

/// Everything that can go wrong while encrypting or decrypting an object.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("object is truncated: {0}")]
    Truncated(&'static str),
    #[error("not a Kluis object (bad magic bytes)")]
    BadMagic,
    #[error("unsupported object format version {0}")]
    UnsupportedVersion(u8),
    #[error("unsupported algorithm id {0}")]
    UnsupportedAlgorithm(u8),
    #[error("unsupported segment size 2^{0}")]
    UnsupportedSegmentSize(u8),
    #[error("reserved header byte is not zero")]
    ReservedByte,
    #[error("object belongs to document {found}, expected {expected}")]
    WrongDocument { expected: Uuid, found: Uuid },
    #[error("segment {segment} failed authentication (tampered, reordered, spliced or wrong key)")]
    Authentication { segment: u64 },
    #[error("object too long: more than 2^32 segments")]
    TooLong,
    #[error("the sealer was misused: {0}")]
    Misuse(&'static str),
    #[error("reading the input failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A 256-bit data-encryption key, one per document version. Zeroed on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        fill_random(k.as_mut());
        DataKey(k)
    }

    /// A key from exactly 32 bytes, copied straight into zeroed-on-drop
    /// memory (no intermediate copy on the stack).
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 32 {
            return None;
        }
        let mut k = Zeroizing::new([0u8; 32]);
        k.copy_from_slice(bytes);
        Some(DataKey(k))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> Aes256Gcm {
        // By reference: no copy of the key is left on the stack. The cipher
        // zeroes its round keys when dropped (aes-gcm's `zeroize` feature).
        Aes256Gcm::new((&*self.0).into())
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Fill `buf` from the operating system's CSPRNG.
///
/// Panics only if the OS has no working random source, in which case no key
/// could ever be made safely.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// The parsed 32-byte object header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub document_id: Uuid,
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub segment_size_log2: u8,
}

impl Header {
    /// A header for a new object of `document_id`, with a random nonce prefix.
    pub fn new(document_id: Uuid) -> Self {
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        fill_random(&mut nonce_prefix);
        Header { document_id, nonce_prefix, segment_size_log2: SEGMENT_SIZE_LOG2 }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..5].copy_from_slice(&MAGIC);
        h[5] = FORMAT_VERSION;
        h[6] = ALG_AES256GCM_STREAM_BE32;
        h[7] = self.segment_size_log2;
        h[8..24].copy_from_slice(self.document_id.as_bytes());
        h[24..31].copy_from_slice(&self.nonce_prefix);
        h[31] = 0; // reserved
        h
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() < HEADER_LEN {
            return Err(CryptoError::Truncated("header incomplete"));
        }
        if bytes[0..5] != MAGIC {
            return Err(CryptoError::BadMagic);
        }
        if bytes[5] != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion(bytes[5]));
        }
        if bytes[6] != ALG_AES256GCM_STREAM_BE32 {
            return Err(CryptoError::UnsupportedAlgorithm(bytes[6]));
        }
        // Only 64 KiB is written today; readers accept 4 KiB ..= 16 MiB so the
        // size can change without a new format version.
        if !(12..=24).contains(&bytes[7]) {
            return Err(CryptoError::UnsupportedSegmentSize(bytes[7]));
        }
        if bytes[31] != 0 {
            return Err(CryptoError::ReservedByte);
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[8..24]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[24..31]);
        Ok(Header { document_id: Uuid::from_bytes(id), nonce_prefix, segment_size_log2: bytes[7] })
    }

    pub fn segment_size(&self) -> usize {
        1 << self.segment_size_log2
    }
}

/// Size of the encrypted object for `plaintext_len` bytes of content.
pub fn ciphertext_len(plaintext_len: u64) -> u64 {
    let seg = SEGMENT_SIZE as u64;
    // An empty document still has one (empty, last) segment.
    let segments = plaintext_len.div_ceil(seg).max(1);
    HEADER_LEN as u64 + plaintext_len + segments * TAG_LEN as u64
}

/// Seals and opens single segments: the primitive under the streams, also
/// used for random access (Range requests) by segment index.
pub struct SegmentCipher {
    cipher: Aes256Gcm,
    header: Header,
    aad: [u8; HEADER_LEN],
}

impl SegmentCipher {
    pub fn new(key: &DataKey, header: Header) -> Self {
        SegmentCipher { cipher: key.cipher(), header, aad: header.encode() }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn nonce(&self, index: u64, last: bool) -> Result<Nonce<Aes256Gcm>, CryptoError> {
        let counter = u32::try_from(index).map_err(|_| CryptoError::TooLong)?;
        let mut n = [0u8; 12];
        n[..NONCE_PREFIX_LEN].copy_from_slice(&self.header.nonce_prefix);
        n[7..11].copy_from_slice(&counter.to_be_bytes());
        n[11] = u8::from(last);
        Ok(n.into())
    }

    /// Encrypt `buf` (one segment of plaintext) in place and append its tag.
    pub fn seal(&self, index: u64, last: bool, buf: &mut BytesMut) -> Result<(), CryptoError> {
        let tag = self.seal_detached(index, last, buf.as_mut())?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Encrypt `body` (one segment of plaintext) in place; returns its tag.
    pub fn seal_detached(&self, index: u64, last: bool, body: &mut [u8]) -> Result<[u8; TAG_LEN], CryptoError> {
        debug_assert!(body.len() <= self.header.segment_size());
        let nonce = self.nonce(index, last)?;
        let tag =
            self.cipher.encrypt_inout_detached(&nonce, &self.aad, body.into()).map_err(|_| CryptoError::TooLong)?;
        Ok(tag.into())
    }

    /// Decrypt one sealed segment (ciphertext followed by its tag) in place;
    /// on success `buf` holds exactly the plaintext.
    pub fn open(&self, index: u64, last: bool, buf: &mut BytesMut) -> Result<(), CryptoError> {
        if buf.len() < TAG_LEN {
            return Err(CryptoError::Truncated("segment shorter than its tag"));
        }
        let body_len = buf.len() - TAG_LEN;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[body_len..]);
        let res = self.open_detached(index, last, &mut buf[..body_len], &tag);
        buf.truncate(if res.is_ok() { body_len } else { 0 });
        res
    }

    /// Decrypt one segment's ciphertext in place against its tag. On
    /// failure `body` is zeroed: no unauthenticated plaintext is left behind.
    pub fn open_detached(
        &self,
        index: u64,
        last: bool,
        body: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let nonce = self.nonce(index, last)?;
        let tag = Tag::<Aes256Gcm>::from(*tag);
        if self.cipher.decrypt_inout_detached(&nonce, &self.aad, body.into(), &tag).is_err() {
            body.fill(0);
            return Err(CryptoError::Authentication { segment: index });
        }
        Ok(())
    }
}

type BoxedInput<E> = Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>;

/// Seals plaintext into object bytes in a [`Block`] the caller owns: each
/// plaintext byte is copied once, straight to its place in the object, and
/// each segment is sealed there in place with its tag written right after
/// it, so a block holds finished object bytes that go to the store whole.
/// The synchronous core under uploads; [`encrypt_stream`] is built on it.
///
/// A full segment is sealed only once a following byte shows it is not
/// the last one (its nonce says which). [`Sealer::absorb`] stops early when
/// the block has no room for the next whole segment and its tag: the block
/// then holds only sealed bytes (the caller passes it on and goes on with a
/// fresh one). [`Sealer::finish`] seals the last segment in the block that
/// holds it.
pub struct Sealer {
    cipher: SegmentCipher,
    seg: usize,
    index: u64,
    header_done: bool,
    /// The segment that has its place at the end of the current block: how
    /// many of its plaintext bytes are filled (`None`: no segment begun).
    open: Option<usize>,
}

impl Sealer {
    /// A sealer for a new object of `document_id` (random nonce prefix).
    pub fn new(key: &DataKey, document_id: Uuid) -> Self {
        Self::with_header(key, Header::new(document_id))
    }

    /// A sealer for a given header (tests compare outputs byte for byte).
    pub fn with_header(key: &DataKey, header: Header) -> Self {
        let seg = header.segment_size();
        Sealer { cipher: SegmentCipher::new(key, header), seg, index: 0, header_done: false, open: None }
    }

    /// The room a block must have for the header and one whole segment:
    /// a smaller block could never take a segment.
    pub fn min_block(&self) -> usize {
        HEADER_LEN + self.seg + TAG_LEN
    }

    /// Copy plaintext from `input` into `out`, sealing every segment that a
    /// following byte shows complete. Returns how many bytes of `input` it
    /// took: all of them, or fewer when `out` has no room for the next
    /// segment (then everything in `out` is sealed).
    pub fn absorb(&mut self, out: &mut Block, mut input: &[u8]) -> Result<usize, CryptoError> {
        let total = input.len();
        self.write_header(out)?;
        while !input.is_empty() {
            if self.open == Some(self.seg) {
                // More plaintext follows, so this full segment is not the last.
                self.seal_open(out, false)?;
            }
            let open = match self.open {
                Some(n) => n,
                None if out.remaining() < self.seg + TAG_LEN => break,
                None => 0,
            };
            let take = (self.seg - open).min(input.len());
            out.extend_from_slice(&input[..take]);
            self.open = Some(open + take);
            input = &input[take..];
        }
        Ok(total - input.len())
    }

    /// The plaintext ended: seal the last segment (empty for empty content)
    /// in `out`, the block of the last `absorb`.
    pub fn finish(&mut self, out: &mut Block) -> Result<(), CryptoError> {
        self.write_header(out)?;
        if self.open.is_none() {
            if self.index > 0 {
                return Err(CryptoError::Misuse("finished before all the plaintext was absorbed"));
            }
            if out.remaining() < TAG_LEN {
                return Err(CryptoError::Misuse("no room for the last segment's tag"));
            }
        }
        self.seal_open(out, true)
    }

    fn write_header(&mut self, out: &mut Block) -> Result<(), CryptoError> {
        if !self.header_done {
            if out.remaining() < self.min_block() {
                return Err(CryptoError::Misuse("the first block has no room for the header and a segment"));
            }
            out.extend_from_slice(&self.cipher.header().encode());
            self.header_done = true;
        }
        Ok(())
    }

    /// Seal the open segment at the block's end in place and append its
    /// tag (its room was reserved when the segment began).
    fn seal_open(&mut self, out: &mut Block, last: bool) -> Result<(), CryptoError> {
        let start = out.len() - self.open.unwrap_or(0);
        let tag = self.cipher.seal_detached(self.index, last, &mut out.filled_mut()[start..])?;
        out.extend_from_slice(&tag);
        self.index += 1;
        self.open = None;
        Ok(())
    }
}

/// Encrypt a stream of plaintext into a stream of object bytes, one item per
/// sealed segment (the first item begins with the header). The streaming
/// reference over [`Sealer`]; uploads drive the sealer directly into the
/// store's blocks.
pub fn encrypt_stream<S, E>(
    key: &DataKey,
    document_id: Uuid,
    input: S,
) -> impl Stream<Item = Result<Bytes, CryptoError>> + Send + use<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    struct State<E> {
        input: BoxedInput<E>,
        sealer: Sealer,
        block: Block,
        out: VecDeque<Bytes>,
        finished: bool,
    }
    let sealer = Sealer::new(key, document_id);
    let block = Block::new(sealer.min_block());
    let state = State { input: Box::pin(input), sealer, block, out: VecDeque::new(), finished: false };
    futures::stream::try_unfold(state, move |mut st| async move {
        loop {
            if let Some(b) = st.out.pop_front() {
                return Ok(Some((b, st)));
            }
            if st.finished {
                return Ok(None);
            }
            match st.input.next().await {
                Some(Ok(chunk)) => {
                    let mut rest = &chunk[..];
                    while !rest.is_empty() {
                        let took = st.sealer.absorb(&mut st.block, rest)?;
                        rest = &rest[took..];
                        if !rest.is_empty() {
                            let full = std::mem::replace(&mut st.block, Block::new(st.sealer.min_block()));
                            st.out.push_back(Bytes::from_owner(full));
                        }
                    }
                }
                Some(Err(e)) => return Err(CryptoError::Source(e.into())),
                None => {
                    st.sealer.finish(&mut st.block)?;
                    let last = std::mem::replace(&mut st.block, Block::new(0));
                    st.out.push_back(Bytes::from_owner(last));
                    st.finished = true;
                }
            }
        }
    })
}

/// Where the sealed segments of a stored object lie, from its header and
/// its length: for a reader that fetches whole segments by position (a
/// file:// download reads windows of them straight into the buffer that
/// goes out, and opens each in place). The last segment is the one that
/// ends the object; a cut at a segment boundary makes another segment the
/// last, whose nonce then fails, so a shortened object never opens.
#[derive(Debug, Clone, Copy)]
pub struct SegmentLayout {
    seg: u64,
    segments: u64,
    object_len: u64,
}

impl SegmentLayout {
    pub fn new(header: &Header, object_len: u64) -> Result<Self, CryptoError> {
        let seg = header.segment_size() as u64;
        let body = object_len.checked_sub(HEADER_LEN as u64).ok_or(CryptoError::Truncated("header incomplete"))?;
        if body == 0 {
            return Err(CryptoError::Truncated("last segment missing"));
        }
        let segments = body.div_ceil(seg + TAG_LEN as u64);
        let last = body - (segments - 1) * (seg + TAG_LEN as u64);
        if last < TAG_LEN as u64 {
            return Err(CryptoError::Truncated("segment shorter than its tag"));
        }
        if segments > MAX_SEGMENTS {
            return Err(CryptoError::TooLong);
        }
        Ok(SegmentLayout { seg, segments, object_len })
    }

    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Bytes `start..end` of the object that hold segment `i` and its tag.
    pub fn segment(&self, i: u64) -> std::ops::Range<u64> {
        let start = HEADER_LEN as u64 + i * (self.seg + TAG_LEN as u64);
        start..(start + self.seg + TAG_LEN as u64).min(self.object_len)
    }

    /// Open segments `first..first + count` in place in `window`, which
    /// holds the object's bytes from `window_start` on, and close the gaps
    /// their tags leave (a move within the window, while it is in the
    /// cache), so their plaintext goes out as one buffer: one write call per
    /// window. On failure the result holds the plaintext of the segments
    /// authenticated before it, and the rest of the window is wiped.
    pub fn open_window(
        &self,
        cipher: &SegmentCipher,
        mut window: BytesMut,
        window_start: u64,
        first: u64,
        count: u64,
    ) -> (Bytes, Result<(), CryptoError>) {
        let start = self.segment(first).start;
        let end = self.segment(first + count - 1).end;
        if window_start > start || window_start + (window.len() as u64) < end {
            window.fill(0);
            return (Bytes::new(), Err(CryptoError::Truncated("the object ended early")));
        }
        window.truncate((end - window_start) as usize);
        let _ = window.split_to((start - window_start) as usize);
        let (mut read, mut written) = (0, 0);
        for i in first..first + count {
            let len = (self.segment(i).end - self.segment(i).start) as usize - TAG_LEN;
            let mut tag = [0u8; TAG_LEN];
            tag.copy_from_slice(&window[read + len..read + len + TAG_LEN]);
            if let Err(e) = cipher.open_detached(i, i + 1 == self.segments, &mut window[read..read + len], &tag) {
                window[written..].fill(0);
                window.truncate(written);
                return (window.freeze(), Err(e));
            }
            window.copy_within(read..read + len, written);
            read += len + TAG_LEN;
            written += len;
        }
        window.truncate(written);
        (window.freeze(), Ok(()))
    }
}

/// How much plaintext a download hands out at a time: frames (windows) of
/// `small` bytes' worth of whole segments, and of `large` bytes' worth once
/// `grow_after` plaintext bytes went out. Larger frames mean fewer write
/// calls and hand-offs, and more memory per download.
#[derive(Clone, Copy, Debug)]
pub struct FrameSizes {
    pub small: usize,
    pub large: usize,
    pub grow_after: u64,
}

impl FrameSizes {
    /// Frames of `segments` segments of [`SEGMENT_SIZE`] throughout.
    pub const fn fixed(segments: usize) -> Self {
        FrameSizes { small: segments * SEGMENT_SIZE, large: segments * SEGMENT_SIZE, grow_after: u64::MAX }
    }

    /// Segments in the frame that starts at segment `first`, for segments of
    /// `segment_size`: at least one, and otherwise counted in bytes, so a
    /// header that claims huge segments cannot make a frame huge.
    pub fn segments(&self, first: u64, segment_size: usize) -> usize {
        let bytes = if first.saturating_mul(segment_size as u64) < self.grow_after { self.small } else { self.large };
        (bytes / segment_size).max(1)
    }
}

/// Opens an object as its bytes arrive, in any chunks: the synchronous core
/// under [`decrypt_stream`], also driven directly by a blocking reader.
/// Authenticated plaintext comes out of [`Decryptor::next_frame`] in frames
/// of whole segments ([`FrameSizes`]; the last one shorter).
pub struct Decryptor {
    expected: Uuid,
    key: DataKey,
    /// Header bytes until the header is complete.
    head: Vec<u8>,
    cipher: Option<SegmentCipher>,
    /// The frame being assembled: `opened` bytes of authenticated plaintext,
    /// then the ciphertext of the segment being received. Its tag is kept
    /// apart (`tag`), so opened segments lie back to back.
    frame: BytesMut,
    opened: usize,
    /// Sealed bytes of the current segment received so far: up to the
    /// segment size in `frame`, the rest in `tag`. A complete segment waits
    /// here until a following byte shows it is not the last one.
    fill: usize,
    tag: [u8; TAG_LEN],
    /// Plaintext bytes still expected, as the catalog recorded them: only
    /// sizes the last frame's buffer (a wrong hint costs a reallocation).
    remaining: Option<u64>,
    frames: FrameSizes,
    /// Segments in the frame being assembled.
    frame_segments: usize,
    index: u64,
    out: VecDeque<Bytes>,
    failed: bool,
}

impl Decryptor {
    /// Frames of `frame_segments` segments (at least one). `plaintext_len`,
    /// when known, only sizes the buffers.
    pub fn new(key: &DataKey, document_id: Uuid, plaintext_len: Option<u64>, frame_segments: usize) -> Self {
        Self::with_frames(key, document_id, plaintext_len, FrameSizes::fixed(frame_segments.max(1)))
    }

    /// Frames as `frames` says.
    pub fn with_frames(key: &DataKey, document_id: Uuid, plaintext_len: Option<u64>, frames: FrameSizes) -> Self {
        Decryptor {
            expected: document_id,
            key: key.clone(),
            head: Vec::with_capacity(HEADER_LEN),
            cipher: None,
            frame: BytesMut::new(),
            opened: 0,
            fill: 0,
            tag: [0; TAG_LEN],
            remaining: plaintext_len,
            frames,
            frame_segments: 1,
            index: 0,
            out: VecDeque::new(),
            failed: false,
        }
    }

    /// Take in the next object bytes: one copy per byte, into the frame
    /// (ciphertext) or the tag; each segment is opened in place as soon as
    /// a following byte shows it is not the last. After an error, the
    /// plaintext authenticated before it is still in [`Self::next_frame`],
    /// and nothing more is accepted.
    pub fn absorb(&mut self, chunk: &[u8]) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Truncated("decryption already failed"));
        }
        let res = self.absorb_inner(chunk);
        self.settle(res)
    }

    /// The object ended: the segment being received is the last one (its
    /// tag is its last `TAG_LEN` bytes).
    pub fn finish(&mut self) -> Result<(), CryptoError> {
        if self.failed {
            return Err(CryptoError::Truncated("decryption already failed"));
        }
        let res = self.finish_inner();
        self.settle(res)
    }

    /// The next frame of authenticated plaintext, if one is complete.
    pub fn next_frame(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    fn settle(&mut self, res: Result<(), CryptoError>) -> Result<(), CryptoError> {
        if res.is_err() {
            self.failed = true;
            self.release();
        }
        res
    }

    fn absorb_inner(&mut self, mut chunk: &[u8]) -> Result<(), CryptoError> {
        if self.cipher.is_none() {
            let take = (HEADER_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.head.len() < HEADER_LEN {
                return Ok(());
            }
            let header = Header::parse(&self.head)?;
            if header.document_id != self.expected {
                return Err(CryptoError::WrongDocument { expected: self.expected, found: header.document_id });
            }
            self.cipher = Some(SegmentCipher::new(&self.key, header));
        }
        let Some(seg) = self.cipher.as_ref().map(|c| c.header().segment_size()) else { return Ok(()) };
        while !chunk.is_empty() {
            if self.fill == seg + TAG_LEN {
                // More bytes follow the waiting segment: it is not the last one.
                let tag = self.tag;
                self.open_current(false, seg, tag)?;
            }
            if self.frame.is_empty() && self.frame.capacity() == 0 {
                self.frame_segments = self.frames.segments(self.index, seg);
                let want = (self.frame_segments * seg) as u64;
                let cap = self.remaining.map_or(want, |r| r.saturating_add(TAG_LEN as u64).min(want));
                self.frame = BytesMut::with_capacity(cap as usize);
            }
            let take;
            if self.fill < seg {
                take = (seg - self.fill).min(chunk.len());
                self.frame.extend_from_slice(&chunk[..take]);
            } else {
                let at = self.fill - seg;
                take = (TAG_LEN - at).min(chunk.len());
                self.tag[at..at + take].copy_from_slice(&chunk[..take]);
            }
            self.fill += take;
            chunk = &chunk[take..];
        }
        Ok(())
    }

    fn finish_inner(&mut self) -> Result<(), CryptoError> {
        let Some(seg) = self.cipher.as_ref().map(|c| c.header().segment_size()) else {
            return Err(CryptoError::Truncated("header incomplete"));
        };
        if self.fill == 0 {
            return Err(CryptoError::Truncated("last segment missing"));
        }
        if self.fill < TAG_LEN {
            return Err(CryptoError::Truncated("segment shorter than its tag"));
        }
        let (len, in_frame) = (self.fill - TAG_LEN, self.fill.min(seg));
        let mut tag = [0u8; TAG_LEN];
        for (j, t) in tag.iter_mut().enumerate() {
            let p = len + j;
            *t = if p < in_frame { self.frame[self.opened + p] } else { self.tag[p - in_frame] };
        }
        self.open_current(true, len, tag)
    }

    /// Open the segment at `opened..opened + len` of the frame; a full frame
    /// goes out. On failure the segment's bytes are wiped and dropped.
    fn open_current(&mut self, last: bool, len: usize, tag: [u8; TAG_LEN]) -> Result<(), CryptoError> {
        let Some(cipher) = &self.cipher else { return Err(CryptoError::Truncated("header incomplete")) };
        let seg = cipher.header().segment_size();
        let start = self.opened;
        if let Err(e) = cipher.open_detached(self.index, last, &mut self.frame[start..start + len], &tag) {
            self.frame[start..].fill(0);
            self.frame.truncate(start);
            return Err(e);
        }
        self.frame.truncate(start + len);
        self.opened += len;
        self.fill = 0;
        self.index += 1;
        if let Some(r) = &mut self.remaining {
            *r = r.saturating_sub(len as u64);
        }
        if last || self.opened >= self.frame_segments * seg {
            self.release();
        }
        Ok(())
    }

    /// Send the authenticated part of the frame out.
    fn release(&mut self) {
        if self.opened > 0 {
            self.out.push_back(self.frame.split_to(self.opened).freeze());
            self.opened = 0;
        }
    }
}

/// Decrypt a stream of object bytes into plaintext, in the frames `dec`
/// makes. Every frame is authenticated; a failure ends the stream with an
/// error and no further items.
pub fn decrypt_stream<S, E>(
    dec: Decryptor,
    input: S,
) -> impl Stream<Item = Result<Bytes, CryptoError>> + Send + use<S, E>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    struct State<E> {
        input: BoxedInput<E>,
        dec: Decryptor,
        failed: Option<CryptoError>,
        done: bool,
    }
    let state = State { input: Box::pin(input), dec, failed: None, done: false };
    futures::stream::try_unfold(state, |mut st| async move {
        loop {
            if let Some(b) = st.dec.next_frame() {
                return Ok(Some((b, st)));
            }
            if let Some(e) = st.failed.take() {
                return Err(e);
            }
            if st.done {
                return Ok(None);
            }
            match st.input.next().await {
                Some(Ok(chunk)) => st.failed = st.dec.absorb(&chunk).err(),
                Some(Err(e)) => return Err(CryptoError::Source(e.into())),
                None => {
                    st.failed = st.dec.finish().err();
                    st.done = true;
                }
            }
            st.done = st.done || st.failed.is_some();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Infallible = std::convert::Infallible;

    fn chunks(data: &[u8], chunk: usize) -> Vec<Result<Bytes, Infallible>> {
        data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect()
    }

    fn encrypt(key: &DataKey, id: Uuid, data: &[u8], chunk: usize) -> Vec<u8> {
        let s = encrypt_stream(key, id, futures::stream::iter(chunks(data, chunk)));
        let parts: Vec<Bytes> = futures::executor::block_on(s.map(|r| r.unwrap()).collect::<Vec<_>>());
        parts.concat()
    }

    /// Returns the plaintext released before the first error, and that error.
    fn decrypt(key: &DataKey, id: Uuid, obj: &[u8], chunk: usize) -> (Vec<u8>, Option<CryptoError>) {
        let s = decrypt_stream(Decryptor::new(key, id, None, 1), futures::stream::iter(chunks(obj, chunk)));
        let items = futures::executor::block_on(s.collect::<Vec<_>>());
        let mut out = Vec::new();
        for it in items {
            match it {
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => return (out, Some(e)),
            }
        }
        (out, None)
    }

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    const SEG: usize = SEGMENT_SIZE;

    #[test]
    fn round_trips_at_segment_boundaries() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        for len in [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG, 2 * SEG + 1, 3 * SEG - 7] {
            let plain = data(len, 7);
            let obj = encrypt(&key, id, &plain, 8192);
            assert_eq!(obj.len() as u64, ciphertext_len(len as u64), "len {len}");
            let (out, err) = decrypt(&key, id, &obj, 5000);
            assert!(err.is_none(), "len {len}: {err:?}");
            assert_eq!(out, plain, "len {len}");
        }
    }

    #[test]
    fn frames_grow_once_the_plaintext_passes_the_threshold() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        let plain = data(20 * SEG + 5, 9);
        let obj = encrypt(&key, id, &plain, 65536);
        let frames = FrameSizes { small: 2 * SEG, large: 5 * SEG, grow_after: 3 * SEG as u64 };
        for chunk in [1000, SEG + 3, 3 * SEG] {
            let dec = Decryptor::with_frames(&key, id, Some(plain.len() as u64), frames);
            let s = decrypt_stream(dec, futures::stream::iter(chunks(&obj, chunk)));
            let out: Vec<Bytes> = futures::executor::block_on(s.map(|r| r.unwrap()).collect::<Vec<_>>());
            let sizes: Vec<usize> = out.iter().map(|b| b.len() / SEG).collect();
            // Two small frames (segments 0-3), then frames of five.
            assert_eq!(sizes, [2, 2, 5, 5, 5, 1], "chunk {chunk}");
            assert_eq!(out.concat(), plain, "chunk {chunk}");
        }
    }

    #[test]
    fn plaintext_goes_out_in_whole_frames_whatever_the_size_hint() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        let frame = 4 * SEG;
        for len in [0, 10, SEG, frame - 5, frame, frame + 1, 2 * frame + SEG + 3] {
            let plain = data(len, 4);
            let obj = encrypt(&key, id, &plain, 65536);
            // A right hint, none, and wrong ones (too small, too large).
            for hint in [Some(len as u64), None, Some(0), Some(1), Some(len as u64 * 3 + 7)] {
                let input = futures::stream::iter(chunks(&obj, 70_001));
                let items: Vec<Bytes> = futures::executor::block_on(
                    decrypt_stream(Decryptor::new(&key, id, hint, 4), input).map(|r| r.unwrap()).collect::<Vec<_>>(),
                );
                assert_eq!(items.concat(), plain, "len {len} hint {hint:?}");
                // Every item but the last is a whole frame; none is empty.
                let whole = items.len().saturating_sub(1);
                assert!(items[..whole].iter().all(|f| f.len() == frame), "len {len} hint {hint:?}: frames not whole");
                assert!(items.iter().all(|f| !f.is_empty() && f.len() <= frame), "len {len} hint {hint:?}");
            }
        }
    }

    #[test]
    fn several_mebibytes_round_trip_with_odd_chunking() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        let plain = data(5 * 1024 * 1024 + 12345, 3);
        let obj = encrypt(&key, id, &plain, 100_003);
        let (out, err) = decrypt(&key, id, &obj, 77_777);
        assert!(err.is_none());
        assert_eq!(out, plain);
    }

    #[test]
    fn header_layout_is_as_documented() {
        let id = Uuid::new_v4();
        let h = Header::new(id);
        let b = h.encode();
        assert_eq!(&b[0..5], b"KLUIS");
        assert_eq!(b[5], 1);
        assert_eq!(b[6], 1);
        assert_eq!(b[7], 16);
        assert_eq!(&b[8..24], id.as_bytes());
        assert_eq!(b[31], 0);
        assert_eq!(Header::parse(&b).unwrap(), h);
    }

    #[test]
    fn wrong_key_fails_on_first_segment() {
        let id = Uuid::new_v4();
        let obj = encrypt(&DataKey::generate(), id, &data(1000, 1), 1000);
        let (out, err) = decrypt(&DataKey::generate(), id, &obj, 4096);
        assert!(out.is_empty());
        assert!(matches!(err, Some(CryptoError::Authentication { segment: 0 })), "{err:?}");
    }

    #[test]
    fn object_of_another_document_is_refused() {
        let key = DataKey::generate();
        let obj = encrypt(&key, Uuid::new_v4(), &data(10, 1), 10);
        let (out, err) = decrypt(&key, Uuid::new_v4(), &obj, 4096);
        assert!(out.is_empty());
        assert!(matches!(err, Some(CryptoError::WrongDocument { .. })), "{err:?}");
    }

    #[test]
    fn header_errors_are_typed() {
        let key = DataKey::generate();
        let id = Uuid::new_v4();
        let obj = encrypt(&key, id, &data(10, 1), 10);
        let mut bad = obj.clone();
        bad[0] = b'X';
        assert!(matches!(decrypt(&key, id, &bad, 64).1, Some(CryptoError::BadMagic)));
        let mut bad = obj.clone();
        bad[5] = 9;
        assert!(matches!(decrypt(&key, id, &bad, 64).1, Some(CryptoError::UnsupportedVersion(9))));
        let mut bad = obj.clone();
        bad[6] = 2;
        assert!(matches!(decrypt(&key, id, &bad, 64).1, Some(CryptoError::UnsupportedAlgorithm(2))));
        let mut bad = obj.clone();
        bad[31] = 1;
        assert!(matches!(decrypt(&key, id, &bad, 64).1, Some(CryptoError::ReservedByte)));
        let mut bad = obj.clone();
        bad[26] ^= 1; // the nonce prefix is authenticated as part of the header
        assert!(matches!(decrypt(&key, id, &bad, 64).1, Some(CryptoError::Authentication { segment: 0 })));
        assert!(matches!(decrypt(&key, id, &obj[..20], 64).1, Some(CryptoError::Truncated(_))));
        assert!(matches!(decrypt(&key, id, &obj[..HEADER_LEN], 64).1, Some(CryptoError::Truncated(_))));
        assert!(matches!(decrypt(&key, id, &[], 64).1, Some(CryptoError::Truncated(_))));
    }

    /// Splits an object into its header and sealed segments.
    fn segments(obj: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
        let (h, rest) = obj.split_at(HEADER_LEN);
        (h.to_vec(), rest.chunks(SEG + TAG_LEN).map(|c| c.to_vec()).collect())
    }

    /// The plaintext a failed decryption released must be a prefix of whole,
    /// authenticated segments of the original, never altered bytes.
    fn assert_prefix(out: &[u8], plain: &[u8]) {
        assert!(out.len().is_multiple_of(SEG) && plain.starts_with(out), "released non-authentic bytes");
    }

    /// Drive a sealer as an upload does: chunks of `chunk` bytes into blocks
    /// of `cap`, each full block carried (its unaligned tail into the next)
    /// and collected; the concatenation is the object.
    fn seal_in_blocks(key: &DataKey, header: Header, data: &[u8], chunk: usize, cap: usize, carry: bool) -> Vec<u8> {
        let mut sealer = Sealer::with_header(key, header);
        let mut block = Block::new(cap);
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            let mut rest = piece;
            while !rest.is_empty() {
                let took = sealer.absorb(&mut block, rest).unwrap();
                rest = &rest[took..];
                if !rest.is_empty() {
                    let mut next = Block::new(cap);
                    if carry {
                        block.carry_tail_into(&mut next);
                        assert!(block.len().is_multiple_of(crate::block::ALIGN), "a carried block is whole units");
                    }
                    out.extend_from_slice(block.as_slice());
                    block = next;
                }
            }
        }
        sealer.finish(&mut block).unwrap();
        out.extend_from_slice(block.as_slice());
        out
    }

    #[test]
    fn a_sealer_misused_says_so_instead_of_writing_a_wrong_object() {
        let key = DataKey::generate();
        let mut s = Sealer::new(&key, Uuid::new_v4());
        let mut tiny = Block::new(100);
        assert!(matches!(s.absorb(&mut tiny, b"x"), Err(CryptoError::Misuse(_))));
        // Finishing while input was left over (a full segment sealed as not-last, nothing after it).
        let mut s = Sealer::new(&key, Uuid::new_v4());
        let mut b = Block::new(s.min_block());
        let data = data(SEG + 10, 1);
        let took = s.absorb(&mut b, &data).unwrap();
        assert_eq!(took, SEG, "one segment fits; the rest waits for the next block");
        let mut next = Block::new(s.min_block());
        assert!(matches!(s.finish(&mut next), Err(CryptoError::Misuse(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        #[test]
        fn windows_of_whole_segments_open_to_the_plaintext_and_cuts_fail(
            len in prop_oneof![0usize..300, (SEG-3)..(SEG+3), 0usize..(9*SEG+100)],
            per in 1u64..6, cut in proptest::option::of(any::<proptest::sample::Index>()),
        ) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, 8);
            let mut obj = encrypt(&key, id, &plain, 65536);
            if let Some(c) = &cut { obj.truncate(c.index(obj.len())); }
            let header = match Header::parse(&obj) { Ok(h) => h, Err(_) => { prop_assert!(cut.is_some()); return Ok(()); } };
            let cipher = SegmentCipher::new(&key, header);
            let (mut out, mut failed) = (Vec::new(), false);
            match SegmentLayout::new(&header, obj.len() as u64) {
                Err(_) => failed = true,
                Ok(layout) => {
                    let mut first = 0;
                    while first < layout.segments() {
                        let count = per.min(layout.segments() - first);
                        let start = layout.segment(first).start / 4096 * 4096;
                        let end = layout.segment(first + count - 1).end;
                        let window = BytesMut::from(&obj[start as usize..end as usize]);
                        let (part, r) = layout.open_window(&cipher, window, start, first, count);
                        out.extend_from_slice(&part);
                        if r.is_err() { failed = true; break; }
                        first += count;
                    }
                }
            }
            if cut.is_some() {
                prop_assert!(failed, "a cut object opened");
                assert_prefix(&out, &plain);
            } else {
                prop_assert!(!failed);
                prop_assert_eq!(out, plain);
            }
        }

        #[test]
        fn sealing_in_blocks_writes_the_same_object_as_the_stream(
            len in prop_oneof![0usize..300, (SEG-3)..(SEG+3), (4*SEG-20)..(4*SEG+20), 0usize..(9*SEG+100)],
            chunk in 1usize..200_000,
            segs_per_block in 1usize..6,
            carry in any::<bool>(),
        ) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let header = Header::new(id);
            let plain = data(len, 3);
            let cap = segs_per_block * (SEG + TAG_LEN) + crate::block::ALIGN;
            let obj = seal_in_blocks(&key, header, &plain, chunk, cap, carry);
            // The documented layout, built segment by segment with `seal`.
            let cipher = SegmentCipher::new(&key, header);
            let mut reference = header.encode().to_vec();
            let n = len.div_ceil(SEG).max(1);
            for i in 0..n {
                let mut seg = BytesMut::from(&plain[(i * SEG).min(len)..((i + 1) * SEG).min(len)]);
                cipher.seal(i as u64, i + 1 == n, &mut seg).unwrap();
                reference.extend_from_slice(&seg);
            }
            prop_assert_eq!(obj.len() as u64, ciphertext_len(len as u64));
            prop_assert!(obj == reference, "block size or chunking changed the object");
            let (out, err) = decrypt(&key, id, &obj, 70_001);
            prop_assert!(err.is_none());
            prop_assert_eq!(out, plain);
        }

        #[test]
        fn round_trip_any_size(len in prop_oneof![0usize..300, (SEG-3)..(SEG+3), 0usize..(4*SEG+100)],
                               in_chunk in 1usize..200_000, out_chunk in 1usize..200_000) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, len as u8);
            let obj = encrypt(&key, id, &plain, in_chunk);
            let (out, err) = decrypt(&key, id, &obj, out_chunk);
            prop_assert!(err.is_none());
            prop_assert_eq!(out, plain);
        }

        #[test]
        fn any_bit_flip_is_detected(len in 0usize..(3*SEG), pos in any::<proptest::sample::Index>(), bit in 0u8..8) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, 9);
            let mut obj = encrypt(&key, id, &plain, 4096);
            let i = pos.index(obj.len());
            obj[i] ^= 1 << bit;
            let (out, err) = decrypt(&key, id, &obj, 3000);
            prop_assert!(err.is_some(), "flip at {} not detected", i);
            assert_prefix(&out, &plain);
        }

        #[test]
        fn truncation_is_detected(len in 0usize..(3*SEG+10), cut in any::<proptest::sample::Index>()) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, 5);
            let obj = encrypt(&key, id, &plain, 4096);
            let keep = cut.index(obj.len()); // strictly shorter than the object
            let (out, err) = decrypt(&key, id, &obj[..keep], 3000);
            prop_assert!(err.is_some(), "cut to {} of {} not detected", keep, obj.len());
            assert_prefix(&out, &plain);
        }

        #[test]
        fn appended_bytes_are_detected(len in 0usize..(2*SEG+10), extra in proptest::collection::vec(any::<u8>(), 1..100)) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, 5);
            let mut obj = encrypt(&key, id, &plain, 4096);
            obj.extend_from_slice(&extra);
            let (out, err) = decrypt(&key, id, &obj, 3000);
            prop_assert!(err.is_some());
            assert_prefix(&out, &plain);
        }

        #[test]
        fn reordered_or_dropped_segments_are_detected(len in (2*SEG+1)..(5*SEG), a in 0usize..5, b in 0usize..5, drop in any::<bool>()) {
            let key = DataKey::generate();
            let id = Uuid::new_v4();
            let plain = data(len, 11);
            let (h, mut segs) = segments(&encrypt(&key, id, &plain, 65536));
            let (a, b) = (a % segs.len(), b % segs.len());
            if drop { segs.remove(a); } else { prop_assume!(a != b); segs.swap(a, b); }
            let obj = [h, segs.concat()].concat();
            let (out, err) = decrypt(&key, id, &obj, 3000);
            prop_assert!(err.is_some());
            assert_prefix(&out, &plain);
        }

        #[test]
        fn spliced_segments_from_another_document_are_detected(len in (SEG+1)..(3*SEG), which in 0usize..3, same_key in any::<bool>()) {
            // Even with the same data key (which Kluis never reuses), a segment
            // from another object fails: its nonce prefix and header differ.
            let key = DataKey::generate();
            let other_key = if same_key { key.clone() } else { DataKey::generate() };
            let id = Uuid::new_v4();
            let plain = data(len, 1);
            let (h, mut segs) = segments(&encrypt(&key, id, &plain, 65536));
            let (_, other) = segments(&encrypt(&other_key, Uuid::new_v4(), &data(len, 2), 65536));
            let i = which % segs.len().min(other.len());
            segs[i] = other[i].clone();
            let obj = [h, segs.concat()].concat();
            let (out, err) = decrypt(&key, id, &obj, 3000);
            prop_assert!(matches!(err, Some(CryptoError::Authentication { .. })), "{:?}", err);
            assert_prefix(&out, &plain);
        }
    }
}

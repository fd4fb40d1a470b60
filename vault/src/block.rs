//! Fixed-capacity byte buffers whose start is aligned for direct I/O.
//!
//! An upload seals its segments in place in a [`Block`] ([`crate::crypto::Sealer`])
//! and hands the whole block to the store, which on `file://` writes it with
//! `O_DIRECT` (no copy into the page cache) and gives it back for the next
//! bytes. Direct I/O wants the buffer's address, the file offset and the
//! length to be multiples of the device's block size; [`ALIGN`] covers every
//! common one.
//!
//! Invariants: a block never grows past the capacity it was made with (no
//! reallocation, so its start stays aligned); its bytes are always
//! initialised (zeroed when made); safe code only.

/// Alignment of a block's start, and the unit of direct writes.
pub const ALIGN: usize = 4096;

/// A byte buffer of fixed capacity, aligned to [`ALIGN`], filled from the front.
pub struct Block {
    /// Backing memory: `cap + ALIGN` zeroed bytes, of which `start..start + cap`
    /// is the block.
    mem: Vec<u8>,
    start: usize,
    cap: usize,
    len: usize,
}

impl Block {
    /// An empty block of at least `capacity` bytes (rounded up to [`ALIGN`]).
    pub fn new(capacity: usize) -> Self {
        let cap = capacity.max(1).next_multiple_of(ALIGN);
        let mem = vec![0u8; cap + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        // `align_offset` on a `u8` pointer is always below ALIGN.
        debug_assert!(start < ALIGN);
        Block { mem, start, cap, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes still free at the end.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// The filled bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.mem[self.start..self.start + self.len]
    }

    /// The filled bytes, writable (sealing in place).
    pub fn filled_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + self.len]
    }

    /// The free bytes after the filled ones: write into them, then [`Self::advance`].
    pub fn spare_mut(&mut self) -> &mut [u8] {
        &mut self.mem[self.start + self.len..self.start + self.cap]
    }

    /// Count `n` more bytes of the spare part as filled.
    ///
    /// # Panics
    /// If `n` is more than [`Self::remaining`] (a bug in the caller).
    pub fn advance(&mut self, n: usize) {
        assert!(n <= self.remaining(), "block overfilled");
        self.len += n;
    }

    /// Append `bytes`.
    ///
    /// # Panics
    /// If they do not fit (a bug in the caller).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.spare_mut()[..bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Keep the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The filled bytes followed by zeros up to the next multiple of
    /// [`ALIGN`] (the final write of a direct-I/O file, trimmed afterwards).
    pub fn padded(&mut self) -> &[u8] {
        let end = self.len.next_multiple_of(ALIGN);
        self.mem[self.start + self.len..self.start + end].fill(0);
        &self.mem[self.start..self.start + end]
    }

    /// Move the bytes after the last whole multiple of [`ALIGN`] into `next`
    /// (which must be empty), leaving this block a multiple of [`ALIGN`]
    /// long: what a direct write of it needs. At most `ALIGN - 1` bytes move.
    pub fn carry_tail_into(&mut self, next: &mut Block) {
        debug_assert!(next.is_empty());
        let whole = self.len / ALIGN * ALIGN;
        next.clear();
        next.extend_from_slice(&self.as_slice()[whole..]);
        self.len = whole;
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Block({} of {} bytes)", self.len, self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_start_aligned_and_never_grow() {
        for cap in [1, 100, ALIGN, ALIGN + 1, 300_000] {
            let mut b = Block::new(cap);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0, "cap {cap}");
            assert!(b.capacity() >= cap && b.capacity().is_multiple_of(ALIGN));
            let fill = vec![7u8; b.capacity()];
            b.extend_from_slice(&fill);
            assert_eq!(b.remaining(), 0);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        }
    }

    #[test]
    fn the_tail_past_the_last_whole_unit_moves_to_the_next_block() {
        let mut a = Block::new(4 * ALIGN);
        let data: Vec<u8> = (0..2 * ALIGN + 100).map(|i| i as u8).collect();
        a.extend_from_slice(&data);
        let mut b = Block::new(4 * ALIGN);
        a.carry_tail_into(&mut b);
        assert_eq!(a.len(), 2 * ALIGN);
        assert_eq!(b.as_slice(), &data[2 * ALIGN..]);
        assert_eq!([a.as_slice(), b.as_slice()].concat(), data);
    }

    #[test]
    fn padding_is_zeros_up_to_the_next_unit() {
        let mut a = Block::new(2 * ALIGN);
        a.extend_from_slice(&vec![9u8; 2 * ALIGN]);
        a.clear();
        a.extend_from_slice(b"abc");
        let p = a.padded();
        assert_eq!(p.len(), ALIGN);
        assert_eq!(&p[..3], b"abc");
        assert!(p[3..].iter().all(|&b| b == 0), "stale bytes in the padding");
        assert_eq!(a.len(), 3);
    }

    #[test]
    #[should_panic(expected = "block overfilled")]
    fn overfilling_is_a_bug_that_stops() {
        let mut a = Block::new(ALIGN);
        a.advance(ALIGN + 1);
    }
}

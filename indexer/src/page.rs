//! One pass over the matching documents: how many there are within the
//! scope, and the page of the best ones.
//!
//! "Best" is relevance (the BM25 score) first, then the newest upload, then
//! the lower document address, so the order is total and a page never
//! repeats or skips a hit of the same searcher. Tantivy's own collectors
//! would do this as a tuple (top docs by a two-part sort key, a count, a
//! filter around both) that reads the upload date of every match, and
//! most matches tie on score (titles are short and alike). Here the date is
//! read only for a match that scores *higher* than the page's worst hit so
//! far: the index keeps every segment sorted newest upload first (see
//! `settings` in the crate root), and a segment's matches arrive in
//! document order, so a later match with an equal score is never newer
//! than the hits already kept from that segment and cannot enter its page.
//! The client filter and the count run in the same loop.
//!
//! Invariant this relies on: every document has an upload date, and the
//! index is sorted by it, descending (an index without that setting is
//! rebuilt when opened).

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::net::Ipv6Addr;
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::Weight;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

/// Skip `offset` of the best matches, return the next `limit` (their
/// addresses, best first) and the number of matches within `clients`
/// (every client when `None`).
pub(crate) struct PageAndCount {
    pub offset: usize,
    pub limit: usize,
    /// The exact client list of the scope, checked on each match's
    /// `client_id` column.
    pub clients: Option<Arc<HashSet<u128>>>,
}

/// A match as the page orders it: greater is better.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ranked {
    score: Score,
    uploaded_at: i64,
    doc: DocAddress,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(self.uploaded_at.cmp(&other.uploaded_at)).then(other.doc.cmp(&self.doc))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

pub(crate) struct SegmentPage {
    segment: SegmentOrdinal,
    /// How many of the best matches to keep (`offset + limit`).
    keep: usize,
    uploaded_at: Column<i64>,
    clients: Option<(Arc<HashSet<u128>>, Column<Ipv6Addr>)>,
    count: usize,
    /// The best `keep` so far; the worst on top.
    best: BinaryHeap<Reverse<Ranked>>,
}

impl Collector for PageAndCount {
    type Fruit = (Vec<DocAddress>, usize);
    type Child = SegmentPage;

    fn for_segment(&self, segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<SegmentPage> {
        let keep = if self.limit == 0 { 0 } else { self.offset + self.limit };
        let clients = match &self.clients {
            None => None,
            Some(set) => Some((set.clone(), reader.fast_fields().ip_addr("client_id")?)),
        };
        Ok(SegmentPage {
            segment,
            keep,
            uploaded_at: reader.fast_fields().i64("uploaded_at")?,
            clients,
            count: 0,
            best: BinaryHeap::with_capacity(keep.min(1024) + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.limit > 0
    }

    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: u32,
        reader: &SegmentReader,
    ) -> tantivy::Result<(Vec<Ranked>, usize)> {
        // Only a count, over every client: the query may know it without
        // visiting a document (a single term in a segment without deletes).
        if self.limit == 0 && self.clients.is_none() {
            return Ok((Vec::new(), weight.count(reader)? as usize));
        }
        let mut page = self.for_segment(segment, reader)?;
        match (reader.alive_bitset(), self.requires_scoring()) {
            (Some(alive), true) => weight.for_each(reader, &mut |doc, score| {
                if alive.is_alive(doc) {
                    page.collect(doc, score);
                }
            })?,
            (Some(alive), false) => weight.for_each_no_score(reader, &mut |docs| {
                for &doc in docs {
                    if alive.is_alive(doc) {
                        page.collect(doc, 0.0);
                    }
                }
            })?,
            (None, true) => weight.for_each(reader, &mut |doc, score| page.collect(doc, score))?,
            (None, false) => weight.for_each_no_score(reader, &mut |docs| page.collect_block(docs))?,
        }
        Ok(page.harvest())
    }

    fn merge_fruits(&self, fruits: Vec<(Vec<Ranked>, usize)>) -> tantivy::Result<(Vec<DocAddress>, usize)> {
        let count = fruits.iter().map(|(_, n)| n).sum();
        let mut all: Vec<Ranked> = fruits.into_iter().flat_map(|(best, _)| best).collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        let page = all.into_iter().skip(self.offset).take(self.limit).map(|r| r.doc).collect();
        Ok((page, count))
    }
}

impl SegmentCollector for SegmentPage {
    type Fruit = (Vec<Ranked>, usize);

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        if let Some((set, column)) = &self.clients {
            match column.first(doc) {
                Some(client) if set.contains(&u128::from(client)) => {}
                _ => return,
            }
        }
        self.count += 1;
        if self.keep == 0 {
            return;
        }
        let full = self.best.len() == self.keep;
        if full && self.best.peek().is_some_and(|worst| score <= worst.0.score) {
            // Lower: out. Equal: not newer than the worst kept (the segment
            // is sorted newest first) and a later address: out too.
            return;
        }
        let ranked = Ranked {
            score,
            uploaded_at: self.uploaded_at.first(doc).unwrap_or(i64::MIN),
            doc: DocAddress::new(self.segment, doc),
        };
        if !full {
            self.best.push(Reverse(ranked));
        } else if let Some(mut worst) = self.best.peek_mut()
            && ranked > worst.0
        {
            *worst = Reverse(ranked);
        }
    }

    fn harvest(self) -> (Vec<Ranked>, usize) {
        (self.best.into_iter().map(|r| r.0).collect(), self.count)
    }
}

//! The search index of Kluis: document metadata in tantivy (issue 8).
//!
//! This crate never decides access. It answers a query within a [`Scope`]
//! the policy hands it (all clients, or a list of client ids), and the scope
//! is a filter inside the search itself (an exact check of each matching
//! document's client, after a coarse filter on the coach for a caseload), so
//! `total` and pagination count only what the scope allows. The caller (the vault) checks every hit
//! once more against the catalog before showing it: the index is a cache.
//!
//! What is indexed: metadata only, never document content and never a BSN
//! (see [`Record`]). Words of the title, the file name and the client's
//! name (three values of one field) go through a Dutch analyser ([`DUTCH`]:
//! lower case, accents folded, Kraaij-Pohlmann stemming), so `rapportage`
//! finds "Rapportages" and `client` finds "Cliënt". Ids, types and the
//! trajectory status are exact terms; dates are fast fields, for ranges and
//! sorting. Hits come by relevance, then newest upload; segments are kept
//! sorted newest first so that the page needs few dates (`page.rs`).
//!
//! Invariants:
//! - the index and its cursor move together: every commit carries the
//!   cursor of the last change it applied as its payload ([`Index::apply`]);
//! - applying a change twice is harmless (a record replaces any earlier
//!   record of the same document);
//! - a missing or unreadable index directory (no metadata, another
//!   schema or settings, a segment file missing or failing its checksum) is rebuilt
//!   empty, never a reason to fail ([`Opened::Rebuilt`]); the caller then
//!   reindexes;
//! - one process at a time opens a directory: it holds `kluis.lock` (an
//!   exclusive `flock`) from before it reads or clears anything until the
//!   [`Index`] is dropped.

use std::collections::HashSet;
use std::net::Ipv6Addr;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;

use tantivy::query::{AllQuery, BooleanQuery, ConstScoreQuery, EmptyQuery, Occur, RangeQuery, TermQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
    Token, TokenFilter, TokenStream, Tokenizer,
};
use tantivy::{
    DocAddress, IndexReader, IndexSettings, IndexSortByField, IndexWriter, ReloadPolicy, TantivyDocument, Term, doc,
};
use uuid::Uuid;

/// The name the Dutch analyser is registered under on every index.
pub const DUTCH: &str = "kluis_nl";

/// Memory for the one index writer of a node (tantivy's minimum per thread
/// is 15 MB; one thread).
const WRITER_HEAP: usize = 20_000_000;

/// A writer for rebuilding from scratch (`kluis reindex`): more memory and
/// two threads make far fewer, larger segments.
const BULK_HEAP: usize = 200_000_000;

/// Everything that can go wrong in the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("search index directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    #[error("search index: a stored document lacks its id")]
    MissingId,
    #[error(
        "search index directory {path} holds files that are not a search index ({file}); \
         refusing to clear it: point KLUIS_INDEX_DIR at a directory of its own"
    )]
    ForeignFiles { path: String, file: String },
    #[error("search index: reading the records to index failed: {0}")]
    Source(String),
    #[error("search index directory {path} is in use by another process")]
    Locked { path: String },
}

impl IndexError {
    /// Another process holds this index's writer.
    pub fn is_locked(&self) -> bool {
        matches!(self, IndexError::Locked { .. } | IndexError::Tantivy(tantivy::TantivyError::LockFailure(..)))
    }
}

pub type Result<T> = std::result::Result<T, IndexError>;

/// One document's metadata as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: Uuid,
    pub client_id: Uuid,
    /// The client's name as shown (never the BSN).
    pub client_name: String,
    /// The client's coach when indexed (a coarse prefilter for a caseload;
    /// the exact scope is always the client list).
    pub coach_id: Option<Uuid>,
    pub doc_type: String,
    pub title: String,
    pub filename: String,
    pub uploaded_by: Option<Uuid>,
    /// Microseconds since the Unix epoch.
    pub uploaded_at: i64,
    pub retention_until: Option<i64>,
    /// The client's trajectory.
    pub status: Status,
}

/// A client's trajectory: active, or closed (the archive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Active,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Closed => "closed",
        }
    }
}

/// One change to apply: a document's current record, or its removal
/// (destroyed, pending, or gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(Record),
    Remove(Uuid),
}

/// Which clients' documents a caller may find, from the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Exactly these clients.
    Clients(Vec<Uuid>),
    /// A coach's reach: exactly `clients`, looked for among the documents
    /// indexed under one of `coaches` (much cheaper than the client list
    /// alone). A client that moved to one of `coaches` a moment ago is found
    /// once the index has applied that change; a client that moved away is
    /// never counted, since the client list is exact.
    Caseload {
        coaches: Vec<Uuid>,
        clients: Vec<Uuid>,
    },
}

/// A search, parsed at the edge.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// Words to find in title, file name and client name (all must match).
    pub text: Option<String>,
    pub doc_type: Option<String>,
    pub client_id: Option<Uuid>,
    pub status: Option<Status>,
    /// Upload dates, microseconds, from inclusive, to exclusive.
    pub uploaded_from: Option<i64>,
    pub uploaded_to: Option<i64>,
    pub limit: usize,
    pub offset: usize,
}

/// The ids of one page of hits, best first, and how many match in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Hits {
    pub total: usize,
    pub ids: Vec<Uuid>,
}

/// How [`Index::open`] found the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// An existing index, with the cursor of its last commit.
    Existing { cursor: Option<String> },
    /// Nothing usable was there (missing, corrupt, another schema): a new
    /// empty index; the caller reindexes from the catalog.
    Rebuilt,
}

/// Ids (document, client, coach, uploader) are 128-bit values in IP
/// address fields: a 16-byte key instead of a 36-character string to hash
/// and store, and a fast column to read a hit's id or check its client.
#[derive(Clone, Copy)]
struct Fields {
    /// Indexed (replace and remove by id) and fast (a hit's id).
    id: Field,
    /// Indexed (the client filter) and fast (the exact scope check).
    client_id: Field,
    /// Indexed (a caseload's coarse prefilter).
    coach: Field,
    /// The words of the title, the file name and the client's name, in one
    /// field: a word is one term (one posting list) whichever of the three
    /// it came from, so a search word is one term query, not a union of
    /// three.
    words: Field,
    doc_type: Field,
    uploaded_by: Field,
    uploaded_at: Field,
    retention_until: Field,
    status: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default().set_indexing_options(
        // No positions: searches are words, never phrases (cheaper to index).
        TextFieldIndexing::default().set_tokenizer(DUTCH).set_index_option(IndexRecordOption::WithFreqs),
    );
    let f = Fields {
        id: b.add_ip_addr_field("id", INDEXED | FAST),
        client_id: b.add_ip_addr_field("client_id", INDEXED | FAST),
        coach: b.add_ip_addr_field("coach", INDEXED),
        words: b.add_text_field("words", words),
        doc_type: b.add_text_field("type", STRING),
        uploaded_by: b.add_ip_addr_field("uploaded_by", FAST),
        uploaded_at: b.add_i64_field("uploaded_at", FAST),
        retention_until: b.add_i64_field("retention_until", FAST),
        status: b.add_text_field("status", STRING),
    };
    (b.build(), f)
}

/// Every segment keeps its documents newest upload first (tantivy sorts
/// them when it writes or merges a segment), so that a page needs the upload
/// date only of a match that scores higher than the page's worst hit (see
/// `page.rs`).
fn settings() -> IndexSettings {
    IndexSettings {
        sort_by_field: Some(IndexSortByField { field: "uploaded_at".into(), order: tantivy::Order::Desc }),
        ..IndexSettings::default()
    }
}

/// `text` folded as the search fields fold their words, kept whole: lower
/// case, and the accented and ligature forms of Latin letters as plain
/// ASCII (tantivy's `LowerCaser` and `AsciiFoldingFilter`), and without
/// combining accents (U+0300–U+036F: text typed decomposed, and the dot
/// that lower-casing "İ" leaves). "Özdemir", "ÖZDEMİR" and "ozdemir" fold
/// alike. The catalog keeps the folded last name beside it for the client
/// lists' name filter, so that filter and a search treat a name alike.
pub fn fold(text: &str) -> String {
    let mut analyzer =
        TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).filter(AsciiFoldingFilter).build();
    let mut stream = analyzer.token_stream(text);
    let mut out = String::with_capacity(text.len());
    while let Some(token) = stream.next() {
        out.extend(token.text.chars().filter(|c| !('\u{300}'..='\u{36f}').contains(c)));
    }
    out
}

fn dutch() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(CachedStemmer)
        .build()
}

/// The Dutch stemmer, remembering the stems of words it has seen: titles,
/// file names and client names repeat the same few thousand words, and
/// stemming was a tenth of the cost of a rebuild. Each clone (one per
/// segment being written) has its own cache, so there is no lock; it is
/// emptied when it reaches [`STEM_CACHE`] words.
#[derive(Clone)]
struct CachedStemmer;

const STEM_CACHE: usize = 50_000;

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        let stem = TextAnalyzer::builder(RawTokenizer::default()).filter(Stemmer::new(Language::Dutch)).build();
        CachedStemmerFilter { inner, stem, cache: std::collections::HashMap::new() }
    }
}

#[derive(Clone)]
struct CachedStemmerFilter<T> {
    inner: T,
    /// Tantivy's Dutch stemmer, on one whole word.
    stem: TextAnalyzer,
    cache: std::collections::HashMap<String, String>,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream { tail: self.inner.token_stream(text), stem: &mut self.stem, cache: &mut self.cache }
    }
}

struct CachedStemmerStream<'a, T> {
    tail: T,
    stem: &'a mut TextAnalyzer,
    cache: &'a mut std::collections::HashMap<String, String>,
}

impl<T: TokenStream> TokenStream for CachedStemmerStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.cache.get(token.text.as_str()) {
            token.text.clear();
            token.text.push_str(stem);
            return true;
        }
        let stem = {
            let mut one = self.stem.token_stream(&token.text);
            if one.advance() { one.token().text.clone() } else { token.text.clone() }
        };
        if self.cache.len() >= STEM_CACHE {
            self.cache.clear();
        }
        self.cache.insert(std::mem::replace(&mut token.text, stem.clone()), stem);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

/// A node's search index: one writer, one reader.
pub struct Index {
    index: tantivy::Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    /// The payload of the last commit, kept here so that asking for the
    /// cursor (every search does) reads no file.
    cursor: Mutex<Option<String>>,
    f: Fields,
    /// The writer's threads and memory (to make it again, see
    /// [`Index::back_to_last_commit`]).
    threads: usize,
    heap: usize,
    /// `kluis.lock` in the directory, locked (none in memory).
    _lock: Option<std::fs::File>,
}

impl Index {
    /// Open the index in `dir`, or make a new one when nothing usable is
    /// there. Fails only when the directory cannot be written, when it holds
    /// files that are not tantivy's (it is never cleared then), or when
    /// another process holds its writer.
    pub fn open(dir: &Path) -> Result<(Index, Opened)> {
        Self::open_with(dir, 1, WRITER_HEAP)
    }

    /// [`Index::open`] with a writer sized for rebuilding everything.
    pub fn open_bulk(dir: &Path) -> Result<(Index, Opened)> {
        Self::open_with(dir, 2, BULK_HEAP)
    }

    fn open_with(dir: &Path, threads: usize, heap: usize) -> Result<(Index, Opened)> {
        let io = |source| IndexError::Directory { path: dir.display().to_string(), source };
        // Client names are in here: readable by the owner only.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
        let lock = lock_dir(dir)?;
        if let Some((mut index, cursor)) = Self::open_existing(dir, threads, heap)? {
            index._lock = Some(lock);
            return Ok((index, Opened::Existing { cursor }));
        }
        // Unusable: remove tantivy's files and start again empty.
        clear_index_dir(dir)?;
        let new = tantivy::Index::builder().schema(schema().0).settings(settings()).create_in_dir(dir)?;
        let mut index = Self::with(new, threads, heap)?;
        index._lock = Some(lock);
        Ok((index, Opened::Rebuilt))
    }

    /// The index in `dir` with its cursor, if it is whole: our schema,
    /// readable metadata, every segment file present with a right checksum,
    /// and a writer and a reader that open. `None` otherwise (the caller
    /// holds the directory's lock and clears it). A writer lock held by a
    /// process that does not take `kluis.lock` (an older binary, a tool) is
    /// an error, never a reason to clear.
    fn open_existing(dir: &Path, threads: usize, heap: usize) -> Result<Option<(Index, Option<String>)>> {
        if !dir.join("meta.json").exists() {
            return Ok(None); // a new directory
        }
        let why = match tantivy::Index::open_in_dir(dir) {
            Err(e) => e.to_string(),
            Ok(index) if index.schema() != schema().0 => "another schema".to_string(),
            Ok(index) if index.settings() != &settings() => "other settings (not sorted by upload)".to_string(),
            Ok(index) => match index.validate_checksum() {
                Ok(bad) if !bad.is_empty() => format!("{} files fail their checksum", bad.len()),
                Err(e) => e.to_string(),
                Ok(_) => match index.load_metas().map(|m| m.payload) {
                    Err(e) => e.to_string(),
                    Ok(cursor) => match Self::with(index, threads, heap) {
                        Ok(index) => return Ok(Some((index, cursor))),
                        Err(e) if e.is_locked() => return Err(e),
                        Err(e) => e.to_string(),
                    },
                },
            },
        };
        tracing::warn!(dir = %dir.display(), reason = %why, "search index unusable; starting it again empty");
        Ok(None)
    }

    /// An index in memory (tests).
    pub fn in_memory() -> Result<Index> {
        Self::with(tantivy::Index::builder().schema(schema().0).settings(settings()).create_in_ram()?, 1, WRITER_HEAP)
    }

    fn with(index: tantivy::Index, threads: usize, heap: usize) -> Result<Index> {
        index.tokenizers().register(DUTCH, dutch());
        let (_, f) = schema();
        let writer = index.writer_with_num_threads(threads, heap)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let cursor = Mutex::new(index.load_metas()?.payload);
        Ok(Index { index, reader, writer: Mutex::new(writer), cursor, f, threads, heap, _lock: None })
    }

    /// The cursor stored with the last commit.
    pub fn cursor(&self) -> Result<Option<String>> {
        Ok(self.cursor.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Forget the cursor until the next commit: the caller found that the
    /// index cannot follow the catalog from it and rebuilds; until then
    /// [`Index::cursor`] is `None` (searches are refused, not answered from
    /// an index known to be incomplete).
    pub fn forget_cursor(&self) {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn committed(&self, cursor: &str) {
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor.to_string());
    }

    /// Apply changes in order and commit them with `cursor` (the position of
    /// the last change applied), then make them visible to searches.
    pub fn apply(&self, changes: &[Change], cursor: &str) -> Result<()> {
        let f = self.f;
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let applied = (|| {
            for change in changes {
                let id = match change {
                    Change::Upsert(r) => r.id,
                    Change::Remove(id) => *id,
                };
                w.delete_term(key(f.id, id));
                if let Change::Upsert(r) = change {
                    w.add_document(self.document(r))?;
                }
            }
            let mut commit = w.prepare_commit()?;
            commit.set_payload(cursor);
            commit.commit()?;
            Ok(())
        })();
        if let Err(e) = applied {
            self.back_to_last_commit(&mut w, &e);
            return Err(e);
        }
        self.committed(cursor);
        drop(w);
        self.reader.reload()?;
        Ok(())
    }

    /// Replace everything with `records` and commit them with `cursor`, in
    /// one commit: until it, searches see the old contents; if `records`
    /// fails, nothing changes. Returns how many records were indexed.
    pub fn rebuild(&self, records: impl Iterator<Item = Result<Record>>, cursor: &str) -> Result<u64> {
        let mut w = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let mut n = 0u64;
        let filled = (|| {
            w.delete_all_documents()?;
            for r in records {
                w.add_document(self.document(&r?))?;
                n += 1;
            }
            let mut commit = w.prepare_commit()?;
            commit.set_payload(cursor);
            commit.commit()?;
            self.committed(cursor);
            Ok(())
        })();
        if let Err(e) = filled {
            self.back_to_last_commit(&mut w, &e);
            return Err(e);
        }
        drop(w);
        self.reader.reload()?;
        Ok(n)
    }

    /// After a failed change: back to the last commit, with fresh indexing
    /// threads, so the next try starts clean. Should the rollback itself
    /// fail (it leaves a dead writer behind), a new writer is made; should
    /// that fail too, the next call fails and tries again.
    fn back_to_last_commit(&self, w: &mut IndexWriter, cause: &IndexError) {
        let Err(e) = w.rollback() else { return };
        tracing::error!(error = %e, cause = %cause, "search index: rollback failed; making a new writer");
        match self.index.writer_with_num_threads(self.threads, self.heap) {
            Ok(fresh) => *w = fresh,
            Err(e) => tracing::error!(error = %e, "search index: no new writer yet"),
        }
    }

    fn document(&self, r: &Record) -> TantivyDocument {
        let f = self.f;
        // Three values of one field: tokens never run across them.
        let mut d = doc!(
            f.words => r.title.as_str(),
            f.words => r.filename.as_str(),
            f.words => r.client_name.as_str(),
            f.doc_type => r.doc_type.as_str(),
            f.uploaded_at => r.uploaded_at,
            f.status => r.status.as_str(),
        );
        d.add_ip_addr(f.id, ip(r.id));
        d.add_ip_addr(f.client_id, ip(r.client_id));
        if let Some(coach) = r.coach_id {
            d.add_ip_addr(f.coach, ip(coach));
        }
        if let Some(by) = r.uploaded_by {
            d.add_ip_addr(f.uploaded_by, ip(by));
        }
        if let Some(until) = r.retention_until {
            d.add_i64(f.retention_until, until);
        }
        d
    }

    /// One page of hits within `scope`, by relevance, then newest upload.
    pub fn search(&self, scope: &Scope, s: &Search) -> Result<Hits> {
        let f = self.f;
        let mut must: Vec<(Occur, Box<dyn tantivy::query::Query>)> = Vec::new();
        let text = s.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        match text {
            // Every word must match, in any of the three fields. The words go
            // through the field's analyser; no query syntax is interpreted
            // (a `-`, `:` or quote in a user's words is just a separator).
            Some(t) => {
                let words = self.words(t)?;
                if words.is_empty() {
                    must.push((Occur::Must, Box::new(EmptyQuery)));
                }
                for w in words {
                    let q = TermQuery::new(Term::from_field_text(f.words, &w), IndexRecordOption::WithFreqs);
                    must.push((Occur::Must, Box::new(q)));
                }
            }
            None => must.push((Occur::Must, Box::new(AllQuery))),
        }
        let mut filter =
            |q: Box<dyn tantivy::query::Query>| must.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
        // The exact client list is checked on each matching document's
        // 128-bit client number (a hash lookup), after the cheap filters.
        let clients: Option<Arc<HashSet<u128>>> = match scope {
            Scope::All => None,
            Scope::Clients(ids) => Some(Arc::new(ids.iter().map(|c| c.as_u128()).collect())),
            Scope::Caseload { coaches, clients } => {
                filter(Box::new(BooleanQuery::new(
                    coaches
                        .iter()
                        .map(|c| {
                            let q: Box<dyn tantivy::query::Query> =
                                Box::new(TermQuery::new(key(f.coach, *c), IndexRecordOption::Basic));
                            (Occur::Should, q)
                        })
                        .collect(),
                )));
                Some(Arc::new(clients.iter().map(|c| c.as_u128()).collect()))
            }
        };
        let exact = |field: Field, v: &str| -> Box<dyn tantivy::query::Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, v), IndexRecordOption::Basic))
        };
        if let Some(t) = &s.doc_type {
            filter(exact(f.doc_type, t));
        }
        if let Some(c) = s.client_id {
            filter(Box::new(TermQuery::new(key(f.client_id, c), IndexRecordOption::Basic)));
        }
        if let Some(st) = s.status {
            filter(exact(f.status, st.as_str()));
        }
        if s.uploaded_from.is_some() || s.uploaded_to.is_some() {
            let lo =
                s.uploaded_from.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(f.uploaded_at, v)));
            let hi =
                s.uploaded_to.map_or(Bound::Unbounded, |v| Bound::Excluded(Term::from_field_i64(f.uploaded_at, v)));
            filter(Box::new(RangeQuery::new(lo, hi)));
        }
        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let (page, total) =
            searcher.search(&query, &page::PageAndCount { offset: s.offset, limit: s.limit, clients })?;
        let ids = self.ids(&searcher, page.into_iter())?;
        Ok(Hits { total, ids })
    }

    /// The distinct terms of `text` as the Dutch analyser makes them (at
    /// most 32).
    fn words(&self, text: &str) -> Result<Vec<String>> {
        let mut analyzer = self.index.tokenizer_for_field(self.f.words)?;
        let mut stream = analyzer.token_stream(text);
        let mut out: Vec<String> = Vec::new();
        while stream.advance() {
            let t = &stream.token().text;
            if !out.contains(t) && out.len() < 32 {
                out.push(t.clone());
            }
        }
        Ok(out)
    }

    fn ids(&self, searcher: &tantivy::Searcher, addrs: impl Iterator<Item = DocAddress>) -> Result<Vec<Uuid>> {
        let mut columns = std::collections::HashMap::new();
        addrs
            .map(|a| {
                let column = match columns.entry(a.segment_ord) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(searcher.segment_reader(a.segment_ord).fast_fields().ip_addr("id")?)
                    }
                };
                column.first(a.doc_id).map(|v| Uuid::from_u128(u128::from(v))).ok_or(IndexError::MissingId)
            })
            .collect()
    }

    /// How many documents the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A 128-bit id as the value of an IP address field.
fn ip(id: Uuid) -> Ipv6Addr {
    Ipv6Addr::from(id.as_u128())
}

/// The term of an id in an indexed IP address field.
fn key(field: Field, id: Uuid) -> Term {
    Term::from_field_ip_addr(field, ip(id))
}

/// Take `dir/kluis.lock` for this process (an exclusive `flock`, released
/// when the file is closed, also by a crash).
fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let path = dir.join(LOCK_FILE);
    let io = |source| IndexError::Directory { path: path.display().to_string(), source };
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(IndexError::Locked { path: dir.display().to_string() }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

const LOCK_FILE: &str = "kluis.lock";

/// Remove tantivy's files from `dir` (and nothing else): its metadata, its
/// lock files, and segment files (32 hex digits, a dot, an extension). Any
/// other file means the directory is not only an index: refuse.
fn clear_index_dir(dir: &Path) -> Result<()> {
    let path = || dir.display().to_string();
    let io = |source| IndexError::Directory { path: path(), source };
    let is_ours = |name: &str| {
        matches!(name, "meta.json" | ".managed.json" | ".tantivy-meta.lock" | ".tantivy-writer.lock" | LOCK_FILE)
            || name
                .split_once('.')
                .is_some_and(|(stem, _)| stem.len() == 32 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
            // Atomic writes: tantivy's (`.tmp` and 6 random characters,
            // left behind by a crash mid-write) and its `*.tmp` files.
            || name.starts_with(".tmp")
            || name.ends_with(".tmp")
    };
    let mut ours = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_ours(&name) || !entry.file_type().map_err(io)?.is_file() {
            return Err(IndexError::ForeignFiles { path: path(), file: name });
        }
        ours.push(entry.path());
    }
    for p in ours {
        if p.file_name().is_some_and(|n| n == LOCK_FILE) {
            continue; // held by the caller
        }
        std::fs::remove_file(&p).map_err(io)?;
    }
    Ok(())
}

mod page;
#[cfg(test)]
mod tests;

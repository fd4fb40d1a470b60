use proptest::prelude::*;

use super::*;

fn record(n: u128, client: Uuid, title: &str, uploaded_at: i64) -> Record {
    Record {
        id: Uuid::from_u128(n),
        client_id: client,
        client_name: "Anna de Vries".into(),
        coach_id: None,
        doc_type: "intake".into(),
        title: title.into(),
        filename: format!("document-{n}.pdf"),
        uploaded_by: None,
        uploaded_at,
        retention_until: None,
        status: Status::Active,
    }
}

fn page(limit: usize) -> Search {
    Search { limit, ..Search::default() }
}

fn words(text: &str) -> Search {
    Search { text: Some(text.into()), limit: 50, ..Search::default() }
}

#[test]
fn dutch_words_find_their_inflections_and_accents() {
    let ix = Index::in_memory().unwrap();
    let c = Uuid::from_u128(1000);
    let mut r = record(1, c, "Rapportages over de re-integratie", 10);
    r.client_name = "Cliënt Zoë Jansen".into();
    let mut other = record(2, c, "Behandelplannen", 20);
    other.client_name = "Piet Bakker".into();
    ix.apply(&[Change::Upsert(r), Change::Upsert(other)], "1").unwrap();
    let one = |q: &str| ix.search(&Scope::All, &words(q)).unwrap().ids;
    assert_eq!(one("rapportage"), vec![Uuid::from_u128(1)]);
    assert_eq!(one("RAPPORTAGES"), vec![Uuid::from_u128(1)]);
    assert_eq!(one("client"), vec![Uuid::from_u128(1)], "accents are folded");
    assert_eq!(one("zoe"), vec![Uuid::from_u128(1)]);
    assert_eq!(one("behandelplan"), vec![Uuid::from_u128(2)]);
    assert_eq!(one("document-2"), vec![Uuid::from_u128(2)], "file names are words too");
    // All words must match; a stray quote or colon is not an error.
    assert!(one("rapportage behandelplan").is_empty());
    assert_eq!(one("rapportage \"re-integratie:"), vec![Uuid::from_u128(1)]);
    // No query syntax: a minus does not exclude, a colon names no field,
    // words that make no terms find nothing (not everything).
    assert_eq!(one("-rapportage"), vec![Uuid::from_u128(1)]);
    assert_eq!(one("title:rapportage"), Vec::<Uuid>::new(), "`title` is a word like any other");
    assert_eq!(one("!!! ..."), Vec::<Uuid>::new());
}

#[test]
fn the_scope_is_part_of_the_query_so_totals_count_only_the_scope() {
    let ix = Index::in_memory().unwrap();
    let (a, b) = (Uuid::from_u128(1000), Uuid::from_u128(2000));
    let changes: Vec<_> =
        (0..30).map(|n| Change::Upsert(record(n, if n % 3 == 0 { a } else { b }, "verslag", n as i64))).collect();
    ix.apply(&changes, "30").unwrap();
    let in_a = ix.search(&Scope::Clients(vec![a]), &Search { limit: 4, ..words("verslag") }).unwrap();
    assert_eq!(in_a.total, 10, "total counts only the scope");
    assert_eq!(in_a.ids.len(), 4);
    let all_a = ix.search(&Scope::Clients(vec![a]), &page(100)).unwrap();
    assert!(all_a.ids.iter().all(|id| id.as_u128() % 3 == 0), "{:?}", all_a.ids);
    assert_eq!(ix.search(&Scope::Clients(vec![]), &words("verslag")).unwrap(), Hits { total: 0, ids: vec![] });
    assert_eq!(ix.search(&Scope::All, &page(0)).unwrap().total, 30);
    // A client filter cannot widen the scope.
    let outside = Search { client_id: Some(b), ..page(10) };
    assert_eq!(ix.search(&Scope::Clients(vec![a]), &outside).unwrap().total, 0);
}

#[test]
fn filters_dates_order_and_pages() {
    let ix = Index::in_memory().unwrap();
    let c = Uuid::from_u128(1000);
    let mut changes = Vec::new();
    for n in 0..10u128 {
        let mut r = record(n, c, "plan", n as i64 * 100);
        if n % 2 == 1 {
            r.doc_type = "work_plan".into();
        }
        if n >= 8 {
            r.status = Status::Closed;
        }
        changes.push(Change::Upsert(r));
    }
    ix.apply(&changes, "10").unwrap();
    // Without words: newest first; pages do not overlap.
    let first = ix.search(&Scope::All, &Search { limit: 3, ..page(3) }).unwrap();
    let second = ix.search(&Scope::All, &Search { limit: 3, offset: 3, ..page(3) }).unwrap();
    let n = |h: &Hits| h.ids.iter().map(|i| i.as_u128()).collect::<Vec<_>>();
    assert_eq!((n(&first), n(&second), first.total), (vec![9, 8, 7], vec![6, 5, 4], 10));
    let typed = ix.search(&Scope::All, &Search { doc_type: Some("work_plan".into()), ..page(20) }).unwrap();
    assert_eq!(n(&typed), vec![9, 7, 5, 3, 1]);
    let closed = ix.search(&Scope::All, &Search { status: Some(Status::Closed), ..page(20) }).unwrap();
    assert_eq!(n(&closed), vec![9, 8]);
    let dated = Search { uploaded_from: Some(200), uploaded_to: Some(500), ..page(20) };
    assert_eq!(n(&ix.search(&Scope::All, &dated).unwrap()), vec![4, 3, 2], "from inclusive, to exclusive");
}

/// Relevance first, then the newest upload, across segments (each commit
/// writes one) and with ties everywhere: the page skips reading dates of
/// equal scores, which is right only because segments are sorted newest
/// first; this checks the order is still exact, and that consecutive pages
/// are the slices of one order.
#[test]
fn relevance_then_newest_first_across_segments_and_pages() {
    let ix = Index::in_memory().unwrap();
    let c = Uuid::from_u128(1000);
    // Dates interleave across three commits, ids do not follow dates, and
    // titles give two scores: the word once, or twice (more relevant).
    let mut expected_twice = Vec::new();
    let mut expected_once = Vec::new();
    for commit in 0..3i64 {
        let mut changes = Vec::new();
        for k in 0..20i64 {
            let n = (commit * 20 + k) as u128;
            let date = ((k * 7 + commit * 3) % 60) * 1000 + commit;
            let title = if k % 4 == 0 { "plan plan" } else { "plan ander" };
            let mut r = record(n, c, title, date);
            r.filename = "bestand.pdf".into(); // equal field lengths
            changes.push(Change::Upsert(r));
            if k % 4 == 0 { &mut expected_twice } else { &mut expected_once }.push((date, n));
        }
        ix.apply(&changes, &commit.to_string()).unwrap();
    }
    expected_twice.sort_by(|a, b| b.cmp(a));
    expected_once.sort_by(|a, b| b.cmp(a));
    let expected: Vec<u128> = expected_twice.iter().chain(&expected_once).map(|(_, n)| *n).collect();
    let all = ix.search(&Scope::All, &Search { limit: 100, ..words("plan") }).unwrap();
    assert_eq!(all.total, 60);
    assert_eq!(all.ids.iter().map(|i| i.as_u128()).collect::<Vec<_>>(), expected);
    for limit in [1usize, 3, 7] {
        let mut paged = Vec::new();
        let mut offset = 0;
        while offset < 60 {
            let page = ix.search(&Scope::All, &Search { limit, offset, ..words("plan") }).unwrap();
            paged.extend(page.ids.iter().map(|i| i.as_u128()));
            offset += limit;
        }
        assert_eq!(paged, expected, "pages of {limit}");
    }
    // Without words every score ties: newest first, over all segments.
    let mut by_date: Vec<(i64, u128)> = expected_twice.iter().chain(&expected_once).copied().collect();
    by_date.sort_by(|a, b| b.cmp(a));
    let browse = ix.search(&Scope::All, &page(100)).unwrap();
    assert_eq!(
        browse.ids.iter().map(|i| i.as_u128()).collect::<Vec<_>>(),
        by_date.iter().map(|(_, n)| *n).collect::<Vec<_>>()
    );
    // Count only: the same total as with a page.
    assert_eq!(ix.search(&Scope::All, &Search { limit: 0, ..words("plan") }).unwrap().total, 60);
}

#[test]
fn changes_replace_and_remove_and_applying_twice_is_harmless() {
    let ix = Index::in_memory().unwrap();
    let c = Uuid::from_u128(1000);
    let r = record(1, c, "oud", 1);
    ix.apply(&[Change::Upsert(r.clone()), Change::Upsert(r.clone())], "1").unwrap();
    ix.apply(&[Change::Upsert(r.clone())], "2").unwrap();
    assert_eq!(ix.len(), 1);
    let renamed = Record { title: "nieuw".into(), client_id: Uuid::from_u128(2000), ..r };
    ix.apply(&[Change::Upsert(renamed)], "3").unwrap();
    assert!(ix.search(&Scope::All, &words("oud")).unwrap().ids.is_empty());
    assert_eq!(
        ix.search(&Scope::Clients(vec![c]), &page(10)).unwrap().total,
        0,
        "reassigned: gone from the old client"
    );
    assert_eq!(ix.search(&Scope::All, &words("nieuw")).unwrap().total, 1);
    ix.apply(&[Change::Remove(Uuid::from_u128(1)), Change::Remove(Uuid::from_u128(1))], "4").unwrap();
    assert!(ix.is_empty());
    assert_eq!(ix.cursor().unwrap().as_deref(), Some("4"));
}

#[test]
fn the_cursor_survives_a_restart_and_a_broken_directory_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    {
        let (ix, opened) = Index::open(&path).unwrap();
        assert_eq!(opened, Opened::Rebuilt, "nothing there yet");
        ix.apply(&[Change::Upsert(record(1, Uuid::from_u128(9), "besluit", 1))], "42").unwrap();
    }
    {
        let (ix, opened) = Index::open(&path).unwrap();
        assert_eq!(opened, Opened::Existing { cursor: Some("42".into()) });
        assert_eq!(ix.search(&Scope::All, &words("besluit")).unwrap().total, 1);
    }
    // Corrupt: the metadata file overwritten with junk.
    std::fs::write(path.join("meta.json"), b"{ not json").unwrap();
    let (ix, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Rebuilt);
    assert!(ix.is_empty());
    drop(ix);
    // Deleted altogether.
    std::fs::remove_dir_all(&path).unwrap();
    assert_eq!(Index::open(&path).unwrap().1, Opened::Rebuilt);
}

/// The files of the index's segments (32 hex digits, a dot, an extension).
fn segment_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_stem().is_some_and(|s| s.len() == 32))
        .collect();
    files.sort();
    files
}

fn one_committed_document(path: &std::path::Path) {
    let (ix, _) = Index::open(path).unwrap();
    ix.apply(&[Change::Upsert(record(1, Uuid::from_u128(9), "besluit", 1))], "7").unwrap();
}

#[test]
fn a_missing_or_damaged_segment_file_is_rebuilt_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index");
    one_committed_document(&path);
    let files = segment_files(&path);
    assert!(!files.is_empty(), "a commit writes segment files");
    // One segment file gone, the metadata intact; and the temporary file
    // of an atomic write a crash interrupted (tantivy names it `.tmp` and
    // six random characters): tantivy's too, so cleared, not refused.
    std::fs::remove_file(&files[0]).unwrap();
    std::fs::write(path.join(".tmp2Qkim1"), b"").unwrap();
    let (ix, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Rebuilt);
    assert!(ix.is_empty());
    assert!(!path.join(".tmp2Qkim1").exists());
    drop(ix);
    // One byte flipped in every segment file: the checksums catch it.
    one_committed_document(&path);
    for f in segment_files(&path) {
        let mut bytes = std::fs::read(&f).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x55;
        std::fs::write(&f, bytes).unwrap();
    }
    let (ix, opened) = Index::open(&path).unwrap();
    assert_eq!(opened, Opened::Rebuilt);
    assert!(ix.is_empty());
    ix.apply(&[Change::Upsert(record(2, Uuid::from_u128(9), "besluit", 1))], "8").unwrap();
    assert_eq!(ix.search(&Scope::All, &words("besluit")).unwrap().total, 1, "usable again");
}

#[test]
fn an_index_not_sorted_by_upload_is_rebuilt() {
    // Our schema without the sort (as an older Kluis wrote it): a page
    // would be wrong on it, so it is not trusted.
    let dir = tempfile::tempdir().unwrap();
    drop(tantivy::Index::create_in_dir(dir.path(), schema().0).unwrap());
    let (ix, opened) = Index::open(dir.path()).unwrap();
    assert_eq!(opened, Opened::Rebuilt);
    drop(ix);
    let (_, opened) = Index::open(dir.path()).unwrap();
    assert_eq!(opened, Opened::Existing { cursor: None }, "the new one is kept");
}

#[test]
fn a_directory_in_use_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (ix, _) = Index::open(dir.path()).unwrap();
    ix.apply(&[Change::Upsert(record(1, Uuid::from_u128(9), "besluit", 1))], "7").unwrap();
    // Even with its metadata unreadable, a second opener must not clear it.
    let meta = std::fs::read(dir.path().join("meta.json")).unwrap();
    std::fs::write(dir.path().join("meta.json"), b"{ not json").unwrap();
    match Index::open(dir.path()) {
        Err(e) => assert!(e.is_locked(), "expected a lock refusal, got {e}"),
        Ok(_) => panic!("a second opener got the directory"),
    }
    assert!(!segment_files(dir.path()).is_empty(), "nothing was cleared");
    std::fs::write(dir.path().join("meta.json"), meta).unwrap();
    drop(ix);
    let (ix, opened) = Index::open(dir.path()).unwrap();
    assert_eq!(opened, Opened::Existing { cursor: Some("7".into()) });
    assert_eq!(ix.len(), 1);
}

#[test]
fn a_directory_with_other_files_is_never_cleared() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kluis.db"), b"precious").unwrap();
    std::fs::write(dir.path().join("meta.json"), b"{ not json").unwrap();
    match Index::open(dir.path()) {
        Err(IndexError::ForeignFiles { file, .. }) => assert_eq!(file, "kluis.db"),
        other => panic!("expected a refusal, got {:?}", other.map(|(_, o)| o)),
    }
    assert_eq!(std::fs::read(dir.path().join("kluis.db")).unwrap(), b"precious");
}

#[test]
fn a_rebuild_replaces_everything_in_one_commit_or_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ix, _) = Index::open_bulk(dir.path()).unwrap();
    let c = Uuid::from_u128(7);
    ix.apply(&[Change::Upsert(record(1, c, "oud besluit", 1))], "old").unwrap();
    // A failing source leaves the index as it was.
    let failing = (10..20u128)
        .map(|n| Ok(record(n, c, "nieuw", n as i64)))
        .chain(std::iter::once(Err(IndexError::Source("connection reset".into()))));
    assert!(matches!(ix.rebuild(failing, "new"), Err(IndexError::Source(_))));
    assert_eq!(ix.cursor().unwrap().as_deref(), Some("old"));
    assert_eq!(ix.search(&Scope::All, &page(100)).unwrap().ids, vec![Uuid::from_u128(1)]);
    // A complete one replaces it, cursor included.
    let n = ix.rebuild((10..20u128).map(|n| Ok(record(n, c, "nieuw", n as i64))), "new").unwrap();
    assert_eq!(n, 10);
    assert_eq!(ix.cursor().unwrap().as_deref(), Some("new"));
    assert_eq!(ix.search(&Scope::All, &words("besluit")).unwrap().total, 0);
    assert_eq!(ix.search(&Scope::All, &words("nieuw")).unwrap().total, 10);
    // The writer still works afterwards.
    ix.apply(&[Change::Remove(Uuid::from_u128(10))], "newer").unwrap();
    assert_eq!(ix.len(), 9);
}

const VOCABULARY: [&str; 5] = ["rapport", "brief", "intake", "verslag", "besluit"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Random documents over random clients: every hit is in the scope and
    /// matches, and `total` is exactly the number of matches in the scope.
    #[test]
    fn hits_and_totals_agree_with_a_brute_force_model(
        docs in proptest::collection::vec((0u128..12, proptest::collection::vec(0usize..5, 1..3), any::<bool>(), any::<bool>()), 0..60),
        scope in proptest::option::of(proptest::collection::vec(0u128..12, 0..6)),
        caseload in proptest::option::of(proptest::collection::vec(0u128..3, 0..3)),
        word in proptest::option::of(0usize..5),
        closed_only in any::<bool>(),
        limit in 1usize..20,
        offset in 0usize..30,
    ) {
        let ix = Index::in_memory().unwrap();
        let mut records = Vec::new();
        for (n, (client, title, plan, closed)) in docs.iter().enumerate() {
            let title: Vec<&str> = title.iter().map(|w| VOCABULARY[*w]).collect();
            let mut r = record(n as u128, Uuid::from_u128(1000 + client), &title.join(" "), n as i64);
            if *plan { r.doc_type = "work_plan".into(); }
            if *closed { r.status = Status::Closed; }
            // The coach the index knows: client number mod 3 (mod 4 for odd
            // documents, as if a reassignment had not been applied yet).
            r.coach_id = Some(Uuid::from_u128(client % if n % 2 == 0 { 3 } else { 4 }));
            records.push(r);
        }
        ix.apply(&records.iter().cloned().map(Change::Upsert).collect::<Vec<_>>(), "x").unwrap();
        let scope = match &scope {
            None => Scope::All,
            Some(cs) => {
                let clients = cs.iter().map(|c| Uuid::from_u128(1000 + c)).collect();
                match &caseload {
                    None => Scope::Clients(clients),
                    Some(coaches) => Scope::Caseload { coaches: coaches.iter().map(|c| Uuid::from_u128(*c)).collect(), clients },
                }
            }
        };
        let search = Search {
            text: word.map(|w| VOCABULARY[w].to_string()),
            status: closed_only.then_some(Status::Closed),
            limit,
            offset,
            ..Search::default()
        };
        let hits = ix.search(&scope, &search).unwrap();
        let allowed: Vec<&Record> = records.iter().filter(|r| {
            let in_scope = match &scope {
                Scope::All => true,
                Scope::Clients(cs) => cs.contains(&r.client_id),
                Scope::Caseload { coaches, clients } => {
                    clients.contains(&r.client_id) && r.coach_id.is_some_and(|c| coaches.contains(&c))
                }
            };
            let text = word.is_none_or(|w| r.title.split(' ').any(|t| t == VOCABULARY[w]));
            in_scope && text && (!closed_only || r.status == Status::Closed)
        }).collect();
        prop_assert_eq!(hits.total, allowed.len());
        prop_assert_eq!(hits.ids.len(), allowed.len().saturating_sub(offset).min(limit));
        for id in &hits.ids {
            prop_assert!(allowed.iter().any(|r| r.id == *id), "hit {} not allowed", id);
        }
    }
}

#[test]
fn the_cached_stemmer_stems_as_the_plain_one_first_time_and_again() {
    use tantivy::tokenizer::*;
    let mut plain = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::Dutch))
        .build();
    let mut cached = super::dutch();
    let tokens = |a: &mut TextAnalyzer, text: &str| {
        let mut stream = a.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push((stream.token().text.clone(), stream.token().position));
        }
        out
    };
    let text = "Rapportages van de psycholoog, rapportage; Cliënt-gesprekken en gesprek: beoordelingen beoordeling";
    let expected = tokens(&mut plain, text);
    assert!(expected.len() > 10);
    assert_eq!(tokens(&mut cached, text), expected, "first time (cache empty)");
    assert_eq!(tokens(&mut cached, text), expected, "second time (every word cached)");
    // More distinct words than the cache holds: still the same stems.
    let many: String = (0..super::STEM_CACHE + 10).map(|i| format!("woorden{i} ")).collect();
    assert_eq!(tokens(&mut cached, &many), tokens(&mut plain, &many));
}

#[test]
fn fold_lowers_and_strips_accents_keeping_the_text_whole() {
    assert_eq!(fold("Özdemir"), "ozdemir");
    assert_eq!(fold("ÇELİK-Ağaoğlu"), fold("celik-agaoglu"));
    assert_eq!(fold("van der Wal-Ærø"), "van der wal-aero");
    assert_eq!(fold("Strauß"), "strauss");
    assert_eq!(fold("Zoe\u{308}"), "zoe", "a decomposed accent goes too");
    assert_eq!(fold("100% _x\\"), "100% _x\\", "wildcards and escapes pass through as they are");
    assert_eq!(fold(""), "");
}

//! Search against real backends (SQLite + files, PostgreSQL + SeaweedFS):
//! the index follows the catalog through the change log without missing a
//! change, even when transactions commit out of order, rebuilds itself when
//! it cannot follow, and answers only within the caller's scope.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::Backend;
use uuid::Uuid;
use vault::domain::{Commissioner, Role};
use vault::search::Step;
use vault::service::{
    AuditQuery, Caller, ErrorCode, NewClient, NewSubstitution, SearchQuery, SetCoach, UploadAbort, UploadFields,
};
use vault::{Vault, VaultConfig};
use vault_support::{config, signed_in};

/// A vault with a fresh index in memory, followed to the log's end.
async fn open(b: &Backend) -> (Vault, Arc<indexer::Index>) {
    let index = Arc::new(indexer::Index::in_memory().unwrap());
    let v = Vault::open(&config(b)).await.unwrap_or_else(|e| panic!("open vault on {}: {e}", b.name));
    let v = v.with_index(index.clone());
    settle(&v).await;
    (v, index)
}

/// Run follower steps until one finds nothing it may read although
/// committed rows wait (behind a running transaction).
async fn held_back(v: &Vault) {
    for _ in 0..1000 {
        match v.search_step().await.unwrap() {
            Step::HeldBack => return,
            Step::Idle => panic!("idle although a committed change waits"),
            _ => {}
        }
    }
    panic!("the follower never stopped");
}

/// Run follower steps until the index has applied the whole log. On
/// PostgreSQL a transaction running elsewhere in the cluster (another
/// test's database) holds the horizon back for a moment: wait it out.
async fn settle(v: &Vault) {
    for _ in 0..2000 {
        match v.search_step().await.unwrap() {
            // A row may have committed since the step's snapshot.
            Step::Idle if v.search_backlog().await.unwrap().is_some_and(|b| b.rows > 0) => {}
            Step::Idle => return,
            Step::HeldBack => tokio::time::sleep(Duration::from_millis(10)).await,
            _ => {}
        }
    }
    panic!("the follower never caught up");
}

fn new_client(first: &str, last: &str) -> NewClient {
    serde_json::from_value(serde_json::json!({
        "first_name": first, "initials": "J.", "last_name": last, "birth_date": "1980-02-03",
        "commissioner": Commissioner::Uwv,
    }))
    .unwrap()
}

async fn upload(v: &Vault, by: &Caller, client: Uuid, doc_type: &str, title: &str) -> Uuid {
    let fields = UploadFields {
        doc_type: Some(doc_type.into()),
        title: Some(title.into()),
        filename: Some("verslag.txt".into()),
        ..Default::default()
    };
    let mut permit = v.authorize_upload(by, client).await.unwrap();
    v.upload_fields(&mut permit, fields).await.unwrap();
    let body = futures::stream::iter([Ok::<_, UploadAbort>(Bytes::from_static(b"Een verslag van het gesprek.\n"))]);
    v.store_upload(permit, "verslag.txt".into(), "text/plain; charset=utf-8", body).await.unwrap().id
}

fn words(q: &str) -> SearchQuery {
    SearchQuery { q: Some(q.into()), limit: Some(100), ..Default::default() }
}

/// The ids found, in order, and the total.
async fn found(v: &Vault, by: &Caller, q: SearchQuery) -> (Vec<Uuid>, u64) {
    let r = v.search(by, q).await.unwrap_or_else(|e| panic!("search as {:?}: {e}", by.role()));
    assert!(r.hits.len() as u64 <= r.total);
    (r.hits.iter().map(|h| h.document.id).collect(), r.total)
}

// ---------------------------------------------------------------------------

async fn follows_the_catalog(b: Backend) {
    let (v, index) = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Zoë", "Jansen")).await.unwrap();
    let plan = upload(&v, &anna, c.id, "work_plan", "Trajectplan re-integratie").await;
    let report = upload(&v, &anna, c.id, "psych_report", "Rapportages psycholoog").await;
    // Not in the index yet: the follower has not run.
    assert_eq!(index.len(), 0);
    settle(&v).await;
    assert_eq!(index.len(), 2);
    assert_eq!(found(&v, &anna, words("rapportage")).await, (vec![report], 1), "Dutch stemming");
    assert_eq!(found(&v, &anna, words("zoe jansen")).await.1, 2, "the client's name, accents folded");
    let hit = v.search(&anna, words("trajectplan")).await.unwrap().hits.remove(0);
    assert_eq!((hit.document.id, hit.client_name.as_str()), (plan, "Zoë Jansen"));
    assert_eq!(hit.document.title.as_deref(), Some("Trajectplan re-integratie"));
    let typed = SearchQuery { doc_type: Some(vault::domain::DocumentType::WorkPlan), ..words("jansen") };
    assert_eq!(found(&v, &anna, typed).await, (vec![plan], 1));

    // The trajectory closes: the documents move to the archive.
    v.close_trajectory(&anna, c.id, serde_json::from_value(serde_json::json!({})).unwrap()).await.unwrap();
    settle(&v).await;
    let closed = SearchQuery { status: Some(vault::catalog::ClientStatus::Closed), ..words("jansen") };
    assert_eq!(found(&v, &anna, closed).await.1, 2);
    let active = SearchQuery { status: Some(vault::catalog::ClientStatus::Active), ..words("jansen") };
    assert_eq!(found(&v, &anna, active).await.1, 0);

    // Destroyed: gone from the answers at once (the catalog decides), and
    // from the index after the next step.
    v.destroy_document(report, "retention").await.unwrap();
    assert_eq!(found(&v, &anna, words("jansen")).await, (vec![plan], 1), "the stale hit is left out, and out of total");
    settle(&v).await;
    assert_eq!(index.len(), 1);

    // Any change to a shown field is logged, whoever makes it (here: SQL).
    let mut tx = v.catalog_for_tests().begin(0).await.unwrap();
    tx.execute_raw_for_tests(&format!("UPDATE documents SET title = 'Besluit UWV' WHERE id = '{plan}'")).await.unwrap();
    tx.commit().await.unwrap();
    settle(&v).await;
    assert_eq!(found(&v, &anna, words("besluit")).await, (vec![plan], 1));
    assert_eq!(found(&v, &anna, words("trajectplan")).await.1, 0);

    // The search is audited: who, how many; never the words.
    let q = AuditQuery { action: Some("document.search".into()), limit: Some(100), ..Default::default() };
    let events = v.audit_events(&anna, q).await.unwrap();
    assert!(events.len() >= 8);
    assert_eq!((events[0].outcome.as_str(), events[0].actor_id), ("allowed", Some(anna.id())));
    assert_eq!(events[0].details["hits"], 0);
    assert!(events.iter().all(|e| !e.details.to_string().contains("besluit")), "the words searched are not logged");
}
on_both_backends!(the_index_follows_uploads_closing_destruction_and_any_sql_change, follows_the_catalog);

async fn scopes(b: Backend) {
    let (v, _) = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let olga = signed_in(&v, "olga", Role::Office).await;
    let adam = signed_in(&v, "adam", Role::Administration).await;
    let carla = signed_in(&v, "carla", Role::Coach).await;
    let sem = signed_in(&v, "sem", Role::FreelanceCoach).await;
    let dirk = signed_in(&v, "dirk", Role::Coach).await;
    let mut docs = std::collections::HashMap::new();
    for (name, coach) in [("Eigen", &carla), ("Collega", &dirk), ("Archief", &carla), ("Beperkt", &carla)] {
        let c = v.create_client(&anna, new_client("Jan", name)).await.unwrap();
        v.assign_coach(&anna, c.id, SetCoach { coach_id: coach.id() }).await.unwrap();
        docs.insert(name, (c.id, upload(&v, &anna, c.id, "progress_report", "Voortgangsverslag").await));
    }
    v.close_trajectory(&anna, docs["Archief"].0, serde_json::from_value(serde_json::json!({})).unwrap()).await.unwrap();
    let restrict = serde_json::from_value(serde_json::json!({ "restricted": true, "reason": "bezwaar" })).unwrap();
    v.set_restriction(&anna, docs["Beperkt"].0, restrict).await.unwrap();
    settle(&v).await;
    let ids = |names: &[&str]| {
        let mut v: Vec<Uuid> = names.iter().map(|n| docs[n].1).collect();
        v.sort();
        v
    };
    let sees = |by: Caller| {
        let v = &v;
        async move {
            let (mut got, total) = found(v, &by, words("voortgangsverslag")).await;
            got.sort();
            assert_eq!(got.len() as u64, total, "total counts exactly what is shown");
            got
        }
    };
    // Management and office: every client, the archive and the restricted
    // client included (metadata only; opening stays decided per purpose).
    let everything = ids(&["Eigen", "Collega", "Archief", "Beperkt"]);
    assert_eq!(sees(anna.clone()).await, everything);
    assert_eq!(sees(olga.clone()).await, everything);
    // Administration never sees documents: 403, audited.
    assert_eq!(v.search(&adam, words("voortgangsverslag")).await.unwrap_err().code, ErrorCode::Forbidden);
    let q = AuditQuery { action: Some("document.search".into()), limit: Some(1), ..Default::default() };
    let refused = v.audit_events(&anna, q).await.unwrap().remove(0);
    assert_eq!((refused.actor_id, refused.outcome.as_str()), (Some(adam.id()), "denied"));
    // A coach: the own active caseload (restricted included, as in the
    // document list), never a colleague's client or the archive.
    assert_eq!(sees(carla.clone()).await, ids(&["Eigen", "Beperkt"]));
    assert_eq!(sees(dirk.clone()).await, ids(&["Collega"]));
    assert_eq!(sees(sem.clone()).await, Vec::<Uuid>::new());
    // Asking for a client outside the scope by id finds nothing, and says nothing.
    let other = SearchQuery { client_id: Some(docs["Collega"].0), ..words("voortgangsverslag") };
    assert_eq!(found(&v, &carla, other).await, (vec![], 0));
    // A substitution: Sem stands in for Dirk, and sees Dirk's clients while it runs.
    let now = chrono::Utc::now();
    let sub = NewSubstitution {
        absent_coach_id: dirk.id(),
        substitute_id: sem.id(),
        from: now - chrono::Duration::hours(1),
        until: now + chrono::Duration::hours(1),
        reason: vault::domain::SubstitutionReason::Vacation,
    };
    let s = v.register_substitution(&anna, sub).await.unwrap();
    assert_eq!(sees(sem.clone()).await, ids(&["Collega"]));
    v.end_substitution(&anna, s.id).await.unwrap();
    assert_eq!(sees(sem.clone()).await, Vec::<Uuid>::new(), "access ends with the substitution");
    // Reassignment: the old coach loses the client at once (the exact
    // scope comes from the catalog), the new one finds it once the index
    // has applied the change (within the follower's next step).
    v.assign_coach(&anna, docs["Eigen"].0, SetCoach { coach_id: dirk.id() }).await.unwrap();
    assert_eq!(sees(carla.clone()).await, ids(&["Beperkt"]));
    settle(&v).await;
    assert_eq!(sees(dirk.clone()).await, ids(&["Eigen", "Collega"]));
    assert_eq!(sees(carla.clone()).await, ids(&["Beperkt"]));
}
on_both_backends!(search_answers_within_each_roles_scope, scopes);

async fn out_of_order(b: Backend) {
    let (v, index) = open(&b).await;
    let v = Arc::new(v);
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jan", "Jansen")).await.unwrap();
    let first = upload(&v, &anna, c.id, "intake", "Intake").await;
    let second = upload(&v, &anna, c.id, "intake", "Intake").await;
    settle(&v).await;
    let retitle = |id: Uuid, title: &str| format!("UPDATE documents SET title = '{title}' WHERE id = '{id}'");
    if v.catalog_for_tests().backend() == vault::catalog::Backend::Postgres {
        // T1 takes its log row (and its xid) first but commits last.
        let mut t1 = v.catalog_for_tests().begin(0).await.unwrap();
        t1.execute_raw_for_tests(&retitle(first, "eerste")).await.unwrap();
        let mut t2 = v.catalog_for_tests().begin(0).await.unwrap();
        t2.execute_raw_for_tests(&retitle(second, "tweede")).await.unwrap();
        t2.commit().await.unwrap();
        // T2's row is committed, but T1 is still running: the follower
        // must not move past T1's position, so it does not take T2's yet.
        held_back(&v).await;
        assert_eq!(v.search(&anna, words("tweede")).await.unwrap().total, 0, "held behind the running T1");
        let backlog = v.search_backlog().await.unwrap().expect("built");
        assert!(backlog.rows >= 1, "the held-back change is reported as waiting: {backlog:?}");
        t1.commit().await.unwrap();
        settle(&v).await;
        let found_first = v.search(&anna, words("eerste")).await.unwrap();
        assert_eq!(found_first.total, 1, "the change of the transaction that committed last was not lost");
        assert_eq!(v.search(&anna, words("tweede")).await.unwrap().total, 1);
    }
    // Many writers at once, committing in random order, while the follower
    // runs: at the end the index holds exactly the catalog.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = {
        let (v, stop) = (v.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                v.search_step().await.unwrap();
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
        })
    };
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let (v, anna, c) = (v.clone(), anna.clone(), c.id);
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..8u64 {
                let id = upload(&v, &anna, c, "correspondence", &format!("brief w{w}n{n}")).await;
                // Held open a random while, so commits overtake each other.
                let mut tx = v.catalog_for_tests().begin(0).await.unwrap();
                tx.execute_raw_for_tests(&format!("UPDATE documents SET title = 'brief x{w}y{n}' WHERE id = '{id}'"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis((w * 7 + n * 13) % 20)).await;
                tx.commit().await.unwrap();
                mine.push((id, format!("x{w}y{n}")));
            }
            mine
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    follower.await.unwrap();
    settle(&v).await;
    assert_eq!(index.len(), 2 + written.len() as u64);
    for (id, word) in &written {
        assert_eq!(found(&v, &anna, words(word)).await, (vec![*id], 1), "{word}");
    }
    assert_eq!(found(&v, &anna, words("brief")).await.1, written.len() as u64);
}
on_both_backends!(concurrent_writers_committing_out_of_order_lose_no_change, out_of_order);

/// A vault on `cfg` with the index in `path` (not followed yet).
async fn open_indexed(cfg: &VaultConfig, path: &std::path::Path) -> (Vault, Arc<indexer::Index>) {
    let (ix, _) = indexer::Index::open(path).unwrap();
    let ix = Arc::new(ix);
    (Vault::open(cfg).await.unwrap().with_index(ix.clone()), ix)
}

/// Close the vault's database connections and drop it with its index.
async fn close(v: Vault, ix: Arc<indexer::Index>) {
    v.catalog_for_tests().close().await;
    drop((v, ix));
}

async fn rebuilds(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let open_at = |path: std::path::PathBuf| {
        let cfg = config(&b);
        async move { open_indexed(&cfg, &path).await }
    };
    let (v, ix) = open_at(dir.path().join("index")).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jan", "Jansen")).await.unwrap();
    // A new index has no cursor: search answers 503 until the first step.
    assert_eq!(v.search(&anna, words("intake")).await.unwrap_err().code, ErrorCode::SearchUnavailable);
    let id = upload(&v, &anna, c.id, "intake", "Intake").await;
    assert!(matches!(v.search_step().await.unwrap(), Step::Rebuilt(1)));
    settle(&v).await;
    assert_eq!(found(&v, &anna, words("intake")).await, (vec![id], 1));
    drop((v, ix));

    // A restart continues from the cursor: nothing to do.
    let (v, ix) = open_at(dir.path().join("index")).await;
    assert_eq!(v.search_step().await.unwrap(), Step::Idle);
    let later = upload(&v, &anna, c.id, "intake", "Intake").await;
    assert_eq!(v.search_step().await.unwrap(), Step::Applied(1));
    drop((v, ix));

    // The index directory is lost: rebuilt from the catalog, not an error.
    std::fs::remove_dir_all(dir.path().join("index")).unwrap();
    let (v, ix) = open_at(dir.path().join("index")).await;
    assert!(matches!(v.search_step().await.unwrap(), Step::Rebuilt(2)));
    assert_eq!(found(&v, &anna, words("intake")).await.1, 2);

    // The log is pruned past a node that was away: it rebuilds too.
    let mut tx = v.catalog_for_tests().begin(0).await.unwrap();
    tx.execute_raw_for_tests(&format!("UPDATE documents SET title = 'Oud' WHERE id = '{later}'")).await.unwrap();
    tx.commit().await.unwrap();
    assert!(v.prune_search_log(Duration::ZERO).await.unwrap() >= 1, "the log is pruned");
    assert!(matches!(v.search_step().await.unwrap(), Step::Rebuilt(2)), "the pruned change must not be skipped");
    assert_eq!(found(&v, &anna, words("oud")).await, (vec![later], 1));
    assert_eq!(v.search_step().await.unwrap(), Step::Idle);
    drop(ix);
}
on_both_backends!(a_lost_index_or_a_pruned_log_means_a_rebuild_never_a_gap, rebuilds);

/// A copy of the database as it is now (the vault closed): the SQLite files,
/// or a PostgreSQL database made from it as a template. Restoring gives a
/// config on a database in that state.
struct Backup {
    sqlite: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pg_template: Option<String>,
}

async fn pg_admin(_: &Backend) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&std::env::var("KLUIS_TEST_DATABASE_URL").unwrap()).await.unwrap()
}

async fn pg_copy(b: &Backend, from: &str, to: &str) {
    let mut admin = pg_admin(b).await;
    // The closed pool's server processes may take a moment to go.
    for attempt in 0.. {
        let sql = format!("CREATE DATABASE {to} TEMPLATE {from}");
        match sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await {
            Ok(_) => return,
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("CREATE DATABASE {to} TEMPLATE {from}: {e}"),
        }
    }
}

impl Backup {
    async fn take(b: &Backend) -> Backup {
        if b.is_s3() {
            let db = b.database_url.rsplit('/').next().unwrap().to_string();
            let copy = format!("{db}_backup");
            pg_copy(b, &db, &copy).await;
            return Backup { sqlite: None, pg_template: Some(copy) };
        }
        let db = b.dir.path().join("kluis.db");
        let copy = b.dir.path().join("backup");
        std::fs::create_dir_all(&copy).unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let from = db.with_file_name(format!("kluis.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, copy.join(format!("kluis.db{suffix}"))).unwrap();
            }
        }
        Backup { sqlite: Some((db, copy)), pg_template: None }
    }

    async fn restore(&self, b: &Backend) -> VaultConfig {
        if let Some(template) = &self.pg_template {
            let restored = template.replace("_backup", "_restored");
            pg_copy(b, template, &restored).await;
            let (base, _) = b.database_url.rsplit_once('/').unwrap();
            return VaultConfig { database_url: format!("{base}/{restored}"), ..config(b) };
        }
        let (db, copy) = self.sqlite.as_ref().unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let to = db.with_file_name(format!("kluis.db{suffix}"));
            let _ = std::fs::remove_file(&to);
            let from = copy.join(format!("kluis.db{suffix}"));
            if from.exists() {
                std::fs::copy(&from, &to).unwrap();
            }
        }
        config(b)
    }
}

async fn restores(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let index = dir.path().join("index");
    let (v, ix) = open_indexed(&config(&b), &index).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jan", "Jansen")).await.unwrap();
    let kept = upload(&v, &anna, c.id, "intake", "Intake bewaard").await;
    settle(&v).await;
    close(v, ix).await;
    let backup = Backup::take(&b).await;

    // After the backup: three documents, indexed.
    let (v, ix) = open_indexed(&config(&b), &index).await;
    for _ in 0..3 {
        upload(&v, &anna, c.id, "intake", "Intake verloren").await;
    }
    settle(&v).await;
    assert_eq!(found(&v, &anna, words("verloren")).await.1, 3);
    close(v, ix).await;

    // The backup is restored; before this node's follower runs, more is
    // written than the three lost documents (the log's head passes the
    // index's cursor, so "the index is ahead of the log" cannot tell).
    let cfg = backup.restore(&b).await;
    let (v, ix) = open_indexed(&cfg, &index).await;
    let mut new = Vec::new();
    for _ in 0..6 {
        new.push(upload(&v, &anna, c.id, "intake", "Intake nieuw").await);
    }
    assert!(matches!(v.search_step().await.unwrap(), Step::Rebuilt(7)), "the restore must be noticed");
    settle(&v).await;
    assert_eq!(found(&v, &anna, words("verloren")).await, (vec![], 0), "documents the database lost are gone");
    assert_eq!(found(&v, &anna, words("bewaard")).await, (vec![kept], 1));
    let (mut hits, total) = found(&v, &anna, words("nieuw")).await;
    hits.sort();
    new.sort();
    assert_eq!((hits, total), (new, 6), "every document written after the restore is found");
    assert_eq!(ix.len(), 7);
    close(v, ix).await;

    if b.is_s3() {
        // A logical restore (pg_dump) into another cluster keeps the old
        // transaction ids in the log; here they are made larger than any
        // this cluster has handed out. Opening renumbers the log and gives
        // it a new id: the index rebuilds, and new rows are not sorted
        // before the old ones and skipped.
        let mut conn = {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&cfg.database_url).await.unwrap()
        };
        sqlx::query("UPDATE search_log SET xid = xid + 1000000000000").execute(&mut conn).await.unwrap();
        drop(conn);
        let (v, ix) = open_indexed(&cfg, &index).await;
        let later = upload(&v, &anna, c.id, "intake", "Intake daarna").await;
        assert!(matches!(v.search_step().await.unwrap(), Step::Rebuilt(8)));
        settle(&v).await;
        assert_eq!(found(&v, &anna, words("daarna")).await, (vec![later], 1));
        let more = upload(&v, &anna, c.id, "intake", "Intake nadien").await;
        settle(&v).await;
        assert_eq!(found(&v, &anna, words("nadien")).await, (vec![more], 1), "rows after the renumbering are read");
        close(v, ix).await;
    }
}
on_both_backends!(a_restored_database_is_noticed_and_the_index_rebuilt, restores);

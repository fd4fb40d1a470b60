//! Search benchmark (issue 8; see BENCHMARKS.md and `bench/search`).
//!
//! ```text
//! search_bench --kluis target/release/kluis --dir /tmp/sb [--docs 1000000] [--clients 20000]
//!              [--coaches 50] [--runs 300] [--reindex-runs 3] [--database-url URL] [--storage-url URL]
//! ```
//!
//! 1. Seeds a catalog: users (office, 50 coaches) through the vault, then
//!    clients (a tenth of them closed) and active documents with Dutch
//!    titles by bulk SQL (the bytes are not needed: search reads metadata).
//! 2. `kluis reindex`: wall time, records per second (catalog read
//!    included), the index's size on disk.
//! 3. `kluis serve`: a coach (~400 clients) and office (all) search a
//!    one-word and a two-word query through HTTP, with the audit event
//!    written, `--runs` times each after a warm-up: p50/p99 from the client.
//!    The baseline, side by side: the same search as SQL `LIKE` on the
//!    catalog (count and first page), run in-process without HTTP or audit.
//! 4. Visibility: the time from an upload's 201 to its first search hit, on
//!    the same node, and (PostgreSQL only) on a second node with its own
//!    index.
//!
//! Prints one JSON object per measurement, then a summary.
//!
//! With `--seed-only` it stops after step 2 and prints one JSON object
//! (`"phase": "seeded"`): the environment `kluis serve` needs for this
//! catalog and index, the users' names, roles and TOTP secrets (one
//! password for all), and a client of coach0 with its document count.
//! `bench/ui` measures the web pages on it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;
use vault::domain::Role;
use vault::service::{By, NewUser};

mod common;
use common::{arg, percentile_ms};

const PASSWORD: &str = "benchmark password 1234";

fn percentiles(mut v: Vec<Duration>) -> Value {
    v.sort();
    json!({ "n": v.len(), "p50_ms": percentile_ms(&v, 0.5), "p99_ms": percentile_ms(&v, 0.99),
            "max_ms": percentile_ms(&v, 1.0) })
}

/// A small deterministic generator (xorshift), so every run seeds the same data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Jan", "Anna", "Piet", "Sanne", "Mohamed", "Fatima", "Kees", "Lotte", "Daan", "Emma", "Sem", "Zoë", "Bram", "Noor",
    "Ahmed", "Iris", "Thijs", "Julia", "Ruben", "Eva", "Youssef", "Mila", "Lars", "Sophie", "Finn",
];
const LAST: &[&str] = &[
    "Jansen",
    "de Vries",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "Yilmaz",
    "El Amrani",
    "Kaya",
    "Wijaya",
    "Nguyen",
    "van Dijk",
    "Willems",
    "Kok",
    "Jacobs",
    "de Haan",
];
const MONTHS: &[&str] = &[
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];
/// (type, titles, file stem) with realistic titles per type.
const KINDS: &[(&str, &[&str], &str)] = &[
    ("progress_report", &["Voortgangsrapportage", "Rapportage voortgang", "Tussenrapportage"], "rapportage"),
    ("psych_report", &["Psychologisch rapport", "Psychologisch onderzoek", "Rapportage psycholoog"], "psych"),
    ("fml", &["Functionele mogelijkhedenlijst", "FML na herbeoordeling"], "fml"),
    ("work_plan", &["Plan van aanpak re-integratie", "Trajectplan", "Werkplan tweede spoor"], "plan"),
    ("intake", &["Intakeverslag", "Verslag intakegesprek"], "intake"),
    ("consent", &["Toestemmingsformulier", "Toestemming gegevensuitwisseling"], "toestemming"),
    (
        "correspondence",
        &["Brief aan werkgever", "E-mail van UWV", "Uitnodiging gesprek", "Brief bedrijfsarts"],
        "brief",
    ),
    ("assignment", &["Opdrachtbevestiging UWV", "Opdracht gemeente"], "opdracht"),
    ("labour_expert_report", &["Arbeidsdeskundig rapport", "Rapport arbeidsdeskundige"], "ad-rapport"),
    ("id_copy", &["Kopie identiteitsbewijs"], "id"),
];

/// Seed clients and documents by bulk SQL; returns the coach ids in order.
async fn seed(v: &vault::Vault, docs: u64, clients: u64, coaches: &[Uuid]) -> Value {
    let started = Instant::now();
    let pg = v.catalog_for_tests().backend() == vault::catalog::Backend::Postgres;
    let blob = if pg { "'\\x00112233445566778899'::bytea" } else { "X'00112233445566778899'" };
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let now = chrono::Utc::now().timestamp_micros();
    let year = 365 * 24 * 3600 * 1_000_000i64;
    let client_ids: Vec<Uuid> =
        (0..clients).map(|i| Uuid::from_u128(0xC11E_0000_0000_0000_0000_0000_0000_0000 | i as u128)).collect();
    for chunk in client_ids.chunks(1000) {
        let mut tx = v.catalog_for_tests().begin(now).await.unwrap();
        let rows: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let n = id.as_u128() as u64;
                let coach = coaches[(n % coaches.len() as u64) as usize];
                let closed = n % 10 == 9;
                let _ = i;
                format!(
                    "('{id}', '{}', 'X.', '{}', '1980-01-01', 'uwv', '{coach}', '{}', {}, FALSE, {now}, {now})",
                    rng.pick(FIRST),
                    rng.pick(LAST).replace('\'', "''"),
                    if closed { "closed" } else { "active" },
                    if closed { now.to_string() } else { "NULL".into() },
                )
            })
            .collect();
        tx.execute_raw_for_tests(&format!(
            "INSERT INTO clients (id, first_name, initials, last_name, birth_date, commissioner, coach_id, status, \
             ended_at, restricted, created_at, updated_at) VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let per_statement = 1000u64;
    let mut made = 0u64;
    while made < docs {
        let mut tx = v.catalog_for_tests().begin(now).await.unwrap();
        for _ in 0..10 {
            if made >= docs {
                break;
            }
            let n = per_statement.min(docs - made);
            let rows: Vec<String> = (made..made + n)
                .map(|d| {
                    let id = Uuid::from_u128(0xD0C0_0000_0000_0000_0000_0000_0000_0000 | d as u128);
                    let client = client_ids[(rng.next() % clients) as usize];
                    let (doc_type, titles, stem) = KINDS[(rng.next() % KINDS.len() as u64) as usize];
                    let month = rng.pick(MONTHS);
                    let title = format!(
                        "{} {month} {}",
                        titles[(rng.next() % titles.len() as u64) as usize],
                        2023 + rng.next() % 4
                    );
                    let at = now - (rng.next() % (3 * year as u64)) as i64;
                    let by = coaches[(rng.next() % coaches.len() as u64) as usize];
                    format!(
                        "('{id}', '{client}', '{doc_type}', '{title}', '{stem}-{month}.pdf', 'application/pdf', 1000, \
                         'ab', 'obj-{id}', {blob}, 1, 'active', '{by}', {at}, NULL, FALSE)"
                    )
                })
                .collect();
            tx.execute_raw_for_tests(&format!(
                "INSERT INTO documents (id, client_id, doc_type, title, filename, content_type, size, sha256, \
                 object_name, wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, legal_hold) \
                 VALUES {}",
                rows.join(", ")
            ))
            .await
            .unwrap();
            made += n;
        }
        tx.commit().await.unwrap();
        if made.is_multiple_of(100_000) {
            eprintln!("seeded {made} documents ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    json!({ "phase": "seed", "documents": docs, "clients": clients, "seconds": started.elapsed().as_secs_f64() })
}

fn dir_size(p: &std::path::Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

struct Node {
    child: tokio::process::Child,
    base: String,
}

async fn serve(kluis: &str, env: &[(String, String)], index_dir: &std::path::Path, log: &std::path::Path) -> Node {
    let mut c = tokio::process::Command::new(kluis);
    c.args(["serve", "--listen", "127.0.0.1:0"])
        .envs(env.iter().cloned())
        .env("KLUIS_INDEX_DIR", index_dir)
        .env("KLUIS_METRICS", "off")
        .env("KLUIS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("spawn kluis serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next_line().await.unwrap().expect("kluis serve printed nothing");
    let base = line.trim_start_matches("kluis listening on ").to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node { child, base }
}

struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Session {
    async fn login(base: &str, username: &str, secret: &str) -> Session {
        let secret = totp_rs::Secret::try_from_base32(secret).unwrap();
        let totp = totp_rs::Builder::new().with_secret(secret).with_skew(1).build().unwrap();
        let http = reqwest::Client::new();
        let otp = totp.generate_current().to_string();
        let r: Value = http
            .post(format!("{base}/api/v1/session"))
            .json(&json!({ "username": username, "password": PASSWORD, "otp": otp }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = r["token"].as_str().unwrap_or_else(|| panic!("login {username}: {r}")).to_string();
        Session { http, base: base.into(), token }
    }

    async fn search(&self, query: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}/api/v1/search?{query}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, client: Uuid, title: &str) -> Instant {
        let form = reqwest::multipart::Form::new().text("type", "intake").text("title", title.to_string()).part(
            "file",
            reqwest::multipart::Part::bytes(b"Verslag van de intake.\n".to_vec()).file_name("intake.txt"),
        );
        let r = self
            .http
            .post(format!("{}/api/v1/clients/{client}/documents", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
        Instant::now()
    }
}

/// Until the node's index is built (503 until then).
async fn wait_ready(s: &Session) -> Duration {
    let started = Instant::now();
    loop {
        let (code, v) = s.search("q=x&limit=1").await;
        match code {
            200 => return started.elapsed(),
            503 => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => panic!("search: {code} {v}"),
        }
    }
}

/// The same search as SQL LIKE on the catalog: count, and the first page
/// by upload date.
async fn like(pool: &sqlx::AnyPool, words: &[&str], coach: Option<Uuid>) -> Duration {
    let mut cond = String::from("d.state = 'active'");
    for w in words {
        cond.push_str(&format!(
            " AND (lower(d.title) LIKE '%{w}%' OR lower(d.filename) LIKE '%{w}%' \
             OR lower(c.first_name) LIKE '%{w}%' OR lower(c.last_name) LIKE '%{w}%')"
        ));
    }
    if let Some(c) = coach {
        cond.push_str(&format!(" AND c.coach_id = '{c}' AND c.status = 'active'"));
    }
    let from = "FROM documents d JOIN clients c ON c.id = d.client_id";
    let started = Instant::now();
    let _: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) {from} WHERE {cond}")))
        .fetch_one(pool)
        .await
        .unwrap();
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT d.id, d.title, c.last_name {from} WHERE {cond} ORDER BY d.uploaded_at DESC LIMIT 20"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let kluis = arg("--kluis", Some("target/release/kluis"));
    let dir = std::path::PathBuf::from(arg("--dir", None));
    let docs: u64 = arg("--docs", Some("1000000")).parse().unwrap();
    let clients: u64 = arg("--clients", Some("20000")).parse().unwrap();
    let n_coaches: usize = arg("--coaches", Some("50")).parse().unwrap();
    let runs: usize = arg("--runs", Some("300")).parse().unwrap();
    let like_runs: usize = arg("--like-runs", Some("10")).parse().unwrap();
    let visibility_runs: usize = arg("--visibility-runs", Some("50")).parse().unwrap();
    let reindex_runs: usize = arg("--reindex-runs", Some("3")).parse().unwrap();
    let seed_only = std::env::args().any(|a| a == "--seed-only");
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = arg("--database-url", Some(&format!("sqlite://{}", dir.join("kluis.db").display()))).to_string();
    let storage_url = arg("--storage-url", Some(&format!("file://{}", dir.join("objects").display())));
    let mut env = vec![
        ("KLUIS_DATA_DIR".to_string(), dir.display().to_string()),
        ("KLUIS_DATABASE_URL".to_string(), database_url.clone()),
        ("KLUIS_STORAGE_URL".to_string(), storage_url.clone()),
    ];
    if let Ok(e) = std::env::var("KLUIS_S3_ENDPOINT") {
        env.push(("KLUIS_S3_ENDPOINT".into(), e));
    }
    let backend = if database_url.starts_with("postgres") { "postgres" } else { "sqlite" };

    // 1. Seed.
    let cfg = vault::VaultConfig {
        database_url: database_url.clone(),
        storage_url: storage_url.clone(),
        s3: vault::store::S3Settings::from_env(),
        master_key: vault::MasterKeySource::File { path: dir.join("master.key"), create_if_missing: true },
    };
    let v = vault::Vault::open(&cfg).await.expect("open vault");
    let mk = |name: String, role| NewUser {
        username: name,
        display_name: None,
        role,
        password: PASSWORD.to_string().into(),
    };
    let office = v.create_user(By::Operator, mk("office".into(), Role::Office)).await.unwrap();
    // Each login takes a TOTP code once: one user per session.
    let mut readers_users = Vec::new();
    for i in 1..=2 {
        readers_users.push(v.create_user(By::Operator, mk(format!("reader{i}"), Role::Office)).await.unwrap());
    }
    let mut coaches = Vec::new();
    for i in 0..n_coaches {
        coaches.push(v.create_user(By::Operator, mk(format!("coach{i}"), Role::Coach)).await.unwrap());
    }
    let coach_ids: Vec<Uuid> = coaches.iter().map(|c| c.id).collect();
    println!("{}", json!({ "backend": backend }).to_string() + &seed(&v, docs, clients, &coach_ids).await.to_string());
    drop(v);

    // 2. Reindex, `--reindex-runs` times from scratch (the machines are
    // noisy: the median counts); the last one's index serves the queries.
    let index_dir = dir.join("index");
    let mut walls = Vec::new();
    let mut reported = Value::Null;
    for _ in 0..reindex_runs.max(1) {
        let _ = std::fs::remove_dir_all(&index_dir);
        let started = Instant::now();
        let out = tokio::process::Command::new(&kluis)
            .arg("reindex")
            .envs(env.iter().cloned())
            .env("KLUIS_INDEX_DIR", &index_dir)
            .env("KLUIS_LOG", "warn")
            .stderr(Stdio::inherit())
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "kluis reindex failed");
        walls.push(started.elapsed());
        reported = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    }
    let per_s: Vec<f64> = walls.iter().map(|w| (docs as f64 / w.as_secs_f64()).round()).collect();
    walls.sort();
    let wall = walls[walls.len() / 2];
    println!(
        "{}",
        json!({ "phase": "reindex", "documents": reported["documents"], "runs": walls.len(),
                "median_wall_s": wall.as_secs_f64(), "median_records_per_s": (docs as f64 / wall.as_secs_f64()).round(),
                "records_per_s_each": per_s, "last_in_process": reported, "index_bytes": dir_size(&index_dir) })
    );

    if seed_only {
        // Client 0: active, coach0's, about docs / clients documents.
        let client = Uuid::from_u128(0xC11E_0000_0000_0000_0000_0000_0000_0000);
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(&database_url).await.unwrap();
        let client_docs: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM documents WHERE client_id = '{client}'"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        let user = |u: &vault::service::CreatedUser| json!({ "username": u.username, "id": u.id, "role": u.role.as_str(), "totp_secret": u.totp_secret });
        let mut env: serde_json::Map<String, Value> = env.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
        env.insert("KLUIS_INDEX_DIR".into(), index_dir.display().to_string().into());
        println!(
            "{}",
            json!({ "phase": "seeded", "documents": docs, "clients": clients, "env": env, "password": PASSWORD,
                    "users": [user(&office), user(&coaches[0])],
                    "client": { "id": client, "documents": client_docs } })
        );
        return;
    }

    // 3. Queries through HTTP, against LIKE on the catalog.
    let node = serve(&kluis, &env, &index_dir, &dir.join("serve.log")).await;
    let office_s = Session::login(&node.base, "office", &office.totp_secret).await;
    let coach_s = Session::login(&node.base, "coach0", &coaches[0].totp_secret).await;
    wait_ready(&office_s).await;
    let pool = sqlx::any::AnyPoolOptions::new().max_connections(2).connect(&database_url).await.unwrap();
    for (who, session, coach) in [("office", &office_s, None), ("coach", &coach_s, Some(coach_ids[0]))] {
        for words in [&["rapportage"][..], &["rapportage", "maart"][..]] {
            let q = format!("q={}", words.join("+"));
            let (_, first) = session.search(&q).await;
            for _ in 0..20 {
                session.search(&q).await;
            }
            let mut lat = Vec::with_capacity(runs);
            for _ in 0..runs {
                let t = Instant::now();
                let (code, _) = session.search(&q).await;
                lat.push(t.elapsed());
                assert_eq!(code, 200);
            }
            let mut base = Vec::new();
            for _ in 0..like_runs {
                base.push(like(&pool, words, coach).await);
            }
            let (ours, theirs) = (percentiles(lat), percentiles(base));
            let ratio = theirs["p50_ms"].as_f64().unwrap_or(0.0) / ours["p50_ms"].as_f64().unwrap_or(1.0).max(1e-6);
            println!(
                "{}",
                json!({ "phase": "query", "who": who, "words": words.len(), "total": first["total"],
                        "http_search": ours, "sql_like": theirs, "like_p50_over_search_p50": (ratio * 10.0).round() / 10.0 })
            );
        }
    }

    // 4. Visibility on this node (and on a second one, PostgreSQL only).
    // Written by office (client 0 is active), read by another office user.
    let client = Uuid::from_u128(0xC11E_0000_0000_0000_0000_0000_0000_0000);
    let mut readers = vec![("one node", Session::login(&node.base, "reader1", &readers_users[0].totp_secret).await)];
    let mut _second = None;
    if backend == "postgres" {
        let n2 = serve(&kluis, &env, &dir.join("index-node2"), &dir.join("serve2.log")).await;
        let s = Session::login(&n2.base, "reader2", &readers_users[1].totp_secret).await;
        let built = wait_ready(&s).await;
        println!("{}", json!({ "phase": "second node: index built at start", "seconds": built.as_secs_f64() }));
        readers.push(("two nodes", s));
        _second = Some(n2);
    }
    for (label, reader) in &readers {
        let mut lat = Vec::new();
        for i in 0..visibility_runs {
            let word = format!("zichtbaar{}x{i}", label.len());
            let done = office_s.upload(client, &format!("Intake {word}")).await;
            loop {
                let (code, v) = reader.search(&format!("q={word}")).await;
                if code == 200 && v["total"] == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(done.elapsed());
        }
        println!("{}", json!({ "phase": "visibility", "nodes": label, "upload_to_hit": percentiles(lat) }));
    }
    drop(node.child);
}

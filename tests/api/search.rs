//! `GET /api/v1/search` against the real binary: found within 2 seconds of
//! the upload, only within the caller's scope, with clear errors for bad
//! queries; a lost index is rebuilt at start; and two gateways on one
//! PostgreSQL database, written to at the same time, each see every change.

use crate::helpers::*;

/// Upload a small text document with this title; its id.
async fn upload_titled(api: &Api, client: &str, title: &str) -> String {
    let form = reqwest::multipart::Form::new()
        .text("type", "progress_report")
        .text("title", title.to_string())
        .part("file", reqwest::multipart::Part::bytes(b"Verslag.\n".to_vec()).file_name("verslag.txt"));
    let (s, v) =
        api.send(api.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    v["id"].as_str().unwrap().to_string()
}

/// Search until `done(answer)` holds, for at most `within`; the answer.
async fn search_until(api: &Api, query: &str, within: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let (s, v) = api.get(&format!("/api/v1/search?{query}")).await;
        if s == StatusCode::OK && done(&v) {
            return v;
        }
        assert!(s == StatusCode::OK || s == StatusCode::SERVICE_UNAVAILABLE, "search {query}: {s} {v}");
        if tokio::time::Instant::now() >= deadline {
            panic!("search {query} did not answer as expected within {within:?}: {s} {v}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["hits"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().to_string()).collect()
}

async fn over_http(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let adm = Api::login(&env.server, &env.user(&admin, "adam", "administration").await).await;
    let carla_user = env.user(&admin, "carla", "coach").await;
    let carla = Api::login(&env.server, &carla_user).await;
    let dirk = Api::login(&env.server, &env.user(&admin, "dirk", "coach").await).await;
    let client = env.client(&admin).await;
    let (s, v) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({ "coach_id": carla_user.id })).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // The coach uploads; within 2 seconds she finds it, as does office.
    let doc = upload_titled(&carla, &client, "Rapportages arbeidsdeskundige").await;
    let two_s = Duration::from_secs(2);
    let found = search_until(&carla, "q=rapportage", two_s, |v| v["total"] == 1).await;
    assert_eq!(ids(&found), vec![doc.clone()]);
    let hit = &found["hits"][0];
    assert_eq!((hit["client_name"].as_str(), hit["type"].as_str()), (Some("Jan Jansen"), Some("progress_report")));
    assert_eq!(hit["title"], "Rapportages arbeidsdeskundige");
    assert_eq!(hit["state"], "active");
    assert!(hit.get("bsn_masked").is_none() && !found.to_string().contains(BSN), "no BSN in a search answer");
    let (s, v) = office.get("/api/v1/search?q=jansen&type=progress_report&status=active").await;
    assert_eq!((s, ids(&v)), (StatusCode::OK, vec![doc.clone()]), "{v}");
    // Another coach finds nothing, and the total says nothing either.
    let (s, v) = dirk.get("/api/v1/search?q=rapportage").await;
    assert_eq!((s, v["total"].clone(), ids(&v)), (StatusCode::OK, json!(0), vec![]));
    let (s, v) = dirk.get(&format!("/api/v1/search?client_id={client}")).await;
    assert_eq!((s, v["total"].clone()), (StatusCode::OK, json!(0)));
    // Administration never sees documents.
    let (s, v) = adm.get("/api/v1/search?q=rapportage").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));

    // Bad queries: clear errors.
    for (query, status, code) in [
        ("limit=0", 400, "invalid_query"),
        ("limit=101", 400, "invalid_query"),
        ("limit=veel", 400, "invalid_query"),
        ("offset=9999&limit=2", 400, "invalid_query"),
        ("type=recipe", 400, "invalid_query"),
        ("status=open", 400, "invalid_query"),
        ("colour=red", 400, "invalid_query"),
        ("uploaded_from=gisteren", 400, "invalid_query"),
        ("uploaded_from=2026-02-02&uploaded_until=2026-02-01", 400, "invalid_query"),
        ("client_id=42", 400, "invalid_query"),
    ] {
        let (s, v) = office.get(&format!("/api/v1/search?{query}")).await;
        assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (status, Some(code)), "{query}: {v}");
    }
    let long = "a".repeat(201);
    let (s, v) = office.get(&format!("/api/v1/search?q={long}")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")));
    // Dates: today's upload lies within today.
    let today = chrono::Utc::now().date_naive();
    let (_, v) = office.get(&format!("/api/v1/search?uploaded_from={today}&uploaded_until={today}")).await;
    assert_eq!(ids(&v), vec![doc.clone()]);
    let (_, v) = office.get(&format!("/api/v1/search?uploaded_until={}", today.pred_opt().unwrap())).await;
    assert_eq!(v["total"], 0);

    // The trajectory closes: the coach loses it at once, office finds it in
    // the archive within 2 seconds.
    let (s, _) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = carla.get("/api/v1/search?q=rapportage").await;
    assert_eq!(v["total"], 0, "a closed trajectory is out of the coach's reach at once");
    search_until(&office, "q=rapportage&status=closed", two_s, |v| v["total"] == 1).await;

    // Searches are audited: who and how many, not the words.
    let (_, v) = admin.get("/api/v1/audit?action=document.search&limit=100").await;
    let events = v["events"].as_array().or_else(|| v.as_array()).cloned().unwrap_or_default();
    assert!(!events.is_empty(), "{v}");
    assert!(!v.to_string().contains("rapportage"), "the words searched are not in the audit log");
    assert!(events.iter().any(|e| e["outcome"] == "denied"), "the refused search of administration is audited");

    // The index is lost while the server is down: rebuilt at start.
    let Env { b, server, admin: first } = env;
    drop(server);
    std::fs::remove_dir_all(b.dir.path().join("data/index")).unwrap();
    let server = Server::start(kluis(&b), b.dir.path().join("serve2.log")).await.unwrap();
    let env = Env { b, server, admin: first };
    let office = Api::login(&env.server, &env.user(&env.admin().await, "olga2", "office").await).await;
    let v = search_until(&office, "q=rapportage", Duration::from_secs(30), |v| v["total"] == 1).await;
    assert_eq!(ids(&v), vec![doc]);
    assert!(env.server.log().contains("rebuilding it from the catalog"), "the rebuild is logged");
}
on_both_backends!(search_finds_within_two_seconds_and_only_within_scope, over_http);

/// Two gateways on one PostgreSQL database, each with its own index, and
/// writers on both at once: every document is found on both nodes within
/// 2 seconds of its upload, and nothing is missed at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_database_miss_no_change() {
    let env = start(support::services().await, &[("KLUIS_METRICS", "off")]).await;
    let mut c = kluis(&env.b);
    c.env("KLUIS_INDEX_DIR", env.b.dir.path().join("index-node2")).env("KLUIS_METRICS", "off");
    let second = Server::start(c, env.b.dir.path().join("serve-node2.log")).await.unwrap();
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let nodes = [admin.clone(), Api::login(&second, &env.admin).await];
    let mut writers = Vec::new();
    for w in 0..4usize {
        let nodes = nodes.clone();
        let client = client.clone();
        writers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..6usize {
                let word = format!("w{w}n{n}");
                // Written on one node, looked for on the other.
                let id = upload_titled(&nodes[(w + n) % 2], &client, &format!("Brief {word}")).await;
                let other = &nodes[(w + n + 1) % 2];
                let v = search_until(other, &format!("q={word}"), Duration::from_secs(2), |v| v["total"] == 1).await;
                assert_eq!(ids(&v), vec![id.clone()]);
                mine.push((id, word));
            }
            mine
        }));
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    for node in &nodes {
        let v = search_until(node, "q=brief&limit=100", Duration::from_secs(2), |v| v["total"] == written.len()).await;
        let mut got = ids(&v);
        got.sort();
        let mut want: Vec<String> = written.iter().map(|(id, _)| id.clone()).collect();
        want.sort();
        assert_eq!(got, want);
    }
}

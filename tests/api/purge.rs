//! The purge and immediate destruction (SPEC §4, issue 9) against the real
//! binary, with real seconds-short timers: destroyed when due and not
//! before, held documents kept, a lifted hold, `DELETE`, the destruction
//! list, `kluis purge` and two purging processes on one catalog.

use crate::helpers::*;

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A document's metadata as `by` sees it.
async fn doc(by: &Api, id: &str) -> Value {
    let (s, v) = by.get(&format!("/api/v1/documents/{id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

/// Wait (up to `limit`) until the document is destroyed; its tombstone.
async fn destroyed(by: &Api, id: &str, limit: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let v = doc(by, id).await;
        if v["state"] == "destroyed" && !v["object_deleted_at"].is_null() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "not destroyed within {limit:?}: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `DELETE /api/v1/documents/{id}` with a JSON body.
async fn delete(api: &Api, id: &str, body: Value) -> (StatusCode, Value) {
    api.send(api.req(reqwest::Method::DELETE, &format!("/api/v1/documents/{id}")).json(&body)).await
}

/// The `document.destroy` events of the audit log that succeeded.
async fn destroy_events(admin: &Api) -> Vec<Value> {
    let (s, v) = admin.get("/api/v1/audit?action=document.destroy&limit=1000").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "ok").cloned().collect()
}

async fn on_time(b: Backend) {
    let env = start(b, &[("KLUIS_PURGE_INTERVAL", "200ms"), ("KLUIS_METRICS", "127.0.0.1:0")]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let client = env.client(&admin).await;
    let reason = || ("retention_reason", "afspraak met de opdrachtgever".to_string());
    // Far enough ahead for a loaded machine to finish the uploads before it.
    let until = chrono::Utc::now() + chrono::Duration::seconds(8);
    let soon = ("retention_until", rfc3339(until));
    let (s, due) = upload_with(&office, &client, "intake", &[soon.clone(), reason()]).await;
    assert_eq!(s, StatusCode::CREATED, "{due}");
    let (_, held) = upload_with(&office, &client, "intake", &[soon.clone(), reason()]).await;
    let later = ("retention_until", rfc3339(chrono::Utc::now() + chrono::Duration::days(10)));
    let (_, kept) = upload_with(&office, &client, "work_plan", &[later, reason()]).await;
    let (due_id, held_id, kept_id) =
        (due["id"].as_str().unwrap(), held["id"].as_str().unwrap(), kept["id"].as_str().unwrap());
    let (s, v) =
        admin.put(&format!("/api/v1/documents/{held_id}/legal-hold"), json!({"hold": true, "reason": "klacht"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Before its date nothing is destroyed, whatever the purge does meanwhile.
    while chrono::Utc::now() < until - chrono::Duration::milliseconds(1500) {
        assert_eq!(doc(&office, due_id).await["state"], "active", "destroyed before its date");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(office.token(due_id, "assignment").await.0, StatusCode::CREATED, "readable until its date");

    // The destruction list of the coming period: the due one, not the held one.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive().to_string();
    let (s, list) = office.get(&format!("/api/v1/retention/due?before={tomorrow}")).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let listed: Vec<&str> = list["documents"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!((listed, list["held"].as_i64()), (vec![due_id], Some(1)), "{list}");
    assert_eq!(list["documents"][0]["retention_source"], "manual");

    // After it, the purge destroys it: key, object, tombstone, event.
    let tomb = destroyed(&office, due_id, Duration::from_secs(20)).await;
    assert!(time(&tomb["destroyed_at"]) >= until, "destroyed at {} before its date {until}", tomb["destroyed_at"]);
    assert_eq!(
        (tomb["destroyed_by"].as_str(), tomb["destroy_reason"].as_str()),
        (Some("retention"), Some("retention date passed"))
    );
    assert_eq!((&tomb["title"], &tomb["filename"], &tomb["sha256"]), (&Value::Null, &Value::Null, &Value::Null));
    assert_eq!(office.token(due_id, "assignment").await.0, StatusCode::GONE);
    let events = destroy_events(&admin).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!((events[0]["document_id"].as_str(), events[0]["actor_role"].as_str()), (Some(due_id), Some("system")));
    assert_eq!(events[0]["details"]["retention_source"], "manual");

    // The held one survives its date; so does the one not yet due.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(doc(&office, held_id).await["state"], "active");
    assert_eq!(doc(&office, kept_id).await["state"], "active");
    let metrics = metrics_text(&env).await;
    assert_eq!(gauge(&metrics, "kluis_documents_held"), Some(1.0), "{metrics}");
    assert_eq!(gauge(&metrics, "kluis_documents_destroyed_total{by=\"retention\"}"), Some(1.0), "{metrics}");

    // Immediate destruction: management only, with a reason, never a held one.
    let (s, v) = delete(&office, kept_id, json!({"reason": "dubbel"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v) = delete(&admin, kept_id, json!({"reason": " "})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (s, v) = delete(&admin, held_id, json!({"reason": "dubbel"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("legal_hold")), "{v}");
    assert_eq!(doc(&office, held_id).await["state"], "active");
    let (s, v) = delete(&admin, kept_id, json!({"reason": "per abuis geüpload"})).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let v = doc(&office, kept_id).await;
    let admin_id = env.admin.id.to_string();
    assert_eq!((v["state"].as_str(), v["destroyed_by"].as_str()), (Some("destroyed"), Some(admin_id.as_str())));
    assert_eq!(v["destroy_reason"], "per abuis geüpload");
    assert!(!v["object_deleted_at"].is_null(), "the object goes at once when the store answers: {v}");
    assert_eq!(office.token(kept_id, "assignment").await.0, StatusCode::GONE);
    let (s, v) = delete(&admin, kept_id, json!({"reason": "nog eens"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::GONE, Some("gone")), "{v}");

    // Lifting the hold makes the held one due again.
    let (s, _) = admin
        .put(&format!("/api/v1/documents/{held_id}/legal-hold"), json!({"hold": false, "reason": "afgehandeld"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    destroyed(&office, held_id, Duration::from_secs(20)).await;
    let events = destroy_events(&admin).await;
    let mut ids: Vec<&str> = events.iter().map(|e| e["document_id"].as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![due_id, held_id, kept_id];
    want.sort();
    assert_eq!(ids, want, "one event per destruction");
    assert_no_leftovers(&env, 0).await;
}
on_both_backends!(the_purge_destroys_on_time_and_never_a_held_document, on_time);

async fn cli_and_two_processes(b: Backend) {
    // The server does not purge in this test: `kluis purge` does, twice at once.
    let env = start(b, &[("KLUIS_PURGE_INTERVAL", "1h")]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let n = 150;
    let mut ids = Vec::new();
    // Each due 3 s after its own upload (a loaded machine may take longer
    // than that for all of them; a date must lie in the future when sent).
    let mut until = chrono::Utc::now();
    for _ in 0..n {
        until = chrono::Utc::now() + chrono::Duration::seconds(3);
        let (s, v) = upload_with(
            &admin,
            &client,
            "correspondence",
            &[("retention_until", rfc3339(until)), ("retention_reason", "kort bewaren".into())],
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    let wait = until - chrono::Utc::now() + chrono::Duration::milliseconds(200);
    tokio::time::sleep(wait.to_std().unwrap_or_default()).await;

    // --dry-run lists them and changes nothing.
    let mut c = kluis(&env.b);
    c.args(["purge", "--dry-run"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", kluis_proc::text(&out.stderr));
    let dry: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((dry["due"].as_i64(), dry["documents"].as_array().map(Vec::len)), (Some(n), Some(n as usize)));
    assert_eq!(doc(&admin, &ids[0]).await["state"], "active");

    // Two processes purge the same due set at once: each document once.
    let purge = || {
        let mut c = kluis(&env.b);
        c.arg("purge");
        run(c)
    };
    let (a, b) = tokio::join!(purge(), purge());
    let mut destroyed_total = 0;
    for out in [&a, &b] {
        assert!(out.status.success(), "{}", kluis_proc::text(&out.stderr));
        let v: Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", kluis_proc::text(&out.stdout)));
        destroyed_total += v["destroyed"].as_i64().unwrap();
        assert_eq!(v["object_failures"], 0, "{v}");
    }
    assert_eq!(destroyed_total, n, "the two passes together destroyed each document exactly once");
    let events = destroy_events(&admin).await;
    let mut seen: Vec<&str> = events.iter().map(|e| e["document_id"].as_str().unwrap()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!((events.len(), seen.len()), (n as usize, n as usize), "one event per document");
    for id in &ids {
        let v = doc(&admin, id).await;
        assert_eq!(v["state"], "destroyed", "{v}");
        assert!(!v["object_deleted_at"].is_null(), "{v}");
    }
    let (_, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_no_leftovers(&env, 0).await;
    // A third pass finds nothing.
    let out = purge().await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["destroyed"].as_i64(), v["objects_deleted"].as_i64()), (Some(0), Some(0)), "{v}");
}
on_both_backends!(kluis_purge_and_two_purging_processes_destroy_each_document_once, cli_and_two_processes);

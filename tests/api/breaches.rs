//! The breach register (issue 11; SPEC §6) against the real binary on both
//! backends: the 72-hour clock from detection, updates as the investigation
//! goes on, the decision to notify or not, an incident's reach read from the
//! audit log, and the gauges.

use chrono::Timelike;

use crate::helpers::*;

fn hours_ago(h: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339()
}

fn breach(detected: &str) -> Value {
    json!({"detected_at": detected, "nature": "laptop van een coach gestolen", "categories": ["identification", "health"],
           "data_subjects_estimate": 12, "records_estimate": 40, "consequences": "inzage in rapportages mogelijk",
           "measures": "sessies beëindigd, wachtwoord gewijzigd"})
}

async fn register(b: Backend) {
    let env = start(b, &[("KLUIS_METRICS", "127.0.0.1:0"), ("KLUIS_REGISTER_METRICS_INTERVAL", "200ms")]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    assert_eq!(office.post("/api/v1/breaches", breach(&hours_ago(1))).await.0, StatusCode::FORBIDDEN);
    assert_eq!(office.get("/api/v1/breaches").await.0, StatusCode::FORBIDDEN);
    let mut bad = breach(&hours_ago(1));
    bad["categories"] = json!([]);
    assert_eq!(admin.post("/api/v1/breaches", bad).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(admin.post("/api/v1/breaches", breach(&hours_ago(-2))).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    // Detected 80 hours ago: past the 72 hours; one an hour ago: not yet.
    let (s, old) = admin.post("/api/v1/breaches", breach(&hours_ago(80))).await;
    assert_eq!(s, StatusCode::CREATED, "{old}");
    assert_eq!(time(&old["notify_deadline"]), time(&old["detected_at"]) + chrono::Duration::hours(72));
    assert_eq!((old["overdue"].as_bool(), old["updates"].as_array().unwrap().len()), (Some(true), 1));
    let (_, fresh) = admin.post("/api/v1/breaches", breach(&hours_ago(1))).await;
    assert_eq!(fresh["overdue"], false);
    // Both gauges come from one pass of the worker: wait for the pass that
    // saw both breaches (a pass between the two posts sees one of each).
    wait_gauges(&env, &[("kluis_breaches_undecided", 2.0), ("kluis_breaches_overdue", 1.0)]).await;

    // The investigation goes on: each update kept, from what to what.
    let path = |b: &Value| format!("/api/v1/breaches/{}", b["id"].as_str().unwrap());
    let (s, v) =
        admin.patch(&path(&old), json!({"data_subjects_estimate": 3, "note": "alleen caseload van één coach"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = v["updates"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["changes"]["data_subjects_estimate"], json!({"from": 12, "to": 3}));
    assert_eq!(last["note"], "alleen caseload van één coach");
    assert_eq!(admin.patch(&path(&old), json!({})).await.0, StatusCode::UNPROCESSABLE_ENTITY, "an update of nothing");
    let both = json!({"authority_notified_at": hours_ago(0), "authority_not_notified_reason": "geen risico"});
    assert_eq!(admin.patch(&path(&old), both).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    // Notified, late: no longer overdue, and marked late.
    let (s, v) = admin
        .patch(
            &path(&old),
            json!({"authority_notified_at": hours_ago(0), "data_subjects_informed": true,
                                    "note": "melding AP gedaan; vertraging: onderzoek naar omvang"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["overdue"].as_bool(), v["notified_late"].as_bool(), v["data_subjects_informed"].as_bool()),
        (Some(false), Some(true), Some(true))
    );
    assert!(!v["data_subjects_informed_at"].is_null());
    // Decided not to notify: no longer counted as undecided.
    let (s, v) =
        admin.patch(&path(&fresh), json!({"authority_not_notified_reason": "versleuteld apparaat, geen risico"})).await;
    assert_eq!((s, v["overdue"].as_bool()), (StatusCode::OK, Some(false)));
    wait_gauges(&env, &[("kluis_breaches_undecided", 0.0), ("kluis_breaches_overdue", 0.0)]).await;

    let (s, list) = admin.get("/api/v1/breaches").await;
    assert_eq!((s, list["breaches"].as_array().unwrap().len()), (StatusCode::OK, 2));
    assert_eq!(list["breaches"][0]["id"], fresh["id"], "newest detection first");
    assert_eq!(admin.get(&format!("/api/v1/breaches/{}", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);
    let (s, one) = admin.get(&path(&old)).await;
    assert_eq!((s, one["updates"].as_array().unwrap().len()), (StatusCode::OK, 3));
    let (_, events) = admin.get("/api/v1/audit?action=breach.update").await;
    assert_eq!(events["events"].as_array().unwrap().len(), 3, "{events}");
}
on_both_backends!(breaches_run_on_the_72_hour_clock_with_their_history, register);

async fn reach(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach_user = env.user(&admin, "carla", "coach").await;
    let coach = Api::login(&env.server, &coach_user).await;
    let (c1, c2, c3) = (env.client(&admin).await, env.client(&admin).await, env.client(&admin).await);
    let mut docs = Vec::new();
    for c in [&c1, &c2, &c3] {
        admin.put(&format!("/api/v1/clients/{c}/coach"), json!({"coach_id": coach_user.id})).await;
        let (_, d) = office.upload(c, "intake", "intake.pdf", pdf(1000).0).await;
        docs.push(d["id"].as_str().unwrap().to_string());
    }
    let (_, br) = admin.post("/api/v1/breaches", breach(&hours_ago(0))).await;
    let rpath = format!("/api/v1/breaches/{}/reach", br["id"].as_str().unwrap());
    // The coach's laptop: what did the coach open, and when?
    tokio::time::sleep(Duration::from_millis(50)).await;
    let from = chrono::Utc::now();
    for d in &docs[..2] {
        let (_, t) = coach.token(d, "guidance").await;
        assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::OK);
    }
    let until = chrono::Utc::now() + chrono::Duration::seconds(1);
    let q = |s: String| s.replace('+', "%2B");
    let (s, r) = admin.get(&q(format!("{rpath}?actor_id={}", coach_user.id))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!((r["data_subjects"].as_u64(), r["records"].as_u64()), (Some(2), Some(2)), "{r}");
    let mut got: Vec<String> =
        r["document_ids"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_string()).collect();
    got.sort();
    let mut want = docs[..2].to_vec();
    want.sort();
    assert_eq!(got, want);
    // A window that closes before the downloads: nothing of the coach's.
    let (_, r) = admin.get(&q(format!("{rpath}?actor_id={}&until={}", coach_user.id, from.to_rfc3339()))).await;
    assert_eq!((r["data_subjects"].as_u64(), r["events"].as_u64()), (Some(0), Some(0)), "{r}");
    let (_, r) = admin.get(&q(format!("{rpath}?from={}&until={}", from.to_rfc3339(), until.to_rfc3339()))).await;
    assert_eq!(r["data_subjects"], 2, "the window alone: {r}");
    // A set of documents: everyone's events about them (upload, tokens, download).
    let (_, r) = admin.get(&format!("{rpath}?document_ids={},{}", docs[0], docs[2])).await;
    assert_eq!((r["data_subjects"].as_u64(), r["records"].as_u64()), (Some(2), Some(2)), "{r}");
    assert_eq!(admin.get(&rpath).await.0, StatusCode::BAD_REQUEST, "an incident is named");
    assert_eq!(admin.get(&format!("{rpath}?document_ids=nope")).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(office.get(&format!("{rpath}?actor_id={}", coach_user.id)).await.0, StatusCode::FORBIDDEN);
}
on_both_backends!(an_incidents_reach_comes_from_the_audit_log, reach);

async fn review(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let absent = env.user(&admin, "anna", "coach").await;
    let sub_user = env.user(&admin, "sam", "coach").await;
    let sam = Api::login(&env.server, &sub_user).await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": absent.id})).await;
    let mut docs = Vec::new();
    for _ in 0..22 {
        let (_, d) = office.upload(&client, "intake", "intake.pdf", pdf(500).0).await;
        docs.push(d["id"].as_str().unwrap().to_string());
    }
    let period = |from: chrono::DateTime<chrono::Utc>| {
        let until = chrono::Utc::now() + chrono::Duration::seconds(1);
        format!("from={}&until={}", from.to_rfc3339(), until.to_rfc3339()).replace('+', "%2B")
    };
    let review = |q: String| {
        let admin = admin.clone();
        async move {
            let (s, r) = admin.get(&format!("/api/v1/audit/review?{q}")).await;
            assert_eq!(s, StatusCode::OK, "{r}");
            r
        }
    };
    // A clean stretch: two downloads in office work, no refusal streak.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let clean_from = chrono::Utc::now();
    for d in &docs[..2] {
        let (_, t) = office.token(d, "administration").await;
        assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::OK);
    }
    let r = review(period(clean_from)).await;
    // Whether this runs in office hours is the machine's clock; the rule is unit-tested.
    let night = vault::service::outside_office_hours(chrono::Utc::now().timestamp_micros());
    let want = |k: &str| if k == "outside_office_hours" && night { 2 } else { 0 };
    for k in ["substitution_access", "outside_office_hours", "download_burst", "bsn_reveal", "denied_streak", "export"]
    {
        assert_eq!(r["counts"][k], want(k), "{k} in a clean stretch: {r}");
    }

    // The scripted stretch: each kind once.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let from = chrono::Utc::now();
    let t = |m: i64| (chrono::Utc::now() + chrono::Duration::minutes(m)).to_rfc3339();
    office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": sub_user.id,
                                              "from": t(-1), "until": t(60), "reason": "sickness"}),
        )
        .await;
    let (_, tok) = sam.token(&docs[0], "guidance").await;
    assert_eq!(Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await.0, StatusCode::OK);
    assert_eq!(office.get(&format!("/api/v1/clients/{client}/bsn")).await.0, StatusCode::OK);
    let resp = office.req(reqwest::Method::GET, &format!("/api/v1/clients/{client}/export")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.bytes().await;
    for _ in 0..5 {
        assert_eq!(sam.get(&format!("/api/v1/clients/{}", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);
    }
    for d in &docs[2..22] {
        let (_, t) = office.token(d, "administration").await;
        assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::OK);
    }
    let r = review(period(from)).await;
    for k in ["substitution_access", "download_burst", "bsn_reveal", "denied_streak", "export"] {
        assert_eq!(r["counts"][k], 1, "{k} in the scripted stretch: {r}");
    }
    let finding = |k: &str| r["findings"].as_array().unwrap().iter().find(|f| f["kind"] == k).cloned().unwrap();
    assert_eq!(finding("substitution_access")["actor_id"], sub_user.id.to_string());
    assert_eq!(finding("denied_streak")["events"].as_array().unwrap().len(), 5);
    assert!(finding("download_burst")["events"].as_array().unwrap().len() >= 20);
    // The link lists the events.
    let link = finding("bsn_reveal")["link"].as_str().unwrap().to_string();
    let (s, events) = admin.get(&link).await;
    assert_eq!(s, StatusCode::OK);
    let seq = finding("bsn_reveal")["events"][0].clone();
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["seq"] == seq), "{events}");
    assert_eq!(office.get(&format!("/api/v1/audit/review?{}", period(from))).await.0, StatusCode::FORBIDDEN);
    let bad = format!("from={}&until={}", chrono::Utc::now().to_rfc3339(), clean_from.to_rfc3339()).replace('+', "%2B");
    assert_eq!(admin.get(&format!("/api/v1/audit/review?{bad}")).await.0, StatusCode::BAD_REQUEST);

    // Never reviewed: the list says so; /readyz tells only whether it is
    // overdue (it is not: the log is minutes old).
    let (_, list) = admin.get("/api/v1/audit/reviews").await;
    assert!(list["status"]["reviewed_until"].is_null(), "{list}");
    let (_, ready) = env.server.get("/readyz").await;
    assert_eq!(ready["details"]["audit_review"], json!({"overdue": false, "allowance_days": 30}), "{ready}");
    // A review of the clean stretch alone leaves the log before it
    // unreviewed: coverage starts at the first event.
    let until = chrono::Utc::now();
    let (s, rec) = admin
        .post("/api/v1/audit/reviews", json!({"from": clean_from, "until": until, "remarks": "alleen de middag"}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    let (_, list) = admin.get("/api/v1/audit/reviews").await;
    assert!(list["status"]["reviewed_until"].is_null(), "a gap before the review: {list}");
    // One from before the server started closes it.
    let (s, rec) = admin
        .post(
            "/api/v1/audit/reviews",
            json!({"from": until - chrono::Duration::days(1), "until": until,
                   "remarks": "burst: jaarafsluiting, akkoord"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{rec}");
    assert_eq!(rec["findings"]["download_burst"], 1);
    let (_, list) = admin.get("/api/v1/audit/reviews").await;
    assert_eq!(list["reviews"].as_array().unwrap().len(), 2);
    let status = &list["status"];
    assert_eq!((status["unreviewed_days"].as_i64(), status["overdue"].as_bool()), (Some(0), Some(false)), "{list}");
    assert_eq!(time(&status["reviewed_until"]), until.with_nanosecond(until.nanosecond() / 1000 * 1000).unwrap());
    let (code, ready) = env.server.get("/readyz").await;
    assert_eq!(code, 200);
    assert_eq!(ready["details"]["audit_review"]["overdue"], false, "{ready}");
    assert!(ready["details"]["audit_review"].get("reviewed_until").is_none(), "nothing more to anyone: {ready}");
}
on_both_backends!(the_log_review_finds_each_anomaly_in_a_scripted_stretch_and_none_in_a_clean_one, review);

async fn processing_register(b: Backend) {
    let env = start(
        b,
        &[("KLUIS_ORGANISATION", "Re-integratiebureau <De Brug>"), ("KLUIS_PRIVACY_CONTACT", "privacy@debrug.nl")],
    )
    .await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    assert_eq!(office.get("/api/v1/processing-register").await.0, StatusCode::FORBIDDEN);
    let (s, r) = admin.get("/api/v1/processing-register").await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["controller"], "Re-integratiebureau <De Brug>");
    let intake =
        |r: &Value| r["retention"].as_array().unwrap().iter().find(|p| p["type"] == "intake").cloned().unwrap();
    assert_eq!(
        (intake(&r)["period_days"].as_i64(), intake(&r)["clock_starts"].as_str()),
        (Some(731), Some("trajectory_end"))
    );
    // The purposes as the policy decides them: the survey in the archive for management and office.
    let survey =
        r["purposes"].as_array().unwrap().iter().find(|p| p["purpose"] == "satisfaction_survey").cloned().unwrap();
    assert_eq!(
        (survey["roles_archive"].clone(), survey["roles_active"].clone()),
        (json!(["management", "office"]), json!([]))
    );
    assert!(r["security"]["logins"]["two_step"].as_str().unwrap().contains("TOTP"));
    assert_eq!(r["recipients"], json!([]));

    // Regenerated from what runs: a policy change and a disclosure show at once.
    let (s, _) =
        admin.put("/api/v1/retention/policies/intake", json!({"trigger": "upload", "period_days": 1000})).await;
    assert_eq!(s, StatusCode::OK);
    let client = env.client(&admin).await;
    office
        .post(
            &format!("/api/v1/clients/{client}/disclosures"),
            json!({"recipient_kind": "municipality", "recipient": "Gemeente <Zeist>", "legal_basis": "public_task"}),
        )
        .await;
    let (_, r) = admin.get("/api/v1/processing-register").await;
    assert_eq!((intake(&r)["period_days"].as_i64(), intake(&r)["clock_starts"].as_str()), (Some(1000), Some("upload")));
    assert_eq!(
        (r["recipients"][0]["recipient"].as_str(), r["recipients"][0]["clients"].as_i64()),
        (Some("Gemeente <Zeist>"), Some(1))
    );

    // The printable page: the same facts, escaped, no script.
    let resp = admin
        .req(reqwest::Method::GET, "/api/v1/processing-register")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = resp.text().await.unwrap();
    assert!(page.contains("<td>intake</td><td>upload</td><td>1000</td>"), "{page}");
    assert!(page.contains("Gemeente &lt;Zeist&gt;") && page.contains("Re-integratiebureau &lt;De Brug&gt;"), "{page}");
    assert!(!page.contains("<Zeist>") && !page.contains("<script"), "{page}");
}
on_both_backends!(the_processing_register_follows_the_running_configuration, processing_register);

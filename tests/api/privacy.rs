//! Data-subject rights (issue 10) against the real binary on both
//! backends: each request kind from receipt to answer, deadlines and
//! overdue flags, extensions, the register's metrics; the consent register
//! gating the survey purpose; disclosures and corrections with their
//! history and recipients; erasure with and without holds and statutory
//! retention, and its certificate.

use crate::helpers::*;

fn ago(days: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::days(days)).to_rfc3339()
}

/// Register a request; the answer.
async fn request(by: &Api, client: &str, kind: &str, extra: Value) -> (StatusCode, Value) {
    let mut body = json!({"client_id": client, "kind": kind, "channel": "letter", "identity_check": "id_document"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    by.post("/api/v1/requests", body).await
}

async fn answer(by: &Api, id: &str, decision: &str) -> (StatusCode, Value) {
    by.post(
        &format!("/api/v1/requests/{id}/answer"),
        json!({"decision": decision, "outcome": "schriftelijk beantwoord"}),
    )
    .await
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_string()
}

async fn register(b: Backend) {
    let env = start(b, &[("KLUIS_METRICS", "127.0.0.1:0"), ("KLUIS_REGISTER_METRICS_INTERVAL", "200ms")]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach_user = env.user(&admin, "carla", "coach").await;
    let coach = Api::login(&env.server, &coach_user).await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach_user.id})).await;

    // Only management and office keep the register.
    assert_eq!(request(&coach, &client, "access", json!({})).await.0, StatusCode::FORBIDDEN);
    assert_eq!(coach.get("/api/v1/requests").await.0, StatusCode::FORBIDDEN);
    assert_eq!(request(&office, &Uuid::new_v4().to_string(), "access", json!({})).await.0, StatusCode::NOT_FOUND);
    let (s, v) = request(&office, &client, "access", json!({"received_at": ago(-1)})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_field")));
    let (s, v) = request(&office, &client, "access", json!({"identity_check": "photo_of_passport"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = request(&office, &client, "withdraw_consent", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "withdraw_consent names its consent: {v}");

    // Every kind, from receipt to answer.
    let kinds = ["access", "rectification", "erasure", "restriction", "objection", "portability", "withdraw_consent"];
    for kind in kinds {
        let extra =
            if kind == "withdraw_consent" { json!({"consent_scope": "satisfaction_survey"}) } else { json!({}) };
        let (s, r) = request(&office, &client, kind, extra).await;
        assert_eq!(s, StatusCode::CREATED, "{kind}: {r}");
        assert_eq!((r["kind"].as_str(), r["status"].as_str()), (Some(kind), Some("open")));
        // The rule itself (the Dutch calendar's 14 days and month) is table-tested in the vault.
        let (due, deadline) = vault::service::request_clocks(time(&r["received_at"]));
        assert_eq!((time(&r["due_at"]), time(&r["deadline_at"])), (due, deadline), "{kind}");
        assert!(deadline - due >= chrono::Duration::days(13), "{kind}: {r}");
        assert_eq!((r["overdue"].as_bool(), r["past_deadline"].as_bool()), (Some(false), Some(false)));
        assert_eq!(r["handler_id"], office_handler(&office).await);
        let decision = if kind == "objection" { "refused" } else { "granted" };
        let (s, a) = answer(&office, &id(&r), decision).await;
        assert_eq!(s, StatusCode::OK, "{kind}: {a}");
        assert_eq!((a["status"].as_str(), a["decision"].as_str()), (Some("answered"), Some(decision)));
        assert_eq!(a["answered_on_time"], true);
        assert_eq!(answer(&office, &id(&r), "granted").await.1["error"]["code"], "already_answered");
    }
    // The granted restriction restricted the client (the refused objection did nothing more).
    let (_, c) = office.get(&format!("/api/v1/clients/{client}")).await;
    assert_eq!(c["restricted"], true);
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=request.answer")).await;
    assert_eq!(events["events"].as_array().unwrap().len(), kinds.len());

    // Deadlines: received 20 days ago by letter: past the promise, within the law.
    let other = env.client(&admin).await;
    let (_, late) = request(&office, &other, "access", json!({"received_at": ago(20), "channel": "email"})).await;
    assert_eq!((late["overdue"].as_bool(), late["past_deadline"].as_bool()), (Some(true), Some(false)), "{late}");
    let (_, later) = request(&office, &other, "portability", json!({"received_at": ago(40)})).await;
    assert_eq!((later["overdue"].as_bool(), later["past_deadline"].as_bool()), (Some(true), Some(true)));
    let (_, fresh) = request(&office, &other, "rectification", json!({"description": "adres klopt niet"})).await;
    // An extension: before the deadline, with a reason, at most three months.
    let until = (time(&late["received_at"]) + chrono::Duration::days(60)).to_rfc3339();
    let ext = |u: &str, reason: &str| json!({"extension": {"until": u, "reason": reason}});
    let (s, v) = office.patch(&format!("/api/v1/requests/{}", id(&late)), ext(&until, "")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (s, v) = office.patch(&format!("/api/v1/requests/{}", id(&late)), ext(&until, "omvangrijk dossier")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["overdue"].as_bool(), v["extension"]["reason"].as_str()), (Some(false), Some("omvangrijk dossier")));
    let (s, v) = office.patch(&format!("/api/v1/requests/{}", id(&later)), ext(&until, "te laat")).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("deadline_passed")));
    // Handing over: only to management or office.
    let (s, _) = office.patch(&format!("/api/v1/requests/{}", id(&fresh)), json!({"handler_id": coach_user.id})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = office.patch(&format!("/api/v1/requests/{}", id(&fresh)), json!({"handler_id": env.admin.id})).await;
    assert_eq!((s, v["handler_id"].as_str()), (StatusCode::OK, Some(env.admin.id.to_string().as_str())));

    // The register: open ones by due date; all of a client; one by id.
    let (s, open) = office.get("/api/v1/requests").await;
    assert_eq!(s, StatusCode::OK);
    let open: Vec<String> = open["requests"].as_array().unwrap().iter().map(id).collect();
    assert_eq!(open, vec![id(&later), id(&fresh), id(&late)], "soonest due first (the extension counts)");
    let (_, all) = office.get(&format!("/api/v1/requests?client_id={client}&status=all")).await;
    assert_eq!(all["requests"].as_array().unwrap().len(), kinds.len());
    assert_eq!(office.get("/api/v1/requests?status=closed").await.0, StatusCode::BAD_REQUEST);
    let (s, one) = office.get(&format!("/api/v1/requests/{}", id(&late))).await;
    assert_eq!((s, one["channel"].as_str()), (StatusCode::OK, Some("email")));
    assert_eq!(office.get(&format!("/api/v1/requests/{}", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);

    // The metrics: three open, two past the promise (one extended), one past the law.
    // The worker's metrics pass may have run before the extension above: wait
    // for a pass that saw the register as it is now (all three gauges).
    wait_gauges(
        &env,
        &[
            ("kluis_privacy_requests_open", 3.0),
            ("kluis_privacy_requests_overdue", 1.0),
            ("kluis_privacy_requests_past_deadline", 1.0),
        ],
    )
    .await;
    let (s, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)));
}
on_both_backends!(every_request_kind_from_receipt_to_answer_with_deadlines_and_metrics, register);

async fn office_handler(office: &Api) -> Value {
    office.get("/api/v1/me").await.1["id"].clone()
}

async fn consent(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach_user = env.user(&admin, "carla", "coach").await;
    let coach = Api::login(&env.server, &coach_user).await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach_user.id})).await;
    let (_, form) = coach.upload(&client, "consent", "machtiging.pdf", pdf(2000).0).await;
    let (_, report) = coach.upload(&client, "progress_report", "voortgang.pdf", pdf(2000).0).await;
    let (form, report) = (id(&form), id(&report));
    let path = |scope: &str| format!("/api/v1/clients/{client}/consents/{scope}");

    // No consent yet: none running.
    let (s, v) = coach.get(&format!("/api/v1/clients/{client}/consents")).await;
    assert_eq!((s, v["satisfaction_survey"].is_null()), (StatusCode::OK, true), "{v}");
    // The evidence must be a consent document of this client; the channels must be on record.
    let give = |evidence: &str, channels: Value| json!({"given": true, "evidence_document_id": evidence, "channels": channels, "given_at": ago(1)});
    let (s, v) = coach.put(&path("satisfaction_survey"), give(&report, json!(["email"]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "an intake report is no consent form: {v}");
    let (s, v) = coach.put(&path("satisfaction_survey"), give(&form, json!(["phone"]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "no phone number on record: {v}");
    let (s, v) = coach.put(&path("satisfaction_survey"), give(&form, json!([]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "the survey's consent names a channel: {v}");
    let (s, v) = coach.put(&path("guidance"), give(&form, json!([]))).await;
    assert_eq!((s, v["guidance"]["evidence_document_id"].as_str()), (StatusCode::OK, Some(form.as_str())), "{v}");

    // The archive: the survey purpose is refused until the client consents.
    let (s, _) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = office.token(&report, "satisfaction_survey").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("purpose_not_allowed")));
    assert_eq!(office.token(&report, "availability").await.0, StatusCode::CREATED);
    let (s, v) = office.put(&path("satisfaction_survey"), give(&form, json!(["email"]))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["satisfaction_survey"]["channels"], json!(["email"]));
    assert_eq!(office.get(&format!("/api/v1/clients/{client}")).await.1["survey_consent"], true);
    let (s, before) = office.token(&report, "satisfaction_survey").await;
    assert_eq!(s, StatusCode::CREATED, "{before}");

    // Withdrawn: at once, audited; a token issued before is refused when redeemed.
    let (s, v) = office.put(&path("satisfaction_survey"), json!({"given": false})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (s, v) = office.put(&path("satisfaction_survey"), json!({"given": false, "reason": "telefonisch"})).await;
    assert_eq!((s, v["satisfaction_survey"].is_null()), (StatusCode::OK, true), "{v}");
    let history = v["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().any(|c| c["scope"] == "satisfaction_survey" && c["withdrawal_reason"] == "telefonisch"));
    assert_eq!(office.token(&report, "satisfaction_survey").await.0, StatusCode::FORBIDDEN);
    let (s, _, _) = Api::anonymous(&env.server).download(before["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the withdrawal applies to tokens issued before it");
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=consent.withdraw")).await;
    assert_eq!(events["events"][0]["reason"], "telefonisch");

    // Given again, then withdrawn through a request: at once, before any answer.
    let (s, _) = office.put(&path("satisfaction_survey"), give(&form, json!(["email"]))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(office.token(&report, "satisfaction_survey").await.0, StatusCode::CREATED);
    let (s, r) = request(&office, &client, "withdraw_consent", json!({"consent_scope": "satisfaction_survey"})).await;
    assert_eq!((s, r["status"].as_str()), (StatusCode::CREATED, Some("open")));
    assert_eq!(office.token(&report, "satisfaction_survey").await.0, StatusCode::FORBIDDEN);
    let (_, v) = office.get(&format!("/api/v1/clients/{client}/consents")).await;
    let last = v["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["request_id"].as_str(), Some(id(&r).as_str()));
    // The guidance consent is untouched.
    assert_eq!(v["guidance"]["scope"], "guidance");
    // Administration neither reads nor records consents.
    let adm = Api::login(&env.server, &env.user(&admin, "anton", "administration").await).await;
    assert_eq!(adm.get(&format!("/api/v1/clients/{client}/consents")).await.0, StatusCode::FORBIDDEN);
}
on_both_backends!(the_survey_purpose_follows_the_consent_register, consent);

/// Upload a corrected work plan that supersedes `old`, keeping or destroying it.
async fn corrected(by: &Api, client: &str, old: &str, keep: &str) -> (StatusCode, Value) {
    let form = reqwest::multipart::Form::new()
        .text("type", "work_plan")
        .text("supersedes", old.to_string())
        .text("superseded_version", keep.to_string())
        .part("file", reqwest::multipart::Part::bytes(pdf(1500).0).file_name("plan-v2.pdf"));
    by.send(by.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await
}

async fn corrections(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach_user = env.user(&admin, "carla", "coach").await;
    let coach = Api::login(&env.server, &coach_user).await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach_user.id})).await;
    let (_, plan) = coach.upload(&client, "work_plan", "plan.pdf", pdf(2000).0).await;
    let plan = id(&plan);

    // Disclosures: the coach sends the work plan to UWV; the office sends the dossier to the municipality.
    let disclose = |doc: Option<&str>, kind: &str, to: &str| {
        json!({"document_id": doc, "recipient_kind": kind, "recipient": to, "legal_basis": "legal_obligation",
               "basis_note": "Wet SUWI art. 30", "disclosed_at": ago(3)})
    };
    let dpath = format!("/api/v1/clients/{client}/disclosures");
    let (s, d) = coach.post(&dpath, disclose(Some(&plan), "uwv", "UWV Utrecht")).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (s, _) = office.post(&dpath, disclose(None, "municipality", "Gemeente Zeist")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = office.post(&dpath, disclose(Some(&Uuid::new_v4().to_string()), "uwv", "UWV")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a document of another client or none: {v}");
    let (s, v) = office.post(&dpath, json!({"recipient_kind": "uwv", "recipient": "UWV", "legal_basis": "whim"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, list) = coach.get(&dpath).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["disclosures"].as_array().unwrap().len(), 2);
    assert_eq!(list["recipients"].as_array().unwrap().len(), 2);

    // A correction keeps the old and the new value, who and why, and lists whom to tell.
    let cpath = format!("/api/v1/clients/{client}/corrections");
    let (_, rect) = request(&office, &client, "rectification", json!({"description": "naam en BSN fout"})).await;
    let body = json!({"changes": {"last_name": "Janssen", "bsn": "123456782", "phone": "0612345678"},
                      "reason": "paspoort gezien", "request_id": id(&rect)});
    assert_eq!(coach.post(&cpath, body.clone()).await.0, StatusCode::FORBIDDEN);
    let (s, v) = office.post(&cpath, json!({"changes": {"bsn": "123456789"}, "reason": "x"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_bsn")));
    let (s, v) = office.post(&cpath, json!({"changes": {"last_name": "Jansen"}, "reason": "x"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "nothing changes: {v}");
    let (s, v) = office.post(&cpath, body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["client"]["last_name"], "Janssen");
    assert_eq!(v["client"]["bsn_masked"], "*****6782");
    let changes = v["correction"]["changes"].as_array().unwrap();
    let field = |f: &str| changes.iter().find(|c| c["field"] == f).cloned().unwrap_or_else(|| panic!("{f} in {v}"));
    assert_eq!(
        (field("last_name")["old"].as_str(), field("last_name")["new"].as_str()),
        (Some("Jansen"), Some("Janssen"))
    );
    assert_eq!((field("bsn")["old"].as_str(), field("bsn")["new"].as_str()), (Some("*****2333"), Some("*****6782")));
    assert_eq!((field("phone")["old"].as_str(), field("phone")["new"].as_str()), (None, Some("0612345678")));
    let notify: Vec<&str> =
        v["correction"]["notify"].as_array().unwrap().iter().map(|r| r["recipient"].as_str().unwrap()).collect();
    assert_eq!(notify, vec!["Gemeente Zeist", "UWV Utrecht"]);
    assert_eq!(v["correction"]["request_id"].as_str(), Some(id(&rect).as_str()));
    // The BSN is the new one; the old one is nowhere in the history.
    assert_eq!(admin.get(&format!("/api/v1/clients/{client}/bsn")).await.1["bsn"], "123456782");
    let (s, hist) = office.get(&cpath).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(hist["corrections"].as_array().unwrap().len(), 1);
    assert!(!hist.to_string().contains(BSN) && !hist.to_string().contains("123456782"));
    // An optional field sent empty is cleared.
    let (s, v) = office.post(&cpath, json!({"changes": {"email": ""}, "reason": "verzoek cliënt"})).await;
    assert_eq!((s, v["client"]["email"].is_null()), (StatusCode::CREATED, true), "{v}");
    // The audit log names the fields, never the values.
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=client.correct")).await;
    let text = events.to_string();
    assert!(text.contains("last_name") && !text.contains("Janssen") && !text.contains("123456782"), "{text}");

    // A corrected document: the answer lists whom to tell; the old version is kept, marked ...
    let (s, v2) = corrected(&coach, &client, &plan, "keep").await;
    assert_eq!(s, StatusCode::CREATED, "{v2}");
    let notify: Vec<&str> = v2["notify"].as_array().unwrap().iter().map(|r| r["recipient"].as_str().unwrap()).collect();
    assert_eq!(notify, vec!["Gemeente Zeist", "UWV Utrecht"], "UWV had the plan, the municipality the dossier");
    let (_, old) = coach.get(&format!("/api/v1/documents/{plan}")).await;
    assert_eq!((old["state"].as_str(), old["superseded_by"].as_str()), (Some("active"), v2["id"].as_str()));
    // ... or destroyed with it, by management only.
    let (s, v) = corrected(&coach, &client, v2["id"].as_str().unwrap(), "destroy").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let (s, v3) = corrected(&admin, &client, v2["id"].as_str().unwrap(), "destroy").await;
    assert_eq!(s, StatusCode::CREATED, "{v3}");
    let (_, gone) = admin.get(&format!("/api/v1/documents/{}", v2["id"].as_str().unwrap())).await;
    assert_eq!(gone["state"], "destroyed");
    assert!(gone["destroy_reason"].as_str().unwrap().contains(v3["id"].as_str().unwrap()), "{gone}");
    assert_eq!(v3["notify"].as_array().unwrap().len(), 1, "only the dossier's recipient had version 2: {v3}");
}
on_both_backends!(corrections_keep_history_and_list_the_recipients_to_notify, corrections);

async fn erasure(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let client = env.client(&admin).await;
    let mut docs = Vec::new();
    for t in ["intake", "work_plan", "consent"] {
        let (s, d) = office.upload(&client, t, "d.pdf", pdf(3000).0).await;
        assert_eq!(s, StatusCode::CREATED, "{d}");
        docs.push(id(&d));
    }
    office
        .post(
            &format!("/api/v1/clients/{client}/disclosures"),
            json!({"recipient_kind": "uwv", "recipient": "UWV Utrecht", "legal_basis": "legal_obligation"}),
        )
        .await;
    let erase = |reason: &str, req: Option<String>| json!({"reason": reason, "request_id": req});
    let epath = format!("/api/v1/clients/{client}/erase");
    assert_eq!(office.post(&epath, erase("verzoek", None)).await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.post(&epath, erase("", None)).await.1["error"]["code"], "reason_required");

    // A legal hold keeps everything: 409 with the reasons per document.
    let (s, _) = admin
        .put(&format!("/api/v1/documents/{}/legal-hold", docs[1]), json!({"hold": true, "reason": "klacht"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin.post(&epath, erase("verzoek van de cliënt", None)).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("must_keep")), "{v}");
    let keep = v["error"]["details"]["documents"].as_array().unwrap();
    assert_eq!(keep.len(), 1);
    assert_eq!(keep[0]["document_id"].as_str(), Some(docs[1].as_str()));
    assert_eq!(keep[0]["reasons"][0], json!({"code": "legal_hold", "reason": "klacht"}));
    for d in &docs {
        assert_eq!(admin.get(&format!("/api/v1/documents/{d}")).await.1["state"], "active", "nothing destroyed");
    }
    // A statutory retention period keeps its documents until their date.
    admin
        .put(&format!("/api/v1/documents/{}/legal-hold", docs[1]), json!({"hold": false, "reason": "afgehandeld"}))
        .await;
    let (s, v) = admin
        .put(
            "/api/v1/retention/policies/intake",
            json!({"trigger": "trajectory_end", "period_days": 731, "statutory": true}),
        )
        .await;
    assert_eq!((s, v["policy"]["statutory"].as_bool()), (StatusCode::OK, Some(true)), "{v}");
    let (s, v) = admin.post(&epath, erase("verzoek van de cliënt", None)).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let keep = &v["error"]["details"]["documents"];
    assert_eq!(
        (keep[0]["document_id"].as_str(), keep[0]["reasons"][0]["code"].as_str()),
        (Some(docs[0].as_str()), Some("statutory_retention"))
    );
    admin
        .put(
            "/api/v1/retention/policies/intake",
            json!({"trigger": "trajectory_end", "period_days": 731, "statutory": false}),
        )
        .await;

    // What the erasure must clear besides the fields: a correction's values and reason, a running consent.
    let (s, v) = office
        .post(
            &format!("/api/v1/clients/{client}/corrections"),
            json!({"changes": {"phone": "0611111111"}, "reason": "nieuw nummer van Jan"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = office
        .put(
            &format!("/api/v1/clients/{client}/consents/satisfaction_survey"),
            json!({"given": true, "evidence_document_id": docs[2], "channels": ["email", "phone"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Erased: every document destroyed through the purge, the fields cleared, a certificate.
    let (_, req) =
        request(&office, &client, "erasure", json!({"description": "wil alles laten wissen, tel. 0612345678"})).await;
    let (s, cert) = admin.post(&epath, erase("verzoek van de cliënt", Some(id(&req)))).await;
    assert_eq!(s, StatusCode::OK, "{cert}");
    assert_eq!(cert["documents"].as_array().unwrap().len(), 3);
    assert_eq!(cert["erased_by"], env.admin.id.to_string());
    assert_eq!(cert["request_id"].as_str(), Some(id(&req).as_str()));
    assert!(cert["method"].as_str().unwrap().contains("crypto-shredding"));
    assert_eq!(cert["notify"][0]["recipient"], "UWV Utrecht");
    let text = cert.to_string();
    assert!(
        !text.contains("Jansen") && !text.contains("*****2333") && !text.contains(BSN) && !text.contains("d.pdf"),
        "no names in it: {text}"
    );
    for d in &docs {
        let (_, t) = admin.get(&format!("/api/v1/documents/{d}")).await;
        assert_eq!(
            (t["state"].as_str(), t["destroyed_by"].as_str()),
            (Some("destroyed"), Some(env.admin.id.to_string().as_str()))
        );
    }
    let (_, c) = office.get(&format!("/api/v1/clients/{client}")).await;
    assert!(!c["erased_at"].is_null(), "{c}");
    assert_eq!(
        (c["first_name"].as_str(), c["bsn_masked"].is_null(), c["birth_date"].is_null()),
        (Some(""), true, true)
    );
    assert_eq!((c["email"].is_null(), c["status"].as_str()), (true, Some("closed")));
    assert_eq!(admin.get(&format!("/api/v1/clients/{client}/bsn")).await.1["bsn"], Value::Null);
    assert_eq!(office.get(&format!("/api/v1/clients/{client}/documents")).await.1["documents"], json!([]));
    let (_, r) = office.get(&format!("/api/v1/requests/{}", id(&req))).await;
    assert_eq!(
        (r["kind"].as_str(), r["description"].is_null()),
        (Some("erasure"), true),
        "the register keeps the facts: {r}"
    );
    let (_, hist) = office.get(&format!("/api/v1/clients/{client}/corrections")).await;
    let change = &hist["corrections"][0];
    assert_eq!((change["reason"].as_str(), change["changes"][0]["field"].as_str()), (Some("[erased]"), Some("phone")));
    assert_eq!((change["changes"][0]["erased"].as_bool(), change["changes"][0]["new"].is_null()), (Some(true), true));
    assert!(!hist.to_string().contains("0611111111"), "{hist}");
    let (_, consents) = office.get(&format!("/api/v1/clients/{client}/consents")).await;
    assert!(consents["satisfaction_survey"].is_null(), "{consents}");
    assert!(!consents["history"][0]["withdrawn_at"].is_null());
    assert_eq!(cert["consents_withdrawn"], 1);
    // Nothing is recorded about an erased client any more.
    for (s, what) in [
        (
            office
                .post(
                    &format!("/api/v1/clients/{client}/corrections"),
                    json!({"changes": {"city": "Zeist"}, "reason": "x"}),
                )
                .await
                .0,
            "correction",
        ),
        (
            office
                .put(&format!("/api/v1/clients/{client}/consents/guidance"), json!({"given": false, "reason": "x"}))
                .await
                .0,
            "consent",
        ),
        (
            office
                .post(
                    &format!("/api/v1/clients/{client}/disclosures"),
                    json!({"recipient_kind": "uwv", "recipient": "UWV", "legal_basis": "consent"}),
                )
                .await
                .0,
            "disclosure",
        ),
    ] {
        assert_eq!(s, StatusCode::GONE, "{what} after the erasure");
    }
    // Erased once; again is 410; the certificate stays readable, the objects gone.
    assert_eq!(admin.post(&epath, erase("nogmaals", None)).await.1["error"]["code"], "erased");
    let mut cert = Value::Null;
    for _ in 0..50 {
        cert = admin.get(&format!("/api/v1/clients/{client}/erasure")).await.1;
        if cert["objects_pending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cert["objects_pending"], 0, "{cert}");
    assert!(cert["documents"].as_array().unwrap().iter().all(|d| !d["object_deleted_at"].is_null()));
    assert_eq!(office.get(&format!("/api/v1/clients/{client}/erasure")).await.0, StatusCode::FORBIDDEN);
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=document.destroy")).await;
    assert_eq!(events["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "ok").count(), 3);
    let (s, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)));
    assert_no_leftovers(&env, 0).await;
}
on_both_backends!(erasure_destroys_everything_or_nothing_and_keeps_a_certificate, erasure);

/// Upload with extra form fields and a given content.
async fn upload_form(
    api: &Api,
    client: &str,
    doc_type: &str,
    data: Vec<u8>,
    extra: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().text("type", doc_type.to_string());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.clone());
    }
    let form = form.part("file", reqwest::multipart::Part::bytes(data).file_name(format!("{doc_type}.pdf")));
    api.send(api.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await
}

/// GET an export: status, Content-Length, body.
async fn get_export(api: &Api, client: &str, query: &str) -> (StatusCode, Option<u64>, Result<Vec<u8>, String>) {
    let resp = api.req(reqwest::Method::GET, &format!("/api/v1/clients/{client}/export{query}")).send().await.unwrap();
    let status = resp.status();
    let len = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    (status, len, resp.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string()))
}

/// The archive's files by name.
fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).expect("a readable zip");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        f.read_to_end(&mut content).expect("entry reads back (CRC checked)");
        out.insert(f.name().to_string(), content);
    }
    out
}

fn json_of(files: &std::collections::BTreeMap<String, Vec<u8>>, name: &str) -> Value {
    serde_json::from_slice(files.get(name).unwrap_or_else(|| panic!("{name} in the archive"))).unwrap()
}

async fn export(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach_user = env.user(&admin, "carla", "coach").await;
    let coach = Api::login(&env.server, &coach_user).await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach_user.id})).await;
    let mut content: std::collections::HashMap<String, Vec<u8>> = Default::default();
    let up = |doc_type: &'static str, len: usize, extra: Vec<(&'static str, String)>| {
        let coach = coach.clone();
        let client = client.clone();
        let data = pdf(len).0;
        async move {
            let (s, v) = upload_form(&coach, &client, doc_type, data.clone(), &extra).await;
            assert_eq!(s, StatusCode::CREATED, "{doc_type}: {v}");
            (id(&v), data, v)
        }
    };
    let (intake, a, _) = up("intake", 3000, vec![]).await;
    let (report, b_, _) = up("progress_report", 300_000, vec![]).await;
    let (s, v) = upload_form(&coach, &client, "intake", pdf(100).0, &[("view_only", "true".into())]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "only raw test material (psych_report) is view-only: {v}");
    let (raw, _, v) = up("psych_report", 5000, vec![("view_only", "true".into())]).await;
    assert_eq!(v["view_only"], true);
    let (plan, d, _) = up("work_plan", 2000, vec![]).await;
    let (s, v) = upload_form(&coach, &client, "fml", pdf(100).0, &[("supersedes", plan.clone())]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a correction has the type of what it corrects: {v}");
    let (plan2, d2, v) = up("work_plan", 2500, vec![("supersedes", plan.clone())]).await;
    assert_eq!(v["supersedes"].as_str(), Some(plan.as_str()));
    let (_, old) = coach.get(&format!("/api/v1/documents/{plan}")).await;
    assert_eq!(
        (old["state"].as_str(), old["superseded_by"].as_str()),
        (Some("active"), Some(plan2.as_str())),
        "kept, marked"
    );
    let (doomed, _, _) = up("correspondence", 1000, vec![]).await;
    for (k, v) in [(&intake, a), (&report, b_), (&plan, d), (&plan2, d2)] {
        content.insert(k.clone(), v);
    }
    let (s, _) = admin
        .send(
            admin
                .req(reqwest::Method::DELETE, &format!("/api/v1/documents/{doomed}"))
                .json(&json!({"reason": "dubbel"})),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    office
        .post(
            &format!("/api/v1/clients/{client}/disclosures"),
            json!({"document_id": report, "recipient_kind": "uwv", "recipient": "UWV Utrecht", "legal_basis": "legal_obligation"}),
        )
        .await;
    let (_, tok) = coach.token(&intake, "guidance").await;
    assert_eq!(Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await.0, StatusCode::OK);

    // Coaches do not export; office does; the BSN is masked without the client's own request.
    assert_eq!(get_export(&coach, &client, "").await.0, StatusCode::FORBIDDEN);
    let (s, len, body) = get_export(&office, &client, "").await;
    assert_eq!(s, StatusCode::OK);
    let body = body.unwrap();
    assert_eq!(len, Some(body.len() as u64), "the exact size is announced");
    let files = unzip(&body);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    for n in [
        "client.json",
        "documents.json",
        "access-log.json",
        "processing.json",
        "requests.json",
        "consents.json",
        "disclosures.json",
        "corrections.json",
    ] {
        assert!(names.contains(&n), "{n} in {names:?}");
    }
    // Every active document byte for byte; the view-only one and the tombstone are listed, not copied.
    let copied: Vec<&&str> = names.iter().filter(|n| n.starts_with("documents/")).collect();
    assert_eq!(copied.len(), 4, "{names:?}");
    for (doc, bytes) in &content {
        let name =
            names.iter().find(|n| n.starts_with(&format!("documents/{doc}-"))).unwrap_or_else(|| panic!("{doc}"));
        assert!(files[*name] == *bytes, "{name} differs from what was uploaded");
    }
    assert!(!names.iter().any(|n| n.contains(&raw) || n.contains(&doomed)));
    let docs = json_of(&files, "documents.json");
    let listed =
        |id: &str| docs.as_array().unwrap().iter().find(|d| d["id"] == id).cloned().unwrap_or_else(|| panic!("{id}"));
    assert_eq!((listed(&raw)["not_copied"].as_str(), listed(&raw)["file"].is_null()), (Some("view_only"), true));
    assert_eq!(listed(&doomed)["not_copied"], "destroyed");
    assert_eq!(listed(&report)["recipients"][0]["recipient"], "UWV Utrecht");
    assert_eq!(listed(&intake)["opened_for"], json!(["guidance"]));
    assert_eq!(listed(&plan2)["supersedes"].as_str(), Some(plan.as_str()));
    assert!(listed(&intake)["retention_waits_for"] == "trajectory_end");
    let c = json_of(&files, "client.json");
    assert_eq!((c["bsn"].is_null(), c["client"]["bsn_masked"].as_str()), (true, Some("*****2333")));
    let log = json_of(&files, "access-log.json");
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "document.download" && e["purpose"] == "guidance")
    );
    let taken: Vec<&Value> =
        log["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "document.export").collect();
    assert!(taken.is_empty(), "the export's own events come after the log it holds");
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=document.export&limit=100")).await;
    let taken = events["events"].as_array().unwrap();
    assert_eq!(taken.len(), 4, "one access event per document taken out: {events}");
    assert!(taken.iter().all(|e| e["purpose"] == "availability" && e["outcome"] == "allowed"));
    let p = json_of(&files, "processing.json");
    assert_eq!(p["purposes"].as_array().unwrap().len(), 6);
    assert_eq!(p["source"]["commissioner"], "uwv");
    assert_eq!(p["recipients"][0]["recipient"], "UWV Utrecht");
    assert!(!String::from_utf8_lossy(&body).contains(BSN), "no BSN anywhere in a masked export");

    // Answering the client's own access request: the BSN in full; another kind of request is refused.
    let (_, access) = request(&office, &client, "access", json!({})).await;
    let (s, _, body) = get_export(&office, &client, &format!("?request_id={}", id(&access))).await;
    assert_eq!(s, StatusCode::OK);
    let files = unzip(&body.unwrap());
    assert_eq!(json_of(&files, "client.json")["bsn"], BSN);
    assert_eq!(json_of(&files, "requests.json").as_array().unwrap().len(), 1);
    let (_, other) = request(&office, &client, "rectification", json!({})).await;
    assert_eq!(
        get_export(&office, &client, &format!("?request_id={}", id(&other))).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=client.export")).await;
    let events = events["events"].as_array().unwrap().clone();
    assert!(events.iter().any(|e| e["outcome"] == "allowed" && e["details"]["bsn"] == "full"), "{events:?}");
    assert!(events.iter().any(|e| e["outcome"] == "denied" && e["actor_id"] == coach_user.id.to_string()));

    // The command line writes the same documents, with the operator as the actor.
    let out = env.b.dir.path().join("dossier.zip");
    let mut c = kluis(&env.b);
    c.args(["export", &client, "-o", out.to_str().unwrap()]);
    let r = run(c).await;
    assert!(r.status.success(), "kluis export: {}", kluis_proc::text(&r.stderr));
    let summary: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!((summary["documents_copied"].as_u64(), summary["view_only_listed"].as_u64()), (Some(4), Some(1)));
    let cli_files = unzip(&std::fs::read(&out).unwrap());
    for (doc, bytes) in &content {
        assert!(cli_files.iter().any(|(n, c)| n.starts_with(&format!("documents/{doc}-")) && c == bytes), "{doc}");
    }
    let mut c = kluis(&env.b);
    c.args(["export", &client, "-o", out.to_str().unwrap()]);
    assert!(!run(c).await.status.success(), "an existing file is not overwritten");

    // Restricted: the dossier goes out through management only.
    office
        .put(&format!("/api/v1/clients/{client}/restriction"), json!({"restricted": true, "reason": "art. 18"}))
        .await;
    let (s, _, body) = get_export(&office, &client, "").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{:?}", body.map(|b| String::from_utf8_lossy(&b).into_owned()));
    assert_eq!(get_export(&admin, &client, "").await.0, StatusCode::OK);

    // A tampered object breaks the transfer: never an archive that looks whole.
    if !env.b.is_s3() {
        let mut objects = Vec::new();
        objects_under(&env.b.dir.path().join("objects"), &mut objects);
        let biggest = objects.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
        let mut bytes = std::fs::read(biggest).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(biggest, bytes).unwrap();
        let (s, len, body) = get_export(&admin, &client, "").await;
        assert_eq!(s, StatusCode::OK, "the head went out before the damage was reached");
        match body {
            Err(_) => {}
            Ok(b) => panic!("a tampered document gave a complete transfer of {} of {len:?} bytes", b.len()),
        }
    }
    let (s, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)));
}
on_both_backends!(the_export_holds_every_document_byte_for_byte_and_lists_what_it_does_not_copy, export);

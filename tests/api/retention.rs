//! Retention policies and destruction dates (SPEC §4, issue 9).

use crate::helpers::*;

async fn policies_and_dates(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach = Api::login(&env.server, &env.user(&admin, "carla", "coach").await).await;
    let client = env.client(&admin).await;

    // The defaults of SPEC §4; office reads them, a coach may not.
    let (s, v) = office.get("/api/v1/retention/policies").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let policies = v["policies"].as_array().unwrap();
    assert_eq!(policies.len(), 10);
    for p in policies {
        let (trigger, days) = if p["type"] == "id_copy" { ("upload", 30) } else { ("trajectory_end", 731) };
        assert_eq!((p["trigger"].as_str(), p["period_days"].as_i64()), (Some(trigger), Some(days)), "{p}");
        assert!(p["updated_at"].is_null());
    }
    assert_eq!(coach.get("/api/v1/retention/policies").await.0, StatusCode::FORBIDDEN);

    // Clocks: an identity copy from its upload; a progress report waits
    // for the end of the trajectory.
    let (s, id_copy) = upload_with(&office, &client, "id_copy", &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{id_copy}");
    let uploaded = time(&id_copy["uploaded_at"]);
    assert_eq!(time(&id_copy["retention_until"]), uploaded + chrono::Duration::days(30));
    assert_eq!((id_copy["retention_source"].as_str(), &id_copy["retention_waits_for"]), (Some("policy"), &Value::Null));
    let (s, report) = upload_with(&office, &client, "progress_report", &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{report}");
    assert!(report["retention_until"].is_null(), "{report}");
    assert_eq!(report["retention_waits_for"], "trajectory_end");

    // Manual dates: in the future and with a reason; a psychological report
    // below the NIP minimum only by management.
    let soon = (chrono::Utc::now() + chrono::Duration::days(60)).date_naive().to_string();
    for (fields, status, code) in [
        (vec![("retention_until", "1970-01-01".to_string()), ("retention_reason", "x".into())], 422, "invalid_field"),
        (vec![("retention_until", soon.clone())], 422, "reason_required"),
        (vec![("retention_until", soon.clone()), ("retention_reason", "  ".into())], 422, "reason_required"),
    ] {
        let (s, v) = upload_with(&office, &client, "intake", &fields).await;
        assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (status, Some(code)), "{fields:?}: {v}");
    }
    let reason = ("retention_reason", "contract van de gemeente".to_string());
    let (s, manual) =
        upload_with(&office, &client, "intake", &[("retention_until", soon.clone()), reason.clone()]).await;
    assert_eq!(s, StatusCode::CREATED, "{manual}");
    assert_eq!(
        (manual["retention_source"].as_str(), manual["retention_reason"].as_str()),
        (Some("manual"), Some("contract van de gemeente"))
    );
    let (s, v) =
        upload_with(&office, &client, "psych_report", &[("retention_until", soon.clone()), reason.clone()]).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")), "{v}");
    let (s, psych) = upload_with(&admin, &client, "psych_report", &[("retention_until", soon.clone()), reason]).await;
    assert_eq!(s, StatusCode::CREATED, "{psych}");
    let (_, events) = admin.get("/api/v1/audit?action=document.upload&limit=100").await;
    let below: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["details"]["retention"]["below_nip_minimum"] == true)
        .collect();
    assert_eq!(below.len(), 1, "management's date below the minimum is audited as such: {events}");
    assert_eq!(below[0]["document_id"], psych["id"]);

    // The trajectory ends: the trajectory-bound clocks start; manual dates
    // stay.
    let (s, closed) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    let ended = time(&closed["ended_at"]);
    let get = |id: &Value| format!("/api/v1/documents/{}", id.as_str().unwrap());
    let (_, r) = office.get(&get(&report["id"])).await;
    assert_eq!(time(&r["retention_until"]), ended + chrono::Duration::days(731), "{r}");
    assert!(r["retention_waits_for"].is_null());
    let (_, m) = office.get(&get(&manual["id"])).await;
    assert_eq!(m["retention_until"], manual["retention_until"], "a manual date is not the policy's");

    // Reopened, the trajectory-bound date goes again; closed again, it
    // comes back from the new end.
    let reopen = format!("/api/v1/clients/{client}/reopen");
    let (s, v) = office.post(&reopen, json!({"reason": ""})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    assert_eq!(coach.post(&reopen, json!({"reason": "x"})).await.0, StatusCode::FORBIDDEN);
    let (s, v) = office.post(&reopen, json!({"reason": "nieuw traject"})).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("active")), "{v}");
    let (s, v) = office.post(&reopen, json!({"reason": "nog eens"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("not_closed")));
    let (_, r) = office.get(&get(&report["id"])).await;
    assert_eq!((&r["retention_until"], r["retention_waits_for"].as_str()), (&Value::Null, Some("trajectory_end")));
    let (_, m) = office.get(&get(&manual["id"])).await;
    assert_eq!(m["retention_until"], manual["retention_until"], "a manual date stays");
    let (_, i) = office.get(&get(&id_copy["id"])).await;
    assert_eq!(i["retention_until"], id_copy["retention_until"], "an upload clock does not depend on the trajectory");
    let (s, closed) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    let ended = time(&closed["ended_at"]);

    // A policy change moves the dates of the type's documents whose clock
    // has not run out, and says how many; office may not change it.
    let (s, _) = office
        .put("/api/v1/retention/policies/progress_report", json!({"trigger": "trajectory_end", "period_days": 365}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, change) = admin
        .put("/api/v1/retention/policies/progress_report", json!({"trigger": "trajectory_end", "period_days": 365}))
        .await;
    assert_eq!(s, StatusCode::OK, "{change}");
    assert_eq!((change["dates_moved"].as_u64(), change["policy"]["period_days"].as_i64()), (Some(1), Some(365)));
    assert!(!change["policy"]["updated_at"].is_null());
    let (_, r) = office.get(&get(&report["id"])).await;
    assert_eq!(time(&r["retention_until"]), ended + chrono::Duration::days(365));
    // The same policy again moves nothing.
    let (_, again) = admin
        .put("/api/v1/retention/policies/progress_report", json!({"trigger": "trajectory_end", "period_days": 365}))
        .await;
    assert_eq!(again["dates_moved"], 0, "{again}");
    // An identity copy now counted from the end of the trajectory.
    let (_, c) =
        admin.put("/api/v1/retention/policies/id_copy", json!({"trigger": "trajectory_end", "period_days": 10})).await;
    assert_eq!(c["dates_moved"], 1, "{c}");
    let (_, r) = office.get(&get(&id_copy["id"])).await;
    assert_eq!(time(&r["retention_until"]).timestamp(), (ended + chrono::Duration::days(10)).timestamp());
    // A whole number written as `731.0` is a whole number; `10.5` is not.
    let (s, v) = admin
        .put("/api/v1/retention/policies/intake", json!({"trigger": "trajectory_end", "period_days": 731.0}))
        .await;
    assert_eq!((s, v["policy"]["period_days"].as_i64()), (StatusCode::OK, Some(731)), "{v}");
    for (body, code) in [
        (json!({"trigger": "upload", "period_days": 10.5}), "invalid_body"),
        (json!({"trigger": "upload", "period_days": 0}), "invalid_field"),
        (json!({"trigger": "upload", "period_days": 36601}), "invalid_field"),
        (json!({"trigger": "later", "period_days": 10}), "invalid_body"),
    ] {
        let (s, v) = admin.put("/api/v1/retention/policies/intake", body.clone()).await;
        assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some(code)), "{body}: {v}");
    }
    let (_, v) = admin.get("/api/v1/audit?action=retention.policy&limit=10").await;
    let events: Vec<&Value> = v["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(events.len(), 4, "every change audited: {v}");
    assert_eq!(events[3]["details"]["dates_moved"], 1);
    let denied = v["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").count();
    assert_eq!(denied, 1, "office's attempt is audited as denied: {v}");
}
on_both_backends!(retention_policies_and_destruction_dates, policies_and_dates);

async fn manual_dates_and_holds(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office = Api::login(&env.server, &env.user(&admin, "olga", "office").await).await;
    let coach = Api::login(&env.server, &env.user(&admin, "carla", "coach").await).await;
    let client = env.client(&admin).await;
    let (s, psych) = upload_with(&office, &client, "psych_report", &[]).await;
    assert_eq!(s, StatusCode::CREATED, "{psych}");
    let path = format!("/api/v1/documents/{}/retention", psych["id"].as_str().unwrap());
    let day = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).date_naive().to_string();

    // Refusals: who, when, why.
    assert_eq!(coach.put(&path, json!({"until": day(400), "reason": "x"})).await.0, StatusCode::FORBIDDEN);
    for (body, status, code) in [
        (json!({"until": "2001-01-01", "reason": "x"}), 422, "invalid_field"),
        (json!({"until": "morgen", "reason": "x"}), 422, "invalid_field"),
        (json!({"until": day(400), "reason": " "}), 422, "reason_required"),
        // Within a year of now while the trajectory runs: below the NIP minimum.
        (json!({"until": day(60), "reason": "x"}), 403, "forbidden"),
    ] {
        let (s, v) = office.put(&path, body.clone()).await;
        assert_eq!((s.as_u16(), v["error"]["code"].as_str()), (status, Some(code)), "{body}: {v}");
    }
    let (s, v) = office
        .put(
            "/api/v1/documents/00000000-0000-4000-8000-000000000000/retention",
            json!({"until": day(400), "reason": "x"}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");

    // Office sets a date above the minimum; back to the policy; management
    // below it, audited as such.
    let (s, v) = office.put(&path, json!({"until": day(400), "reason": "klacht loopt"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["retention_source"].as_str(), v["retention_reason"].as_str()),
        (Some("manual"), Some("klacht loopt"))
    );
    assert_eq!(v["retention_until"].as_str().map(|t| &t[..10]), Some(day(400).as_str()));
    let (s, v) = office.put(&path, json!({"until": null, "reason": "terug naar het beleid"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["retention_source"].as_str(), &v["retention_until"]), (Some("policy"), &Value::Null));
    assert_eq!(v["retention_waits_for"], "trajectory_end");
    let (s, v) = admin.put(&path, json!({"until": day(60), "reason": "verzoek van de cliënt"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, events) = admin.get("/api/v1/audit?action=document.retention&limit=20").await;
    let ok: Vec<&Value> = events["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 3, "{events}");
    assert_eq!(
        (ok[0]["details"]["below_nip_minimum"].as_bool(), ok[0]["reason"].as_str()),
        (Some(true), Some("verzoek van de cliënt"))
    );
    assert_eq!(ok[1]["details"]["below_nip_minimum"], false);

    // Legal hold: management only, with a reason; lifted again.
    let hold = format!("/api/v1/documents/{}/legal-hold", psych["id"].as_str().unwrap());
    assert_eq!(office.put(&hold, json!({"hold": true, "reason": "klacht"})).await.0, StatusCode::FORBIDDEN);
    let (s, v) = admin.put(&hold, json!({"hold": true, "reason": ""})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (s, v) = admin.put(&hold, json!({"hold": true, "reason": "klacht bij het tuchtcollege"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["legal_hold"].as_bool(), v["legal_hold_reason"].as_str()),
        (Some(true), Some("klacht bij het tuchtcollege"))
    );
    let (_, v) = office.get(&format!("/api/v1/documents/{}", psych["id"].as_str().unwrap())).await;
    assert_eq!(v["legal_hold"], true, "{v}");
    let (s, v) = admin.put(&hold, json!({"hold": false, "reason": "klacht afgehandeld"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["legal_hold"].as_bool(), &v["legal_hold_reason"]), (Some(false), &Value::Null));
    let (_, events) = admin.get("/api/v1/audit?action=document.legal_hold&limit=20").await;
    let ok: Vec<&Value> = events["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "ok").collect();
    assert_eq!(ok.len(), 2, "{events}");
    assert_eq!(ok[0]["details"]["hold"], json!({"from": true, "to": false}));
}
on_both_backends!(manual_destruction_dates_and_legal_holds, manual_dates_and_holds);

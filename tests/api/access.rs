//! Substitutions, restriction and the access log.

use crate::helpers::*;

async fn access_model(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office_user = env.user(&admin, "olga", "office").await;
    let absent = env.user(&admin, "anna", "coach").await;
    let sub = env.user(&admin, "sam", "freelance_coach").await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": absent.id})).await;
    let anna = Api::login(&env.server, &absent).await;
    let sam = Api::login(&env.server, &sub).await;
    let office = Api::login(&env.server, &office_user).await;
    let (_, doc) = anna.upload(&client, "progress_report", "voortgang.txt", b"Gaat goed.\n".to_vec()).await;
    let doc = doc["id"].as_str().unwrap().to_string();
    assert_eq!(sam.token(&doc, "guidance").await.0, StatusCode::NOT_FOUND, "no substitution yet");

    // A substitution in the future grants nothing yet; a current one does.
    let t = |mins: i64| (chrono::Utc::now() + chrono::Duration::minutes(mins)).to_rfc3339();
    let (s, v) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": sub.id,
              "from": t(60), "until": t(120), "reason": "vacation"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    let (s, v) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": sub.id,
              "from": t(-1), "until": t(60), "reason": "sickness"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let current = v["id"].as_str().unwrap().to_string();
    let (s, bad) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": env.admin.id,
              "from": t(0), "until": t(5), "reason": "vacation"}),
        )
        .await;
    assert_eq!((s, bad["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_coach")));
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::OK);
    assert_eq!(sam.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 1);
    let (s, tok) = sam.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let (s, _, _) = Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, list) = office.get("/api/v1/substitutions").await;
    assert_eq!((s, list["substitutions"].as_array().unwrap().len()), (StatusCode::OK, 2));

    // Ended early: a token issued before is refused at redemption.
    let (_, tok) = sam.token(&doc, "guidance").await;
    let (s, _) = office.send(office.req(reqwest::Method::DELETE, &format!("/api/v1/substitutions/{current}"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);

    // Restriction: nobody downloads, except management for availability.
    let (s, v) =
        office.put(&format!("/api/v1/clients/{client}/restriction"), json!({"restricted": true, "reason": ""})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (_, pending) = anna.token(&doc, "guidance").await;
    let (s, v) = office
        .put(&format!("/api/v1/clients/{client}/restriction"), json!({"restricted": true, "reason": "bezwaar art. 18"}))
        .await;
    assert_eq!((s, v["restricted"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, v) = anna.token(&doc, "guidance").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("restricted")));
    assert_eq!(Api::anonymous(&env.server).download(pending["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(office.token(&doc, "administration").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.token(&doc, "availability").await.0, StatusCode::CREATED);

    // The access log tells the client who opened what, when, why, on whose behalf.
    assert_eq!(anna.get(&format!("/api/v1/clients/{client}/access-log")).await.0, StatusCode::FORBIDDEN);
    let (s, log) = office.get(&format!("/api/v1/clients/{client}/access-log")).await;
    assert_eq!(s, StatusCode::OK);
    let entries = log["entries"].as_array().unwrap();
    let via_sub = entries
        .iter()
        .find(|e| {
            e["action"] == "document.download" && e["outcome"] == "allowed" && e["actor_id"] == sub.id.to_string()
        })
        .expect("the substitute's download is in the access log");
    assert_eq!(via_sub["on_behalf_of"], absent.id.to_string());
    assert_eq!(via_sub["purpose"], "guidance");
    assert_eq!(via_sub["actor_name"], "sam");
    assert!(entries.iter().any(|e| e["outcome"] == "denied" && e["actor_id"] == sub.id.to_string()));
    assert_eq!(log["caseload"].as_array().unwrap().len(), 1);
    assert_eq!(log["caseload"][0]["coach_id"], absent.id.to_string());

    // The audit log: management only, filterable, and the chain verifies.
    assert_eq!(office.get("/api/v1/audit").await.0, StatusCode::FORBIDDEN);
    let (s, a) = admin.get(&format!("/api/v1/audit?client_id={client}&action=document.download&limit=50")).await;
    assert_eq!(s, StatusCode::OK);
    let events = a["events"].as_array().unwrap();
    assert!(events.len() >= 3 && events.iter().all(|e| e["action"] == "document.download"));
    let (s, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)));
}
on_both_backends!(substitutions_restriction_and_access_log, access_model);

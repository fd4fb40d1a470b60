//! Downloads: tampered objects, token expiry, reuse and revocation.

use crate::helpers::*;

async fn tampered(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let (data, _) = pdf(400_000);
    let (_, doc) = admin.upload(&client, "fml", "fml.pdf", data.clone()).await;
    let id: Uuid = doc["id"].as_str().unwrap().parse().unwrap();
    // Flip one byte in the fourth segment of the stored object.
    let cfg = kluis_proc::vault_config(&env.b);
    let v = vault::Vault::open(&cfg).await.unwrap();
    let row = v.catalog_for_tests().snapshot(0).await.unwrap().get_document(id).await.unwrap();
    let name = vault::store::ObjectName::from_catalog(row.object_name);
    let mut obj = Vec::new();
    let mut s = v.store_for_tests().get_stream(&name).await.unwrap();
    use futures::StreamExt;
    while let Some(c) = s.next().await {
        obj.extend_from_slice(&c.unwrap());
    }
    obj[32 + 3 * (65536 + 16) + 100] ^= 1;
    v.store_for_tests().put_bytes(&name, obj.into()).await.unwrap();

    let (_, tok) = admin.token(doc["id"].as_str().unwrap(), "assignment").await;
    // Either the connection breaks before the response head is flushed, or
    // the head (200, full Content-Length) went out and the body breaks off:
    // both are a failed transfer, never a complete-looking short file.
    let url = format!("{}{}", env.server.base, tok["url"].as_str().unwrap());
    match reqwest::get(&url).await {
        Err(_) => {}
        Ok(resp) => {
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()["content-length"], data.len().to_string().as_str());
            match resp.bytes().await {
                Err(_) => {}
                Ok(b) => panic!("a tampered object must abort the transfer, got {} of {} bytes", b.len(), data.len()),
            }
        }
    }
    assert!(env.server.log().contains("download aborted"));
}
on_both_backends!(tampered_object_aborts_the_download, tampered);

async fn token_expiry_and_revocation(b: Backend) {
    let env = start(b, &[("KLUIS_TOKEN_TTL", "2s")]).await;
    let admin = env.admin().await;
    let coach = env.user(&admin, "carla", "coach").await;
    let other = env.user(&admin, "otto", "freelance_coach").await;
    let client = env.client(&admin).await;
    let (s, _) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach.id})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": env.admin.id})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_coach")));
    let carla = Api::login(&env.server, &coach).await;
    let otto = Api::login(&env.server, &other).await;

    // The coach works on her own client; the other coach sees nothing of it.
    let (s, doc) = carla.upload(&client, "work_plan", "plan.txt", b"Werkplan: drie dagen per week.\n".to_vec()).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let doc = doc["id"].as_str().unwrap().to_string();
    assert_eq!(carla.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 1);
    assert_eq!(otto.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 0);
    assert_eq!(otto.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(otto.get(&format!("/api/v1/clients/{}", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(otto.token(&doc, "guidance").await.0, StatusCode::NOT_FOUND);
    assert_eq!(carla.get(&format!("/api/v1/clients/{client}/bsn")).await.0, StatusCode::FORBIDDEN);
    let (s, v) = carla.token(&doc, "invoicing").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("purpose_not_allowed")));

    // What a role may never do is 403 whether or not the id exists.
    let unknown = Uuid::new_v4();
    assert_eq!(carla.get(&format!("/api/v1/clients/{unknown}/bsn")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(carla.post(&format!("/api/v1/clients/{unknown}/close"), json!({})).await.0, StatusCode::FORBIDDEN);

    // HEAD does not use up a token.
    let (_, t) = carla.token(&doc, "guidance").await;
    let head =
        reqwest::Client::new().head(format!("{}{}", env.server.base, t["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::OK);

    // Expired.
    let (_, t) = carla.token(&doc, "guidance").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, _, body) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("token_expired"));

    // Revoked between issue and redemption: reassignment.
    let (_, t) = carla.token(&doc, "guidance").await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": other.id})).await;
    let (s, _, _) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Revoked: the holder is deactivated (sessions end, tokens voided).
    let (s, t) = otto.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, v) = admin.patch(&format!("/api/v1/users/{}", other.id), json!({"active": false})).await;
    assert_eq!((s, v["active"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(otto.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let (s, _, _) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Revoked: the holder's role changes (coach to freelance coach is still
    // a coach, but any change means the token was issued under other rights).
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach.id})).await;
    let (s, t) = carla.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, _) = admin.patch(&format!("/api/v1/users/{}", coach.id), json!({"role": "freelance_coach"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    let carla = Api::login(&env.server, &coach).await;

    // Revoked: the trajectory is closed after the token was issued.
    let (s, t) = carla.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");

    // Closing the trajectory: the coach's access ends, uploads stop.
    let (s, c) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("closed")));
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(carla.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    let (s, v) = admin.upload(&client, "intake", "late.txt", b"te laat\n".to_vec()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("client_closed")));
    // The archive is for satisfaction_survey and availability.
    assert_eq!(admin.token(&doc, "administration").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.token(&doc, "availability").await.0, StatusCode::CREATED);
}
on_both_backends!(tokens_expire_and_lose_their_power_when_access_ends, token_expiry_and_revocation);

//! The database and the store going away and coming back.

use crate::helpers::*;

#[tokio::test]
async fn store_and_database_going_away_and_coming_back() {
    let b = support::services().await;
    let store = Flaky::start(host_port(b.s3_endpoint.as_deref().unwrap())).await;
    let db = Flaky::start(host_port(&b.database_url)).await;
    let db_name = b.database_url.rsplit('/').next().unwrap().to_string();
    let db_url = format!("postgres://kluis@{}/{db_name}", db.addr);
    let store_url = format!("http://{}", store.addr);
    let admin_user = {
        let mut c = kluis(&b);
        c.env("KLUIS_DATABASE_URL", &db_url).env("KLUIS_S3_ENDPOINT", &store_url);
        c.args(["user", "add", "--username", "beheer", "--role", "management"]);
        create_user_cli_with(c).await
    };
    let mut c = kluis(&b);
    c.env("KLUIS_DATABASE_URL", &db_url).env("KLUIS_S3_ENDPOINT", &store_url);
    let server = Server::start(c, b.dir.path().join("serve.log")).await.unwrap();
    let admin = Api::login(&server, &admin_user).await;
    let env = Env { b, server, admin: admin_user };
    let client = env.client(&admin).await;
    let (data, _) = pdf(2 * 1024 * 1024);
    let (s, before) = admin.upload(&client, "intake", "voor.pdf", data.clone()).await;
    assert_eq!(s, StatusCode::CREATED);

    // The store goes away: uploads fail cleanly, readiness says so.
    store.down();
    let (s, v) = admin.upload(&client, "intake", "tijdens.pdf", data.clone()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("storage_unavailable")), "{v}");
    let (s, r) = env.server.get("/readyz").await;
    assert_eq!((s, &r["checks"]["storage"]), (503, &json!("unavailable")));
    store.up();

    // The database goes away.
    db.down();
    let (s, v) = admin.get(&format!("/api/v1/clients/{client}")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("database_unavailable")),
        "{v}"
    );
    assert_eq!(env.server.get("/readyz").await.0, 503);
    db.up();

    // Both back: everything that was there is still there, and work goes on.
    let mut ready = false;
    for _ in 0..50 {
        if env.server.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "{}", env.server.log());
    let (s, t) = admin.token(before["id"].as_str().unwrap(), "assignment").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, _, body) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!((s, body.unwrap() == data), (StatusCode::OK, true));
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 1, "the failed upload left no document");
    assert_eq!(admin.upload(&client, "intake", "na.pdf", data).await.0, StatusCode::CREATED);
}

//! Master-key rotation while a server runs: `kluis rekey` and `kluis key
//! retire` from the command line must never leave a value the server wrote
//! meanwhile under a version that disappears.

use crate::helpers::*;

/// Upload a small PDF and return its id.
async fn upload(api: &Api, client: &str) -> (String, Vec<u8>) {
    let (data, _) = pdf(70_000);
    let (s, v) = api.upload(client, "fml", "fml.pdf", data.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (v["id"].as_str().unwrap().to_string(), data)
}

async fn download(api: &Api, doc: &str) -> Vec<u8> {
    let (s, tok) = api.token(doc, "administration").await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let (s, _, body) = api.download(tok["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    body.unwrap()
}

async fn cli(b: &Backend, args: &[&str]) -> std::process::Output {
    let mut c = kluis(b);
    c.args(args);
    let out = run(c).await;
    assert!(out.status.success(), "kluis {args:?}: {}", kluis_proc::text(&out.stderr));
    out
}

async fn rotate_and_retire(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let before_client = env.client(&admin).await;
    let before = upload(&admin, &before_client).await;
    // Another process rotates the key while the server runs.
    cli(&env.b, &["rekey"]).await;
    // The server goes on writing: a client (BSN sealed) and a document (data key wrapped).
    let after_client = env.client(&admin).await;
    let after = upload(&admin, &after_client).await;
    // Retiring version 1 now must be safe: nothing the server wrote is under it.
    cli(&env.b, &["key", "retire", "1"]).await;
    let keys: Value = serde_json::from_slice(&cli(&env.b, &["key", "list"]).await.stdout).unwrap();
    assert_eq!(keys[0]["state"], "retired", "{keys}");
    let key_file = std::fs::read_to_string(env.b.dir.path().join("data/master.key")).unwrap();
    assert!(!key_file.lines().any(|l| l.starts_with("1:")), "version 1 left the key file");

    // A fresh server (it can only load version 2) reads everything.
    let Env { b, server, admin: user } = env;
    drop(server);
    let server = Server::start(kluis(&b), b.dir.path().join("serve2.log")).await.unwrap();
    let env = Env { b, server, admin: user };
    let admin = env.admin().await;
    for (doc, data) in [&before, &after] {
        assert_eq!(&download(&admin, doc).await, data);
    }
    for client in [&before_client, &after_client] {
        let (s, v) = admin.get(&format!("/api/v1/clients/{client}/bsn")).await;
        assert_eq!((s, v["bsn"].as_str()), (StatusCode::OK, Some(BSN)));
    }
}
on_both_backends!(key_retire_after_rekey_with_a_server_running_keeps_everything_readable, rotate_and_retire);

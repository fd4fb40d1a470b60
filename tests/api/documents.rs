//! Uploads: the round trip, refused content and sizes, a client that goes away.

use crate::helpers::*;

async fn round_trip(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let (s, me) = admin.get("/api/v1/me").await;
    assert_eq!((s, me["role"].as_str()), (StatusCode::OK, Some("management")));
    let client = env.client(&admin).await;

    let (data, marker) = pdf(3 * 1024 * 1024 + 123);
    let (s, doc) = admin.upload(&client, "psych_report", "Rapport Jansen.pdf", data.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["content_type"], "application/pdf");
    assert_eq!(doc["size"], data.len());
    assert_eq!(doc["filename"], "Rapport Jansen.pdf");
    assert_eq!(doc["state"], "active");
    let doc_id = doc["id"].as_str().unwrap().to_string();
    let (s, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!((s, list["documents"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

    let (s, tok) = admin.token(&doc_id, "administration").await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let url = tok["url"].as_str().unwrap().to_string();
    assert!(tok["token"].as_str().unwrap().len() >= 43, "at least 256 bits");

    let anon = Api::anonymous(&env.server);
    let (s, h, body) = anon.download(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.unwrap(), data, "byte for byte");
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], data.len().to_string().as_str());
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"Rapport Jansen.pdf\""));
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));

    // Second use, altered token.
    let (s, _, body) = anon.download(&url).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("token_used"));
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let (s, _, body) = anon.download(&altered).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("invalid_token"));

    // The BSN only through the audited reveal.
    let (s, v) = admin.get(&format!("/api/v1/clients/{client}/bsn")).await;
    assert_eq!((s, v["bsn"].as_str()), (StatusCode::OK, Some(BSN)));

    // No plaintext and no BSN anywhere at rest, nor in the server log.
    let mut files = Vec::new();
    files_under(env.b.dir.path(), &mut files);
    if env.b.is_s3() {
        // SeaweedFS's volumes and PostgreSQL's data files, too.
        files_under(std::path::Path::new(&std::env::var("KLUIS_TEST_SERVICES_DIR").unwrap()), &mut files);
    }
    assert!(files.len() > 3, "scanned too little: {files:?}");
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        assert!(!contains(&bytes, marker.as_bytes()), "document plaintext in {}", f.display());
        assert!(!contains(&bytes, BSN.as_bytes()), "BSN in {}", f.display());
    }
    let log = env.server.log();
    assert!(log.contains("DEBUG") || log.contains("INFO"), "the log was captured");
    assert!(!log.contains(BSN) && !log.contains(&marker), "secret in the server log");
    assert!(!log.contains(tok["token"].as_str().unwrap()), "download token in the server log");
    assert!(!log.contains(admin.token.as_deref().unwrap()), "session token in the server log");

    // The audit chain holds it all and verifies.
    let mut c = kluis(&env.b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["events"].as_i64().unwrap() >= 8, "{v}");

    // Log out: the token stops working.
    let (s, _) = admin.send(admin.req(reqwest::Method::DELETE, "/api/v1/session")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(admin.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
}
on_both_backends!(upload_and_download_once_round_trip, round_trip);

async fn refused_uploads(b: Backend) {
    let env = start(b, &[("KLUIS_MAX_UPLOAD_BYTES", "100000")]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("too-big.pdf", pdf(150_000).0, StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (
            "tool.pdf",
            [b"\x7fELF\x02\x01\x01".as_slice(), &[0u8; 100]].concat(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "setup.pdf",
            [b"MZ\x90\x00".as_slice(), &[0u8; 100]].concat(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "page.txt",
            b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("run.txt", b"#!/bin/sh\nrm -rf /\n".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "blob.pdf",
            vec![0x00, 0x01, 0x02, 0xfe, 0xff, 0x10, 0x80, 0x00],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("empty.pdf", vec![], StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
    ];
    for (name, data, status, code) in cases {
        let (s, v) = admin.upload(&client, "intake", name, data).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{name}: {v}");
    }
    let (s, v) = admin.upload(&client, "selfie", "x.pdf", pdf(1000).0).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_type")));
    // A plain text file and an exactly-at-the-limit PDF are fine.
    assert_eq!(
        admin.upload(&client, "correspondence", "brief.txt", "Beste Jan,\nTot ziens.\n".into()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(admin.upload(&client, "intake", "max.pdf", pdf(100_000).0).await.0, StatusCode::CREATED);

    // Nothing of the refused uploads remains: two documents, no pending rows, two objects.
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 2);
    assert_no_leftovers(&env, 2).await;
}
on_both_backends!(refused_uploads_leave_nothing, refused_uploads);

async fn disconnect(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    // A raw request that promises 20 MB and stops after 3 MB.
    let addr = env.server.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let boundary = "kluisboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nintake\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let req = format!(
        "POST /api/v1/clients/{client}/documents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 20000000\r\n\r\n{head}",
        admin.token.as_deref().unwrap()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(&pdf(3 * 1024 * 1024).0).await.unwrap();
    sock.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(sock);
    // The server notices, aborts, and cleans up: no row, no object, no
    // partial file.
    let mut last = (usize::MAX, Vec::new());
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = leftovers(&env).await;
        if last.0 == 0 && last.1.is_empty() {
            break;
        }
    }
    assert_eq!(last.0, 0, "pending rows left behind");
    assert!(last.1.is_empty(), "files left behind: {:?}", last.1);
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert!(list["documents"].as_array().unwrap().is_empty());
    assert!(env.server.log().contains("upload interrupted"), "the server saw the upload break off");
    // The server still works.
    assert_eq!(admin.upload(&client, "intake", "ok.pdf", pdf(2000).0).await.0, StatusCode::CREATED);
}
on_both_backends!(client_disconnecting_mid_upload_leaves_nothing, disconnect);

/// A ZIP of stored entries (what a DOCX is), written by hand.
fn zip(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let (mut out, mut central) = (Vec::new(), Vec::new());
    for (name, data) in entries {
        let offset = out.len() as u32;
        let (crc, len, n) = (crc32(data), data.len() as u32, name.len() as u16);
        let mut local = b"PK\x03\x04".to_vec();
        local.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, stored, time, date
        for v in [crc, len, len] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        local.extend_from_slice(&n.to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for v in [crc, len, len] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&n.to_le_bytes());
        central.extend_from_slice(&[0u8; 8]); // extra, comment, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_len, count) = (out.len() as u32, central.len() as u32, entries.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn docx(extra: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries = vec![
        ("[Content_Types].xml", b"<?xml version=\"1.0\"?><Types/>".to_vec()),
        ("word/document.xml", b"<w:document/>".to_vec()),
        ("word/media/padding.bin", vec![7u8; 12_000]),
    ];
    entries.extend(extra.iter().cloned());
    zip(&entries)
}

async fn content_rules_hold_for_the_whole_file(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    // The same document is accepted without macros ...
    let (s, v) = admin.upload(&client, "work_plan", "plan.docx", docx(&[])).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // ... and refused with a macro part after 12 KB of other entries.
    let late_macro = docx(&[("word/vbaProject.bin", b"Attribute VB_Name".to_vec())]);
    let (s, v) = admin.upload(&client, "work_plan", "plan.docx", late_macro).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("unsupported_media_type")));
    // Text with markup after its first 8 KiB, and invalid UTF-8 after it.
    let mut late_script = "Beste Jan,\n".repeat(2000).into_bytes();
    late_script.extend_from_slice(b"<ScRiPt>alert(1)</script>\n");
    let (s, _) = admin.upload(&client, "correspondence", "brief.txt", late_script).await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let mut late_binary = "Beste Jan,\n".repeat(2000).into_bytes();
    late_binary.extend_from_slice(&[0xff, 0xfe, 0x00]);
    assert_eq!(
        admin.upload(&client, "correspondence", "brief.txt", late_binary).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    // A text file keeps its name (no brief.txt.txt).
    let (s, v) = admin.upload(&client, "correspondence", "brief.txt", b"Beste Jan,\nTot ziens.\n".to_vec()).await;
    assert_eq!((s, v["filename"].as_str()), (StatusCode::CREATED, Some("brief.txt")));
    // A refusal at the end leaves nothing, like any failed upload; the
    // refusals are audited.
    assert_no_leftovers(&env, 2).await;
    let (_, audit) = admin.get("/api/v1/audit?action=document.upload&limit=20").await;
    let denied = audit["events"].as_array().unwrap().iter().filter(|e| e["outcome"] == "denied").count();
    assert_eq!(denied, 3, "{audit}");
}
on_both_backends!(content_rules_hold_for_the_whole_file_not_its_head, content_rules_hold_for_the_whole_file);

#[tokio::test]
async fn a_form_with_unknown_repeated_or_late_fields_is_refused() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let path = format!("/api/v1/clients/{client}/documents");
    let file = || reqwest::multipart::Part::bytes(pdf(2000).0).file_name("a.pdf");
    let forms = [
        (
            "a repeated type",
            reqwest::multipart::Form::new().text("type", "intake").text("type", "fml").part("file", file()),
        ),
        (
            "an unknown field",
            reqwest::multipart::Form::new().text("type", "intake").text("owner", "x").part("file", file()),
        ),
        (
            "a second file",
            reqwest::multipart::Form::new().text("type", "intake").part("file", file()).part("file", file()),
        ),
        (
            "a field after the file",
            reqwest::multipart::Form::new().text("type", "intake").part("file", file()).text("title", "x"),
        ),
        (
            "a right-to-left override in the name",
            reqwest::multipart::Form::new()
                .text("type", "intake")
                .part("file", reqwest::multipart::Part::bytes(pdf(2000).0).file_name("rapport\u{202E}fdp.exe")),
        ),
    ];
    for (what, form) in forms {
        let (s, v) = admin.send(admin.req(reqwest::Method::POST, &path).multipart(form)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().contains("owner"), "never echo what was sent: {v}");
    }
    assert_no_leftovers(&env, 0).await;
}

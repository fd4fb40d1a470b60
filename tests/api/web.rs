//! The web UI over HTTP (no browser; `tests/ui/` drives Chromium): the
//! sign-in in two steps with `__Host-` cookies, the cookie never accepted
//! by the API, cross-site forms refused, the page headers, and pages that
//! keep the access rules of the API (scope, purpose, upload checks).

use crate::helpers::*;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// `application/x-www-form-urlencoded` body of `pairs`.
fn form_body(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

trait FormExt {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormExt for reqwest::RequestBuilder {
    fn form_of(self, pairs: &[(&str, &str)]) -> Self {
        self.header("content-type", "application/x-www-form-urlencoded").body(form_body(pairs))
    }
}

/// A browser-like client: no redirects followed, cookies by hand.
struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    fn new(server: &Server) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { base: server.base.clone(), http, cookies: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// This session's token of a page's form `form` (what the page carries).
    fn token(&self, form: &str) -> String {
        gateway::web::session::csrf_token(self.cookie("__Host-kluis_sid").expect("signed in"), form)
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Remember what the answer sets (a `Max-Age=0` removes).
    fn take_cookies(&mut self, resp: &reqwest::Response) -> Vec<String> {
        let mut raw = Vec::new();
        for v in resp.headers().get_all("set-cookie") {
            let s = v.to_str().unwrap().to_string();
            let (kv, _) = s.split_once(';').unwrap_or((&s, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !s.contains("Max-Age=0") {
                self.cookies.push((k.to_string(), val.to_string()));
            }
            raw.push(s);
        }
        raw
    }

    async fn get(&mut self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", self.cookie_header())
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap();
        self.take_cookies(&resp);
        let (s, h) = (resp.status(), resp.headers().clone());
        (s, h, resp.text().await.unwrap())
    }

    /// A form post from a page of this origin (`site`: `Sec-Fetch-Site`).
    async fn post_from(
        &mut self,
        site: Option<&str>,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<String>) {
        let mut r = self.http.post(format!("{}{path}", self.base)).header("cookie", self.cookie_header()).form_of(form);
        if let Some(site) = site {
            r = r.header("sec-fetch-site", site);
        }
        let resp = r.send().await.unwrap();
        let set = self.take_cookies(&resp);
        (resp.status(), resp.headers().clone(), set)
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<String>) {
        self.post_from(Some("same-origin"), path, form).await
    }

    async fn sign_in(&mut self, user: &User) {
        let (s, h, _) = self.post("/login", &[("username", &user.username), ("password", PASSWORD)]).await;
        assert_eq!((s, h["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login/code"));
        let code = fresh_code(&user.secret).await;
        let (s, h, _) = self.post("/login/code", &[("otp", &code)]).await;
        assert_eq!((s, h["location"].to_str().unwrap()), (StatusCode::SEE_OTHER, "/"), "sign-in of {}", user.username);
    }
}

fn location(h: &reqwest::header::HeaderMap) -> &str {
    h.get("location").map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test]
async fn the_web_sign_in_takes_two_steps_with_host_cookies_the_api_never_accepts() {
    let env = start(support::embedded().await, &[]).await;
    let mut b = Browser::new(&env.server);

    // The sign-in page: its own strict policy, never cached.
    let (s, h, html) = b.get("/login").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-security-policy"], CSP);
    assert_eq!(h["cache-control"], "no-store");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(html.contains(r#"<label for="username">Gebruikersnaam</label>"#), "{html}");
    assert!(html.contains(r#"lang="nl""#));
    // Without a session every page leads to the sign-in.
    let (s, h, _) = b.get("/").await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login"));

    // Step 1 checks nothing yet: a wrong password goes on to the code page
    // like a right one, and the two fail alike after the code.
    let (s, h, set) = b.post("/login", &[("username", &env.admin.username), ("password", "wrong password!!")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login/code"));
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with("__Host-kluis_login="), "{set:?}");
    assert!(set[0].ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=300"), "{set:?}");
    assert!(!set[0].contains(PASSWORD) && !set[0].contains("wrong"), "sealed: {set:?}");
    let code = fresh_code(&env.admin.secret).await;
    let (s, h, _) = b.post("/login/code", &[("otp", &code)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?e=credentials"));
    assert!(b.cookie("__Host-kluis_login").is_none() && b.cookie("__Host-kluis_sid").is_none());
    let (_, _, html) = b.get("/login?e=credentials").await;
    assert!(html.contains(r#"role="alert""#) && html.contains("onjuist"), "{html}");

    // The code page without a first step starts again.
    let (s, h, _) = b.get("/login/code").await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login"));

    // Right password, right code: a session cookie, a different value at
    // each step.
    let (_, _, set1) = b.post("/login", &[("username", &env.admin.username), ("password", PASSWORD)]).await;
    let step = b.cookie("__Host-kluis_login").unwrap().to_string();
    let (_, _, html) = b.get("/login/code").await;
    assert!(html.contains(r#"autocomplete="one-time-code""#) && html.contains(r#"inputmode="numeric""#));
    let code = fresh_code(&env.admin.secret).await;
    let (s, h, set2) = b.post("/login/code", &[("otp", &code)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/"), "{set1:?} {set2:?}");
    let sid = b.cookie("__Host-kluis_sid").expect("a session cookie").to_string();
    assert_ne!(sid, step);
    assert!(set2.iter().any(|c| c == &format!("__Host-kluis_sid={sid}; Path=/; Secure; HttpOnly; SameSite=Strict")));
    assert!(b.cookie("__Host-kluis_login").is_none(), "the first step's cookie is gone");
    let (s, h, html) = b.get("/").await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert_eq!(h["content-security-policy"], CSP);
    assert!(html.contains("Afmelden") && html.contains("Cliënten"), "{html}");

    // The API never takes the cookie, as a cookie or otherwise.
    let resp = b.http.get(format!("{}/api/v1/me", b.base)).header("cookie", b.cookie_header()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // A sign-in replayed with the same sealed first step and the same code
    // is refused (the code was used).
    b.cookies.push(("__Host-kluis_login".into(), step.clone()));
    let (s, h, _) = b.post("/login/code", &[("otp", &code)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?e=credentials"));
    // An altered first step is refused like wrong credentials.
    b.cookies.push(("__Host-kluis_login".into(), format!("{step}AA")));
    let (s, h, _) = b.post("/login/code", &[("otp", "123456")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?e=credentials"));

    // Cross-site and anonymous-origin forms are refused before anything runs.
    for site in [Some("cross-site"), Some("same-site"), None] {
        let (s, h, _) = b.post_from(site, "/logout", &[]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{site:?}");
        assert_eq!(h["content-security-policy"], CSP);
    }
    let evil = b
        .http
        .post(format!("{}/logout", b.base))
        .header("cookie", b.cookie_header())
        .header("origin", "http://evil.example")
        .form_of(&[("x", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::FORBIDDEN);
    let (s, _, _) = b.get("/").await;
    assert_eq!(s, StatusCode::OK, "still signed in");

    // A navigation that began on another site arrives without the cookie:
    // a page with a same-site link to go on, not the sign-in.
    let resp = b
        .http
        .get(format!("{}/clients/x?y=1", b.base))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"href="/clients/x?y=1""#) && html.contains("Verder"), "{html}");
    // A sibling site's page that makes the browser fetch a page with the
    // cookie (an image, a script) gets a refusal, whatever the cookie.
    for site in ["same-site", "cross-site"] {
        let resp = b
            .http
            .get(format!("{}/", b.base))
            .header("cookie", b.cookie_header())
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", "no-cors")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{site}");
    }

    // Sign out: the session ends; the old cookie says the session expired.
    let (s, h, _) = b.post("/logout", &[]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?n=signed_out"));
    b.cookies.push(("__Host-kluis_sid".into(), sid));
    let (s, h, _) = b.get("/").await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?n=expired"));
    let (_, _, html) = b.get("/login?n=expired").await;
    assert!(html.contains("Uw sessie is beëindigd"), "{html}");

    // English on request, and by the browser's preference.
    let (s, h, _) = b.post("/language", &[("lang", "en"), ("back", "/login")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login"));
    let (_, _, html) = b.get("/login").await;
    assert!(html.contains(r#"<label for="username">Username</label>"#) && html.contains(r#"lang="en""#), "{html}");
    for evil in ["//evil.example/", "/\t/evil.example", "/\\evil.example", "https://evil.example/"] {
        let (s, h, _) = b.post("/language", &[("lang", "nl"), ("back", evil)]).await;
        assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/"), "no open redirect: {evil:?}");
    }

    // Assets: hashed names, cached long; unknown paths a page, the API's
    // unknown paths its JSON error.
    let css = html.split("href=\"/assets/").nth(1).unwrap().split('"').next().unwrap().to_string();
    let (s, h, body) = b.get(&format!("/assets/{css}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["cache-control"], "public, max-age=31536000, immutable");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/css") && body.contains("focus-visible"));
    let (s, _, _) = b.get("/assets/0000000000000000/kluis.css").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, h, _) = b.get("/nowhere").await;
    assert_eq!((s, h["content-type"].to_str().unwrap()), (StatusCode::NOT_FOUND, "text/html; charset=utf-8"));
    let (s, v) = Api::anonymous(&env.server).get("/api/v1/nowhere").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
}

#[tokio::test]
async fn pages_keep_the_rules_of_the_api() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let anna = env.user(&admin, "anna", "coach").await;
    let bert = env.user(&admin, "bert", "coach").await;
    let client = env.client(&admin).await;
    let (s, _) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": anna.id})).await;
    assert_eq!(s, StatusCode::OK);

    let mut a = Browser::new(&env.server);
    a.sign_in(&anna).await;
    let (s, _, html) = a.get("/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("Mijn cliënten") && html.contains(&format!(r#"<a href="/clients/{client}">Jansen, J.</a>"#)));
    assert!(!html.contains("111222333") && !html.contains("2333"), "no BSN on the caseload");

    // Upload through the page (as its script does: one file, JSON answer).
    let (data, _) = pdf(20_000);
    let upload = |b: &Browser, name: &str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("type", "work_plan")
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()));
        b.http
            .post(format!("{}/clients/{client}/documents", b.base))
            .header("cookie", b.cookie_header())
            .header("sec-fetch-site", "same-origin")
            .header("x-kluis-upload", "1")
            .multipart(form)
    };
    let resp = upload(&a, "plan.pdf", data.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"ok": true, "filename": "plan.pdf", "message": "Geaccepteerd"}));
    let resp = upload(&a, "script.html", b"<html><script>alert(1)</script></html>".to_vec()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["filename"], "script.html");
    assert!(v["message"].as_str().unwrap().starts_with("Geweigerd: dit bestandstype"), "{v}");
    // A cross-site upload is refused before the body is read.
    let resp = upload(&a, "plan.pdf", data.clone()).header("sec-fetch-site", "cross-site").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    // The dossier page lists the one accepted document with a download
    // form offering the coach's one purpose.
    let (s, _, html) = a.get(&format!("/clients/{client}")).await;
    assert_eq!(s, StatusCode::OK);
    let (_, docs) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    let docs = docs["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1);
    let doc = docs[0]["id"].as_str().unwrap();
    assert!(html.contains(&format!(r#"action="/documents/{doc}/download""#)), "{html}");
    assert!(html.contains(r#"<option value="guidance">"#) && !html.contains(r#"value="invoicing""#));

    // Download from the page: the bytes, as an attachment; a purpose the
    // coach may not name is refused by the vault, not by the page.
    let resp = a
        .http
        .post(format!("{}/documents/{doc}/download", a.base))
        .header("cookie", a.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("csrf", &a.token("download")), ("purpose", "guidance")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"plan.pdf\""));
    assert_eq!(resp.headers()["content-security-policy"], "default-src 'none'; sandbox", "a download keeps its own");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
    let (s, _, _) = a.post(&format!("/documents/{doc}/download"), &[("csrf", "0"), ("purpose", "guidance")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a download form without this session's token");
    let t = a.token("download");
    let (s, _, _) = a.post(&format!("/documents/{doc}/download"), &[("csrf", &t), ("purpose", "invoicing")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, events) = admin.get(&format!("/api/v1/audit?document_id={doc}&action=document.download")).await;
    let outcomes: Vec<_> = events["events"].as_array().unwrap().iter().map(|e| e["outcome"].clone()).collect();
    assert!(outcomes.contains(&json!("allowed")), "{events}");

    // Another coach: the client does not exist for them, on every page.
    let mut b = Browser::new(&env.server);
    b.sign_in(&bert).await;
    let (_, _, html) = b.get("/").await;
    assert!(!html.contains(&client), "{html}");
    let (s, _, html) = b.get(&format!("/clients/{client}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(!html.contains("Jansen"), "{html}");
    let (s, _, _) =
        b.post(&format!("/documents/{doc}/download"), &[("csrf", &b.token("download")), ("purpose", "guidance")]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let resp = upload(&b, "plan.pdf", data.clone()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // A substitution shows the client in bert's caseload, marked as such.
    let now = chrono::Utc::now();
    let (s, v) = admin
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": anna.id, "substitute_id": bert.id, "from": now - chrono::Duration::minutes(1),
                   "until": now + chrono::Duration::days(7), "reason": "vacation"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, _, html) = b.get("/").await;
    assert!(html.contains(&format!("/clients/{client}")) && html.contains("Vervanging van een collega"), "{html}");
}

/// The `csrf` value of the form whose action is `action` on `html`.
fn form_token(html: &str, action: &str) -> String {
    let form = html.split(&format!(r#"action="{action}""#)).nth(1).unwrap_or_else(|| panic!("no form {action}"));
    let after = form.split(r#"name="csrf" value=""#).nth(1).expect("a csrf field");
    after.split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn office_and_management_pages_export_hold_and_show_the_access_log() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let olga = env.user(&admin, "olga", "office").await;
    let client = env.client(&admin).await;
    let (data, _) = pdf(10_000);
    let (s, doc) = admin.upload(&client, "fml", "fml.pdf", data).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let doc = doc["id"].as_str().unwrap().to_string();
    let (s, _) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!(s, StatusCode::OK);

    // Office: the archive tab lists the closed client; its page offers the
    // archive's purposes, the export and the access log, no legal hold.
    let mut o = Browser::new(&env.server);
    o.sign_in(&olga).await;
    let (_, _, html) = o.get("/").await;
    assert!(!html.contains(&format!("/clients/{client}")), "not among the running trajectories");
    let (_, _, html) = o.get("/?status=closed").await;
    assert!(html.contains(&format!(r#"<a href="/clients/{client}">Jansen, J.</a>"#)), "{html}");
    // Search finds the archived document once the index has it (SPEC: within 2 s).
    let mut html = String::new();
    for _ in 0..50 {
        let (s, _, page) = o.get("/search?q=jansen&status=closed").await;
        assert_eq!(s, StatusCode::OK);
        html = page;
        if html.contains(&format!("/clients/{client}#doc-{doc}")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains(&format!("/clients/{client}#doc-{doc}")) && html.contains("Resultaten 1–1 van 1"), "{html}");
    // One dossier only: its client named, kept in the form; another id is not found.
    let (s, _, html) = o.get(&format!("/search?client={client}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains("Alleen in het dossier van Jansen, J.")
            && html.contains(&format!(r#"name="client" value="{client}""#))
    );
    assert!(html.contains(&format!("#doc-{doc}")), "{html}");
    let (s, _, _) = o.get(&format!("/search?client={}", Uuid::new_v4())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, _, html) = o.get(&format!("/clients/{client}")).await;
    assert!(html.contains(&format!(r#"href="/search?client={client}""#)), "a link from the dossier");
    let (_, _, html) = o.get(&format!("/clients/{client}")).await;
    assert!(html.contains(r#"value="availability""#) && html.contains(r#"value="satisfaction_survey""#));
    assert!(!html.contains(r#"value="guidance""#) && !html.contains("/legal-hold"), "{html}");
    assert!(html.contains(r#"id="access-log""#) && html.contains("Document geüpload"), "{html}");
    let token = form_token(&html, &format!("/clients/{client}/export"));
    // Without the form's token, or with another form's, the export is refused.
    let (s, _, _) = o.post(&format!("/clients/{client}/export"), &[("csrf", "0")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let resp = o
        .http
        .post(format!("{}/clients/{client}/export", o.base))
        .header("cookie", o.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("csrf", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let zip = resp.bytes().await.unwrap();
    let names: Vec<String> = {
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
        (0..a.len()).map(|i| a.by_index(i).unwrap().name().to_string()).collect()
    };
    assert!(names.contains(&"client.json".to_string()) && names.iter().any(|n| n.ends_with("fml.pdf")), "{names:?}");
    let (_, events) = admin.get(&format!("/api/v1/audit?client_id={client}&action=client.export")).await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");

    // Office may not place a hold, even with a valid-looking form.
    let hold_token_of_office = {
        let (_, _, html) = o.get(&format!("/clients/{client}")).await;
        form_token(&html, &format!("/clients/{client}/export"))
    };
    let (s, _, _) = o
        .post(
            &format!("/documents/{doc}/legal-hold"),
            &[("csrf", &hold_token_of_office), ("client_id", &client), ("hold", "true"), ("reason", "x")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "another form's token");

    // Management places a hold with a reason, sees it, lifts it.
    let mut m = Browser::new(&env.server);
    m.sign_in(&env.admin).await;
    let (_, _, html) = m.get(&format!("/clients/{client}")).await;
    let hold = form_token(&html, &format!("/documents/{doc}/legal-hold"));
    let (s, h, _) = m
        .post(
            &format!("/documents/{doc}/legal-hold"),
            &[("csrf", &hold), ("client_id", &client), ("hold", "true"), ("reason", "Klacht bij het NIP")],
        )
        .await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{client}?n=held#doc-{doc}").as_str()));
    let (_, v) = admin.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!((v["legal_hold"].as_bool(), v["legal_hold_reason"].as_str()), (Some(true), Some("Klacht bij het NIP")));
    let (_, _, html) = m.get(&format!("/clients/{client}?n=held")).await;
    assert!(
        html.contains("De bewaarplicht is ingesteld") && html.contains("Bewaarplicht: Klacht bij het NIP"),
        "{html}"
    );
    let (s, _, _) = m
        .post(
            &format!("/documents/{doc}/legal-hold"),
            &[("csrf", &hold), ("client_id", &client), ("hold", "false"), ("reason", " ")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a reason is required to lift it too");
    let (s, h, _) = m
        .post(
            &format!("/documents/{doc}/legal-hold"),
            &[("csrf", &hold), ("client_id", &client), ("hold", "false"), ("reason", "Klacht afgehandeld")],
        )
        .await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{client}?n=lifted#doc-{doc}").as_str()));
    let (_, v) = admin.get(&format!("/api/v1/documents/{doc}")).await;
    assert_eq!(v["legal_hold"], false);
}

/// The page's text with tags removed (for assertions on what a person reads).
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in html.chars() {
        match ch {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn staff_pages_manage_users_substitutions_coaches_restriction_retention_audit_and_breaches() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let mut m = Browser::new(&env.server);
    m.sign_in(&env.admin).await;

    // Users: a new coach through the page; its secret is shown once and
    // works for a sign-in.
    let (s, _, html) = m.get("/users").await;
    assert_eq!(s, StatusCode::OK);
    let token = form_token(&html, "/users");
    let (s, _, _) = m
        .post(
            "/users",
            &[
                ("csrf", &token),
                ("username", "kees"),
                ("display_name", "Kees"),
                ("role", "coach"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "weak password");
    let resp = m
        .http
        .post(format!("{}/users", m.base))
        .header("cookie", m.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&[
            ("csrf", &token),
            ("username", "kees"),
            ("display_name", "Kees de Vries"),
            ("role", "coach"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let html = resp.text().await.unwrap();
    let secret = html.split(r#"<code id="totp-secret">"#).nth(1).unwrap().split('<').next().unwrap().to_string();
    let kees = User { id: Uuid::nil(), username: "kees".into(), secret };
    let (_, v) = admin.get("/api/v1/users").await;
    let kees_id = v["users"].as_array().unwrap().iter().find(|u| u["username"] == "kees").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut k = Browser::new(&env.server);
    k.sign_in(&kees).await;
    let (_, _, html) = k.get("/").await;
    assert!(html.contains("Mijn cliënten") && !html.contains(r#"href="/users""#), "a coach has no user pages");
    let (s, _, _) = k.get("/users").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, _, html) =
        m.post("/users", &[("csrf", &token), ("username", "kees"), ("role", "coach"), ("password", PASSWORD)]).await;
    let _ = html;
    let (s, _, _) =
        m.post("/users", &[("csrf", &token), ("username", "kees"), ("role", "coach"), ("password", PASSWORD)]).await;
    assert_eq!(s, StatusCode::CONFLICT, "the name is taken");

    // A second coach, a client assigned to kees through the client page.
    let lies = env.user(&admin, "lies", "coach").await;
    let client = env.client(&admin).await;
    let (_, _, html) = m.get(&format!("/clients/{client}")).await;
    let ct = form_token(&html, &format!("/clients/{client}/coach"));
    let (s, h, _) = m.post(&format!("/clients/{client}/coach"), &[("csrf", &ct), ("coach_id", &kees_id)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{client}?n=coach").as_str()));
    let (_, _, html) = k.get("/").await;
    assert!(html.contains(&format!("/clients/{client}")), "in kees's caseload now");

    // A substitution through its page: lies covers kees's clients.
    let (_, _, html) = m.get("/substitutions").await;
    let st = form_token(&html, "/substitutions");
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let later = (chrono::Utc::now() + chrono::Duration::days(7)).format("%Y-%m-%d").to_string();
    let (s, h, _) = m
        .post(
            "/substitutions",
            &[
                ("csrf", &st),
                ("absent_coach_id", &kees_id),
                ("substitute_id", &lies.id.to_string()),
                ("from", &today),
                ("until", &later),
                ("reason", "sickness"),
            ],
        )
        .await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/substitutions?n=created"));
    let (_, _, html) = m.get("/substitutions?n=created").await;
    // The row in the table (the form below also names "Ziekte").
    let table = html.split(r#"id="substitutions""#).nth(1).expect("a table of substitutions");
    let table = text_of(table.split("</table>").next().unwrap());
    assert!(table.contains("Kees de Vries lies") && table.contains("Ziekte"), "{table}");
    let mut l = Browser::new(&env.server);
    l.sign_in(&lies).await;
    let (_, _, html) = l.get("/").await;
    assert!(html.contains(&format!("/clients/{client}")) && html.contains("Vervanging van een collega"), "{html}");
    let sub_id = html_substitution_id(&m.get("/substitutions").await.2);
    let (s, h, _) = m.post(&format!("/substitutions/{sub_id}/end"), &[("csrf", &st)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/substitutions?n=ended"));
    let (_, _, html) = l.get("/").await;
    assert!(!html.contains(&format!("/clients/{client}")), "the substitution ended");

    // Restriction: the coach can no longer download; lifted again.
    let (data, _) = pdf(5_000);
    let (_, doc) = admin.upload(&client, "intake", "intake.pdf", data).await;
    let doc = doc["id"].as_str().unwrap().to_string();
    let (s, h, _) = m
        .post(
            &format!("/clients/{client}/restriction"),
            &[("csrf", &ct), ("restricted", "true"), ("reason", "Bezwaar ingediend")],
        )
        .await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{client}?n=restricted").as_str()));
    let (s, _, _) =
        k.post(&format!("/documents/{doc}/download"), &[("csrf", &k.token("download")), ("purpose", "guidance")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, _, html) = k.get(&format!("/clients/{client}")).await;
    assert!(html.contains("beperkt") && !html.contains(&format!("/documents/{doc}/download")), "no download form");
    let (s, _, _) = m
        .post(
            &format!("/clients/{client}/restriction"),
            &[("csrf", &ct), ("restricted", "false"), ("reason", "Bezwaar afgewezen")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, _) =
        k.post(&format!("/documents/{doc}/download"), &[("csrf", &k.token("download")), ("purpose", "guidance")]).await;
    assert_eq!(s, StatusCode::OK);

    // Role change and deactivation of kees through the users page.
    let (s, h, _) = m.post(&format!("/users/{kees_id}"), &[("csrf", &token), ("action", "deactivate")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/users?n=updated#user-{kees_id}").as_str()));
    let (s, h, _) = k.get("/").await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/login?n=expired"), "deactivation ends the session");
    let me = env.admin.id.to_string();
    let (s, _, html) =
        m.post(&format!("/users/{me}"), &[("csrf", &token), ("action", "role"), ("role", "office")]).await;
    let _ = html;
    assert_eq!(s, StatusCode::FORBIDDEN, "nobody changes their own role (the vault's rule, as through the API)");

    // The destruction list: a manual date within the month shows, with its reason.
    let until = (chrono::Utc::now() + chrono::Duration::days(10)).format("%Y-%m-%d").to_string();
    let (s, v) = admin
        .put(
            &format!("/api/v1/documents/{doc}/retention"),
            json!({"until": until, "reason": "Afspraak met de opdrachtgever"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, html) = m.get("/retention").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("#doc-{doc}")) && html.contains("Handmatig: Afspraak met de opdrachtgever"),
        "{html}"
    );
    let (s, _, _) = m.get("/retention?before=gisteren").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // The audit log and its verification.
    let (s, _, html) = m.get("/audit?action=document.download").await;
    assert_eq!(s, StatusCode::OK);
    // Kees's download, and (at the token's issue) the one refused while
    // the client was restricted.
    let events = text_of(html.split(r#"id="events""#).nth(1).expect("a table of events"));
    assert!(events.contains("Kees de Vries (coach) Document gedownload") && events.contains("toegestaan"), "{events}");
    let (_, _, html) = m.get("/audit?action=download_token.issue").await;
    let events = text_of(html.split(r#"id="events""#).nth(1).expect("a table of events"));
    assert!(events.contains("Download aangevraagd") && events.contains("geweigerd"), "{events}");
    let (_, _, html) = m.get("/audit").await;
    let at = form_token(&html, "/audit/verify");
    let (s, _, _) = m.post("/audit/verify", &[("csrf", "0")]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "verification walks the whole chain: never without the form's token");
    let resp = m
        .http
        .post(format!("{}/audit/verify", m.base))
        .header("cookie", m.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("csrf", &at)])
        .send()
        .await
        .unwrap();
    let (s, html) = (resp.status(), resp.text().await.unwrap());
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("De keten is in orde"), "{html}");
    let (s, _, _) = l.get("/audit").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a coach has no audit log");

    // The breach register: register, then record the notification.
    let (_, _, html) = m.get("/breaches").await;
    let bt = form_token(&html, "/breaches");
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam).format("%Y-%m-%dT%H:%M").to_string();
    let body = form_body(&[
        ("csrf", &bt),
        ("detected_at", &now),
        ("nature", "Laptop van een coach gestolen"),
        ("categories", "health"),
        ("categories", "contact"),
        ("data_subjects_estimate", "12"),
        ("records_estimate", "40"),
        ("consequences", "Inzage in rapporten"),
        ("measures", "Sessies beëindigd, wachtwoord gewijzigd"),
    ]);
    let resp = m
        .http
        .post(format!("{}/breaches", m.base))
        .header("cookie", m.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, v) = admin.get("/api/v1/breaches").await;
    let b = &v["breaches"][0];
    assert_eq!(b["categories"], json!(["contact", "health"]), "both, in the register's order");
    assert_eq!(b["data_subjects_estimate"], 12);
    let id = b["id"].as_str().unwrap();
    let (s, h, _) =
        m.post(&format!("/breaches/{id}"), &[("csrf", &bt), ("notified_at", &now), ("not_notified_reason", "")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/breaches?n=updated#breach-{id}").as_str()));
    let (_, v) = admin.get(&format!("/api/v1/breaches/{id}")).await;
    assert!(v["authority_notified_at"].is_string(), "{v}");
    let (_, _, html) = m.get("/breaches").await;
    assert!(html.contains("Gemeld op"), "{html}");
}

fn html_substitution_id(html: &str) -> String {
    html.split(r#"action="/substitutions/"#).nth(1).unwrap().split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn client_lists_come_a_page_at_a_time_and_filter_by_name() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    for i in 0..55 {
        let (s, v) = admin
            .post(
                "/api/v1/clients",
                json!({"first_name": "Piet", "initials": "P.", "last_name": format!("Bakker{i:02}"),
                       "birth_date": "1975-05-05", "commissioner": "municipality"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    env.client(&admin).await; // Jansen
    let mut m = Browser::new(&env.server);
    m.sign_in(&env.admin).await;
    let (_, _, html) = m.get("/").await;
    let text = text_of(&html);
    assert!(text.contains("Resultaten 1–50 van 56"), "{text}");
    assert_eq!(html.matches(r#"<th scope="row"><a href="/clients/"#).count(), 50);
    assert!(html.contains("Bakker00") && !html.contains("Jansen"), "by name: Bakker first");
    let next = html.split(r#"rel="next""#).next().unwrap().rsplit("href=\"").next().unwrap().split('"').next().unwrap();
    assert_eq!(next.replace("&amp;", "&"), "/?page=2");
    let (_, _, html) = m.get("/?page=2").await;
    assert!(text_of(&html).contains("Resultaten 51–56 van 56") && html.contains("Jansen"), "{html}");
    assert!(html.contains(r#"rel="prev""#) && !html.contains(r#"rel="next""#));
    let (_, _, html) = m.get("/?name=jan").await;
    assert!(text_of(&html).contains("Resultaten 1–1 van 1") && html.contains("Jansen, J."), "{html}");
    let (_, _, html) = m.get("/?name=bakker1").await;
    assert!(text_of(&html).contains("Resultaten 1–10 van 10"), "{html}");
    let (_, _, html) = m.get("/?name=%25").await;
    assert!(html.contains("Er zijn geen cliënten"), "a % is a character, not a wildcard: {html}");
    let (_, _, html) = m.get("/?status=closed").await;
    assert!(html.contains("Er zijn geen cliënten"), "nothing archived yet");

    // A long dossier: its documents 25 to a page, newest first.
    let client = env.client(&admin).await;
    for i in 0..30 {
        let (s, v) = admin
            .upload(&client, "correspondence", &format!("brief-{i:02}.txt"), format!("Brief {i}\n").into_bytes())
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (_, _, html) = m.get(&format!("/clients/{client}")).await;
    assert_eq!(html.matches("/download\"").count(), 25, "25 download forms on the first page");
    assert!(
        text_of(&html).contains("Resultaten 1–25 van 30") && html.contains(&format!("/clients/{client}?page=2#docs-h"))
    );
    let (_, _, html) = m.get(&format!("/clients/{client}?page=2")).await;
    assert_eq!(html.matches("/download\"").count(), 5);
    assert!(text_of(&html).contains("Resultaten 26–30 van 30") && html.contains("brief-00.txt"), "the oldest last");
    let (s, _, html) = m.get(&format!("/clients/{client}?page=99")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(text_of(&html).contains("Resultaten 26–30 van 30"), "a page past the end shows the last");
}

#[tokio::test]
async fn office_creates_a_client_closes_and_reopens_the_trajectory_and_reveals_the_bsn_once() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let olga = env.user(&admin, "olga", "office").await;
    let mut o = Browser::new(&env.server);
    o.sign_in(&olga).await;
    let (s, _, html) = o.get("/clients/new").await;
    assert_eq!(s, StatusCode::OK);
    let token = form_token(&html, "/clients/new");
    let form = |bsn: &'static str| {
        vec![
            ("first_name", "Fatima"),
            ("initials", "F."),
            ("last_name", "El Amrani"),
            ("birth_date", "1988-08-08"),
            ("bsn", bsn),
            ("email", ""),
            ("phone", ""),
            ("address", ""),
            ("postcode", ""),
            ("city", "Utrecht"),
            ("commissioner", "municipality"),
        ]
    };
    // A BSN that fails the eleven-test: refused, tied to its field, not echoed.
    let mut bad = form("123456789");
    bad.push(("csrf", &token));
    let resp = o
        .http
        .post(format!("{}/clients/new", o.base))
        .header("cookie", o.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = resp.text().await.unwrap();
    assert!(html.contains("elfproef") && !html.contains("123456789"), "{html}");
    assert!(html.contains(r#"id="f-bsn""#) && html.contains(r#"aria-invalid="true""#), "{html}");
    assert!(html.contains(r#"value="El Amrani""#), "the rest is kept");
    let mut good = form(BSN);
    good.push(("csrf", &token));
    let (s, h, _) = o.post("/clients/new", &good).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = location(&h).to_string();
    let id = to.trim_start_matches("/clients/").trim_end_matches("?n=created").to_string();
    let (_, _, html) = o.get(&to).await;
    assert!(html.contains("De cliënt is aangemaakt") && html.contains("El Amrani, F.") && html.contains("*****2333"));
    assert!(!html.contains(BSN), "masked until revealed");

    // The full BSN once, audited; never in a URL.
    let ct = form_token(&html, &format!("/clients/{id}/bsn"));
    let resp = o
        .http
        .post(format!("{}/clients/{id}/bsn", o.base))
        .header("cookie", o.cookie_header())
        .header("sec-fetch-site", "same-origin")
        .form_of(&[("csrf", &ct)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert!(resp.text().await.unwrap().contains(&format!("Volledig BSN: {BSN}")));
    let (_, ev) = admin.get(&format!("/api/v1/audit?client_id={id}&action=client.bsn.reveal")).await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 1, "{ev}");
    let (_, _, html) = o.get(&format!("/clients/{id}")).await;
    assert!(!html.contains(BSN), "masked again on the next visit");

    // Close (the archive), then reopen with a reason.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    let (s, h, _) = o.post(&format!("/clients/{id}/close"), &[("csrf", &ct), ("ended_at", &yesterday)]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{id}?n=closed").as_str()));
    let (_, v) = admin.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(v["status"], "closed");
    let (_, _, html) = o.get("/?status=closed").await;
    assert!(html.contains(&format!("/clients/{id}")));
    let (s, _, _) = o.post(&format!("/clients/{id}/reopen"), &[("csrf", &ct), ("reason", "")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "a reason is required");
    let (s, h, _) =
        o.post(&format!("/clients/{id}/reopen"), &[("csrf", &ct), ("reason", "Nieuwe opdracht van de gemeente")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, format!("/clients/{id}?n=reopened").as_str()));
    let (_, v) = admin.get(&format!("/api/v1/clients/{id}")).await;
    assert_eq!(v["status"], "active");

    // A coach can neither create clients nor reveal a BSN.
    let coach = env.user(&admin, "kim", "coach").await;
    let mut k = Browser::new(&env.server);
    k.sign_in(&coach).await;
    let (s, _, _) = k.get("/clients/new").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, _, html) = k.get("/").await;
    assert!(!html.contains("/clients/new"));
}

#[tokio::test]
async fn a_signed_in_users_language_follows_them_to_another_browser() {
    let env = start(support::embedded().await, &[]).await;
    let mut a = Browser::new(&env.server);
    a.sign_in(&env.admin).await;
    let (_, _, html) = a.get("/").await;
    assert!(html.contains(r#"lang="nl""#), "Dutch first");
    let (s, h, _) = a.post("/language", &[("lang", "en"), ("back", "/")]).await;
    assert_eq!((s, location(&h)), (StatusCode::SEE_OTHER, "/"));
    let (_, v) = Api::login(&env.server, &env.admin).await.get("/api/v1/me").await;
    assert_eq!(v["language"], "en", "{v}");
    // Another browser, which prefers Dutch: the user's choice wins once
    // signed in; before that, the browser's.
    let mut b = Browser::new(&env.server);
    let resp =
        b.http.get(format!("{}/login", b.base)).header("accept-language", "nl-NL,nl;q=0.9").send().await.unwrap();
    assert!(resp.text().await.unwrap().contains(r#"lang="nl""#));
    b.sign_in(&env.admin).await;
    let (_, _, html) = b.get("/").await;
    assert!(html.contains(r#"lang="en""#) && html.contains("Sign out"), "{html}");

    // Signing in again in the same browser ends the session it held.
    let old = b.cookie("__Host-kluis_sid").unwrap().to_string();
    b.sign_in(&env.admin).await;
    assert_ne!(b.cookie("__Host-kluis_sid").unwrap(), old);
    let resp = b
        .http
        .get(format!("{}/", b.base))
        .header("cookie", format!("__Host-kluis_sid={old}"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["location"], "/login?n=expired", "the replaced session is gone");
}

//! Search: one box, explicit filters, pages counted on the server.

#[allow(unused_imports)]
use super::*;

struct HitRow {
    id: Uuid,
    client_id: Uuid,
    client: String,
    title: String,
    filename: String,
    show_filename: bool,
    doc_type: String,
    uploaded: String,
    destroy: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    c: Chrome,
    q: String,
    doc_type: String,
    status: String,
    from: String,
    until: String,
    types: Vec<(&'static str, String)>,
    error: Option<String>,
    searched: bool,
    count: String,
    hits: Vec<HitRow>,
    prev: Option<String>,
    next: Option<String>,
    /// The client the search is limited to: (id, name).
    client: Option<(Uuid, String)>,
}

/// The search form's fields as a browser sends them (empty means none).
#[derive(Deserialize, Default)]
pub struct SearchForm {
    q: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    until: Option<String>,
    /// One client's dossier only (its id).
    client: Option<String>,
    page: Option<u32>,
}

/// Hits per page of the search page.
const PAGE_SIZE: u32 = 20;

impl SearchForm {
    /// The query string of this search at another page.
    fn link(&self, page: u32) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("type", &self.doc_type),
            ("status", &self.status),
            ("from", &self.from),
            ("until", &self.until),
            ("client", &self.client),
        ] {
            if let Some(v) = nonempty(v) {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("page", &page.to_string());
        format!("/search?{}", q.finish())
    }
}

/// Search: one box plus explicit filters, their state in the URL, pages of
/// 20 counted on the server (the API's search, the same scope).
pub async fn search(State(st): State<AppState>, p: Page, Query(f): Query<SearchForm>) -> Response {
    let tr = p.tr;
    let types = DocumentType::ALL.iter().map(|t| (t.as_str(), tr.t(&format!("type-{}", t.as_str())))).collect();
    let searched = [&f.q, &f.doc_type, &f.status, &f.from, &f.until, &f.client].iter().any(|v| nonempty(v).is_some())
        || f.page.is_some();
    // One client's dossier: the client is read (and decided) first, so a
    // client outside the caller's scope answers as not found.
    let client = match nonempty(&f.client) {
        None => None,
        Some(c) => {
            let Ok(id) = c.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
            match st.vault.get_client(&p.caller, id).await {
                Ok(c) => Some((c.id, format!("{}, {}", c.last_name, c.initials))),
                Err(e) => return service_error_page(tr, &e),
            }
        }
    };
    let page_no = f.page.unwrap_or(1).clamp(1, 10_000 / PAGE_SIZE);
    let mut page = SearchPage {
        c: Chrome::new(tr, Some(&p.caller), "/search", "search"),
        q: nonempty(&f.q).unwrap_or_default(),
        doc_type: nonempty(&f.doc_type).unwrap_or_default(),
        status: nonempty(&f.status).unwrap_or_default(),
        from: nonempty(&f.from).unwrap_or_default(),
        until: nonempty(&f.until).unwrap_or_default(),
        types,
        error: None,
        searched,
        count: String::new(),
        hits: Vec::new(),
        prev: None,
        next: None,
        client,
    };
    if !searched {
        return render(StatusCode::OK, &page);
    }
    let invalid = |detail: &str| tr.t1("search-invalid", "detail", detail);
    let doc_type = match nonempty(&f.doc_type).map(|t| t.parse::<DocumentType>()) {
        Some(Err(_)) => {
            page.error = Some(invalid(&tr.t("search-type")));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
        other => other.and_then(Result::ok),
    };
    let status = match nonempty(&f.status).as_deref() {
        None => None,
        Some("active") => Some(ClientStatus::Active),
        Some("closed") => Some(ClientStatus::Closed),
        Some(_) => {
            page.error = Some(invalid(&tr.t("search-status")));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let query = vault::service::SearchQuery {
        q: nonempty(&f.q),
        doc_type,
        client_id: page.client.as_ref().map(|c| c.0),
        status,
        uploaded_from: nonempty(&f.from),
        uploaded_until: nonempty(&f.until),
        limit: Some(PAGE_SIZE),
        offset: Some((page_no - 1) * PAGE_SIZE),
    };
    let found = match st.vault.search(&p.caller, query).await {
        Ok(r) => r,
        Err(e) if matches!(e.code, ErrorCode::InvalidQuery | ErrorCode::InvalidField) => {
            page.error = Some(invalid(&e.message));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
        Err(e) => return service_error_page(tr, &e),
    };
    let first = (page_no - 1) * PAGE_SIZE + 1;
    let last = first - 1 + found.hits.len() as u32;
    page.count = search_count(&tr, first, last, found.total);
    page.hits = found
        .hits
        .iter()
        .map(|h| {
            let d = doc_row(&tr, &h.document);
            HitRow {
                id: d.id,
                client_id: h.document.client_id,
                client: h.client_name.clone(),
                title: d.title,
                filename: d.filename,
                show_filename: d.show_filename,
                doc_type: d.doc_type,
                uploaded: d.uploaded,
                destroy: d.destroy,
            }
        })
        .collect();
    page.prev = (page_no > 1).then(|| f.link(page_no - 1));
    page.next = (u64::from(last) < found.total && last < 10_000).then(|| f.link(page_no + 1));
    render(StatusCode::OK, &page)
}

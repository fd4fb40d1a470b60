//! Data-subject rights (issue 10; `vault::service::{requests, consents,
//! disclosures, corrections, erasure}`): the request register, consents,
//! disclosures, corrections and erasure.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::domain::ConsentScope;
use vault::service::{
    AnswerRequest, Consents, Corrected, Corrections, Disclosure, Disclosures, EraseClient, ErasureCertificate,
    ExportQuery, NewCorrection, NewDisclosure, NewRequest, Request, RequestPatch, RequestQuery, SetConsent,
};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    /// By the date they are due (extension included), the soonest first.
    pub requests: Vec<Request>,
}

#[utoipa::path(post, path = "/api/v1/requests", tag = "privacy", request_body = NewRequest,
    responses(
        (status = 201, description = "registered, with its clocks; a `withdraw_consent` request has withdrawn its consent", body = Request),
        (status = 403, description = "`forbidden`: management and office only", body = ErrorBody),
        (status = 404, description = "`not_found`: no such client", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_request(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewRequest>,
) -> ApiResult<(StatusCode, Json<Request>)> {
    Ok((StatusCode::CREATED, Json(st.vault.create_request(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/requests", tag = "privacy", params(RequestQuery),
    responses((status = 200, description = "the requests, soonest due first", body = RequestList),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`: no such client", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_requests(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<RequestQuery>,
) -> ApiResult<Json<RequestList>> {
    Ok(Json(RequestList { requests: st.vault.list_requests(&caller, q).await? }))
}

#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "privacy", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the request", body = Request),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_request(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Request>> {
    Ok(Json(st.vault.get_request(&caller, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/requests/{id}", tag = "privacy", params(("id" = Uuid, Path)),
    request_body = RequestPatch,
    responses((status = 200, description = "the request", body = Request),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 409, description = "`already_answered`; `deadline_passed`: too late to extend", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_request(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<RequestPatch>,
) -> ApiResult<Json<Request>> {
    Ok(Json(st.vault.update_request(&caller, id, body).await?))
}

#[utoipa::path(post, path = "/api/v1/requests/{id}/answer", tag = "privacy", params(("id" = Uuid, Path)),
    request_body = AnswerRequest,
    responses((status = 200, description = "answered; a granted restriction or objection has restricted the client", body = Request),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 409, description = "`already_answered`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn answer_request(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<AnswerRequest>,
) -> ApiResult<Json<Request>> {
    Ok(Json(st.vault.answer_request(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/consents", tag = "privacy", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the running consents and their history", body = Consents),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn consents(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Consents>> {
    Ok(Json(st.vault.consents(&caller, id).await?))
}

#[utoipa::path(put, path = "/api/v1/clients/{id}/consents/{scope}", tag = "privacy",
    params(("id" = Uuid, Path), ("scope" = ConsentScope, Path)),
    request_body = SetConsent,
    responses((status = 200, description = "the consents after the change (a withdrawal takes effect at once)", body = Consents),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 410, description = "`erased`: the client's data has been erased", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_consent(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath((id, scope)): ApiPath<(Uuid, ConsentScope)>,
    ApiJson(body): ApiJson<SetConsent>,
) -> ApiResult<Json<Consents>> {
    Ok(Json(st.vault.set_consent(&caller, id, scope, body).await?))
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/disclosures", tag = "privacy", params(("id" = Uuid, Path)),
    request_body = NewDisclosure,
    responses((status = 201, description = "recorded", body = Disclosure),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 410, description = "`erased`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_disclosure(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewDisclosure>,
) -> ApiResult<(StatusCode, Json<Disclosure>)> {
    Ok((StatusCode::CREATED, Json(st.vault.record_disclosure(&caller, id, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/disclosures", tag = "privacy", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the disclosures, oldest first, and the recipients to notify", body = Disclosures),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn disclosures(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Disclosures>> {
    Ok(Json(st.vault.disclosures(&caller, id).await?))
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/corrections", tag = "privacy", params(("id" = Uuid, Path)),
    request_body = NewCorrection,
    responses((status = 201, description = "corrected: the history entry (old and new values, recipients to notify) and the client", body = Corrected),
              (status = 403, description = "`forbidden`: management and office only", body = ErrorBody),
              (status = 410, description = "`erased`", body = ErrorBody),
              (status = 422, description = "`invalid_field`: a value breaks its rule, or nothing changes; `invalid_bsn`; `reason_required`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn correct_client(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<NewCorrection>,
) -> ApiResult<(StatusCode, Json<Corrected>)> {
    Ok((StatusCode::CREATED, Json(st.vault.correct_client(&caller, id, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/corrections", tag = "privacy", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the correction history, oldest first", body = Corrections),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn corrections(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Corrections>> {
    Ok(Json(st.vault.corrections(&caller, id).await?))
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/erase", tag = "privacy", params(("id" = Uuid, Path)),
    request_body = EraseClient,
    responses((status = 200, description = "erased: the destruction certificate", body = ErasureCertificate),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody),
              (status = 409, description = "`must_keep`: nothing was erased; `error.details.documents` lists each document to keep with its reasons (`legal_hold`, `statutory_retention`)", body = ErrorBody),
              (status = 410, description = "`erased`: erased already", body = ErrorBody),
              (status = 422, description = "`reason_required`; `invalid_field`: request_id is not an erasure request of this client", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erase(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<EraseClient>,
) -> ApiResult<Json<ErasureCertificate>> {
    Ok(Json(st.vault.erase_client(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/erasure", tag = "privacy", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the destruction certificate, the objects' deletion read now", body = ErasureCertificate),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody),
              (status = 404, description = "`not_found`: no such client, or not erased", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn erasure(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ErasureCertificate>> {
    Ok(Json(st.vault.erasure_certificate(&caller, id).await?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/export", tag = "privacy", params(("id" = Uuid, Path), ExportQuery),
    responses(
        (status = 200, description = "the dossier as a zip, streamed, with its exact Content-Length: client.json, \
            documents.json, documents/<id>-<filename> (every active document except view-only ones), access-log.json, \
            processing.json, requests.json, consents.json, disclosures.json, corrections.json",
            content((Vec<u8> = "application/zip"))),
        (status = 403, description = "`forbidden`: management and office only; `restricted`: a restricted client's dossier goes out through management", body = ErrorBody),
        (status = 422, description = "`invalid_field`: request_id is not an access or portability request of this client", body = ErrorBody),
        (status = 503, description = "`busy`: every download slot is taken; retry", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn export(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let slot = st.slot(&st.download_slots, "downloads").await?;
    let export = st.vault.export_client(&caller, id, q).await?;
    Ok(export_response(export, slot))
}

/// The answer of an export: the zip streamed with its exact length, as an
/// attachment, holding `slot` until it is sent (the API's and the pages').
pub fn export_response(export: vault::service::Export, slot: tokio::sync::OwnedSemaphorePermit) -> Response {
    let body = export.body.chain(futures::stream::once(async move {
        drop(slot);
        Ok(bytes::Bytes::new())
    }));
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(export.size));
    if let Ok(v) = HeaderValue::from_str(&super::download::content_disposition(&export.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    resp
}

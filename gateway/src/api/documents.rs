//! Documents: upload (the streaming pipeline in `crate::upload`), list,
//! metadata, download-token issue (`vault::service::documents`).

use axum::Json;
use axum::extract::{Multipart, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::domain::DocumentType;
use vault::service::{Document, ErrorCode, IssuedToken, TokenRequest};

use super::{ApiError, ApiJson, ApiPath, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentList {
    /// Active documents, newest first.
    pub documents: Vec<Document>,
}

/// The upload form: `type`, `title`, `retention_until` with
/// `retention_reason`, `view_only`, `supersedes`, then the file
/// last (its name is kept); nothing else.
pub struct UploadForm;

impl utoipa::PartialSchema for UploadForm {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, Type};
        let text = |max: usize| ObjectBuilder::new().schema_type(Type::String).max_length(Some(max));
        ObjectBuilder::new()
            .property("type", DocumentType::schema())
            .required("type")
            .property("title", vault::domain::schema::optional::<200>())
            .property(
                "retention_until",
                text(40).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))).description(Some(
                    "YYYY-MM-DD or RFC 3339, in the future; management and office only, with \
                         retention_reason; for psych_report below a year from now management only",
                )),
            )
            .property("retention_reason", text(1000).description(Some("why; required with retention_until")))
            .property(
                "view_only",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["true", "false"]))
                    .description(Some("true for raw test material: listed in an export, never copied into it")),
            )
            .property(
                "supersedes",
                ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))).description(Some(
                    "an active document of this client and type that this upload corrects",
                )),
            )
            .property(
                "superseded_version",
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["keep", "destroy"])).description(Some(
                    "with supersedes: keep the old version, marked superseded (default), or destroy it as the new                      one activates (management)",
                )),
            )
            .property(
                "file",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .description(Some("PDF, PNG, JPEG, TIFF, UTF-8 text, DOCX, XLSX or ODT, judged by its content")),
            )
            .required("file")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl utoipa::ToSchema for UploadForm {}

#[utoipa::path(post, path = "/api/v1/clients/{id}/documents", tag = "documents", params(("id" = Uuid, Path)),
    request_body(content = inline(UploadForm), content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "stored", body = Document),
        (status = 403, description = "`forbidden`: your role may not upload, or not set a retention date", body = ErrorBody),
        (status = 404, description = "`not_found`: no such client, or outside your scope", body = ErrorBody),
        (status = 408, description = "`timeout`: the body stalled", body = ErrorBody),
        (status = 409, description = "`client_closed`: the trajectory has ended", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the content is not an accepted type, or not multipart", body = ErrorBody),
        (status = 422, description = "`invalid_type`, `invalid_field` (a field unknown, repeated, too long, with hidden characters, or after the file), `missing_file`, `empty_file`", body = ErrorBody),
        (status = 503, description = "`busy`: every upload slot is taken; retry", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn upload(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    req: axum::extract::Request,
) -> ApiResult<(StatusCode, Json<Document>)> {
    use axum::extract::FromRequest;
    // The body is counted against the envelope budget as the parser reads it.
    let budget = std::sync::Arc::new(crate::upload::Budget::default());
    let (parts, body) = req.into_parts();
    let req = axum::extract::Request::from_parts(parts, crate::upload::budgeted(body, budget.clone()));
    let multipart = Multipart::from_request(req, &st)
        .await
        .map_err(|_| ApiError::new(ErrorCode::UnsupportedMediaType, "send multipart/form-data with a boundary"))?;
    Ok((StatusCode::CREATED, Json(crate::upload::receive(&st, &caller, id, multipart, budget).await?)))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/documents", tag = "documents", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the client's active documents", body = DocumentList),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<DocumentList>> {
    Ok(Json(DocumentList { documents: st.vault.list_documents(&caller, id).await? }))
}

#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the document's metadata (a tombstone for management and office)", body = Document),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`: no such document, or outside your scope", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Document>> {
    Ok(Json(st.vault.get_document(&caller, id).await?))
}

#[utoipa::path(post, path = "/api/v1/documents/{id}/download-tokens", tag = "documents", params(("id" = Uuid, Path)),
    request_body = TokenRequest,
    responses(
        (status = 201, description = "a single-use token; GET its url to download", body = IssuedToken),
        (status = 403, description = "`forbidden`, `purpose_not_allowed`, `restricted`", body = ErrorBody),
        (status = 404, description = "`not_found`: no such document, or outside your scope", body = ErrorBody),
        (status = 410, description = "`gone`: the document has been destroyed", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn issue_token(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    Ok((StatusCode::CREATED, Json(st.vault.issue_download_token(&caller, id, body).await?)))
}

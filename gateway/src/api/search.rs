//! Search: `GET /api/v1/search` (`vault::service::search`).

use axum::Json;
use axum::extract::State;
use vault::service::{SearchQuery, SearchResults};

use super::{ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[utoipa::path(get, path = "/api/v1/search", tag = "documents", params(SearchQuery),
    responses(
        (status = 200, description = "one page of the documents you may see that match, by relevance, then newest \
            upload; `total` counts every match within your scope; destroyed documents are never found", body = SearchResults),
        (status = 403, description = "`forbidden`: administration never sees documents", body = ErrorBody),
        (status = 422, description = "`invalid_field`: `q` too long or with control characters", body = ErrorBody),
        (status = 503, description = "`search_unavailable`: this server's index is being built (Retry-After)", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn search(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<SearchResults>> {
    Ok(Json(st.vault.search(&caller, q).await?))
}

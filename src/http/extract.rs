//! Extractors: JSON bodies with contract-shaped rejections, the
//! authenticated user, and who is calling from where (the accounts'
//! [`Client`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use parley_actors::domain::{Role, SessionId, UserId, UserStatus, nul_field};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::AppState;
use crate::accounts::{Client, Identity};
use crate::config::Settings;

/// A JSON request body. Unlike `axum::Json`, its rejections follow the
/// contract: wrong content type → 415, too large → 413, bad JSON → 400,
/// unknown/missing/mistyped fields → 422 naming the field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json_content_type(parts_ct: Option<&header::HeaderValue>) -> bool {
    let Some(Ok(ct)) = parts_ct.map(|v| v.to_str()) else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Turns a serde error into the contract's 400/422.
pub fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = err.path().to_string();
    let inner = err.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::Malformed(format!("request body is not valid JSON: {inner}"))
        }
        Category::Data => {
            let text = inner.to_string();
            let quoted = text.split('`').nth(1).map(str::to_owned);
            let parent = if path == "." { String::new() } else { path };
            let join = |name: &str| {
                // For unknown fields the path already ends at the field.
                if parent.is_empty() {
                    name.to_owned()
                } else if parent == name || parent.ends_with(&format!(".{name}")) {
                    parent.clone()
                } else {
                    format!("{parent}.{name}")
                }
            };
            let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
            if text.starts_with("unknown field") {
                let name = join(quoted.as_deref().unwrap_or("?"));
                ApiError::field(&name, "unknown_field", format!("unknown field `{name}`"))
            } else if text.starts_with("missing field") {
                let name = join(quoted.as_deref().unwrap_or("?"));
                ApiError::field(&name, "required", format!("`{name}` is required"))
            } else if text.starts_with("unknown variant") && !parent.is_empty() {
                // A string outside an enum's set (`privacy.dm_policy`).
                ApiError::field(&parent, "invalid_value", message)
            } else if parent.is_empty() {
                ApiError::field("body", "invalid_type", message)
            } else {
                ApiError::field(&parent, "invalid_type", message)
            }
        }
    }
}

/// Parses JSON bytes with the contract's error mapping.
///
/// Every body of the API is a JSON object. serde would also fill a struct
/// from an array, field by field in declaration order, so valid JSON that
/// is not an object is refused as a whole (422 on `body`) before that,
/// and anything else not starting with `{` is malformed (400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(
            match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                Ok(_) => ApiError::field(
                    "body",
                    "invalid_type",
                    "the request body must be a JSON object",
                ),
                Err(e) => ApiError::Malformed(format!("request body is not valid JSON: {e}")),
            },
        );
    }
    // JSON can carry a NUL only escaped; checked before the typed parse so
    // every field of every body is covered.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        refuse_nul_in(bytes)?;
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end()
        .map_err(|e| ApiError::Malformed(format!("request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// 422 naming the first field of a JSON body that holds a NUL character.
fn refuse_nul_in(bytes: &[u8]) -> Result<(), ApiError> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        // Not valid JSON: the typed parse says so.
        return Ok(());
    };
    match nul_field(&value) {
        Some(field) => Err(ApiError::field(
            &field,
            "invalid_characters",
            format!("{field} must not contain NUL characters"),
        )),
        None => Ok(()),
    }
}

/// Refuses a query string with a NUL character in a name or value (422
/// naming the parameter), for every route: PostgreSQL refuses NUL in text.
pub async fn refuse_nul_in_query(request: Request, next: axum::middleware::Next) -> Response {
    if let Some(query) = request.uri().query()
        && query.to_ascii_lowercase().contains("%00")
    {
        let pairs: Vec<(String, String)> =
            axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
                .map(|q| q.0)
                .unwrap_or_default();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            let name = name.replace('\0', "\\0");
            return ApiError::field(
                &name,
                "invalid_characters",
                format!("{name} must not contain NUL characters"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed("request body could not be read".to_owned())
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The caller of an authenticated route, put in the request's extensions by
/// the `require_auth` middleware once its token checked out.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: UserId,
    pub username: String,
    pub role: Role,
    pub session_id: SessionId,
}

impl From<Identity> for AuthUser {
    fn from(who: Identity) -> Self {
        Self {
            user_id: who.user_id,
            username: who.username,
            role: who.role,
            session_id: who.session_id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AuthUser>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }
}

/// The caller's role as stored now, when the account is active. The token's
/// role is not trusted: it may predate a demotion or a suspension.
async fn stored_role(state: &AppState, auth: &AuthUser) -> Result<Option<Role>, ApiError> {
    Ok(match state.store.user_by_id(auth.user_id).await? {
        Some(user) if user.status == UserStatus::Active => Some(user.role),
        _ => None,
    })
}

/// An authenticated caller who is an active admin, checked in the store on
/// every request so that a demoted admin loses access at once. Anyone else
/// (moderators included) gets 403; no token, 401. With `admin_require_2fa`
/// on, an admin without 2FA gets 403 `two_factor_required`.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        match state.store.user_by_id(auth.user_id).await? {
            Some(user) if user.status == UserStatus::Active && user.role == Role::Admin => {
                // `admin_require_2fa`: turning 2FA on (`/auth/2fa/*`) is not
                // an admin route, so an admin can always get out of this.
                if state.settings.admin_require_2fa && !user.two_factor_enabled {
                    return Err(ApiError::TwoFactorRequired);
                }
                Ok(Self(auth))
            }
            _ => Err(ApiError::Forbidden("admin role required")),
        }
    }
}

/// An authenticated caller who may work the moderation queue: an active
/// moderator or admin. A moderator may read the report queue and resolve
/// reports, and nothing else: every other admin route takes [`AdminUser`].
/// Anyone else gets 403; no token, 401.
#[derive(Debug, Clone)]
pub struct ModeratorUser {
    /// The caller.
    pub auth: AuthUser,
    /// `Moderator` or `Admin`, as stored now.
    pub role: Role,
}

impl FromRequestParts<AppState> for ModeratorUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        match stored_role(state, &auth).await? {
            Some(role @ (Role::Admin | Role::Moderator)) => Ok(Self { auth, role }),
            _ => Err(ApiError::Forbidden("moderator or admin role required")),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case), or `None` when there is no such header.
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The client's IP: the peer address, or the last `X-Forwarded-For` hop
/// (the one the trusted proxy added) when so configured.
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .and_then(|hop| hop.trim().parse().ok())
    {
        return Some(ip);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Where a request came from (see [`Client`]), for sessions, rate limits
/// and the audit log.
impl<S> FromRequestParts<S> for Client
where
    S: Send + Sync,
    Arc<Settings>: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = Arc::<Settings>::from_ref(state);
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.chars().take(512).collect::<String>())
        };
        Ok(Self {
            ip: client_ip(parts, settings.trust_forwarded_for),
            user_agent: header("user-agent"),
            request_id: header("x-request-id"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u32,
    }

    fn code_of(err: &ApiError) -> (&'static str, Vec<String>) {
        match err {
            ApiError::Validation { fields } => ("validation", fields.keys().cloned().collect()),
            ApiError::Malformed(_) => ("malformed", vec![]),
            _ => ("other", vec![]),
        }
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"name":"a","count":1,"evil":true}"#).unwrap_err();
        assert_eq!(code_of(&err), ("validation", vec!["evil".to_owned()]));
        let err = parse_json::<Body>(br#"{"name":"a"}"#).unwrap_err();
        assert_eq!(code_of(&err), ("validation", vec!["count".to_owned()]));
        let err = parse_json::<Body>(br#"{"name":"a","count":"x"}"#).unwrap_err();
        assert_eq!(code_of(&err), ("validation", vec!["count".to_owned()]));
        let err = parse_json::<Body>(br#"{"name":"a","#).unwrap_err();
        assert_eq!(code_of(&err).0, "malformed");
        let err = parse_json::<Body>(br#"{"name":"a","count":1} trailing"#).unwrap_err();
        assert_eq!(code_of(&err).0, "malformed");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_whole() {
        // serde alone would take this array as `{"name":"a","count":1}`.
        for body in [&br#"["a", 1]"#[..], br#" [1]"#, br#""a""#, b"42", b"null"] {
            let err = parse_json::<Body>(body).unwrap_err();
            assert_eq!(
                code_of(&err),
                ("validation", vec!["body".to_owned()]),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            code_of(&parse_json::<Body>(b"[1,").unwrap_err()).0,
            "malformed"
        );
        assert_eq!(
            code_of(&parse_json::<Body>(b"").unwrap_err()).0,
            "malformed"
        );
        assert!(parse_json::<Body>(br#" {"name":"a","count":1}"#).is_ok());
    }

    #[test]
    fn json_content_types_are_recognised() {
        let ok = |s: &'static str| is_json_content_type(Some(&header::HeaderValue::from_static(s)));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json_content_type(None));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_authorization_header() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                header::HeaderValue::from_static(value),
            );
            bearer_token(&headers)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}

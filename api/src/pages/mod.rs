//! The console: server-rendered pages for people, over the same handlers' functions and the same
//! engine as the API (no rule is written twice). A person signs in with a single-use link emailed
//! to the address the directory holds; the link opens a session kept in an `HttpOnly`,
//! `SameSite=Lax` cookie (`Secure` when `PUBLIC_BASE_URL` is https). Every form carries a CSRF
//! token bound to the session (or, before sign-in, to a cookie of its own), and a form posted
//! from another origin is refused. The pages work without JavaScript and load nothing from
//! anywhere but this server.

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, dev::Payload, web};
use askama::Template;
use base64::Engine as _;
use entities::orm::{person, session};
use entities::settings::Settings;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;
use engine::mailer::Mailer;

pub mod calendar;
pub mod certificate;
pub mod engagement;
pub mod forms;
pub mod kept;
pub mod portfolio;
pub mod sign_in;
pub mod stage1;

/// The session cookie.
pub const SESSION_COOKIE: &str = "certflow_session";
/// The cookie an anonymous form's CSRF token is bound to.
pub const FORM_COOKIE: &str = "certflow_form";

/// What the console needs besides the engine: its keys, how cookies are set, and the mailer that
/// sends sign-in links.
pub struct Console {
    key: Vec<u8>,
    /// Cookies only over https (`PUBLIC_BASE_URL` is https).
    pub secure: bool,
    /// How long a session lasts.
    pub session_length: chrono::Duration,
    /// `PUBLIC_BASE_URL`, without a trailing slash.
    pub base_url: String,
    /// Sends the sign-in links.
    pub mailer: Mailer,
    /// `MAIL_FROM`.
    pub mail_from: String,
    /// Where the embedded default writes emails (said in the log when a link is sent).
    pub outbox: Option<std::path::PathBuf>,
    /// The views of the portfolio, kept.
    pub portfolios: portfolio::KeptPortfolios,
    /// What the engagement pages read, kept.
    pub engagements: engagement::KeptEngagements,
}

impl Console {
    /// From the settings: the keys derive from the JWT secret.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let mut derive = Hmac::<Sha256>::new_from_slice(settings.jwt_secret_bytes())
            .map_err(|e| anyhow::anyhow!("the JWT secret cannot key an HMAC: {e}"))?;
        derive.update(b"certflow console keys v1");
        let key = derive.finalize().into_bytes().to_vec();
        let base_url = settings.public_base_url.trim_end_matches('/').to_owned();
        let keep = std::time::Duration::from_secs(settings.portfolio_keep_seconds.into());
        let outbox = match &settings.mail_transport {
            entities::settings::MailTransport::Outbox(folder) => Some(folder.clone()),
            _ => None,
        };
        Ok(Self {
            key,
            secure: base_url.starts_with("https://"),
            session_length: chrono::Duration::hours(settings.session_hours.into()),
            mailer: Mailer::from_settings(settings)?,
            mail_from: settings.mail_from.clone(),
            base_url,
            outbox,
            portfolios: kept::Kept::new(keep),
            engagements: kept::Kept::new(keep),
        })
    }

    /// The keyed MAC of `purpose` and `value`, URL-safe.
    pub fn sign(&self, purpose: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `given` is the MAC of `purpose` and `value` (in constant time).
    pub fn verify(&self, purpose: &str, value: &str, given: &str) -> bool {
        let Ok(given) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(given) else { return false };
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        mac.verify_slice(&given).is_ok()
    }

    /// A cookie of the console's: `HttpOnly`, `SameSite=Lax`, on the whole site, `Secure` over
    /// https.
    pub fn cookie<'c>(&self, name: &'c str, value: String, max_age: chrono::Duration) -> Cookie<'c> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .max_age(actix_web::cookie::time::Duration::seconds(max_age.num_seconds()))
            .finish()
    }
}

/// A form with only its CSRF token (sign-out, a link's button, new calendar addresses).
#[derive(Debug, serde::Deserialize)]
pub struct CsrfOnly {
    /// The form's token.
    #[serde(default)]
    pub csrf: String,
}

/// A person signed in to the console, as the engine's caller.
pub struct SignedIn {
    /// The caller the person is now (their role and scope as the directory holds them).
    pub user: AuthUser,
    /// The person.
    pub person: person::Model,
    /// The session.
    pub session: session::Model,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

impl SignedIn {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_form(&self, console: &Console, request: &HttpRequest, given: &str) -> Result<(), PageError> {
        same_origin(console, request)?;
        if console.verify("session-form", &self.session.token_hash, given) { Ok(()) } else { Err(PageError::Csrf) }
    }
}

/// Refuses a form posted from another site (its `Origin`, when the browser sends one).
pub fn same_origin(console: &Console, request: &HttpRequest) -> Result<(), PageError> {
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(());
    };
    let info = request.connection_info();
    let own = format!("{}://{}", info.scheme(), info.host());
    if origin == own || origin == console.base_url { Ok(()) } else { Err(PageError::Csrf) }
}

impl FromRequest for SignedIn {
    type Error = PageError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, PageError>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let app = request.app_data::<web::Data<AppState>>().cloned();
            let console = request.app_data::<web::Data<Console>>().cloned();
            let (Some(app), Some(console)) = (app, console) else {
                return Err(PageError::Api(ApiError::unexpected(anyhow::anyhow!("BUG: the console is not set up"))));
            };
            let go_sign_in = || {
                let next = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
                PageError::SignIn { next }
            };
            let Some(cookie) = request.cookie(SESSION_COOKIE) else { return Err(go_sign_in()) };
            let Some((session, person)) =
                app.session_person(cookie.value(), chrono::Utc::now()).await.map_err(ApiError::from)?
            else {
                return Err(go_sign_in());
            };
            let csrf = console.sign("session-form", &session.token_hash);
            let user = AuthUser(engine::people::caller_of(&person));
            Ok(Self { user, person, session, csrf })
        })
    }
}

/// How a page fails: to the sign-in page, or with the problem shown as a page.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No session: sign in, then come back to `next`.
    #[error("sign in first")]
    SignIn {
        /// The path to come back to.
        next: String,
    },
    /// A form without this session's CSRF token, or posted from another site.
    #[error("this form has expired or was not sent from certflow: reload the page and try again")]
    Csrf,
    /// What the API would answer, as a page.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<sea_orm::DbErr> for PageError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Api(error.into())
    }
}

impl From<engine::EngineError> for PageError {
    fn from(error: engine::EngineError) -> Self {
        Self::Api(error.into())
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    status: u16,
    detail: &'a str,
    violations: Vec<String>,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Api(error) => error.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignIn { next } => {
                let to = format!("/sign-in?next={}", urlencoding(next));
                HttpResponse::SeeOther().insert_header((header::LOCATION, to)).finish()
            }
            Self::Csrf => page(
                StatusCode::FORBIDDEN,
                &ErrorPage { title: "Form refused", status: 403, detail: &self.to_string(), violations: Vec::new() },
            ),
            Self::Api(error) => {
                if error.status_code().is_server_error() {
                    tracing::error!(?error, "a page failed");
                }
                let problem = error.problem();
                let mut violations: Vec<String> =
                    problem.violations.iter().flatten().map(|v| format!("{} ({})", v.detail, v.code)).collect();
                violations.extend(problem.errors.iter().flatten().map(|e| format!("{}: {}", e.field, e.detail)));
                let status = error.status_code();
                page(
                    status,
                    &ErrorPage { title: &problem.title, status: status.as_u16(), detail: &problem.detail, violations },
                )
            }
        }
    }
}

/// A form that cannot be read (a field missing or of the wrong kind) as a page saying so.
pub fn form_error(error: actix_web::error::UrlencodedError, _: &HttpRequest) -> actix_web::Error {
    PageError::Api(ApiError::InvalidBody(error.to_string())).into()
}

/// `template` rendered as an HTML answer with `status` (a template that fails to render is a 500
/// that is logged).
pub fn page(status: StatusCode, template: &impl Template) -> HttpResponse {
    match template.render() {
        Ok(html) => HttpResponse::build(status)
            .content_type(ContentType::html())
            // Nothing but this server's own: styles, forms, images, scripts.
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ))
            // A form's `Origin` is sent (`no-referrer`, the API's, makes browsers send `null`),
            // and nothing of a page's address leaves the site.
            .insert_header((header::REFERRER_POLICY, "same-origin"))
            .body(html),
        Err(error) => {
            tracing::error!(%error, "a page template failed to render");
            HttpResponse::InternalServerError().content_type(ContentType::plaintext()).body("the page failed to render")
        }
    }
}

/// A 303 to `to` (after a form).
pub fn see_other(to: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, to.to_owned())).finish()
}

/// `value` percent-encoded for a query string.
pub fn urlencoding(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// The console's stylesheet, served by the binary.
async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(include_str!("../../assets/console.css"))
}

/// Registers the pages (outside the API's spec).
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/assets/console.css", web::get().to(stylesheet))
        .route("/", web::get().to(portfolio::portfolio))
        .route("/sign-in", web::get().to(sign_in::sign_in_form))
        .route("/sign-in", web::post().to(sign_in::send_link))
        .route("/sign-in/{token}", web::get().to(sign_in::confirm))
        .route("/sign-in/{token}", web::post().to(sign_in::redeem))
        .route("/sign-out", web::post().to(sign_in::sign_out))
        .route("/engagements/{id}", web::get().to(engagement::engagement_page))
        .route("/engagements/{id}/events", web::post().to(engagement::fire_from_form))
        .route(
            "/engagements/{id}/findings/{finding_id}/corrective-action",
            web::post().to(engagement::submit_corrective_action_form),
        )
        .route("/engagements/{id}/proposals/{proposal_id}/selection", web::post().to(engagement::select_proposal_form))
        .route("/engagements/{id}/documents", web::post().to(stage1::register_document_form))
        .route("/engagements/{id}/statement-of-applicability", web::post().to(stage1::upload_soa))
        .route("/certificates/{number}", web::get().to(certificate::certificate_page))
        .route("/calendar/{person_id}/{scope}/{key}.ics", web::get().to(calendar::feed))
        .route("/calendar/rotate", web::post().to(calendar::rotate));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mac_verifies_for_its_purpose_and_value_only() {
        let outbox = std::env::temp_dir().join("certflow-console-unit-test-outbox");
        let settings = Settings::from_vars(vec![("OUTBOX_DIR".to_owned(), outbox.display().to_string())]).unwrap();
        let console = Console::from_settings(&settings).unwrap();
        let mac = console.sign("session-form", "abc");
        assert!(console.verify("session-form", "abc", &mac));
        assert!(!console.verify("session-form", "abd", &mac));
        assert!(!console.verify("anonymous-form", "abc", &mac));
        assert!(!console.verify("session-form", "abc", "not base64 !"));
    }

    #[test]
    fn a_next_path_is_percent_encoded() {
        assert_eq!(urlencoding("/engagements/1?deadline=2&x=a b"), "/engagements/1%3Fdeadline%3D2%26x%3Da%20b");
    }
}

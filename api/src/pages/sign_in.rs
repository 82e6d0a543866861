//! Signing in without a password: a person gives their address; if the directory knows it, a
//! link that works once, for 15 minutes, is emailed to it. Opening the link shows a button (a
//! mail scanner that fetches links does not spend it); pressing it opens a session. An unknown
//! address gets the same answer and no email.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use engine::mailer::mask;
use engine::people::new_token;
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use serde::Deserialize;

use super::{Console, CsrfOnly, FORM_COOKIE, PageError, SESSION_COOKIE, SignedIn, page, same_origin, see_other};
use crate::error::ApiError;
use crate::rate_limit::RateLimits;
use crate::state::AppState;

/// The path to go to after signing in: a path on this server only (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && path.len() <= 2000
                && !path.chars().any(|c| c.is_control() || c == '\\') =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// `?next=`
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    next: &'a str,
    sent_to: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "sign_in_confirm.html")]
struct ConfirmPage<'a> {
    csrf: &'a str,
    token: &'a str,
}

/// The anonymous form token: bound to a cookie of the form's own, set when missing.
fn form_binding(console: &Console, request: &HttpRequest) -> (String, Option<actix_web::cookie::Cookie<'static>>) {
    match request.cookie(FORM_COOKIE) {
        Some(cookie) if !cookie.value().is_empty() => (console.sign("anonymous-form", cookie.value()), None),
        _ => {
            let (value, _) = new_token();
            let csrf = console.sign("anonymous-form", &value);
            (csrf, Some(console.cookie(FORM_COOKIE, value, chrono::Duration::hours(12))))
        }
    }
}

/// Refuses an anonymous form without its cookie's token, or from another site.
fn check_anonymous_form(console: &Console, request: &HttpRequest, given: &str) -> Result<(), PageError> {
    same_origin(console, request)?;
    let cookie = request.cookie(FORM_COOKIE).ok_or(PageError::Csrf)?;
    if console.verify("anonymous-form", cookie.value(), given) { Ok(()) } else { Err(PageError::Csrf) }
}

fn with_cookie(mut response: HttpResponse, cookie: Option<actix_web::cookie::Cookie<'static>>) -> HttpResponse {
    if let Some(cookie) = cookie
        && let Err(error) = response.add_cookie(&cookie)
    {
        tracing::warn!(%error, "could not set the form cookie");
    }
    response
}

/// `GET /sign-in`: the address form.
pub async fn sign_in_form(
    console: web::Data<Console>,
    request: HttpRequest,
    query: web::Query<NextQuery>,
) -> HttpResponse {
    let (csrf, cookie) = form_binding(&console, &request);
    let next = safe_next(query.next.as_deref());
    with_cookie(page(StatusCode::OK, &SignInPage { csrf: &csrf, next: &next, sent_to: None }), cookie)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct SignInForm {
    email: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    csrf: String,
}

/// `POST /sign-in`: emails a link if the address is a person's; the same answer either way.
pub async fn send_link(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    limits: web::Data<RateLimits>,
    request: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, PageError> {
    check_anonymous_form(&console, &request, &form.csrf)?;
    let email = form.email.trim().to_lowercase();
    let next = safe_next(form.next.as_deref());
    if !limits.allow_sign_in(&email) {
        tracing::info!(to = %mask(&email), "sign-in link not sent: too many asked for this address");
    } else if let Some(person) = app.person_by_email(&email).await? {
        let token = app.issue_sign_in_link(&person, &next, chrono::Utc::now()).await?;
        let link = format!("{}/sign-in/{token}", console.base_url);
        let message = sign_in_email(&console, &person.email, &person.name, &link).map_err(ApiError::unexpected)?;
        // Sent after the answer: a known address answers exactly as fast as an unknown one.
        let console = console.clone();
        let to = mask(&person.email);
        actix_web::rt::spawn(async move {
            match console.mailer.send(message).await {
                Ok(()) => match &console.outbox {
                    Some(folder) => {
                        tracing::info!(%to, outbox = %folder.display(), "sign-in link written to the outbox")
                    }
                    None => tracing::info!(%to, "sign-in link emailed"),
                },
                Err(error) => tracing::warn!(%to, %error, "the sign-in link could not be sent"),
            }
        });
    } else {
        tracing::info!(to = %mask(&email), "sign-in asked for an address no one has: nothing sent");
    }
    let (csrf, cookie) = form_binding(&console, &request);
    Ok(with_cookie(page(StatusCode::OK, &SignInPage { csrf: &csrf, next: &next, sent_to: Some(&email) }), cookie))
}

/// The plain part of a sign-in email: short lines, so it stays 7-bit and its link whole.
#[derive(Template)]
#[template(path = "sign_in_email.txt")]
struct SignInText<'a> {
    name: &'a str,
    link: &'a str,
}

/// The HTML part of a sign-in email.
#[derive(Template)]
#[template(path = "sign_in_email.html")]
struct SignInHtml<'a> {
    name: &'a str,
    link: &'a str,
}

/// The email that carries a sign-in link: plain text and HTML.
fn sign_in_email(console: &Console, to: &str, name: &str, link: &str) -> anyhow::Result<Message> {
    let text = SignInText { name, link }.render()?;
    let html = SignInHtml { name, link }.render()?;
    let from: Mailbox = console.mail_from.parse()?;
    let message_id = format!("<sign-in.{}@certflow>", uuid::Uuid::now_v7());
    Ok(Message::builder()
        .from(from)
        .to(to.parse()?)
        .subject("Sign in to certflow")
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(text, html))?)
}

/// `GET /sign-in/{token}`: a button that signs in (the link is spent only when it is pressed).
pub async fn confirm(console: web::Data<Console>, request: HttpRequest, token: web::Path<String>) -> HttpResponse {
    let (csrf, cookie) = form_binding(&console, &request);
    with_cookie(page(StatusCode::OK, &ConfirmPage { csrf: &csrf, token: &token }), cookie)
}

/// `POST /sign-in/{token}`: spends the link, opens a session, goes where the link was for.
pub async fn redeem(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    token: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    check_anonymous_form(&console, &request, &form.csrf)?;
    let opened = match app.redeem_sign_in_link(&token, chrono::Utc::now(), console.session_length).await {
        Ok(opened) => opened,
        Err(engine::people::SignInError::Engine(error)) => return Err(error.into()),
        Err(refused) => {
            let detail = refused.to_string();
            return Err(
                ApiError::Engine(engine::EngineError::Unprocessable { slug: "sign-in-link-refused", detail }).into()
            );
        }
    };
    tracing::info!(who = %mask(&opened.person.email), "signed in to the console");
    let mut response = see_other(&safe_next(Some(&opened.next)));
    let cookie = console.cookie(SESSION_COOKIE, opened.token, console.session_length);
    response.add_cookie(&cookie).map_err(|e| ApiError::unexpected(anyhow::anyhow!("{e}")))?;
    Ok(response)
}

/// `POST /sign-out`: ends the session.
pub async fn sign_out(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    signed_in: SignedIn,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    signed_in.check_form(&console, &request, &form.csrf)?;
    if let Some(cookie) = request.cookie(SESSION_COOKIE) {
        app.end_session(cookie.value()).await?;
    }
    let mut response = see_other("/sign-in");
    let gone = console.cookie(SESSION_COOKIE, String::new(), chrono::Duration::zero());
    response.add_cookie(&gone).map_err(|e| ApiError::unexpected(anyhow::anyhow!("{e}")))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::{SignInHtml, SignInText, safe_next};
    use askama::Template;

    #[test]
    fn a_sign_in_email_carries_its_link_whole_and_escapes_the_name_in_html() {
        let link = "http://127.0.0.1:8080/sign-in/abc_DEF-123";
        let text = SignInText { name: "Ana <b>", link }.render().unwrap();
        assert!(text.contains(&format!("\n{link}\n")), "{text}");
        assert!(text.lines().all(|line| line.len() <= 76), "short lines: {text}");
        let html = SignInHtml { name: "Ana <b>", link }.render().unwrap();
        assert!(!html.contains("<b>") && html.contains(link), "{html}");
    }

    #[test]
    fn only_a_path_on_this_server_is_a_place_to_go_after_signing_in() {
        assert_eq!(safe_next(Some("/engagements/1?deadline=2")), "/engagements/1?deadline=2");
        for elsewhere in ["https://evil.example/", "//evil.example", "/\\evil.example", "javascript:alert(1)", ""] {
            assert_eq!(safe_next(Some(elsewhere)), "/", "{elsewhere}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

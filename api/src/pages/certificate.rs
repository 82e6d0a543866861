//! The public certificate page, for procurement teams: the same facts as the JSON verification,
//! as a page anyone can open from the certificate's number.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::{PageError, page};
use crate::routes::certificates::{CertificateVerification, verification_of};
use crate::state::AppState;

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertificatePage {
    c: CertificateVerification,
}

/// `GET /certificates/{number}`
pub async fn certificate_page(app: web::Data<AppState>, number: web::Path<String>) -> Result<HttpResponse, PageError> {
    let c = verification_of(&app, number.into_inner()).await?;
    Ok(page(StatusCode::OK, &CertificatePage { c }))
}

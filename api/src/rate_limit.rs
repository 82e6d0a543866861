//! Rate limits: each authenticated caller (its whole identity: role, scope, subject) has a rate,
//! and so has each client address for what it sends without a valid token (health checks,
//! certificate verification, the docs, refused tokens). Over it, a request is answered 429 with
//! `Retry-After`, before it reaches a handler or the database; other callers are unaffected.
//!
//! The middleware authenticates the request once and leaves the caller in the request's
//! extensions, where the [`crate::auth::AuthUser`] extractor finds it.

use std::net::IpAddr;
use std::num::NonZeroU32;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, web};
use entities::settings::RateLimit;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::auth::{Authenticated, authenticate};
use crate::error::ApiError;

/// The limiters of one process.
#[derive(Debug)]
pub struct RateLimits {
    callers: DefaultKeyedRateLimiter<String>,
    addresses: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

fn quota(limit: RateLimit) -> Quota {
    let at_least_one = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(at_least_one(limit.per_second)).allow_burst(at_least_one(limit.burst))
}

impl RateLimits {
    /// Limiters for authenticated callers and for anonymous addresses.
    pub fn new(callers: RateLimit, anonymous: RateLimit) -> Self {
        Self {
            callers: DefaultKeyedRateLimiter::keyed(quota(callers)),
            addresses: DefaultKeyedRateLimiter::keyed(quota(anonymous)),
            clock: DefaultClock::default(),
        }
    }

    /// Forgets the callers and addresses whose allowance is full again (memory stays bounded by
    /// the callers of the last moments).
    pub fn forget_idle(&self) {
        self.callers.retain_recent();
        self.callers.shrink_to_fit();
        self.addresses.retain_recent();
        self.addresses.shrink_to_fit();
    }

    fn retry_after(&self, not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        not_until.wait_time_from(self.clock.now()).as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The middleware.
pub async fn rate_limit(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = request.app_data::<web::Data<RateLimits>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let caller = authenticate(request.request()).ok();
    let verdict = match &caller {
        Some(user) => {
            crate::request_id::record_subject(&user.subject);
            limits.callers.check_key(&user.identity())
        }
        None => match request.peer_addr() {
            Some(address) => limits.addresses.check_key(&address.ip()),
            None => Ok(()),
        },
    };
    request.extensions_mut().insert(Authenticated(caller));
    match verdict {
        Ok(()) => Ok(next.call(request).await?.map_into_boxed_body()),
        Err(not_until) => {
            let retry_after = limits.retry_after(&not_until);
            tracing::debug!(retry_after, "rate limited");
            Ok(request.error_response(ApiError::RateLimited { retry_after }).map_into_boxed_body())
        }
    }
}

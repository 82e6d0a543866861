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
    /// Sign-in links asked for, per email address: 5, then one every 3 minutes.
    sign_ins: DefaultKeyedRateLimiter<String>,
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
            sign_ins: DefaultKeyedRateLimiter::keyed(
                Quota::with_period(std::time::Duration::from_secs(180))
                    .unwrap_or(Quota::per_minute(NonZeroU32::MIN))
                    .allow_burst(NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN)),
            ),
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
        self.sign_ins.retain_recent();
        self.sign_ins.shrink_to_fit();
    }

    /// Whether another sign-in link may be sent to `email` now (5 at once, then one every 3
    /// minutes): a person's inbox cannot be flooded from the sign-in page.
    pub fn allow_sign_in(&self, email: &str) -> bool {
        self.sign_ins.check_key(&email.to_lowercase()).is_ok()
    }

    fn retry_after(&self, not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
        not_until.wait_time_from(self.clock.now()).as_secs_f64().ceil().max(1.0) as u64
    }
}

/// The key of an address: an IPv4 address itself; for IPv6 its /64 network, which one client
/// holds whole (a fresh address per request would otherwise get a fresh allowance each time).
fn network_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(std::net::Ipv6Addr::from(segments))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)),
        v4 => v4,
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
            Some(address) => limits.addresses.check_key(&network_of(address.ip())),
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

#[cfg(test)]
mod tests {
    use super::network_of;
    use std::net::IpAddr;

    #[test]
    fn an_ipv6_client_is_limited_by_its_64_network_and_an_ipv4_one_by_its_address() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(network_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")), network_of(ip("2001:db8:1:2::1")));
        assert_ne!(network_of(ip("2001:db8:1:2::1")), network_of(ip("2001:db8:1:3::1")));
        assert_eq!(network_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_ne!(network_of(ip("192.0.2.7")), network_of(ip("192.0.2.8")));
    }
}

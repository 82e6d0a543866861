//! Token revocation: an admin kills one token (by its `jti`) or every token of a subject issued
//! up to an instant. A revocation is kept only while a token it covers could still be valid:
//! no token lives longer than the longest lifetime allowed, so after that it covers nothing.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

/// What a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The one token with this id (`jti`).
    Token {
        /// The token's `jti`.
        id: String,
    },
    /// Every token of `subject` issued at or before `issued_before` (a token issued in the same
    /// second is covered: `iat` counts whole seconds).
    Subject {
        /// The tokens' `sub`.
        subject: String,
        /// The instant.
        issued_before: DateTime<Utc>,
    },
}

/// Why a revocation is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevocationRefusal {
    /// `issued_before` lies in the future: it would refuse tokens not yet minted, which is a
    /// ban, not a revocation.
    #[error("issued_before lies in the future: a revocation covers tokens already issued")]
    IssuedBeforeInFuture,
}

impl RevocationRefusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::IssuedBeforeInFuture => "revocation-in-future",
        }
    }
}

/// How far ahead of `now` an `issued_before` may lie (clocks of two machines differ a little).
pub const CLOCK_LEEWAY: Duration = Duration::seconds(30);

impl Revocation {
    /// Checks the revocation at `now`.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), RevocationRefusal> {
        match self {
            Self::Subject { issued_before, .. } if *issued_before > now + CLOCK_LEEWAY => {
                Err(RevocationRefusal::IssuedBeforeInFuture)
            }
            _ => Ok(()),
        }
    }

    /// Until when the revocation must be kept, made at `now` with tokens living at most
    /// `longest_lifetime`: a token it covers says it was issued no later than `now` plus the
    /// leeway (or `issued_before`), and is accepted until its expiry plus the leeway (and the
    /// second it expires in), so it is refused anyway by then.
    pub fn keep_until(&self, now: DateTime<Utc>, longest_lifetime: Duration) -> DateTime<Utc> {
        let latest_issue = match self {
            Self::Token { .. } => now + CLOCK_LEEWAY,
            Self::Subject { issued_before, .. } => (*issued_before).min(now + CLOCK_LEEWAY),
        };
        latest_issue + longest_lifetime + CLOCK_LEEWAY + Duration::seconds(1)
    }
}

/// The revocations in force, as a set a token is checked against without I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Revocations {
    tokens: HashSet<String>,
    /// Per subject, the latest `issued_before` (seconds since the epoch).
    subjects: HashMap<String, i64>,
}

impl Revocations {
    /// Adds one revocation.
    pub fn add(&mut self, revocation: Revocation) {
        match revocation {
            Revocation::Token { id } => {
                self.tokens.insert(id);
            }
            Revocation::Subject { subject, issued_before } => {
                let entry = self.subjects.entry(subject).or_insert(i64::MIN);
                *entry = (*entry).max(issued_before.timestamp());
            }
        }
    }

    /// Is the token with id `jti` (if it has one), subject `sub`, issued at `iat` revoked?
    pub fn covers(&self, jti: Option<&str>, sub: &str, iat: i64) -> bool {
        jti.is_some_and(|jti| self.tokens.contains(jti)) || self.subjects.get(sub).is_some_and(|before| iat <= *before)
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.tokens.len() + self.subjects.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<Revocation> for Revocations {
    fn from_iter<I: IntoIterator<Item = Revocation>>(iter: I) -> Self {
        let mut revocations = Self::default();
        for revocation in iter {
            revocations.add(revocation);
        }
        revocations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn a_revoked_token_id_is_refused_and_its_siblings_are_not() {
        let revocations: Revocations = [Revocation::Token { id: "t-1".into() }].into_iter().collect();
        assert!(revocations.covers(Some("t-1"), "ana@cb.test", at(0).timestamp()));
        assert!(!revocations.covers(Some("t-2"), "ana@cb.test", at(0).timestamp()));
        assert!(!revocations.covers(None, "ana@cb.test", at(0).timestamp()), "a token without an id is not that token");
    }

    #[test]
    fn a_subject_s_tokens_issued_up_to_the_instant_are_refused_and_later_ones_are_not() {
        let revocations: Revocations =
            [Revocation::Subject { subject: "ana@cb.test".into(), issued_before: at(100) }].into_iter().collect();
        assert!(revocations.covers(None, "ana@cb.test", at(0).timestamp()));
        assert!(revocations.covers(Some("any"), "ana@cb.test", at(100).timestamp()), "the same second is covered");
        assert!(!revocations.covers(None, "ana@cb.test", at(101).timestamp()), "a token issued after is fine");
        assert!(!revocations.covers(None, "bo@cb.test", at(0).timestamp()), "another subject is untouched");
    }

    #[test]
    fn the_latest_instant_of_a_subject_wins_whatever_the_order() {
        let earlier = Revocation::Subject { subject: "ana".into(), issued_before: at(10) };
        let later = Revocation::Subject { subject: "ana".into(), issued_before: at(50) };
        for order in [[earlier.clone(), later.clone()], [later.clone(), earlier.clone()]] {
            let revocations: Revocations = order.into_iter().collect();
            assert!(revocations.covers(None, "ana", at(50).timestamp()));
            assert_eq!(revocations.len(), 1);
        }
    }

    #[test]
    fn a_revocation_of_tokens_not_yet_issued_is_refused() {
        let now = at(0);
        let ban = Revocation::Subject { subject: "ana".into(), issued_before: now + Duration::hours(1) };
        assert_eq!(ban.check(now), Err(RevocationRefusal::IssuedBeforeInFuture));
        let skewed = Revocation::Subject { subject: "ana".into(), issued_before: now + Duration::seconds(5) };
        assert_eq!(skewed.check(now), Ok(()), "a few seconds of clock skew are not a ban");
        assert_eq!(Revocation::Token { id: "t".into() }.check(now), Ok(()));
    }

    #[test]
    fn a_revocation_is_kept_until_every_token_it_covers_has_expired() {
        let now = at(0);
        let twelve_hours = Duration::hours(12);
        let token = Revocation::Token { id: "t".into() };
        // A token may say it was issued up to the leeway ahead, and is accepted up to the leeway
        // after its expiry.
        let last_accepted = now + CLOCK_LEEWAY + twelve_hours + CLOCK_LEEWAY;
        assert!(token.keep_until(now, twelve_hours) > last_accepted);
        let past = Revocation::Subject { subject: "ana".into(), issued_before: now - Duration::hours(2) };
        assert!(past.keep_until(now, twelve_hours) > now + Duration::hours(10) + CLOCK_LEEWAY);
        assert!(past.keep_until(now, twelve_hours) < token.keep_until(now, twelve_hours));
    }
}

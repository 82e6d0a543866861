//! Token revocations: recorded by an admin through the write path, read whole by every API process
//! (the table holds only revocations that still cover a live token), purged by the worker.

use chrono::{DateTime, Duration, Utc};
use entities::domain::revocation::{Revocation, Revocations};
use entities::orm::{prelude::*, token_revocation};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::Engine;
use crate::access::Action;
use crate::caller::Caller;
use crate::error::EngineError;
use crate::idempotency::Claim;
use crate::write::{Target, Write};

/// The revocation a stored row records.
pub fn revocation_of(row: &token_revocation::Model) -> Option<Revocation> {
    match (&row.token_id, &row.subject, row.issued_before) {
        (Some(id), None, None) => Some(Revocation::Token { id: id.clone() }),
        (None, Some(subject), Some(issued_before)) => {
            Some(Revocation::Subject { subject: subject.clone(), issued_before })
        }
        _ => None,
    }
}

impl Engine {
    /// Records `revocation` (an admin's) at `now` on the wall clock tokens run on, kept until
    /// every token it covers has expired given that no token lives longer than
    /// `longest_lifetime`. The caller commits the write.
    pub async fn revoke_tokens(
        &self,
        caller: &Caller,
        revocation: &Revocation,
        reason: Option<String>,
        longest_lifetime: Duration,
        now: DateTime<Utc>,
        claim: Option<Claim>,
    ) -> Result<(Write, token_revocation::Model), EngineError> {
        let write = self.begin(caller, Target::Platform, Action::RevokeTokens, claim).await?;
        revocation
            .check(now)
            .map_err(|refusal| EngineError::Unprocessable { slug: refusal.code(), detail: refusal.to_string() })?;
        let (token_id, subject, issued_before) = match revocation {
            Revocation::Token { id } => (Some(id.clone()), None, None),
            Revocation::Subject { subject, issued_before } => (None, Some(subject.clone()), Some(*issued_before)),
        };
        let row = token_revocation::ActiveModel {
            id: Set(Uuid::now_v7()),
            token_id: Set(token_id),
            subject: Set(subject),
            issued_before: Set(issued_before),
            reason: Set(reason),
            revoked_by: Set(caller.subject.clone()),
            revoked_at: Set(now),
            keep_until: Set(revocation.keep_until(now, longest_lifetime)),
        }
        .insert(write.txn())
        .await?;
        Ok((write, row))
    }

    /// Every revocation that still covers a token that could be valid at `now`.
    pub async fn revocations_in_force(&self, now: DateTime<Utc>) -> Result<Revocations, EngineError> {
        let rows = TokenRevocation::find().filter(token_revocation::Column::KeepUntil.gt(now)).all(&self.db).await?;
        Ok(rows.iter().filter_map(revocation_of).collect())
    }

    /// Forgets the revocations that cover no token valid at `now`; returns how many.
    pub async fn purge_spent_revocations(&self, now: DateTime<Utc>) -> Result<u64, EngineError> {
        let deleted = TokenRevocation::delete_many()
            .filter(token_revocation::Column::KeepUntil.lte(now))
            .exec(&self.writer)
            .await?;
        Ok(deleted.rows_affected)
    }
}

//! The certificate a transition issues, renews or changes, and the number it is known by.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::CertificateStatus;
use entities::domain::lifecycle::CertificateChange;
use entities::orm::{certificate, engagement, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel, SqlErr};
use uuid::Uuid;

use super::standing::find_certificate;
use crate::error::EngineError;
use crate::store::WriteTransaction;

/// How many numbers a new certificate tries: ten random hex digits collide rarely, and five
/// collisions in a row would be a bug, not chance.
const NUMBER_ATTEMPTS: usize = 5;

pub(super) async fn apply_certificate_change(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    change: CertificateChange,
    new_scope: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<String>, EngineError> {
    let existing = find_certificate(txn, engagement.id).await?;
    match (change, existing) {
        (CertificateChange::Issue { decision_on, expires_on }, None) => {
            let stated = StatedParties::at_decision(txn, engagement).await?;
            let mut issued = certificate::ActiveModel {
                engagement_id: Set(engagement.id),
                // The engagement's scope, set with its letter; the organization's as it stood
                // then for an engagement signed before scopes were kept.
                scope: Set(engagement.scope.clone().unwrap_or_else(|| stated.isms_scope.clone())),
                first_issued_on: Set(Some(decision_on)),
                standard: Set(engagement.standard),
                issued_on: Set(decision_on),
                decision_on: Set(decision_on),
                expires_on: Set(expires_on),
                status: Set(CertificateStatus::Active),
                surveillances_completed: Set(0),
                last_surveillance_on: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            };
            stated.state_on(&mut issued);
            insert_certificate(txn, issued, || {
                let id = Uuid::now_v7();
                (id, certificate_number(id, decision_on))
            })
            .await?;
            Ok(None)
        }
        (_, None) => Err(anyhow::anyhow!("BUG: certificate change without a certificate").into()),
        (change, Some(existing)) => {
            let surveillances = existing.surveillances_completed;
            let first_issued_on = existing.first_issued_on.unwrap_or(existing.issued_on);
            let (scope_was, stated_was) = (existing.scope.clone(), stated_by(&existing));
            let mut model = existing.into_active_model();
            let replaced = match change {
                CertificateChange::Issue { decision_on, expires_on } => {
                    // A renewal is a new decision: it states the parties as they stand now; the
                    // scope moves only by a recorded amendment, and the first date never moves.
                    StatedParties::at_decision(txn, engagement).await?.state_on(&mut model);
                    model.first_issued_on = Set(Some(first_issued_on));
                    model.issued_on = Set(decision_on);
                    model.decision_on = Set(decision_on);
                    model.expires_on = Set(expires_on);
                    model.status = Set(CertificateStatus::Active);
                    model.surveillances_completed = Set(0);
                    model.last_surveillance_on = Set(None);
                    None
                }
                CertificateChange::SetStatus(status) => {
                    model.status = Set(status);
                    None
                }
                CertificateChange::SurveillanceCompleted { held_on } => {
                    model.surveillances_completed = Set(surveillances + 1);
                    model.last_surveillance_on = Set(Some(held_on));
                    None
                }
                CertificateChange::RestoredWithSurveillance { held_on } => {
                    model.status = Set(CertificateStatus::Active);
                    model.surveillances_completed = Set(surveillances + 1);
                    model.last_surveillance_on = Set(Some(held_on));
                    None
                }
                CertificateChange::ScopeReduced => {
                    let scope = new_scope.ok_or_else(|| anyhow::anyhow!("BUG: a scope reduction without a scope"))?;
                    model.scope = Set(scope.to_owned());
                    model.status = Set(CertificateStatus::Active);
                    Some(format!("scope was: {scope_was}"))
                }
                CertificateChange::Amended => {
                    StatedParties::at_decision(txn, engagement).await?.state_on(&mut model);
                    Some(format!("stated before: {stated_was}"))
                }
            };
            model.updated_at = Set(now);
            model.update(txn).await?;
            Ok(replaced)
        }
    }
}

/// What `certificate` states of the organization and the body, in words.
fn stated_by(certificate: &certificate::Model) -> String {
    let or_none = |value: &Option<String>| value.clone().unwrap_or_default();
    format!(
        "{}; {} ({})",
        or_none(&certificate.organization_name),
        or_none(&certificate.certification_body_name),
        or_none(&certificate.accreditation_body)
    )
}

/// The parties a certificate states, as they stand at its decision.
struct StatedParties {
    organization_name: String,
    isms_scope: String,
    certification_body_name: Option<String>,
    accreditation_body: Option<String>,
}

impl StatedParties {
    /// Fixes these parties on the certificate `model`.
    fn state_on(self, model: &mut certificate::ActiveModel) {
        model.organization_name = Set(Some(self.organization_name));
        model.certification_body_name = Set(self.certification_body_name);
        model.accreditation_body = Set(self.accreditation_body);
    }

    async fn at_decision(txn: &WriteTransaction, engagement: &engagement::Model) -> Result<Self, EngineError> {
        let organization = Organization::find_by_id(engagement.organization_id)
            .one(txn)
            .await?
            .ok_or(EngineError::NotFound("organization"))?;
        let cb = match engagement.certification_body_id {
            Some(id) => CertificationBody::find_by_id(id).one(txn).await?,
            None => None,
        };
        Ok(Self {
            organization_name: organization.legal_name,
            isms_scope: organization.isms_scope,
            certification_body_name: cb.as_ref().map(|cb| cb.name.clone()),
            accreditation_body: cb.and_then(|cb| cb.accreditation_body),
        })
    }
}

/// A certificate number: unique (from the certificate's id), readable, and dated by its first decision.
fn certificate_number(id: Uuid, decision_on: NaiveDate) -> String {
    let simple = id.simple().to_string().to_uppercase();
    let tail = &simple[simple.len() - 10..];
    format!("CF-{}-{tail}", decision_on.format("%Y"))
}

/// Inserts `issued` under the first of `numbers` (an id and a certificate number) that no other
/// certificate holds. Each try runs in a savepoint, so a refused number leaves the write usable
/// (PostgreSQL aborts a transaction at its first failed statement).
async fn insert_certificate(
    txn: &WriteTransaction,
    issued: certificate::ActiveModel,
    mut numbers: impl FnMut() -> (Uuid, String),
) -> Result<(), EngineError> {
    for _ in 0..NUMBER_ATTEMPTS {
        let (id, number) = numbers();
        let mut model = issued.clone();
        model.id = Set(id);
        model.number = Set(number.clone());
        let attempt = txn.savepoint().await?;
        match Certificate::insert(model).exec_without_returning(&attempt).await {
            Ok(_) => return Ok(attempt.commit().await?),
            Err(error) if is_number_taken(&error) => {
                attempt.rollback().await?;
                tracing::warn!(%number, "certificate number taken: trying another");
            }
            Err(error) => return Err(error.into()),
        }
    }
    Err(anyhow::anyhow!("no free certificate number after {NUMBER_ATTEMPTS} tries").into())
}

/// Did an insert break the uniqueness of certificate numbers (and not another constraint)?
fn is_number_taken(error: &sea_orm::DbErr) -> bool {
    matches!(error.sql_err(), Some(SqlErr::UniqueConstraintViolation(message))
        if message.contains("uq_certificates_number") || message.contains("certificates.number"))
}

#[cfg(test)]
mod tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, QueryOrder};

    use super::*;
    use crate::store::{Tuning, begin_write, connect, connect_writer};

    fn issued(engagement_id: Uuid) -> certificate::ActiveModel {
        let on = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        let now = Utc::now();
        certificate::ActiveModel {
            engagement_id: Set(engagement_id),
            scope: Set("SaaS platform".into()),
            standard: Set(entities::domain::StandardVersion::Iso27001_2022),
            issued_on: Set(on),
            decision_on: Set(on),
            expires_on: Set(on),
            status: Set(CertificateStatus::Active),
            surveillances_completed: Set(0),
            last_surveillance_on: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
    }

    /// A migrated in-memory database and a write on it, for certificates alone (no engagements
    /// behind them).
    async fn certificates_alone() -> (DatabaseConnection, WriteTransaction) {
        let db = connect("sqlite::memory:", 1).await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        db.execute_unprepared("PRAGMA foreign_keys = OFF").await.unwrap();
        let writer = connect_writer("sqlite::memory:", &db, 1, Tuning::default()).await.unwrap();
        let txn = begin_write(&writer).await.unwrap();
        (db, txn)
    }

    #[tokio::test]
    async fn a_certificate_number_already_taken_is_retried_with_another_in_the_same_write() {
        let (db, txn) = certificates_alone().await;
        let mut numbers = ["CF-2026-TAKEN", "CF-2026-TAKEN", "CF-2026-FREE"].into_iter();
        let mut next = || (Uuid::now_v7(), numbers.next().unwrap().to_owned());

        insert_certificate(&txn, issued(Uuid::now_v7()), &mut next).await.unwrap();
        insert_certificate(&txn, issued(Uuid::now_v7()), &mut next).await.unwrap();
        txn.commit().await.unwrap();

        let held: Vec<String> = Certificate::find()
            .order_by_asc(certificate::Column::Number)
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.number)
            .collect();
        assert_eq!(held, ["CF-2026-FREE", "CF-2026-TAKEN"]);
    }

    #[tokio::test]
    async fn another_unique_violation_is_not_retried() {
        let (_db, txn) = certificates_alone().await;
        let engagement = Uuid::now_v7();
        let mut count = 0;
        let mut next = || {
            count += 1;
            (Uuid::now_v7(), format!("CF-2026-{count}"))
        };
        insert_certificate(&txn, issued(engagement), &mut next).await.unwrap();
        // A second certificate for the same engagement breaks another constraint: an error at once.
        assert!(insert_certificate(&txn, issued(engagement), &mut next).await.is_err());
        assert_eq!(count, 2, "one try only");
    }
}

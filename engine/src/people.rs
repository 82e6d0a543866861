//! The directory of people, and how a person signs in to the console: an emailed single-use link
//! opens a session. Links and sessions are stored as their token's SHA-256 only, so a copy of the
//! database opens no session.

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use entities::domain::people::{
    PersonRole, PersonScope, SIGN_IN_LINK_MINUTES, SignInLinkRefusal, may_manage, redeemable,
};
use entities::domain::text::EmailAddress;
use entities::orm::{certification_body, organization, person, prelude::*, session, sign_in_link};
use rand::RngCore;
use sea_orm::sea_query::Condition;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Engine;
use crate::access::{Action, Party, Tenancy};
use crate::caller::Caller;
use crate::error::EngineError;
use crate::idempotency::Claim;
use crate::write::{Target, Write};

/// A person as the directory is asked to hold them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonDetails {
    /// Their address: how they sign in, and whom the emails reach.
    pub email: EmailAddress,
    /// Their name, as shown.
    pub name: String,
    /// What they do.
    pub role: PersonRole,
    /// Whose they are.
    pub scope: PersonScope,
}

/// The people `tenancy` sees: everyone (the platform), or its own body's or organization's.
pub fn people_in(tenancy: Tenancy) -> Condition {
    match tenancy {
        Tenancy::Platform => Condition::all(),
        Tenancy::CertificationBody(id) => Condition::all().add(person::Column::CertificationBodyId.eq(id)),
        Tenancy::Organization(id) => Condition::all().add(person::Column::OrganizationId.eq(id)),
    }
}

/// The scope a person's row records (a row with both columns set is not one certflow writes).
pub fn scope_of(person: &person::Model) -> PersonScope {
    PersonScope::of_columns(person.organization_id, person.certification_body_id).unwrap_or(PersonScope::Platform)
}

/// The caller a signed-in person is: the role and scope the directory holds now, with their
/// address as the subject the history records.
pub fn caller_of(person: &person::Model) -> Caller {
    let (party, tenancy) = match (person.role, scope_of(person)) {
        (PersonRole::Admin, _) => (Party::Admin, Tenancy::Platform),
        (PersonRole::Coordinator, PersonScope::CertificationBody(id)) => {
            (Party::Coordinator, Tenancy::CertificationBody(id))
        }
        (PersonRole::Auditor, PersonScope::CertificationBody(id)) => (Party::Auditor, Tenancy::CertificationBody(id)),
        (PersonRole::DecisionMaker, PersonScope::CertificationBody(id)) => {
            (Party::DecisionMaker, Tenancy::CertificationBody(id))
        }
        (PersonRole::ClientManager, PersonScope::Organization(id)) => (Party::ClientManager, Tenancy::Organization(id)),
        // A role that does not fit its scope is never written; read as no one's, it sees nothing.
        (_, _) => (Party::ClientManager, Tenancy::Organization(Uuid::nil())),
    };
    Caller { subject: person.email.clone(), party, tenancy }
}

/// The person a caller is, as the directory rules see a manager (a service account is none).
fn as_manager(caller: &Caller) -> Option<(PersonRole, PersonScope)> {
    let role = match caller.party {
        Party::Admin => PersonRole::Admin,
        Party::Coordinator => PersonRole::Coordinator,
        Party::Auditor => PersonRole::Auditor,
        Party::DecisionMaker => PersonRole::DecisionMaker,
        Party::ClientManager => PersonRole::ClientManager,
        Party::ClientIntegration | Party::CertificationBodyIntegration => return None,
    };
    let scope = match caller.tenancy {
        Tenancy::Platform => PersonScope::Platform,
        Tenancy::CertificationBody(id) => PersonScope::CertificationBody(id),
        Tenancy::Organization(id) => PersonScope::Organization(id),
    };
    Some((role, scope))
}

/// Refuses (403, with the rule's code) a change of the directory `caller` may not make.
fn may_manage_person(caller: &Caller, role: PersonRole, scope: PersonScope) -> Result<(), EngineError> {
    caller.may(Action::ManagePeople)?;
    let manager =
        as_manager(caller).ok_or_else(|| EngineError::Forbidden("a service account manages no one".into()))?;
    may_manage(manager, (role, scope)).map_err(|refusal| match refusal {
        entities::domain::people::DirectoryRefusal::RoleDoesNotFitScope { .. } => {
            EngineError::Unprocessable { slug: refusal.code(), detail: refusal.to_string() }
        }
        entities::domain::people::DirectoryRefusal::NotYours(_) => EngineError::Forbidden(refusal.to_string()),
    })
}

/// A fresh secret token (256 random bits, URL-safe) and the hash it is stored as.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = token_hash(&token);
    (token, hash)
}

/// How a token is stored: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What signing in with a link gives: the session's token (for the cookie), until when it is
/// valid, and where the person was going.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    /// The cookie's value.
    pub token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The path the link was asked for.
    pub next: String,
    /// Who signed in.
    pub person: person::Model,
}

/// Why a link opened no session.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// No such link (never issued, or its person was removed).
    #[error("this sign-in link is not valid: ask for a new one")]
    Unknown,
    /// Used or expired.
    #[error(transparent)]
    Refused(#[from] SignInLinkRefusal),
    /// The database failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<sea_orm::DbErr> for SignInError {
    fn from(error: sea_orm::DbErr) -> Self {
        Self::Engine(error.into())
    }
}

impl Engine {
    /// Checks that the body or organization a scope names exists (a 422 naming the field if not).
    async fn scope_exists(&self, conn: &impl ConnectionTrait, scope: PersonScope) -> Result<(), EngineError> {
        let found = match scope {
            PersonScope::Platform => true,
            PersonScope::CertificationBody(id) => CertificationBody::find_by_id(id)
                .select_only()
                .column(certification_body::Column::Id)
                .into_tuple::<Uuid>()
                .one(conn)
                .await?
                .is_some(),
            PersonScope::Organization(id) => Organization::find_by_id(id)
                .select_only()
                .column(organization::Column::Id)
                .into_tuple::<Uuid>()
                .one(conn)
                .await?
                .is_some(),
        };
        if found {
            return Ok(());
        }
        let field = if scope.organization_id().is_some() { "organization_id" } else { "certification_body_id" };
        Err(EngineError::Invalid { field, detail: "no such record".into() })
    }

    /// Refuses (409) an address another person already has.
    async fn address_is_free(
        &self,
        write: &Write,
        email: &EmailAddress,
        except: Option<Uuid>,
    ) -> Result<(), EngineError> {
        let mut taken =
            Person::find().select_only().column(person::Column::Id).filter(person::Column::Email.eq(email.as_str()));
        if let Some(id) = except {
            taken = taken.filter(person::Column::Id.ne(id));
        }
        if taken.into_tuple::<Uuid>().one(write.txn()).await?.is_some() {
            return Err(EngineError::conflict("person-exists", format!("{email} is someone's address already")));
        }
        Ok(())
    }

    /// Adds a person to the directory. The caller commits the write.
    pub async fn add_person(
        &self,
        caller: &Caller,
        details: PersonDetails,
        claim: Option<Claim>,
    ) -> Result<(Write, person::Model), EngineError> {
        may_manage_person(caller, details.role, details.scope)?;
        let write = self.begin(caller, Target::Platform, Action::ManagePeople, claim).await?;
        self.scope_exists(write.txn(), details.scope).await?;
        self.address_is_free(&write, &details.email, None).await?;
        let now = write.now();
        let row = person::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(details.email.as_str().to_owned()),
            name: Set(details.name),
            role: Set(details.role),
            organization_id: Set(details.scope.organization_id()),
            certification_body_id: Set(details.scope.certification_body_id()),
            calendar_generation: Set(0),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(write.txn())
        .await?;
        Ok((write, row))
    }

    /// One person the caller sees (404 otherwise).
    pub async fn person(&self, caller: &Caller, id: Uuid) -> Result<person::Model, EngineError> {
        Person::find_by_id(id)
            .filter(people_in(caller.tenancy))
            .one(&self.db)
            .await?
            .ok_or(EngineError::NotFound("person"))
    }

    /// The person the caller sees, locked in `write` for a change (404 otherwise).
    async fn person_to_change(&self, write: &Write, caller: &Caller, id: Uuid) -> Result<person::Model, EngineError> {
        Person::find_by_id(id)
            .filter(people_in(caller.tenancy))
            .one(write.txn())
            .await?
            .ok_or(EngineError::NotFound("person"))
    }

    /// Changes a person: the caller must be allowed to manage them both as they are and as they
    /// will be. Their sessions end when their role or scope changes. The caller commits.
    pub async fn change_person(
        &self,
        caller: &Caller,
        id: Uuid,
        details: PersonDetails,
        expected_version: Option<i32>,
        claim: Option<Claim>,
    ) -> Result<(Write, person::Model), EngineError> {
        // Unseen is a 404 before anything else; then the caller must manage them as they are and
        // as they will be.
        let seen = self.person(caller, id).await?;
        may_manage_person(caller, seen.role, scope_of(&seen))?;
        may_manage_person(caller, details.role, details.scope)?;
        let write = self.begin(caller, Target::Platform, Action::ManagePeople, claim).await?;
        let current = self.person_to_change(&write, caller, id).await?;
        may_manage_person(caller, current.role, scope_of(&current))?;
        if let Some(expected) = expected_version
            && expected != current.version
        {
            return Err(EngineError::PreconditionFailed { expected, current: current.version });
        }
        self.scope_exists(write.txn(), details.scope).await?;
        self.address_is_free(&write, &details.email, Some(id)).await?;
        let moved = current.role != details.role || scope_of(&current) != details.scope;
        let moved = moved || current.email != details.email.as_str();
        let version = current.version + 1;
        let mut row = current.into_active_model();
        row.email = Set(details.email.as_str().to_owned());
        row.name = Set(details.name);
        row.role = Set(details.role);
        row.organization_id = Set(details.scope.organization_id());
        row.certification_body_id = Set(details.scope.certification_body_id());
        row.version = Set(version);
        row.updated_at = Set(write.now());
        let row = row.update(write.txn()).await?;
        if moved {
            end_sessions_of(write.txn(), id).await?;
        }
        Ok((write, row))
    }

    /// Removes a person; their sessions and links go with them (the tables' foreign keys
    /// cascade). The caller commits.
    pub async fn remove_person(&self, caller: &Caller, id: Uuid, claim: Option<Claim>) -> Result<Write, EngineError> {
        let seen = self.person(caller, id).await?;
        may_manage_person(caller, seen.role, scope_of(&seen))?;
        let write = self.begin(caller, Target::Platform, Action::ManagePeople, claim).await?;
        let current = self.person_to_change(&write, caller, id).await?;
        may_manage_person(caller, current.role, scope_of(&current))?;
        Person::delete_by_id(id).exec(write.txn()).await?;
        Ok(write)
    }

    /// Rotates a person's calendar feed addresses (their own, or as their manager): the old ones
    /// stop working at once.
    pub async fn rotate_calendar(&self, caller: &Caller, id: Uuid) -> Result<person::Model, EngineError> {
        let current = self.person(caller, id).await?;
        if current.email != caller.subject {
            may_manage_person(caller, current.role, scope_of(&current))?;
        }
        let txn = crate::store::begin_write(&self.writer).await?;
        let current = Person::find_by_id(id).one(&txn).await?.ok_or(EngineError::NotFound("person"))?;
        let generation = current.calendar_generation + 1;
        let mut row = current.into_active_model();
        row.calendar_generation = Set(generation);
        row.updated_at = Set(self.clock.now());
        let row = row.update(&txn).await?;
        txn.commit().await?;
        Ok(row)
    }

    /// The person with this address, if the directory knows it.
    pub async fn person_by_email(&self, email: &str) -> Result<Option<person::Model>, EngineError> {
        let email = email.trim().to_lowercase();
        Ok(Person::find().filter(person::Column::Email.eq(email)).one(&self.db).await?)
    }

    /// Issues a sign-in link for `person` to `next`, valid for 15 minutes from `now`; returns
    /// the token the emailed link carries (only its hash is stored).
    pub async fn issue_sign_in_link(
        &self,
        person: &person::Model,
        next: &str,
        now: DateTime<Utc>,
    ) -> Result<String, EngineError> {
        let (token, hash) = new_token();
        let txn = crate::store::begin_write(&self.writer).await?;
        // Spent links of anyone are forgotten as new ones are made.
        SignInLink::delete_many().filter(sign_in_link::Column::ExpiresAt.lt(now)).exec(&txn).await?;
        sign_in_link::ActiveModel {
            id: Set(Uuid::now_v7()),
            token_hash: Set(hash),
            person_id: Set(person.id),
            next: Set(next.to_owned()),
            created_at: Set(now),
            expires_at: Set(now + Duration::minutes(SIGN_IN_LINK_MINUTES)),
            used_at: Set(None),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(token)
    }

    /// Opens a session with a sign-in link's token, once, within its 15 minutes; the session
    /// lasts `session_length`.
    pub async fn redeem_sign_in_link(
        &self,
        token: &str,
        now: DateTime<Utc>,
        session_length: Duration,
    ) -> Result<OpenedSession, SignInError> {
        let txn = crate::store::begin_write(&self.writer).await?;
        let link = SignInLink::find()
            .filter(sign_in_link::Column::TokenHash.eq(token_hash(token)))
            .one(&txn)
            .await?
            .ok_or(SignInError::Unknown)?;
        redeemable(link.expires_at, link.used_at, now)?;
        let person = Person::find_by_id(link.person_id).one(&txn).await?.ok_or(SignInError::Unknown)?;
        let next = link.next.clone();
        let mut used = link.into_active_model();
        used.used_at = Set(Some(now));
        used.update(&txn).await?;
        // Ended sessions of anyone are forgotten as new ones open.
        Session::delete_many().filter(session::Column::ExpiresAt.lt(now)).exec(&txn).await?;
        let (token, hash) = new_token();
        let expires_at = now + session_length;
        session::ActiveModel {
            id: Set(Uuid::now_v7()),
            token_hash: Set(hash),
            person_id: Set(person.id),
            created_at: Set(now),
            expires_at: Set(expires_at),
        }
        .insert(&txn)
        .await?;
        txn.commit().await.map_err(EngineError::from)?;
        Ok(OpenedSession { token, expires_at, next, person })
    }

    /// The person a session cookie's token belongs to, while the session lasts (one query).
    pub async fn session_person(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(session::Model, person::Model)>, EngineError> {
        let found = Session::find()
            .filter(session::Column::TokenHash.eq(token_hash(token)))
            .filter(session::Column::ExpiresAt.gt(now))
            .find_also_related(Person)
            .one(&self.db)
            .await?;
        Ok(found.and_then(|(session, person)| person.map(|person| (session, person))))
    }

    /// Ends the session a cookie's token names (signing out).
    pub async fn end_session(&self, token: &str) -> Result<(), EngineError> {
        Session::delete_many().filter(session::Column::TokenHash.eq(token_hash(token))).exec(&self.writer).await?;
        Ok(())
    }
}

/// Ends every session of person `id`.
async fn end_sessions_of(conn: &impl ConnectionTrait, id: Uuid) -> Result<(), EngineError> {
    Session::delete_many().filter(session::Column::PersonId.eq(id)).exec(conn).await?;
    Ok(())
}

//! The directory of people: who signs in to the console, in which role, for which certification
//! body or organization, and who may manage whom. A person's role and scope are those a token of
//! the same role carries; a service account (integration) is never a person.

use uuid::Uuid;

vocabulary! {
    /// What a person does: the roles of a token that belong to people.
    pub enum PersonRole {
        /// Runs the platform.
        Admin,
        /// A certification body's coordinator.
        Coordinator,
        /// A certification body's auditor.
        Auditor,
        /// A certification body's decision panel member.
        DecisionMaker,
        /// An organization's ISMS or engagement manager.
        ClientManager,
    }
}

/// Whose a person is: the platform's, a certification body's or an organization's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PersonScope {
    /// The platform (admins).
    Platform,
    /// A certification body's people.
    CertificationBody(Uuid),
    /// An organization's people.
    Organization(Uuid),
}

impl PersonScope {
    /// The scope stored as two optional columns (an organization, a certification body).
    pub fn of_columns(organization_id: Option<Uuid>, certification_body_id: Option<Uuid>) -> Option<Self> {
        match (organization_id, certification_body_id) {
            (None, None) => Some(Self::Platform),
            (None, Some(body)) => Some(Self::CertificationBody(body)),
            (Some(organization), None) => Some(Self::Organization(organization)),
            (Some(_), Some(_)) => None,
        }
    }

    /// The organization it names.
    pub fn organization_id(self) -> Option<Uuid> {
        match self {
            Self::Organization(id) => Some(id),
            _ => None,
        }
    }

    /// The certification body it names.
    pub fn certification_body_id(self) -> Option<Uuid> {
        match self {
            Self::CertificationBody(id) => Some(id),
            _ => None,
        }
    }
}

/// Why a change to the directory is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryRefusal {
    /// The role does not go with the scope (a coordinator without a certification body, a
    /// client manager of a certification body, an admin of an organization).
    #[error("a {role} {rule}")]
    RoleDoesNotFitScope {
        /// The role asked for.
        role: PersonRole,
        /// What the role needs.
        rule: &'static str,
    },
    /// The manager may not manage this person (another body's or organization's, or a role
    /// above what the manager may grant).
    #[error("{0}")]
    NotYours(&'static str),
}

impl DirectoryRefusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RoleDoesNotFitScope { .. } => "role-does-not-fit-scope",
            Self::NotYours(_) => "person-not-yours",
        }
    }
}

impl PersonRole {
    /// What scope the role needs.
    pub fn scope_rule(self) -> &'static str {
        match self {
            Self::Admin => "belongs to the platform: neither organization_id nor certification_body_id",
            Self::Coordinator | Self::Auditor | Self::DecisionMaker => {
                "belongs to a certification body: certification_body_id (only)"
            }
            Self::ClientManager => "belongs to an organization: organization_id (only)",
        }
    }

    /// Whether the role goes with `scope`.
    pub fn fits(self, scope: PersonScope) -> Result<(), DirectoryRefusal> {
        let fits = match self {
            Self::Admin => scope == PersonScope::Platform,
            Self::Coordinator | Self::Auditor | Self::DecisionMaker => {
                matches!(scope, PersonScope::CertificationBody(_))
            }
            Self::ClientManager => matches!(scope, PersonScope::Organization(_)),
        };
        if fits { Ok(()) } else { Err(DirectoryRefusal::RoleDoesNotFitScope { role: self, rule: self.scope_rule() }) }
    }
}

/// Whether a manager (a person's role and scope) may add, change or remove a person who is (or
/// is to be) `role` in `scope`: an admin anyone; a certification body's coordinator its own
/// body's people; an organization's client manager its own organization's. No one else.
pub fn may_manage(
    manager: (PersonRole, PersonScope),
    person: (PersonRole, PersonScope),
) -> Result<(), DirectoryRefusal> {
    let (role, scope) = person;
    role.fits(scope)?;
    match manager {
        (PersonRole::Admin, PersonScope::Platform) => Ok(()),
        (PersonRole::Coordinator, PersonScope::CertificationBody(own)) => match scope {
            PersonScope::CertificationBody(body) if body == own => Ok(()),
            _ => Err(DirectoryRefusal::NotYours("a coordinator manages its own certification body's people")),
        },
        (PersonRole::ClientManager, PersonScope::Organization(own)) => match scope {
            PersonScope::Organization(organization) if organization == own => Ok(()),
            _ => Err(DirectoryRefusal::NotYours("a client manager manages its own organization's people")),
        },
        _ => Err(DirectoryRefusal::NotYours(
            "only an admin, a certification body's coordinator or an organization's client manager manages people",
        )),
    }
}

/// How long an emailed sign-in link may be used.
pub const SIGN_IN_LINK_MINUTES: i64 = 15;

/// Why a sign-in link no longer opens a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignInLinkRefusal {
    /// It was used already: a link opens one session.
    #[error("this sign-in link was used already: ask for a new one")]
    Used,
    /// Its 15 minutes are over.
    #[error("this sign-in link has expired: ask for a new one")]
    Expired,
}

/// Whether a link that expires at `expires_at` (and was used at `used_at`, if ever) opens a
/// session at `now`.
pub fn redeemable(
    expires_at: chrono::DateTime<chrono::Utc>,
    used_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), SignInLinkRefusal> {
    if used_at.is_some() {
        Err(SignInLinkRefusal::Used)
    } else if now >= expires_at {
        Err(SignInLinkRefusal::Expired)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> PersonScope {
        PersonScope::CertificationBody(Uuid::from_u128(1))
    }

    fn other_body() -> PersonScope {
        PersonScope::CertificationBody(Uuid::from_u128(2))
    }

    fn organization() -> PersonScope {
        PersonScope::Organization(Uuid::from_u128(3))
    }

    #[test]
    fn each_role_belongs_to_one_kind_of_scope() {
        assert!(PersonRole::Admin.fits(PersonScope::Platform).is_ok());
        assert!(PersonRole::Admin.fits(body()).is_err());
        for role in [PersonRole::Coordinator, PersonRole::Auditor, PersonRole::DecisionMaker] {
            assert!(role.fits(body()).is_ok());
            assert!(role.fits(organization()).is_err());
            assert!(role.fits(PersonScope::Platform).is_err());
        }
        assert!(PersonRole::ClientManager.fits(organization()).is_ok());
        let refusal = PersonRole::ClientManager.fits(body()).unwrap_err();
        assert_eq!(refusal.code(), "role-does-not-fit-scope");
        assert!(refusal.to_string().contains("organization_id"), "{refusal}");
    }

    #[test]
    fn an_admin_manages_anyone() {
        let admin = (PersonRole::Admin, PersonScope::Platform);
        assert!(may_manage(admin, (PersonRole::Admin, PersonScope::Platform)).is_ok());
        assert!(may_manage(admin, (PersonRole::Auditor, body())).is_ok());
        assert!(may_manage(admin, (PersonRole::ClientManager, organization())).is_ok());
    }

    #[test]
    fn a_coordinator_manages_its_own_body_s_people_and_no_one_else() {
        let coordinator = (PersonRole::Coordinator, body());
        for role in [PersonRole::Coordinator, PersonRole::Auditor, PersonRole::DecisionMaker] {
            assert!(may_manage(coordinator, (role, body())).is_ok());
            assert_eq!(may_manage(coordinator, (role, other_body())).unwrap_err().code(), "person-not-yours");
        }
        assert!(may_manage(coordinator, (PersonRole::ClientManager, organization())).is_err());
        assert!(may_manage(coordinator, (PersonRole::Admin, PersonScope::Platform)).is_err());
    }

    #[test]
    fn a_client_manager_manages_its_own_organization_s_managers() {
        let manager = (PersonRole::ClientManager, organization());
        assert!(may_manage(manager, (PersonRole::ClientManager, organization())).is_ok());
        let elsewhere = PersonScope::Organization(Uuid::from_u128(4));
        assert!(may_manage(manager, (PersonRole::ClientManager, elsewhere)).is_err());
        assert!(may_manage(manager, (PersonRole::Auditor, body())).is_err());
    }

    #[test]
    fn auditors_and_decision_makers_manage_no_one() {
        for role in [PersonRole::Auditor, PersonRole::DecisionMaker] {
            assert!(may_manage((role, body()), (PersonRole::Auditor, body())).is_err());
        }
    }

    #[test]
    fn a_sign_in_link_opens_one_session_within_its_fifteen_minutes() {
        let issued = chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().to_utc();
        let expires = issued + chrono::Duration::minutes(SIGN_IN_LINK_MINUTES);
        assert_eq!(redeemable(expires, None, issued + chrono::Duration::minutes(14)), Ok(()));
        assert_eq!(redeemable(expires, None, expires), Err(SignInLinkRefusal::Expired));
        assert_eq!(redeemable(expires, Some(issued), issued), Err(SignInLinkRefusal::Used));
    }

    #[test]
    fn a_scope_is_one_of_two_columns_or_neither() {
        let id = Uuid::from_u128(9);
        assert_eq!(PersonScope::of_columns(None, None), Some(PersonScope::Platform));
        assert_eq!(PersonScope::of_columns(Some(id), None), Some(PersonScope::Organization(id)));
        assert_eq!(PersonScope::of_columns(None, Some(id)), Some(PersonScope::CertificationBody(id)));
        assert_eq!(PersonScope::of_columns(Some(id), Some(id)), None);
    }
}

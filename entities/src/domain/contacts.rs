//! Whom certflow may email for an organization: only addresses on the organization's registered
//! email domains, or the selected certification body's own people (the addresses it registered,
//! never a whole domain: a body's coordinator on a public mail domain must not open that domain to
//! every client). A client cannot make certflow send reminders, under the platform's sender, to
//! anyone else.

/// The domain of an email address, lower-cased (`None` if it has no `@`).
pub fn domain_of(address: &str) -> Option<String> {
    address.rsplit_once('@').map(|(_, domain)| domain.trim().to_ascii_lowercase()).filter(|d| !d.is_empty())
}

/// Does `domain` belong to one of `registered` (equal to it, or a subdomain of it)?
fn within(domain: &str, registered: &str) -> bool {
    let registered = registered.trim_start_matches('.').to_ascii_lowercase();
    domain == registered || domain.strip_suffix(&registered).is_some_and(|head| head.ends_with('.'))
}

/// The domains an organization registered, or, where it registered none (before the field
/// existed), those of its own ISMS manager and executive.
pub fn registered_domains(explicit: &[String], isms_manager_email: &str, executive_email: &str) -> Vec<String> {
    if !explicit.is_empty() {
        return explicit.iter().map(|d| d.to_ascii_lowercase()).collect();
    }
    let mut derived: Vec<String> = [isms_manager_email, executive_email].iter().filter_map(|a| domain_of(a)).collect();
    derived.dedup();
    derived
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address_domain} is not one of the organization's registered email domains ({registered}) nor the certification body's"
)]
pub struct ContactRefusal {
    /// The address's domain.
    pub address_domain: String,
    /// The organization's domains, comma-separated.
    pub registered: String,
}

impl ContactRefusal {
    /// The stable code of the refusal.
    pub fn code(&self) -> &'static str {
        "email-domain-not-registered"
    }
}

/// May certflow email `address` for an organization on `organization_domains`, with a
/// certification body whose people are `body_people` (none before one is selected)?
pub fn check_contact(
    address: &str,
    organization_domains: &[String],
    body_people: &[String],
) -> Result<(), ContactRefusal> {
    let domain = domain_of(address).unwrap_or_default();
    if organization_domains.iter().any(|registered| within(&domain, registered))
        || body_people.iter().any(|person| person.eq_ignore_ascii_case(address.trim()))
    {
        Ok(())
    } else {
        Err(ContactRefusal { address_domain: domain, registered: organization_domains.join(", ") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn an_address_on_the_organization_s_domain_or_a_subdomain_is_allowed() {
        let acme = domains(&["acme.example"]);
        assert_eq!(check_contact("sre@acme.example", &acme, &[]), Ok(()));
        assert_eq!(check_contact("SRE@Ops.ACME.example", &acme, &[]), Ok(()));
    }

    #[test]
    fn an_address_elsewhere_is_refused_even_if_its_domain_ends_alike() {
        let acme = domains(&["acme.example"]);
        for address in ["victim@gmail.example", "x@notacme.example", "x@acme.example.evil.test", "no-at-sign"] {
            let refused = check_contact(address, &acme, &[]).unwrap_err();
            assert_eq!(refused.code(), "email-domain-not-registered", "{address}");
        }
    }

    #[test]
    fn the_selected_body_s_people_may_be_named_too_but_not_its_whole_domain() {
        let acme = domains(&["acme.example"]);
        let people = domains(&["lead@cb.example"]);
        assert_eq!(check_contact("Lead@CB.example", &acme, &people), Ok(()));
        assert!(check_contact("lead@cb.example", &acme, &[]).is_err(), "not before the body is selected");
        assert!(check_contact("anyone@cb.example", &acme, &people).is_err(), "a person, not a domain");
    }

    #[test]
    fn an_organization_without_registered_domains_has_those_of_its_own_contacts() {
        assert_eq!(registered_domains(&[], "isms@acme.example", "ceo@acme.example"), domains(&["acme.example"]));
        assert_eq!(
            registered_domains(&domains(&["Acme.Example", "acme.test"]), "isms@x.test", "ceo@x.test"),
            domains(&["acme.example", "acme.test"])
        );
    }
}

//! Leaving certification body selection: the engagement letter.

use chrono::NaiveDate;

use crate::domain::dates::standard_accepted_for_audit;
use crate::domain::state::EngagementState as S;

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::TransitionOutcome;

pub(super) fn sign_engagement_letter(
    facts: &EngagementFacts,
    signed_on: NaiveDate,
    include_pre_audit: bool,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    match facts.selected_cb_accredited {
        None => check.fail("no_selected_proposal", "select a certification body's proposal first"),
        Some(accredited) => check.require(
            accredited || facts.unaccredited_cb_accepted,
            "certification_body_not_accredited",
            || "the selected certification body is not accredited and the organization has not accepted an unaccredited one".into(),
        ),
    }
    check.require(standard_accepted_for_audit(facts.standard, today), "standard_version_withdrawn", || {
        format!("no audit against ISO/IEC 27001:{} is allowed after 2024-04-30 (IAF MD 26)", facts.standard)
    });
    check.require(signed_on <= today, "date_in_future", || {
        format!("the engagement letter cannot be signed in the future ({signed_on})")
    });
    out.to = if include_pre_audit { S::PreAudit } else { S::Stage1 };
}

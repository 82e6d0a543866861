//! The guards rules share: each failed check adds a violation, so a refusal lists every rule broken.

use chrono::NaiveDate;

use crate::domain::dates::{restore_after_expiry_limit, standard_accepted_for_audit};
use crate::domain::text::EmailAddress;
use crate::domain::{AuditKind, CertificateStatus};

use super::facts::{AuditFacts, CertificateFacts, EngagementFacts};
use super::refusal::GuardViolation;

#[derive(Default)]
pub(super) struct Guards {
    pub(super) violations: Vec<GuardViolation>,
}

impl Guards {
    pub(super) fn fail(&mut self, code: &'static str, detail: impl Into<String>) {
        self.violations.push(GuardViolation::new(code, detail));
    }

    pub(super) fn require(&mut self, ok: bool, code: &'static str, detail: impl FnOnce() -> String) {
        if !ok {
            self.fail(code, detail());
        }
    }

    pub(super) fn audit(&mut self, audit: Option<AuditFacts>, kind: AuditKind, today: NaiveDate) {
        match audit {
            None => self.fail("audit_required", format!("name the {kind} audit this event completes (audit_id)")),
            Some(audit) if audit.kind != kind => {
                self.fail("wrong_audit_kind", format!("the audit named is a {} audit, not a {kind} audit", audit.kind))
            }
            Some(audit) if audit.completed => self.fail(
                "audit_already_completed",
                format!("the {kind} audit named was already completed by an earlier event: plan and hold a new one"),
            ),
            Some(audit) => self.require(audit.last_day <= today, "audit_not_finished", || {
                format!("the {kind} audit ends on {}: it can be completed from that day", audit.last_day)
            }),
        }
    }

    pub(super) fn certificate(&mut self, facts: &EngagementFacts) -> CertificateFacts {
        match facts.certificate {
            Some(certificate) => certificate,
            None => {
                self.fail("no_certificate", "the engagement has no certificate");
                CertificateFacts {
                    decision_on: NaiveDate::MIN,
                    expires_on: NaiveDate::MIN,
                    surveillances_completed: 0,
                    last_surveillance_on: None,
                    status: CertificateStatus::Active,
                }
            }
        }
    }

    pub(super) fn impartial(&mut self, facts: &EngagementFacts, decision_maker: &EmailAddress) {
        self.require(!facts.auditors.contains(decision_maker), "decision_maker_not_impartial", || {
            format!(
                "{decision_maker} took part in this engagement's audit work (an audit's team, a finding or a \
                 corrective action's verification) and cannot sit on its decision panel"
            )
        });
    }

    /// A renewal decided after the certificate's expiry: only as the restoration of an expired
    /// certificate (17021-1 9.6.3.2.5), within its window. A recertification not decided before
    /// the expiry date does not extend the certificate: it expires first, with a gap.
    pub(super) fn renewal_decided_in_time(
        &mut self,
        facts: &EngagementFacts,
        certificate: CertificateFacts,
        today: NaiveDate,
    ) {
        match facts.marks.expired_on {
            Some(expired_on) => {
                let limit = restore_after_expiry_limit(expired_on);
                self.require(today <= limit, "restore_window_passed", || {
                    format!("certification could be restored until {limit}: a new stage 2 is needed")
                });
            }
            None => self.require(today <= certificate.expires_on, "certificate_expired", || {
                format!(
                    "the certificate expired on {} before this decision: fire expire, then restore_after_expiry",
                    certificate.expires_on
                )
            }),
        }
    }

    /// IAF MD 26: no stage 1, stage 2 or recertification audit against ISO/IEC 27001:2013 held
    /// after 2024-04-30 counts.
    pub(super) fn audit_against_current_standard(&mut self, facts: &EngagementFacts) {
        if let Some(audit) = facts.audit {
            self.require(standard_accepted_for_audit(facts.standard, audit.last_day), "standard_version_withdrawn", || {
                format!(
                    "the {} audit ended on {}: no audit against ISO/IEC 27001:{} counts after 2024-04-30 (IAF MD 26)",
                    audit.kind, audit.last_day, facts.standard
                )
            });
        }
    }

    pub(super) fn minor_plans_accepted(&mut self, facts: &EngagementFacts) {
        self.require(facts.minors_plan_pending == 0, "minor_nc_plan_pending", || {
            format!("{} minor nonconformit(y/ies) lack an accepted plan", facts.minors_plan_pending)
        });
    }

    pub(super) fn majors_verified(&mut self, facts: &EngagementFacts) {
        self.require(facts.majors_unverified == 0, "major_nc_unverified", || {
            format!("{} major nonconformit(y/ies) lack a verified correction", facts.majors_unverified)
        });
    }
}

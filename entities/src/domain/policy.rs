//! A certification body's policy settings, with the defaults of DOMAIN.md.

use serde::{Deserialize, Serialize};

/// Where a rule is a certification body's policy rather than a rule of the standards, its value lives here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificationPolicy {
    /// Months a stage 1 "ready" result stays valid for starting stage 2 (EA FAQ 49.3).
    pub stage1_validity_months: u32,
    /// Months after the last day of stage 2 within which every major NC must be verified (17021-1).
    pub major_nc_limit_months: u32,
    /// Days after the audit's last day to correct a major NC (inside 30–90).
    pub major_nc_due_days: u32,
    /// Days after the audit's last day for a minor NC's plan (inside 30–90).
    pub minor_nc_due_days: u32,
    /// Months a suspension may last before the certificate is withdrawn.
    pub suspension_limit_months: u32,
    /// Months after expiry within which certification can be restored (17021-1 9.6.3.2.5).
    pub restore_after_expiry_months: u32,
    /// Days a surveillance audit may be overdue before the clock suspends the certificate
    /// (cause `missed_audit`).
    pub missed_surveillance_grace_days: u32,
    /// Days after the suspension limit before the clock withdraws a certificate that was neither
    /// restored nor reduced in scope.
    pub withdrawal_grace_days: u32,
}

/// The window every corrective-action due date must fall in, in days after the audit's last day.
pub const CAP_WINDOW_DAYS: std::ops::RangeInclusive<u32> = 30..=90;

impl Default for CertificationPolicy {
    fn default() -> Self {
        Self {
            stage1_validity_months: 6,
            major_nc_limit_months: 6,
            major_nc_due_days: 90,
            minor_nc_due_days: 30,
            suspension_limit_months: 6,
            restore_after_expiry_months: 6,
            missed_surveillance_grace_days: 30,
            withdrawal_grace_days: 30,
        }
    }
}

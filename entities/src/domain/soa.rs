//! The Statement of Applicability check against the 93 controls of ISO/IEC 27001:2022 Annex A.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use serde::Serialize;

const ANNEX_A_CSV: &str = include_str!("../../data/annex_a_2022.csv");

/// One Annex A (2022) control.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnnexAControl {
    /// The control's number, e.g. `5.1`.
    pub control: String,
    /// organizational, people, physical or technological.
    pub theme: String,
    /// The control's title.
    pub title: String,
}

/// The controls' numbers, to look one up.
static KNOWN: LazyLock<BTreeSet<&'static str>> = LazyLock::new(|| ANNEX_A.iter().map(|c| c.control.as_str()).collect());

static ANNEX_A: LazyLock<Vec<AnnexAControl>> = LazyLock::new(|| {
    ANNEX_A_CSV
        .lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut fields = line.splitn(4, ',');
            let mut next = || fields.next().unwrap_or_default().trim().to_owned();
            AnnexAControl { control: next(), theme: next(), title: next() }
        })
        .collect()
});

/// The controls of ISO/IEC 27001:2022 Annex A, in order.
pub fn annex_a_controls() -> &'static [AnnexAControl] {
    &ANNEX_A
}

/// Is `control` (e.g. `8.24`) an Annex A (2022) control?
pub fn is_annex_a_control(control: &str) -> bool {
    ANNEX_A.iter().any(|c| c.control == control)
}

/// One line of a Statement of Applicability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoaLine {
    /// The control's number, e.g. `5.1`.
    pub control: String,
    /// Applicable (implemented or planned), or excluded.
    pub applicable: bool,
    /// Why it is included or excluded; an exclusion must have one.
    pub justification: Option<String>,
}

/// What keeps a Statement of Applicability from being complete.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SoaReport {
    /// Every Annex A control is listed once, and every exclusion is justified.
    pub complete: bool,
    /// Number of Annex A controls listed.
    pub controls_listed: usize,
    /// Annex A controls the SoA does not list.
    pub missing_controls: Vec<String>,
    /// Excluded controls without a justification.
    pub unjustified_exclusions: Vec<String>,
    /// Listed controls that are not Annex A (2022) controls.
    pub unknown_controls: Vec<String>,
    /// Controls listed more than once.
    pub duplicate_controls: Vec<String>,
}

/// Checks a Statement of Applicability mechanically: a missing or incomplete SoA is a major NC.
pub fn check_statement_of_applicability(lines: &[SoaLine]) -> SoaReport {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for line in lines {
        *seen.entry(line.control.as_str()).or_default() += 1;
    }
    let known = &*KNOWN;
    let missing_controls: Vec<String> =
        ANNEX_A.iter().filter(|c| !seen.contains_key(c.control.as_str())).map(|c| c.control.clone()).collect();
    let unknown_controls: Vec<String> = seen.keys().filter(|c| !known.contains(*c)).map(|c| (*c).to_owned()).collect();
    let duplicate_controls: Vec<String> = seen.iter().filter(|(_, n)| **n > 1).map(|(c, _)| (*c).to_owned()).collect();
    let unjustified_exclusions: Vec<String> = lines
        .iter()
        .filter(|l| !l.applicable && l.justification.as_deref().is_none_or(|j| j.trim().is_empty()))
        .map(|l| l.control.clone())
        .collect();
    SoaReport {
        complete: missing_controls.is_empty()
            && unknown_controls.is_empty()
            && duplicate_controls.is_empty()
            && unjustified_exclusions.is_empty(),
        controls_listed: seen.keys().filter(|c| known.contains(*c)).count(),
        missing_controls,
        unjustified_exclusions,
        unknown_controls,
        duplicate_controls,
    }
}

/// What changed from the Statement of Applicability `before` to `after`, one line a control in
/// control order (a control added, removed, or whose applicability or justification changed):
/// the history keeps the previous version of every line that changed.
pub fn soa_changes(before: &[SoaLine], after: &[SoaLine]) -> Vec<String> {
    use std::collections::BTreeMap;
    let describe = |line: &SoaLine| {
        let status = if line.applicable { "applicable" } else { "excluded" };
        match &line.justification {
            Some(why) => format!("{status} ({why})"),
            None => status.to_owned(),
        }
    };
    let by_control =
        |lines: &[SoaLine]| lines.iter().map(|l| (l.control.clone(), describe(l))).collect::<BTreeMap<_, _>>();
    let (before, after) = (by_control(before), by_control(after));
    let controls: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    controls
        .into_iter()
        .filter_map(|control| match (before.get(control), after.get(control)) {
            (None, Some(now)) => Some(format!("{control}: added, {now}")),
            (Some(was), None) => Some(format!("{control}: removed, was {was}")),
            (Some(was), Some(now)) if was != now => Some(format!("{control}: {was} -> {now}")),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_soa() -> Vec<SoaLine> {
        annex_a_controls()
            .iter()
            .map(|c| SoaLine { control: c.control.clone(), applicable: true, justification: None })
            .collect()
    }

    #[test]
    fn annex_a_2022_has_93_controls_in_four_themes() {
        let controls = annex_a_controls();
        assert_eq!(controls.len(), 93);
        for (theme, count) in [("organizational", 37), ("people", 8), ("physical", 14), ("technological", 34)] {
            assert_eq!(controls.iter().filter(|c| c.theme == theme).count(), count, "{theme}");
        }
        assert!(is_annex_a_control("8.34"));
        assert!(!is_annex_a_control("8.35"));
    }

    #[test]
    fn a_full_soa_is_complete() {
        let report = check_statement_of_applicability(&full_soa());
        assert!(report.complete, "{report:?}");
        assert_eq!(report.controls_listed, 93);
    }

    #[test]
    fn each_defect_is_reported_and_makes_the_soa_incomplete() {
        let mut missing = full_soa();
        missing.retain(|l| l.control != "7.4");
        let mut unjustified = full_soa();
        unjustified[0].applicable = false;
        let mut justified = full_soa();
        justified[0] = SoaLine { control: "5.1".into(), applicable: false, justification: Some("n/a: x".into()) };
        let mut unknown = full_soa();
        unknown.push(SoaLine { control: "9.9".into(), applicable: true, justification: None });
        let mut duplicate = full_soa();
        duplicate.push(duplicate[3].clone());

        let report = check_statement_of_applicability(&missing);
        assert_eq!((report.complete, report.missing_controls), (false, vec!["7.4".to_owned()]));
        let report = check_statement_of_applicability(&unjustified);
        assert_eq!((report.complete, report.unjustified_exclusions), (false, vec!["5.1".to_owned()]));
        assert!(check_statement_of_applicability(&justified).complete);
        let report = check_statement_of_applicability(&unknown);
        assert_eq!((report.complete, report.unknown_controls), (false, vec!["9.9".to_owned()]));
        let report = check_statement_of_applicability(&duplicate);
        assert_eq!((report.complete, report.duplicate_controls), (false, vec!["5.4".to_owned()]));
        let empty = check_statement_of_applicability(&[]);
        assert_eq!((empty.complete, empty.missing_controls.len()), (false, 93));
    }

    #[test]
    fn every_change_of_the_soa_is_described_with_what_it_was() {
        let line = |control: &str, applicable: bool, why: Option<&str>| SoaLine {
            control: control.into(),
            applicable,
            justification: why.map(Into::into),
        };
        let before = [line("5.1", true, None), line("5.2", true, None), line("7.4", false, Some("no premises"))];
        let after = [line("5.1", true, None), line("5.2", false, Some("outsourced")), line("8.1", true, None)];
        assert_eq!(
            soa_changes(&before, &after),
            [
                "5.2: applicable -> excluded (outsourced)",
                "7.4: removed, was excluded (no premises)",
                "8.1: added, applicable",
            ]
        );
        assert!(soa_changes(&after, &after).is_empty(), "an unchanged SoA changes nothing");
    }
}

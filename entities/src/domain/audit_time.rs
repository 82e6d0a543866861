//! Audit time from the number of persons doing work under the organization's control
//! (ISO/IEC 27006 table, kept as data in `data/audit_time_27006.csv` so it can be corrected).

use std::sync::LazyLock;

use serde::Serialize;

const TABLE_CSV: &str = include_str!("../../data/audit_time_27006.csv");

/// One row of the table: persons `from..=to` need `initial_days` auditor days for stage 1 + stage 2.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Band {
    from: u32,
    to: u32,
    initial_days: f64,
}

static TABLE: LazyLock<Vec<Band>> = LazyLock::new(|| parse_table(TABLE_CSV));

fn parse_table(csv: &str) -> Vec<Band> {
    csv.lines()
        .skip(1)
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let number = |i: usize| -> &str { fields.get(i).copied().unwrap_or_default() };
            Band {
                from: number(0).parse().expect("BUG: audit-time table: persons_from"),
                to: number(1).parse().expect("BUG: audit-time table: persons_to"),
                initial_days: number(2).parse().expect("BUG: audit-time table: initial_auditor_days"),
            }
        })
        .collect()
}

/// An audit-time estimate in auditor days.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditTimeEstimate {
    /// The number of persons the estimate is for.
    pub persons: u32,
    /// Initial certification (stage 1 + stage 2).
    pub initial_days: f64,
    /// One surveillance audit: about one third of the initial time (IAF MD 5), rounded up to half a day.
    pub surveillance_days: f64,
    /// Recertification: about two thirds of the initial time (IAF MD 5), rounded up to half a day.
    pub recertification_days: f64,
}

/// Why no estimate could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the number of persons must be at least 1")]
pub struct NoPersons;

fn round_up_to_half_day(days: f64) -> f64 {
    // Guard against float noise such as 5.0000000001 becoming 5.5.
    ((days * 2.0) - 1e-9).ceil() / 2.0
}

/// The estimate for `persons` persons. Past the table's last band the progression continues:
/// one more day for each further span as wide as the last band.
pub fn estimate_audit_time(persons: u32) -> Result<AuditTimeEstimate, NoPersons> {
    if persons == 0 {
        return Err(NoPersons);
    }
    let table = &*TABLE;
    let initial_days = match table.iter().find(|band| (band.from..=band.to).contains(&persons)) {
        Some(band) => band.initial_days,
        None => {
            let last = table.last().expect("BUG: audit-time table is empty");
            let width = last.to - last.from + 1;
            let extra_bands = (persons - last.to).div_ceil(width);
            last.initial_days + f64::from(extra_bands)
        }
    };
    Ok(AuditTimeEstimate {
        persons,
        initial_days,
        surveillance_days: round_up_to_half_day(initial_days / 3.0),
        recertification_days: round_up_to_half_day(initial_days * 2.0 / 3.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_contiguous_from_one_person_and_grows() {
        let table = parse_table(TABLE_CSV);
        assert_eq!(table.first().map(|b| b.from), Some(1));
        for pair in table.windows(2) {
            assert_eq!(pair[1].from, pair[0].to + 1, "gap after {:?}", pair[0]);
            assert!(pair[1].initial_days > pair[0].initial_days, "not growing at {:?}", pair[1]);
        }
    }

    #[test]
    fn band_edges_give_the_published_values() {
        let cases = [
            (1, 5.0),
            (10, 5.0),
            (11, 6.0),
            (26, 8.5),
            (45, 8.5),
            (46, 10.0),
            (1175, 18.5),
            (1176, 19.5),
            (10700, 28.0),
            (10701, 29.0),
            (12900, 29.0),
            (12901, 30.0),
        ];
        for (persons, days) in cases {
            assert_eq!(estimate_audit_time(persons).unwrap().initial_days, days, "{persons} persons");
        }
    }

    #[test]
    fn surveillance_is_a_third_and_recertification_two_thirds_rounded_up_to_half_days() {
        let five = estimate_audit_time(5).unwrap();
        assert_eq!((five.surveillance_days, five.recertification_days), (2.0, 3.5));
        let twelve = estimate_audit_time(100).unwrap();
        assert_eq!((twelve.surveillance_days, twelve.recertification_days), (4.0, 8.0));
    }

    #[test]
    fn zero_persons_has_no_estimate() {
        assert_eq!(estimate_audit_time(0), Err(NoPersons));
    }
}

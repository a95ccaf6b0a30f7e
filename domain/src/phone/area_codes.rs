//! NANP area codes → state/province and time zone(s), from the table shipped
//! in `domain/data/nanp_area_codes.csv` (its header names the sources).

use crate::phone::PhoneNumber;
use chrono_tz::Tz;
use std::collections::HashMap;
use std::sync::LazyLock;

const TABLE: &str = include_str!("../../data/nanp_area_codes.csv");

/// What the table says about one area code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaCodeInfo {
    pub area_code: &'static str,
    /// USPS state / territory code or Canada Post province code (`FL`, `ON`).
    pub region: &'static str,
    /// Every zone used somewhere in the area code's territory; never empty.
    pub zones: Vec<Tz>,
}

static AREA_CODES: LazyLock<HashMap<&'static str, AreaCodeInfo>> =
    LazyLock::new(|| parse_table(TABLE).expect("the shipped area-code table is well formed"));

/// Parses the table; an error names the line.
fn parse_table(text: &'static str) -> Result<HashMap<&'static str, AreaCodeInfo>, String> {
    let mut table = HashMap::new();
    let mut seen_header = false;
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !seen_header {
            if line != "area_code,region,zones" {
                return Err(format!(
                    "line {line_number}: expected the header area_code,region,zones"
                ));
            }
            seen_header = true;
            continue;
        }
        let mut fields = line.split(',');
        let (Some(area_code), Some(region), Some(zones), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(format!("line {line_number}: expected three fields"));
        };
        let npa_ok =
            area_code.len() == 3 && area_code.bytes().all(|b| b.is_ascii_digit()) && !area_code.starts_with(['0', '1']);
        if !npa_ok {
            return Err(format!("line {line_number}: {area_code:?} is not an area code"));
        }
        if region.len() != 2 || !region.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(format!("line {line_number}: {region:?} is not a region code"));
        }
        let zones = zones
            .split('|')
            .map(|z| {
                z.parse::<Tz>()
                    .map_err(|_| format!("line {line_number}: unknown zone {z:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let info = AreaCodeInfo {
            area_code,
            region,
            zones,
        };
        if table.insert(area_code, info).is_some() {
            return Err(format!("line {line_number}: area code {area_code} appears twice"));
        }
    }
    Ok(table)
}

/// The table's entry for a three-digit area code.
pub fn lookup(area_code: &str) -> Option<&'static AreaCodeInfo> {
    AREA_CODES.get(area_code)
}

/// The table's entry for a number's area code (NANP numbers only).
pub fn of_number(phone: &PhoneNumber) -> Option<&'static AreaCodeInfo> {
    phone.area_code().and_then(lookup)
}

/// Every area code in the table.
pub fn all() -> impl Iterator<Item = &'static AreaCodeInfo> {
    AREA_CODES.values()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America;

    #[test]
    fn the_shipped_table_parses_and_covers_us_and_canada() {
        assert!(all().count() > 400);
        assert!(all().all(|info| !info.zones.is_empty()));
        let regions: std::collections::BTreeSet<_> = all().map(|info| info.region).collect();
        for region in ["CA", "NY", "TX", "FL", "HI", "AK", "AZ", "DC", "PR", "ON", "QC", "BC"] {
            assert!(regions.contains(region), "{region}");
        }
        assert_eq!(
            regions.len(),
            51 + 5 + 10,
            "50 states, DC, 5 territories, 10 Canadian regions"
        );
    }

    #[test]
    fn known_facts() {
        assert_eq!(lookup("212").unwrap().zones, vec![America::New_York]);
        assert_eq!(lookup("808").unwrap().zones, vec![chrono_tz::Pacific::Honolulu]);
        assert_eq!(lookup("602").unwrap().zones, vec![America::Phoenix]);
        assert_eq!(lookup("305").unwrap().region, "FL");
        assert_eq!(lookup("416").unwrap().region, "ON");
        // Split areas list every zone.
        assert_eq!(lookup("850").unwrap().zones, vec![America::New_York, America::Chicago]);
        assert!(lookup("701").unwrap().zones.contains(&America::Denver));
        assert!(lookup("812").unwrap().zones.contains(&America::Chicago));
        assert!(lookup("270").unwrap().zones.contains(&America::New_York));
        assert!(lookup("541").unwrap().zones.contains(&America::Boise));
        assert!(lookup("800").is_none(), "toll-free is not geographic");
        let number = PhoneNumber::parse("+14155552671").unwrap();
        assert_eq!(of_number(&number).unwrap().region, "CA");
        assert!(of_number(&PhoneNumber::parse("+442079460958").unwrap()).is_none());
    }

    #[test]
    fn malformed_tables_are_refused_with_the_line() {
        let err = parse_table("area_code,region,zones\n212,NY,Mars/Base\n").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
        assert!(parse_table("area_code,region,zones\n212,NY,America/New_York\n212,NY,America/New_York\n").is_err());
        assert!(parse_table("area_code,region,zones\n112,NY,America/New_York\n").is_err());
        assert!(parse_table("npa,zone\n").is_err());
    }
}

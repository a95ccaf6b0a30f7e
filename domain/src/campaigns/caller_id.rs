//! Which of the organization's numbers a campaign call comes from.

use super::area_codes;
use super::settings::CallerIdStrategy;
use crate::phone::PhoneNumber;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One of the organization's numbers, as the runner resolved it from `phoneNumberIds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerId {
    pub phone_number_id: Uuid,
    pub number: PhoneNumber,
}

/// Picks the caller id for one dial.
/// - `fixed`: the default number;
/// - `local_presence`: a pool number with the contact's area code, else one in
///   the contact's state or province (by the area-code table), else the
///   default; several candidates are taken in turn by `rotation`;
/// - `rotating`: the pool's numbers round-robin by `rotation` (the default when
///   the pool is empty).
pub fn choose_caller_id(
    strategy: CallerIdStrategy,
    default: &CallerId,
    pool: &[CallerId],
    contact: &PhoneNumber,
    rotation: u64,
) -> CallerId {
    let in_turn = |candidates: &[&CallerId]| -> Option<CallerId> {
        if candidates.is_empty() {
            return None;
        }
        let index = (rotation % candidates.len() as u64) as usize;
        Some(candidates[index].clone())
    };
    match strategy {
        CallerIdStrategy::Fixed => default.clone(),
        CallerIdStrategy::Rotating => in_turn(&pool.iter().collect::<Vec<_>>()).unwrap_or_else(|| default.clone()),
        CallerIdStrategy::LocalPresence => {
            let Some(area_code) = contact.area_code() else {
                return default.clone();
            };
            let same_area: Vec<&CallerId> = pool
                .iter()
                .filter(|c| c.number.area_code() == Some(area_code))
                .collect();
            if let Some(chosen) = in_turn(&same_area) {
                return chosen;
            }
            let region = area_codes::lookup(area_code).map(|info| info.region);
            let same_region: Vec<&CallerId> = pool
                .iter()
                .filter(|c| region.is_some() && area_codes::of_number(&c.number).map(|info| info.region) == region)
                .collect();
            in_turn(&same_region).unwrap_or_else(|| default.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(id: u128, e164: &str) -> CallerId {
        CallerId {
            phone_number_id: Uuid::from_u128(id),
            number: PhoneNumber::parse(e164).unwrap(),
        }
    }

    fn pool() -> Vec<CallerId> {
        vec![
            number(1, "+12125550101"), // New York City
            number(2, "+13055550102"), // Miami, FL
            number(3, "+14155550103"), // San Francisco, CA
            number(4, "+13105550104"), // Los Angeles, CA
        ]
    }

    fn default() -> CallerId {
        number(9, "+16175550109") // Boston
    }

    fn contact(e164: &str) -> PhoneNumber {
        PhoneNumber::parse(e164).unwrap()
    }

    #[test]
    fn local_presence_prefers_the_area_code_then_the_state_then_the_default() {
        let choose = |to: &str| choose_caller_id(CallerIdStrategy::LocalPresence, &default(), &pool(), &contact(to), 0);
        // Same area code.
        assert_eq!(choose("+13055559999").phone_number_id, Uuid::from_u128(2));
        assert_eq!(choose("+14155559999").phone_number_id, Uuid::from_u128(3));
        // Same state: 813 (Tampa) → the Miami number; 916 (Sacramento) → a California one.
        assert_eq!(choose("+18135559999").phone_number_id, Uuid::from_u128(2));
        let california = choose("+19165559999").phone_number_id;
        assert!([3, 4].map(Uuid::from_u128).contains(&california));
        // Neither: Texas, an unknown area code, a number outside the NANP.
        assert_eq!(choose("+12145559999"), default());
        assert_eq!(choose("+442079460958"), default());
    }

    #[test]
    fn local_presence_spreads_over_equally_local_numbers() {
        let chosen: Vec<_> = (0..4)
            .map(|turn| {
                choose_caller_id(
                    CallerIdStrategy::LocalPresence,
                    &default(),
                    &pool(),
                    &contact("+19165559999"),
                    turn,
                )
                .phone_number_id
            })
            .collect();
        assert_eq!(chosen, [3, 4, 3, 4].map(Uuid::from_u128));
    }

    #[test]
    fn rotating_is_round_robin_and_fixed_is_the_default() {
        let rotated: Vec<_> = (0..6)
            .map(|turn| {
                choose_caller_id(
                    CallerIdStrategy::Rotating,
                    &default(),
                    &pool(),
                    &contact("+13055559999"),
                    turn,
                )
                .phone_number_id
            })
            .collect();
        assert_eq!(rotated, [1, 2, 3, 4, 1, 2].map(Uuid::from_u128));
        assert_eq!(
            choose_caller_id(CallerIdStrategy::Rotating, &default(), &[], &contact("+13055559999"), 3),
            default()
        );
        for turn in 0..3 {
            assert_eq!(
                choose_caller_id(
                    CallerIdStrategy::Fixed,
                    &default(),
                    &pool(),
                    &contact("+12125559999"),
                    turn
                ),
                default()
            );
        }
    }
}

//! The organization-wide do-not-call list: one stream per (organization,
//! number), and the US National DNC Registry's download format.

use crate::aggregate::Aggregate;
use crate::domain_events;
use crate::phone::PhoneNumber;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DncReason {
    /// The person asked not to be called.
    OptOut,
    /// Someone in the organization added it.
    ManualAdd,
    /// The number does not reach anyone (disconnected, invalid).
    Bounced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DncSource {
    /// Added through the API or an upload.
    UserAdded,
    /// Found during a call (opt-out in the analysis, outcome do_not_call, the add_to_dnc tool).
    AutoDetected,
}

/// The stream key of a number's DNC entry in an organization (UUID v5 of both,
/// so that every writer finds the same stream).
pub fn dnc_entry_id(organization_id: Uuid, phone: &PhoneNumber) -> Uuid {
    Uuid::new_v5(&organization_id, phone.as_str().as_bytes())
}

domain_events! {
    /// One number on one organization's DNC list. Stream `dnc-number-<dnc_entry_id>`.
    pub enum DncEvent for DncEntry in "dnc-number" {
        /// The number was put on the organization's DNC list; no campaign of the organization dials it again.
        /// Payload: organizationId, phone (E.164), reason (opt_out, manual_add, bounced), source (user_added,
        /// auto_detected), addedBy (user, when a person added it), callId (the call it was detected in), at.
        #[version(1)]
        DncNumberListed {
            #[serde(flatten)]
            listing: DncListing,
            at: DateTime<Utc>,
        },
        /// The number was taken off the list (audited: who, and the entry that was removed). Payload:
        /// organizationId, phone, removedBy, previousReason, previousSource, at.
        #[version(1)]
        DncNumberRemoved {
            organization_id: Uuid,
            phone: PhoneNumber,
            removed_by: Uuid,
            previous_reason: DncReason,
            previous_source: DncSource,
            at: DateTime<Utc>,
        },
    }
}

/// What putting a number on the list records (flattened into its event's payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DncListing {
    pub organization_id: Uuid,
    pub phone: PhoneNumber,
    pub reason: DncReason,
    pub source: DncSource,
    /// The user, when a person added it.
    pub added_by: Option<Uuid>,
    /// The call it was detected in.
    pub call_id: Option<Uuid>,
}

impl DncListing {
    /// The person asked, during `call_id`, not to be called again.
    pub fn opted_out_in_call(organization_id: Uuid, phone: PhoneNumber, call_id: Uuid) -> Self {
        DncListing {
            organization_id,
            phone,
            reason: DncReason::OptOut,
            source: DncSource::AutoDetected,
            added_by: None,
            call_id: Some(call_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DncError {
    /// 404 `dnc_not_listed`.
    #[error("the number is not on the DNC list")]
    NotListed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DncCommand {
    List { listing: DncListing, now: DateTime<Utc> },
    Remove { removed_by: Uuid, now: DateTime<Utc> },
}

/// A number's entry; `listed` is None when it is not on the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DncEntry {
    pub organization_id: Option<Uuid>,
    pub phone: Option<PhoneNumber>,
    pub listed: Option<Listing>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub reason: DncReason,
    pub source: DncSource,
    pub added_at: DateTime<Utc>,
}

impl Aggregate for DncEntry {
    type Command = DncCommand;
    type Error = DncError;

    fn decide(command: &Self::Command, state: &Self) -> Result<Vec<Self::Event>, Self::Error> {
        Ok(match command {
            // Listing a listed number again keeps the first listing.
            DncCommand::List { .. } if state.listed.is_some() => vec![],
            DncCommand::List { listing, now } => vec![DncEvent::DncNumberListed {
                listing: listing.clone(),
                at: *now,
            }],
            DncCommand::Remove { removed_by, now } => {
                let (Some(listing), Some(organization_id), Some(phone)) =
                    (&state.listed, state.organization_id, &state.phone)
                else {
                    return Err(DncError::NotListed);
                };
                vec![DncEvent::DncNumberRemoved {
                    organization_id,
                    phone: phone.clone(),
                    removed_by: *removed_by,
                    previous_reason: listing.reason,
                    previous_source: listing.source,
                    at: *now,
                }]
            }
        })
    }

    fn evolve(mut self, event: &Self::Event) -> Self {
        match event {
            DncEvent::DncNumberListed { listing, at } => {
                self.organization_id = Some(listing.organization_id);
                self.phone = Some(listing.phone.clone());
                self.listed = Some(Listing {
                    reason: listing.reason,
                    source: listing.source,
                    added_at: *at,
                });
            }
            DncEvent::DncNumberRemoved { .. } => self.listed = None,
        }
        self
    }
}

/// A line of a registry file that is not a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineError {
    /// 1-based physical line.
    pub line: usize,
    pub reason: String,
}

/// What a registry file held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RegistryFile {
    pub numbers: Vec<PhoneNumber>,
    pub errors: Vec<LineError>,
}

/// Parses the US National DNC Registry's download format: one 10-digit number
/// (area code and number, no punctuation) per line. Blank lines are skipped,
/// `\r\n` endings and surrounding spaces accepted; every other line is an
/// error with its line number.
pub fn parse_national_registry(text: &str) -> RegistryFile {
    let mut file = RegistryFile::default();
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (index, raw) in text.split('\n').enumerate() {
        let line = index + 1;
        let digits = raw.trim();
        if digits.is_empty() {
            continue;
        }
        if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            file.errors.push(LineError {
                line,
                reason: format!("{digits:?} is not a 10-digit number"),
            });
            continue;
        }
        match PhoneNumber::parse(&format!("+1{digits}")) {
            Ok(number) => file.numbers.push(number),
            Err(_) => file.errors.push(LineError {
                line,
                reason: format!("{digits} is not a valid North American number"),
            }),
        }
    }
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::given_when_then::given;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("+14155552671").unwrap()
    }

    fn listed() -> DncEvent {
        DncEvent::DncNumberListed {
            listing: DncListing::opted_out_in_call(Uuid::nil(), phone(), Uuid::from_u128(7)),
            at: at("2026-11-24T12:00:00Z"),
        }
    }

    /// `listed()` taken off the list.
    fn delisted() -> DncEvent {
        DncEvent::DncNumberRemoved {
            organization_id: Uuid::nil(),
            phone: phone(),
            removed_by: Uuid::from_u128(2),
            previous_reason: DncReason::OptOut,
            previous_source: DncSource::AutoDetected,
            at: at("2026-11-26T12:00:00Z"),
        }
    }

    /// A user's listing.
    fn added(reason: DncReason) -> DncListing {
        DncListing {
            organization_id: Uuid::nil(),
            phone: phone(),
            reason,
            source: DncSource::UserAdded,
            added_by: Some(Uuid::from_u128(1)),
            call_id: None,
        }
    }

    fn list(reason: DncReason) -> DncCommand {
        DncCommand::List {
            listing: added(reason),
            now: at("2026-11-25T12:00:00Z"),
        }
    }

    #[test]
    fn a_number_is_listed_once_and_its_removal_is_audited() {
        given::<DncEntry>([])
            .when(list(DncReason::ManualAdd))
            .then([DncEvent::DncNumberListed {
                listing: added(DncReason::ManualAdd),
                at: at("2026-11-25T12:00:00Z"),
            }]);
        given::<DncEntry>([listed()])
            .when(list(DncReason::ManualAdd))
            .then_nothing();
        let removed = given::<DncEntry>([listed()])
            .when(DncCommand::Remove {
                removed_by: Uuid::from_u128(2),
                now: at("2026-11-26T12:00:00Z"),
            })
            .then([delisted()]);
        assert_eq!(removed.listed, None);
        given::<DncEntry>([])
            .when(DncCommand::Remove {
                removed_by: Uuid::from_u128(2),
                now: at("2026-11-26T12:00:00Z"),
            })
            .then_error(DncError::NotListed);
        // Listed again after a removal.
        let relisted = given::<DncEntry>([listed(), delisted()])
            .when(list(DncReason::Bounced))
            .events();
        assert_eq!(relisted.len(), 1);
    }

    #[test]
    fn a_listing_is_stored_flat() {
        use crate::events::DomainEvent;
        // The payload is byte for byte what it was before the fields were grouped.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Ungrouped<'a> {
            organization_id: Uuid,
            phone: &'a PhoneNumber,
            reason: DncReason,
            source: DncSource,
            added_by: Option<Uuid>,
            call_id: Option<Uuid>,
            at: DateTime<Utc>,
        }
        let ungrouped = Ungrouped {
            organization_id: Uuid::nil(),
            phone: &phone(),
            reason: DncReason::OptOut,
            source: DncSource::AutoDetected,
            added_by: None,
            call_id: Some(Uuid::from_u128(7)),
            at: at("2026-11-24T12:00:00Z"),
        };
        assert_eq!(
            serde_json::to_string(&listed()).unwrap(),
            format!(
                r#"{{"type":"DncNumberListed","data":{}}}"#,
                serde_json::to_string(&ungrouped).unwrap()
            )
        );
        let payload = serde_json::to_value(&ungrouped).unwrap();
        assert_eq!(DncEvent::decode("DncNumberListed", 1, &payload).unwrap(), listed());
    }

    #[test]
    fn reasons_and_sources_use_the_api_names() {
        assert_eq!(serde_json::to_value(DncReason::ManualAdd).unwrap(), "manual_add");
        assert_eq!(serde_json::to_value(DncReason::OptOut).unwrap(), "opt_out");
        assert_eq!(serde_json::to_value(DncReason::Bounced).unwrap(), "bounced");
        assert_eq!(serde_json::to_value(DncSource::AutoDetected).unwrap(), "auto_detected");
        assert_eq!(serde_json::to_value(DncSource::UserAdded).unwrap(), "user_added");
    }

    #[test]
    fn entry_ids_are_per_organization_and_number() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let other = PhoneNumber::parse("+12125550101").unwrap();
        assert_eq!(dnc_entry_id(a, &phone()), dnc_entry_id(a, &phone()));
        assert_ne!(dnc_entry_id(a, &phone()), dnc_entry_id(b, &phone()));
        assert_ne!(dnc_entry_id(a, &phone()), dnc_entry_id(a, &other));
    }

    #[test]
    fn registry_downloads_parse_with_line_numbered_errors() {
        let text = "4155552671\r\n2125550101\n\n   3055550102  \n415555267\n41555526710\n(415)5552671\n0125550101\n";
        let file = parse_national_registry(text);
        assert_eq!(
            file.numbers.iter().map(PhoneNumber::as_str).collect::<Vec<_>>(),
            ["+14155552671", "+12125550101", "+13055550102"]
        );
        let lines: Vec<usize> = file.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [5, 6, 7, 8]);
        assert!(file.errors[0].reason.contains("10-digit"));
        assert!(file.errors[3].reason.contains("not a valid"));
        // A byte-order mark does not spoil the first line.
        assert_eq!(parse_national_registry("\u{feff}4155552671").numbers.len(), 1);
        assert_eq!(parse_national_registry("").numbers.len(), 0);
    }
}

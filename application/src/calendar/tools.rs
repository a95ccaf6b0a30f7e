//! The agents' calendar tools, `check_availability` and `book_appointment`:
//! answered with a sentence the agent can say, in the agent's language where
//! we have the words, with times in the prospect's zone when their number
//! tells it.

use super::{BookingRequest, CalendarService, SlotRequest, SlotView};
use crate::aggregates::{load_in, stream_of};
use crate::calls::{Tool, ToolContext};
use crate::error::{AppError, ErrorKind};
use async_trait::async_trait;
use chrono::Locale;
use chrono_tz::Tz;
use domain::agents::Agent;
use domain::calls::Call;
use domain::phone::{area_codes, PhoneNumber};
use serde_json::Value;
use std::sync::Arc;
use uuid::Uuid;

/// Namespace of booking ids derived from a tool call, so Vapi's retry of one
/// `book_appointment` call books once.
const TOOL_BOOKING_NAMESPACE: Uuid = Uuid::from_u128(0xb00c_1e57_3d4a_4f0e_8c21_6a9d_c0ff_ee04);

/// The languages tool answers are written in; others get English.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Language {
    English,
    Spanish,
    French,
    German,
    Portuguese,
}

impl Language {
    /// From an agent's language tag (`es-MX` → Spanish).
    fn of(tag: &str) -> Self {
        match tag.split('-').next().unwrap_or_default().to_ascii_lowercase().as_str() {
            "es" => Language::Spanish,
            "fr" => Language::French,
            "de" => Language::German,
            "pt" => Language::Portuguese,
            _ => Language::English,
        }
    }

    fn locale(self) -> Locale {
        match self {
            Language::English => Locale::en_US,
            Language::Spanish => Locale::es_ES,
            Language::French => Locale::fr_FR,
            Language::German => Locale::de_DE,
            Language::Portuguese => Locale::pt_BR,
        }
    }

    /// How a start time is said: "Wednesday, March 4 at 2:45 PM".
    fn slot_format(self) -> &'static str {
        match self {
            Language::English => "%A, %B %-d at %-I:%M %p",
            Language::Spanish => "%A %-d de %B a las %H:%M",
            Language::French => "%A %-d %B à %H:%M",
            Language::German => "%A, %-d. %B um %H:%M Uhr",
            Language::Portuguese => "%A, %-d de %B às %H:%M",
        }
    }
}

/// What the agent says, and in which zone it says times.
struct Phrasing {
    language: Language,
    zone: Tz,
    /// Whether `zone` differs from the calendar's (then its abbreviation is said).
    foreign_zone: bool,
}

impl Phrasing {
    fn slot(&self, slot: &SlotView) -> String {
        let local = slot.start.with_timezone(&self.zone);
        let said = local
            .format_localized(self.language.slot_format(), self.language.locale())
            .to_string();
        if self.foreign_zone {
            format!("{said} {}", local.format("%Z"))
        } else {
            said
        }
    }

    fn available(&self, slot: &SlotView) -> String {
        let slot = self.slot(slot);
        match self.language {
            Language::English => format!("{slot} is available."),
            Language::Spanish => format!("El {slot} está disponible."),
            Language::French => format!("Le {slot} est disponible."),
            Language::German => format!("{slot} ist frei."),
            Language::Portuguese => format!("{slot} está disponível."),
        }
    }

    /// The alternatives as a question.
    fn offer(&self, alternatives: &[SlotView]) -> String {
        let (first, last) = match alternatives {
            [] => {
                return match self.language {
                    Language::English => "I don't see any free time in the next two weeks.",
                    Language::Spanish => "No veo tiempo libre en las próximas dos semanas.",
                    Language::French => "Je ne vois aucun créneau libre dans les deux prochaines semaines.",
                    Language::German => "In den nächsten zwei Wochen sehe ich keinen freien Termin.",
                    Language::Portuguese => "Não vejo horários livres nas próximas duas semanas.",
                }
                .to_owned()
            }
            [only] => {
                let only = self.slot(only);
                return match self.language {
                    Language::English => format!("I have {only}. Does that work?"),
                    Language::Spanish => format!("Tengo el {only}. ¿Le viene bien?"),
                    Language::French => format!("J'ai le {only}. Cela vous convient-il ?"),
                    Language::German => format!("Ich hätte {only}. Passt Ihnen das?"),
                    Language::Portuguese => format!("Tenho {only}. Funciona para você?"),
                };
            }
            [first @ .., last] => (
                first.iter().map(|s| self.slot(s)).collect::<Vec<_>>().join(", "),
                self.slot(last),
            ),
        };
        match self.language {
            Language::English => format!("I have {first} or {last}. Which works better?"),
            Language::Spanish => format!("Tengo el {first} o el {last}. ¿Cuál le viene mejor?"),
            Language::French => format!("J'ai le {first} ou le {last}. Lequel vous convient le mieux ?"),
            Language::German => format!("Ich hätte {first} oder {last}. Was passt Ihnen besser?"),
            Language::Portuguese => format!("Tenho {first} ou {last}. Qual funciona melhor?"),
        }
    }

    fn not_available(&self, alternatives: &[SlotView]) -> String {
        let opening = match self.language {
            Language::English => "That time is not available.",
            Language::Spanish => "Ese horario no está disponible.",
            Language::French => "Ce créneau n'est pas disponible.",
            Language::German => "Dieser Termin ist nicht frei.",
            Language::Portuguese => "Esse horário não está disponível.",
        };
        format!("{opening} {}", self.offer(alternatives))
    }

    fn taken(&self, alternatives: &[SlotView]) -> String {
        let opening = match self.language {
            Language::English => "That time was just taken.",
            Language::Spanish => "Ese horario se acaba de ocupar.",
            Language::French => "Ce créneau vient d'être pris.",
            Language::German => "Dieser Termin wurde gerade vergeben.",
            Language::Portuguese => "Esse horário acabou de ser ocupado.",
        };
        format!("{opening} {}", self.offer(alternatives))
    }

    fn booked(&self, slot: &SlotView, with_video: bool) -> String {
        let slot = self.slot(slot);
        let (booked, video) = match self.language {
            Language::English => (format!("Booked for {slot}."), " The invitation includes a video link."),
            Language::Spanish => (
                format!("Reservado para el {slot}."),
                " La invitación incluye un enlace de video.",
            ),
            Language::French => (
                format!("Réservé pour le {slot}."),
                " L'invitation comprend un lien vidéo.",
            ),
            Language::German => (
                format!("Gebucht für {slot}."),
                " Die Einladung enthält einen Videolink.",
            ),
            Language::Portuguese => (format!("Agendado para {slot}."), " O convite inclui um link de vídeo."),
        };
        if with_video {
            format!("{booked}{video}")
        } else {
            booked
        }
    }
}

/// What a tool says back when a request cannot be served: the error's own
/// words for the caller's mistakes, a generic sentence otherwise.
fn tool_failure(error: AppError) -> String {
    match error.kind {
        ErrorKind::Validation | ErrorKind::Unprocessable | ErrorKind::Conflict | ErrorKind::NotFound => error.message,
        _ => "The calendar cannot be reached right now. Offer to have someone follow up to schedule.".into(),
    }
}

/// The call's agent, the agent's language, and the prospect's zone when
/// their number's area code lies in one zone.
struct CallContext {
    agent_id: Option<Uuid>,
    language: Language,
    prospect_zone: Option<Tz>,
}

async fn call_context(service: &CalendarService, context: &ToolContext) -> Result<CallContext, AppError> {
    let store = service.store.as_ref();
    let call = load_in::<Call>(store, context.organization_id, stream_of::<Call>(context.call_id)).await?;
    let agent_id = call.state.parties.agent_id;
    let language = match agent_id {
        Some(agent_id) => load_in::<Agent>(store, context.organization_id, stream_of::<Agent>(agent_id))
            .await?
            .state
            .spec
            .map_or(Language::English, |spec| Language::of(&spec.language)),
        None => Language::English,
    };
    let prospect_zone = call
        .state
        .parties
        .customer_number
        .as_deref()
        .and_then(|raw| PhoneNumber::parse(raw).ok())
        .and_then(|number| area_codes::of_number(&number))
        .and_then(|info| match info.zones.as_slice() {
            [only] => Some(*only),
            _ => None,
        });
    Ok(CallContext {
        agent_id,
        language,
        prospect_zone,
    })
}

impl CallContext {
    /// The slot the tool's arguments (`date`, `time`, `duration`, `timezone`)
    /// ask for; a time without a zone is the prospect's local time when known.
    fn slot_request(&self, arguments: &Value) -> SlotRequest {
        let text = |name: &str| arguments[name].as_str().unwrap_or_default().to_owned();
        SlotRequest {
            agent_id: self.agent_id,
            date: text("date"),
            time: text("time"),
            duration: arguments["duration"]
                .as_i64()
                .or_else(|| arguments["duration"].as_str().and_then(|d| d.trim().parse().ok())),
            timezone: arguments["timezone"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| self.prospect_zone.map(|zone| zone.name().to_owned())),
        }
    }

    fn phrasing(&self, calendar_zone: domain::time_zone::TimeZone) -> Phrasing {
        let zone = self.prospect_zone.unwrap_or(calendar_zone.tz());
        Phrasing {
            language: self.language,
            zone,
            foreign_zone: zone != calendar_zone.tz(),
        }
    }
}

/// The `check_availability` tool.
pub struct CheckAvailabilityTool {
    pub calendar: Arc<CalendarService>,
}

#[async_trait]
impl Tool for CheckAvailabilityTool {
    fn name(&self) -> &'static str {
        "check_availability"
    }

    async fn run(&self, context: &ToolContext, arguments: &Value) -> Result<String, String> {
        let call = call_context(&self.calendar, context).await.map_err(tool_failure)?;
        let answer = self
            .calendar
            .check_availability(context.organization_id, &call.slot_request(arguments))
            .await
            .map_err(tool_failure)?;
        let phrasing = call.phrasing(answer.timezone);
        Ok(if answer.available {
            phrasing.available(&answer.slot)
        } else {
            phrasing.not_available(&answer.alternatives)
        })
    }
}

/// The `book_appointment` tool: books for the call's agent; a booking made
/// in a call sets the call's outcome to `appointment`.
pub struct BookAppointmentTool {
    pub calendar: Arc<CalendarService>,
}

#[async_trait]
impl Tool for BookAppointmentTool {
    fn name(&self) -> &'static str {
        "book_appointment"
    }

    async fn run(&self, context: &ToolContext, arguments: &Value) -> Result<String, String> {
        let call = call_context(&self.calendar, context).await.map_err(tool_failure)?;
        let text = |name: &str| arguments[name].as_str().map(str::to_owned);
        let request = BookingRequest {
            slot: call.slot_request(arguments),
            title: text("title"),
            attendee_name: text("attendeeName").unwrap_or_default(),
            attendee_email: text("attendeeEmail"),
            attendee_phone: text("attendeePhone"),
            add_video_link: arguments["addVideoLink"].as_bool().unwrap_or(false),
            call_id: Some(context.call_id),
        };
        let booking_id = Uuid::new_v5(
            &TOOL_BOOKING_NAMESPACE,
            format!("{}:{}", context.call_id, context.tool_call_id).as_bytes(),
        );
        let answer = self
            .calendar
            .book(
                context.organization_id,
                &format!("agent-tool:{}", context.call_id),
                booking_id,
                &request,
            )
            .await
            .map_err(tool_failure)?;
        let phrasing = call.phrasing(answer.timezone);
        Ok(if answer.booked {
            phrasing.booked(&answer.slot, answer.meeting_link.is_some())
        } else {
            phrasing.taken(&answer.alternatives)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    fn slot(start: &str) -> SlotView {
        let start = DateTime::parse_from_rfc3339(start).unwrap();
        SlotView {
            start,
            end: start + chrono::Duration::minutes(30),
        }
    }

    #[test]
    fn times_are_said_in_the_agents_language_and_the_prospects_zone() {
        let alternatives = [slot("2026-03-10T14:00:00-04:00"), slot("2026-03-11T10:00:00-04:00")];
        let new_york = Phrasing {
            language: Language::English,
            zone: chrono_tz::America::New_York,
            foreign_zone: false,
        };
        assert_eq!(
            new_york.offer(&alternatives),
            "I have Tuesday, March 10 at 2:00 PM or Wednesday, March 11 at 10:00 AM. Which works better?"
        );
        let spanish_in_los_angeles = Phrasing {
            language: Language::of("es-MX"),
            zone: chrono_tz::America::Los_Angeles,
            foreign_zone: true,
        };
        assert_eq!(
            spanish_in_los_angeles.offer(&alternatives),
            "Tengo el martes 10 de marzo a las 11:00 PDT o el miércoles 11 de marzo a las 07:00 PDT. ¿Cuál le viene mejor?"
        );
        let german = Phrasing {
            language: Language::of("de"),
            zone: chrono_tz::Europe::Berlin,
            foreign_zone: false,
        };
        assert_eq!(
            german.booked(&slot("2026-03-10T14:00:00+01:00"), true),
            "Gebucht für Dienstag, 10. März um 14:00 Uhr. Die Einladung enthält einen Videolink."
        );
        assert_eq!(Language::of("ja-JP"), Language::English);
        assert_eq!(new_york.offer(&[]), "I don't see any free time in the next two weeks.");
    }
}

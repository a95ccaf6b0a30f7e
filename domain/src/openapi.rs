//! How the domain's wire types look in the API's OpenAPI document (feature
//! `openapi`). Limits come from the same constants the validation uses.

use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::{KnownFormat, RefOr, SchemaFormat};
use utoipa::{PartialSchema, ToSchema};

/// No JSON string may hold NUL (PostgreSQL text cannot).
pub const NO_NUL: &str = "^[^\\u0000]*$";
/// At least one character that is not white space, and no NUL.
pub const NOT_BLANK: &str = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$";
/// E.164: a plus, a country code and up to 15 digits.
pub const E164: &str = "^\\+[1-9][0-9]{7,14}$";

fn string(nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        SchemaType::from_iter([Type::String, Type::Null])
    } else {
        SchemaType::new(Type::String)
    };
    ObjectBuilder::new().schema_type(kind)
}

/// Free text up to `MAX` characters.
pub fn text<const MAX: usize>() -> Schema {
    string(false).max_length(Some(MAX)).pattern(Some(NO_NUL)).into()
}

/// Free text up to `MAX` characters, or null.
pub fn optional_text<const MAX: usize>() -> Schema {
    string(true).max_length(Some(MAX)).pattern(Some(NO_NUL)).into()
}

/// A name: not blank, up to `MAX` characters.
pub fn name<const MAX: usize>() -> Schema {
    string(false)
        .min_length(Some(1))
        .max_length(Some(MAX))
        .pattern(Some(NOT_BLANK))
        .into()
}

/// A name or null.
pub fn optional_name<const MAX: usize>() -> Schema {
    string(true)
        .min_length(Some(1))
        .max_length(Some(MAX))
        .pattern(Some(NOT_BLANK))
        .into()
}

/// An e-mail address.
pub fn email() -> Schema {
    string(false)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(crate::auth::EMAIL_CHARS))
        .into()
}

/// A new password.
pub fn password() -> Schema {
    string(false)
        .min_length(Some(*crate::auth::PASSWORD_CHARS.start()))
        .max_length(Some(*crate::auth::PASSWORD_CHARS.end()))
        .pattern(Some(NO_NUL))
        .into()
}

/// An E.164 phone number, or null.
pub fn optional_phone() -> Schema {
    string(true)
        .pattern(Some(E164))
        .description(Some("E.164; the number must also exist in its numbering plan"))
        .into()
}

/// A local time of day, `HH:MM`.
pub fn local_time() -> Schema {
    string(false).pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9]$")).into()
}

/// A local time of day, or null.
pub fn optional_local_time() -> Schema {
    string(true).pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9]$")).into()
}

/// A number between `low` and `high` (given in hundredths, as const generics take no floats), or absent.
pub fn optional_range<const LOW_HUNDREDTHS: i64, const HIGH_HUNDREDTHS: i64>() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Number, Type::Null]))
        .minimum(Some(LOW_HUNDREDTHS as f64 / 100.0))
        .maximum(Some(HIGH_HUNDREDTHS as f64 / 100.0))
        .into()
}

/// A whole number from `MIN` to `MAX`, or absent.
pub fn optional_integer<const MIN: i64, const MAX: i64>() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .minimum(Some(MIN as f64))
        .maximum(Some(MAX as f64))
        .into()
}

/// A whole number from `MIN` to `MAX`.
pub fn integer<const MIN: i64, const MAX: i64>() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(MIN as f64))
        .maximum(Some(MAX as f64))
        .into()
}

/// Plain text as it came from a provider (values we do not know yet included).
fn open_text(description: String) -> RefOr<Schema> {
    string(false).description(Some(description)).into()
}

impl PartialSchema for crate::phone::PhoneNumber {
    fn schema() -> RefOr<Schema> {
        string(false)
            .pattern(Some(E164))
            .description(Some("E.164; the number must also exist in its numbering plan"))
            .into()
    }
}
impl ToSchema for crate::phone::PhoneNumber {}

impl PartialSchema for crate::slack::TimeZone {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(crate::slack::TimeZone::names()))
            .description(Some("An IANA time zone"))
            .into()
    }
}
impl ToSchema for crate::slack::TimeZone {}

impl PartialSchema for crate::campaigns::LocalTime {
    fn schema() -> RefOr<Schema> {
        local_time().into()
    }
}
impl ToSchema for crate::campaigns::LocalTime {}

impl PartialSchema for crate::slack::Mention {
    fn schema() -> RefOr<Schema> {
        string(false)
            .pattern(Some("^[UWS][A-Z0-9]{1,19}$"))
            .description(Some("A Slack user (U…, W…) or user group (S…) id"))
            .into()
    }
}
impl ToSchema for crate::slack::Mention {}

impl PartialSchema for crate::calls::CallStatus {
    fn schema() -> RefOr<Schema> {
        let known: Vec<&str> = crate::calls::CallStatus::KNOWN.iter().map(|s| s.as_str()).collect();
        open_text(format!(
            "Where the call is: {}, or a status Vapi adds later",
            known.join(", ")
        ))
    }
}
impl ToSchema for crate::calls::CallStatus {}

impl PartialSchema for crate::calls::EndedReason {
    fn schema() -> RefOr<Schema> {
        open_text("Why Vapi ended the call, in Vapi's words (customer-busy, voicemail, pipeline-error-…)".to_owned())
    }
}
impl ToSchema for crate::calls::EndedReason {}

impl PartialSchema for crate::calls::CallDirection {
    fn schema() -> RefOr<Schema> {
        open_text(format!(
            "Who called whom: {}, or a call type Vapi adds later",
            crate::calls::CallDirection::listed()
        ))
    }
}
impl ToSchema for crate::calls::CallDirection {}

impl PartialSchema for crate::phone_numbers::PhoneNumberStatus {
    fn schema() -> RefOr<Schema> {
        open_text(format!(
            "The number's line status: {}, or a status Vapi adds later",
            crate::phone_numbers::PhoneNumberStatus::listed()
        ))
    }
}
impl ToSchema for crate::phone_numbers::PhoneNumberStatus {}

impl PartialSchema for crate::phone_numbers::NumberProvider {
    fn schema() -> RefOr<Schema> {
        let known = crate::phone_numbers::NumberProvider::KNOWN;
        one_of_names(known.iter().map(|p| p.as_str()).collect()).into()
    }
}
impl ToSchema for crate::phone_numbers::NumberProvider {}

impl PartialSchema for crate::phone_numbers::CredentialProvider {
    fn schema() -> RefOr<Schema> {
        let known = crate::phone_numbers::CredentialProvider::KNOWN;
        one_of_names(known.iter().map(|p| p.as_str()).collect()).into()
    }
}
impl ToSchema for crate::phone_numbers::CredentialProvider {}

fn one_of_names<N: Into<serde_json::Value>>(names: Vec<N>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .into()
}

/// One voice of the catalogue, with the tuning its provider honours.
impl PartialSchema for crate::agents::VoiceSettings {
    fn schema() -> RefOr<Schema> {
        let mut providers: Vec<&crate::voices::VoiceProvider> =
            crate::voices::VOICES.iter().map(|v| &v.provider).collect();
        providers.sort_unstable_by_key(|p| p.as_str());
        providers.dedup();
        let mut one_of = OneOfBuilder::new();
        for provider in providers {
            let voices: Vec<&str> = crate::voices::VOICES
                .iter()
                .filter(|v| v.provider == *provider)
                .map(|v| v.voice_id)
                .collect();
            let tuning = crate::voices::tuning(provider);
            let mut shape = ObjectBuilder::new()
                .property("provider", one_of_names(vec![provider.as_str()]))
                .required("provider")
                .property("voiceId", one_of_names(voices))
                .required("voiceId");
            for (field, supported, range) in [
                ("speed", tuning.speed, optional_range::<50, 200>()),
                ("pitch", tuning.pitch, optional_range::<50, 200>()),
                ("stability", tuning.stability, optional_range::<0, 100>()),
            ] {
                if supported {
                    shape = shape.property(field, range);
                }
            }
            one_of = one_of.item(shape.additional_properties(Some(AdditionalProperties::FreeForm(false))));
        }
        one_of.into()
    }
}
impl ToSchema for crate::agents::VoiceSettings {}

/// A model provider Vapi supports.
pub fn model_provider() -> Schema {
    let known = crate::agents::ModelProvider::KNOWN;
    one_of_names(known.iter().map(|p| p.as_str()).collect())
}

impl PartialSchema for crate::voices::VoiceProvider {
    fn schema() -> RefOr<Schema> {
        let known = crate::voices::VoiceProvider::KNOWN;
        one_of_names(known.iter().map(|p| p.as_str()).collect()).into()
    }
}
impl ToSchema for crate::voices::VoiceProvider {}

/// Slack routes: one per notification kind.
pub fn slack_routes() -> Schema {
    let names: Vec<serde_json::Value> = crate::slack::NotificationKind::ALL
        .iter()
        .filter_map(|kind| serde_json::to_value(kind).ok())
        .collect();
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(one_of_names(names)))
        .additional_properties(Some(crate::slack::Route::schema()))
        .into()
}

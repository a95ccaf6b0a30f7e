//! Values a provider (or we) spell as text: one enum per value set, read and
//! written as exactly those strings, so stored events and API output keep them.

/// An enum of known spellings plus `Other(String)`: a value we do not know
/// yet (a provider added it later) is kept as it came, never rejected.
///
/// Generates `parse` (also as `From<&str>`), `as_str`, `KNOWN`, `Display` and serde (the known
/// spellings, and the raw string for `Other`).
#[macro_export]
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$variant_meta])* #[serde(rename = $wire)] $variant, )+
            /// A value we do not know, kept as it came.
            #[serde(untagged)]
            Other(String),
        }

        impl $name {
            /// Every value we know.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),+];

            pub fn parse(raw: &str) -> Self {
                match raw {
                    $($wire => $name::$variant,)+
                    other => $name::Other(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Other(raw) => raw,
                }
            }

            /// The known spellings, for messages and schemas.
            pub fn listed() -> String {
                [$($wire),+].join(", ")
            }
        }

        impl From<&str> for $name {
            fn from(raw: &str) -> Self {
                $name::parse(raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::open_enum! {
        enum Colour {
            Red = "red",
            DarkBlue = "dark-blue",
        }
    }

    #[test]
    fn known_and_unknown_values_keep_their_spelling() {
        for raw in ["red", "dark-blue", "mauve"] {
            let parsed = Colour::parse(raw);
            assert_eq!(parsed.as_str(), raw);
            let json = serde_json::to_string(&parsed).unwrap();
            assert_eq!(json, format!("\"{raw}\""));
            assert_eq!(serde_json::from_str::<Colour>(&json).unwrap(), parsed);
        }
        assert_eq!(Colour::parse("dark-blue"), Colour::DarkBlue);
        assert_eq!(Colour::parse("mauve"), Colour::Other("mauve".into()));
        assert_eq!(Colour::listed(), "red, dark-blue");
        assert_eq!(Colour::KNOWN, [Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::from("red"), Colour::Red);
    }

    /// Stored events and API output hold these exact strings.
    #[test]
    fn the_domains_values_keep_their_stored_spellings() {
        fn spellings<T: serde::Serialize>(values: &[T]) -> Vec<String> {
            values
                .iter()
                .map(|v| serde_json::to_value(v).unwrap().as_str().unwrap().to_owned())
                .collect()
        }
        use crate::calls::CallDirection;
        use crate::phone_numbers::{CredentialProvider, NumberProvider, PhoneNumberStatus};
        assert_eq!(
            spellings(PhoneNumberStatus::KNOWN),
            ["active", "activating", "blocked", "unknown", "missing"]
        );
        assert_eq!(
            spellings(NumberProvider::KNOWN),
            ["vapi", "twilio", "vonage", "telnyx", "byo-sip"]
        );
        assert_eq!(
            spellings(CredentialProvider::KNOWN),
            ["twilio", "vonage", "telnyx", "byo-sip-trunk"]
        );
        assert_eq!(spellings(CallDirection::KNOWN), ["inbound", "outbound", "web"]);
        use crate::{agents::ModelProvider, voices::VoiceProvider};
        assert_eq!(
            spellings(VoiceProvider::KNOWN),
            ["11labs", "openai", "deepgram", "azure", "playht", "cartesia"]
        );
        assert_eq!(
            spellings(ModelProvider::KNOWN),
            [
                "openai",
                "anthropic",
                "google",
                "groq",
                "together-ai",
                "deepinfra",
                "custom-llm"
            ]
        );
        use crate::DomainEvent;
        for raw in ["blocked", "suspended"] {
            let payload = serde_json::json!({ "status": raw, "at": "2026-11-24T12:00:00Z" });
            let event =
                crate::phone_numbers::PhoneNumberEvent::decode("PhoneNumberStatusChanged", 1, &payload).unwrap();
            let stored = event.to_new_event(&crate::EventMetadata::default()).payload;
            assert_eq!(stored, payload);
        }
    }
}

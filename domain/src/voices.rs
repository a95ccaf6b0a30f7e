//! The voices agents may speak with: provider ids as Vapi expects them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Voice {
    /// Vapi's voice provider id (`11labs`, `openai`, `deepgram`, `azure`, `playht`, `cartesia`).
    pub provider: &'static str,
    pub voice_id: &'static str,
    pub name: &'static str,
    /// BCP-47 language the voice is made for.
    pub language: &'static str,
    pub gender: &'static str,
}

/// Which tuning settings a provider honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderTuning {
    pub speed: bool,
    pub pitch: bool,
    pub stability: bool,
}

pub fn tuning(provider: &str) -> ProviderTuning {
    match provider {
        "11labs" => ProviderTuning {
            speed: true,
            pitch: false,
            stability: true,
        },
        "azure" | "playht" | "openai" | "cartesia" => ProviderTuning {
            speed: true,
            pitch: false,
            stability: false,
        },
        _ => ProviderTuning {
            speed: false,
            pitch: false,
            stability: false,
        },
    }
}

const fn voice(
    provider: &'static str,
    voice_id: &'static str,
    name: &'static str,
    language: &'static str,
    gender: &'static str,
) -> Voice {
    Voice {
        provider,
        voice_id,
        name,
        language,
        gender,
    }
}

pub const VOICES: &[Voice] = &[
    voice("11labs", "21m00Tcm4TlvDq8ikWAM", "Rachel", "en-US", "female"),
    voice("11labs", "EXAVITQu4vr4xnSDxMaL", "Sarah", "en-US", "female"),
    voice("11labs", "AZnzlk1XvdvUeBnXmlld", "Domi", "en-US", "female"),
    voice("11labs", "pNInz6obpgDQGcFmaJgB", "Adam", "en-US", "male"),
    voice("11labs", "ErXwobaYiN019PkySvjV", "Antoni", "en-US", "male"),
    voice("11labs", "TxGEqnHWrfWFTfGW9XjX", "Josh", "en-US", "male"),
    voice("11labs", "D38z5RcWu1voky8WS1ja", "Fin", "en-IE", "male"),
    voice("openai", "alloy", "Alloy", "en-US", "neutral"),
    voice("openai", "echo", "Echo", "en-US", "male"),
    voice("openai", "fable", "Fable", "en-GB", "male"),
    voice("openai", "onyx", "Onyx", "en-US", "male"),
    voice("openai", "nova", "Nova", "en-US", "female"),
    voice("openai", "shimmer", "Shimmer", "en-US", "female"),
    voice("deepgram", "asteria", "Asteria", "en-US", "female"),
    voice("deepgram", "luna", "Luna", "en-US", "female"),
    voice("deepgram", "stella", "Stella", "en-US", "female"),
    voice("deepgram", "orion", "Orion", "en-US", "male"),
    voice("deepgram", "arcas", "Arcas", "en-US", "male"),
    voice("deepgram", "helios", "Helios", "en-GB", "male"),
    voice("azure", "en-US-JennyNeural", "Jenny", "en-US", "female"),
    voice("azure", "en-US-GuyNeural", "Guy", "en-US", "male"),
    voice("azure", "es-ES-ElviraNeural", "Elvira", "es-ES", "female"),
    voice("azure", "fr-FR-DeniseNeural", "Denise", "fr-FR", "female"),
    voice("azure", "de-DE-ConradNeural", "Conrad", "de-DE", "male"),
    voice("playht", "jennifer", "Jennifer", "en-US", "female"),
    voice("playht", "will", "Will", "en-US", "male"),
    voice(
        "cartesia",
        "a0e99841-438c-4a64-b679-ae501e7d6091",
        "Barbershop Man",
        "en-US",
        "male",
    ),
];

pub fn find(provider: &str, voice_id: &str) -> Option<&'static Voice> {
    VOICES.iter().find(|v| v.provider == provider && v.voice_id == voice_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_spans_providers_without_duplicates() {
        assert!(VOICES.len() >= 23);
        let mut keys: Vec<_> = VOICES.iter().map(|v| (v.provider, v.voice_id)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), VOICES.len());
        for provider in ["11labs", "deepgram", "openai", "azure", "playht", "cartesia"] {
            assert!(VOICES.iter().any(|v| v.provider == provider), "{provider}");
        }
        assert!(find("openai", "nova").is_some());
        assert!(find("openai", "rachel").is_none());
    }
}

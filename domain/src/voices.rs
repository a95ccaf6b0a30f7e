//! The voices agents may speak with: provider ids as Vapi expects them.

use serde::Serialize;

crate::open_enum! {
    /// A voice provider, spelled as Vapi's id (and as stored in agents' specs).
    pub enum VoiceProvider {
        ElevenLabs = "11labs",
        OpenAi = "openai",
        Deepgram = "deepgram",
        Azure = "azure",
        PlayHt = "playht",
        Cartesia = "cartesia",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Voice {
    pub provider: VoiceProvider,
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

pub fn tuning(provider: &VoiceProvider) -> ProviderTuning {
    use VoiceProvider as P;
    match provider {
        P::ElevenLabs => ProviderTuning {
            speed: true,
            pitch: false,
            stability: true,
        },
        P::Azure | P::PlayHt | P::OpenAi | P::Cartesia => ProviderTuning {
            speed: true,
            pitch: false,
            stability: false,
        },
        P::Deepgram | P::Other(_) => ProviderTuning {
            speed: false,
            pitch: false,
            stability: false,
        },
    }
}

const fn voice(
    provider: VoiceProvider,
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

use VoiceProvider::{Azure, Cartesia, Deepgram, ElevenLabs, OpenAi, PlayHt};

pub const VOICES: &[Voice] = &[
    voice(ElevenLabs, "21m00Tcm4TlvDq8ikWAM", "Rachel", "en-US", "female"),
    voice(ElevenLabs, "EXAVITQu4vr4xnSDxMaL", "Sarah", "en-US", "female"),
    voice(ElevenLabs, "AZnzlk1XvdvUeBnXmlld", "Domi", "en-US", "female"),
    voice(ElevenLabs, "pNInz6obpgDQGcFmaJgB", "Adam", "en-US", "male"),
    voice(ElevenLabs, "ErXwobaYiN019PkySvjV", "Antoni", "en-US", "male"),
    voice(ElevenLabs, "TxGEqnHWrfWFTfGW9XjX", "Josh", "en-US", "male"),
    voice(ElevenLabs, "D38z5RcWu1voky8WS1ja", "Fin", "en-IE", "male"),
    voice(OpenAi, "alloy", "Alloy", "en-US", "neutral"),
    voice(OpenAi, "echo", "Echo", "en-US", "male"),
    voice(OpenAi, "fable", "Fable", "en-GB", "male"),
    voice(OpenAi, "onyx", "Onyx", "en-US", "male"),
    voice(OpenAi, "nova", "Nova", "en-US", "female"),
    voice(OpenAi, "shimmer", "Shimmer", "en-US", "female"),
    voice(Deepgram, "asteria", "Asteria", "en-US", "female"),
    voice(Deepgram, "luna", "Luna", "en-US", "female"),
    voice(Deepgram, "stella", "Stella", "en-US", "female"),
    voice(Deepgram, "orion", "Orion", "en-US", "male"),
    voice(Deepgram, "arcas", "Arcas", "en-US", "male"),
    voice(Deepgram, "helios", "Helios", "en-GB", "male"),
    voice(Azure, "en-US-JennyNeural", "Jenny", "en-US", "female"),
    voice(Azure, "en-US-GuyNeural", "Guy", "en-US", "male"),
    voice(Azure, "es-ES-ElviraNeural", "Elvira", "es-ES", "female"),
    voice(Azure, "fr-FR-DeniseNeural", "Denise", "fr-FR", "female"),
    voice(Azure, "de-DE-ConradNeural", "Conrad", "de-DE", "male"),
    voice(PlayHt, "jennifer", "Jennifer", "en-US", "female"),
    voice(PlayHt, "will", "Will", "en-US", "male"),
    voice(
        Cartesia,
        "a0e99841-438c-4a64-b679-ae501e7d6091",
        "Barbershop Man",
        "en-US",
        "male",
    ),
];

pub fn find(provider: &VoiceProvider, voice_id: &str) -> Option<&'static Voice> {
    VOICES
        .iter()
        .find(|v| v.provider == *provider && v.voice_id == voice_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_spans_providers_without_duplicates() {
        assert!(VOICES.len() >= 23);
        let mut keys: Vec<_> = VOICES.iter().map(|v| (v.provider.as_str(), v.voice_id)).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), VOICES.len());
        for provider in ["11labs", "deepgram", "openai", "azure", "playht", "cartesia"] {
            assert!(VOICES.iter().any(|v| v.provider.as_str() == provider), "{provider}");
        }
        assert!(find(&OpenAi, "nova").is_some());
        assert!(find(&OpenAi, "rachel").is_none());
    }
}

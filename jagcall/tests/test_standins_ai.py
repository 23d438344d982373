"""The Deepgram, OpenAI, Anthropic and ElevenLabs stand-ins, driven through the real SDKs."""

from __future__ import annotations

import json

import anthropic
import jsonschema
import openai
import pytest
from deepgram.core.api_error import ApiError as DeepgramApiError
from elevenlabs.core.api_error import ApiError as ElevenLabsApiError

from jagcall.kernel.providers import anthropic_client, deepgram_client, elevenlabs_client, openai_client
from jagcall.kernel.standins.audio import wav_bytes
from jagcall.kernel.standins.deepgram import DEFAULT_SCRIPT

CALL_SUMMARY = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 400},
        "outcome": {"type": "string", "enum": ["booked", "no_booking", "callback_requested"]},
        "appointment_booked": {"type": "boolean"},
        "sentiment_score": {"type": "number", "minimum": -1, "maximum": 1},
        "follow_ups": {"type": "array", "items": {"$ref": "#/$defs/follow_up"}, "minItems": 1},
        "caller_name": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["summary", "outcome", "appointment_booked", "sentiment_score", "follow_ups", "caller_name"],
    "additionalProperties": False,
    "$defs": {
        "follow_up": {
            "type": "object",
            "properties": {"action": {"type": "string"}, "due": {"type": "string", "format": "date"},
                           "priority": {"type": "integer", "minimum": 1, "maximum": 3}},
            "required": ["action", "due", "priority"],
            "additionalProperties": False,
        }  # fmt: skip
    },
}
CONVERSATION = [
    {"role": "system", "content": "Summarise the call."},
    {"role": "user", "content": "Caller: I'd like a cleaning on Thursday at 2 PM. Agent: You're booked."},
]


def test_deepgram_transcribes_a_file_into_speaker_utterances(deepgram_standin):
    response = deepgram_client().listen.v1.media.transcribe_file(
        request=wav_bytes(), model="nova-3", language="en", diarize=True, punctuate=True, utterances=True,
        smart_format=True,
    )  # fmt: skip
    utterances = response.results.utterances
    assert [(u.speaker, u.transcript) for u in utterances] == DEFAULT_SCRIPT
    assert all(u.end > u.start for u in utterances)
    assert all(a.end <= b.start for a, b in zip(utterances, utterances[1:]))  # turns follow one another
    alternative = response.results.channels[0].alternatives[0]
    assert alternative.transcript.startswith("Thank you for calling, this is the front desk.")
    assert alternative.words[0].word == "thank" and alternative.words[0].speaker == 0
    assert response.metadata.duration == pytest.approx(utterances[-1].end + 0.6)

    [request] = deepgram_standin.requests
    assert request.query["diarize"] == "true" and request.query["model"] == "nova-3"
    assert request.header("authorization") == f"Token {deepgram_standin.api_key}" and request.body == wav_bytes()


def test_deepgram_scripts_bare_words_and_urls(deepgram_standin):
    deepgram_standin.script = [(0, "Hello, Dr. Smith!"), (1, "Hi.")]
    response = deepgram_client().listen.v1.media.transcribe_url(url="https://example.com/call.wav")
    assert response.results.channels[0].alternatives[0].transcript == "hello dr smith hi"
    assert response.results.utterances is None  # not asked for


def test_deepgram_refuses_empty_audio_and_bad_keys(deepgram_standin):
    with pytest.raises(DeepgramApiError) as empty:
        deepgram_client().listen.v1.media.transcribe_file(request=b"")
    assert empty.value.status_code == 400
    with pytest.raises(DeepgramApiError) as refused:
        deepgram_client(api_key="wrong").listen.v1.media.transcribe_file(request=wav_bytes())
    assert refused.value.status_code == 401 and refused.value.body["err_code"] == "INVALID_AUTH"


@pytest.fixture
def openai_standin_(openai_standin):
    openai_standin.replies = ["Hello! How can I help?"]
    return openai_standin


def test_openai_chat_answers_with_a_json_schema_instance_and_records_store(openai_standin_):
    client = openai_client()
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=CONVERSATION, store=False, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "call_summary", "strict": True,
                                                                "schema": CALL_SUMMARY}},
    )  # fmt: skip
    content = json.loads(completion.choices[0].message.content)
    jsonschema.validate(content, CALL_SUMMARY)
    assert "cleaning on Thursday" in content["summary"] and content["outcome"] == "booked"
    assert completion.choices[0].finish_reason == "stop" and completion.usage.total_tokens > 0
    assert openai_standin_.completions[-1]["store"] is False  # the request asked not to retain data

    plain = client.chat.completions.create(model="gpt-4o-mini", messages=CONVERSATION)
    assert plain.choices[0].message.content == "Hello! How can I help?"
    assert plain.choices[0].message.content != client.chat.completions.create(
        model="gpt-4o-mini", messages=CONVERSATION
    ).choices[0].message.content  # the scripted replies ran out: the default follows
    assert [m.id for m in client.models.list()][:2] == ["gpt-4o", "gpt-4o-mini"]


def test_openai_streams_and_calls_a_forced_tool(openai_standin_):
    client = openai_client()
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=CONVERSATION, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! How can I help?"
    assert chunks[-1].usage.total_tokens > 0

    tool = {"type": "function", "function": {"name": "book", "parameters": CALL_SUMMARY["$defs"]["follow_up"]}}
    forced = client.chat.completions.create(
        model="gpt-4o-mini", messages=CONVERSATION, tools=[tool],
        tool_choice={"type": "function", "function": {"name": "book"}},
    )  # fmt: skip
    [call] = forced.choices[0].message.tool_calls
    assert call.function.name == "book" and forced.choices[0].finish_reason == "tool_calls"
    jsonschema.validate(json.loads(call.function.arguments), CALL_SUMMARY["$defs"]["follow_up"])


def test_openai_errors_have_openais_shape(openai_standin_):
    with pytest.raises(openai.AuthenticationError) as refused:
        openai_client(api_key="sk-wrong").chat.completions.create(model="gpt-4o", messages=CONVERSATION)
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError):
        openai_client().chat.completions.create(model="gpt-4o", messages=[])


@pytest.fixture
def anthropic_standin_(anthropic_standin):
    anthropic_standin.replies = ["Happy to help."]
    return anthropic_standin


def test_anthropic_messages_with_a_forced_tool_and_streaming(anthropic_standin_):
    client = anthropic_client()
    tool = {"name": "record_summary", "description": "Record the call summary", "input_schema": CALL_SUMMARY}
    message = client.messages.create(
        model="claude-haiku-4-5", max_tokens=512, system="Summarise the call.", messages=CONVERSATION[1:],
        tools=[tool], tool_choice={"type": "tool", "name": "record_summary"},
    )  # fmt: skip
    [block] = message.content
    assert block.type == "tool_use" and block.name == "record_summary" and message.stop_reason == "tool_use"
    jsonschema.validate(block.input, CALL_SUMMARY)
    assert anthropic_standin_.versions == ["2023-06-01"]
    assert anthropic_standin_.messages[-1]["tool_choice"] == {"type": "tool", "name": "record_summary"}

    with client.messages.stream(model="claude-haiku-4-5", max_tokens=64, messages=CONVERSATION[1:]) as stream:
        assert "".join(stream.text_stream) == "Happy to help."
        assert stream.get_final_message().stop_reason == "end_turn"
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=CONVERSATION[1:], tools=[tool], tool_choice={"type": "any"}
    ) as stream:
        final = stream.get_final_message()
    jsonschema.validate(final.content[0].input, CALL_SUMMARY)


def test_anthropic_refuses_a_wrong_key(anthropic_standin_):
    client = anthropic_client(api_key="sk-ant-wrong")
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=CONVERSATION[1:])
    assert refused.value.status_code == 401


def test_elevenlabs_voices_and_speech(elevenlabs_standin):
    standin = elevenlabs_standin
    client = elevenlabs_client()
    voices = client.voices.get_all().voices
    assert {v.name for v in voices} >= {"Rachel", "George"} and all(v.preview_url for v in voices)
    found = client.voices.search(search="british")
    assert [v.name for v in found.voices] == ["George"] and found.has_more is False
    assert client.voices.get(voices[0].voice_id).name == voices[0].name
    audio = b"".join(client.text_to_speech.stream(voices[0].voice_id, text="Your appointment is booked."))
    assert audio[:2] == b"\xff\xfb" and len(audio) > 4000
    assert standin.speech[-1]["text"] == "Your appointment is booked."
    with pytest.raises(ElevenLabsApiError) as refused:
        elevenlabs_client(api_key="wrong").voices.get_all()
    assert refused.value.status_code == 401


def test_providers_points_every_setting_at_its_stand_in(providers, settings):
    for name in ("twilio", "deepgram", "openai", "anthropic", "elevenlabs"):
        assert settings.PROVIDER_BASE_URLS[name] == getattr(providers, name).base_url
    assert settings.OPENAI_API_KEY == providers.openai.api_key
    assert settings.ANTHROPIC_API_KEY == providers.anthropic.api_key
    assert settings.DEEPGRAM_API_KEY == providers.deepgram.api_key
    assert settings.ELEVENLABS_API_KEY == providers.elevenlabs.api_key
    assert settings.TWILIO_AUTH_TOKEN == providers.twilio.auth_token

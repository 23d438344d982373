"""Step 3 after a call: the agent's LLM writes the summary and fills the agent's analysis schema.

The agent's ``analysis_schema`` is a list of named, typed fields
(``{"name": "appointment_requested", "type": "boolean", "description": "..."}``;
types boolean, string, integer, number, or enum with ``options``). The model is
asked for ``{"summary": ..., <field>: ...}`` following a strict JSON Schema made
from it (every field present, null when the call did not tell), through
telephony/providers/llm.py (OpenAI: ``store=False``; Anthropic: a forced tool).

The answer is validated here again, whatever the provider promises: a field
missing or of the wrong type or outside its options makes us ask once more;
then what validates is stored and each field that still does not is stored as
invalid with its reason. Summary and fields are encrypted (C1).
"""

from __future__ import annotations

from jagcall.kernel.errors import ApplicationError
from telephony.models import Call, CallAnalysis, StepStatus
from telephony.services.pipeline import step_begin, step_done

INSTRUCTIONS = (
    "You analyze the transcript of a phone call between an AI phone agent and a person. "
    "Write a short factual summary (two to four sentences) of what the call was about and how it ended, "
    "and fill each field from what was said in the call. Use null for a field the call does not tell. "
    "Do not invent facts."
)
SCHEMA_NAME = "call_analysis"
NO_SPEECH_SUMMARY = "No speech was recognized in this call's recording."
JSON_TYPES = {"boolean": "boolean", "string": "string", "integer": "integer", "number": "number", "enum": "string"}


def _options(field: dict) -> list | None:
    options = field.get("options") or field.get("enum")
    return list(options) if options else None


def analysis_json_schema(fields: list[dict]) -> dict:
    """The strict JSON Schema of the answer: summary plus each field (nullable), no other property."""
    properties: dict = {"summary": {"type": "string", "description": "A short factual summary of the call."}}
    for field in fields:
        kind = JSON_TYPES.get(field.get("type"), "string")
        prop: dict = {"type": [kind, "null"]}
        if field.get("description"):
            prop["description"] = str(field["description"])
        options = _options(field)
        if options:
            prop["enum"] = [*options, None]
        properties[field["name"]] = prop
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _field_error(field: dict, present: bool, value) -> str | None:
    """Why ``value`` is not valid for ``field``, or None."""
    if not present:
        return "the model did not give this field"
    if value is None:
        return None
    kind = field.get("type")
    if kind == "boolean" and not isinstance(value, bool):
        return f"expected true or false, got {type(value).__name__}"
    if kind == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        if not (isinstance(value, float) and value.is_integer()):
            return f"expected a whole number, got {type(value).__name__}"
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"expected a number, got {type(value).__name__}"
    if kind in ("string", "enum", None) and not isinstance(value, str):
        return f"expected text, got {type(value).__name__}"
    options = _options(field)
    if options and value not in options:
        return f"{str(value)[:60]!r} is not one of {', '.join(map(str, options))}"
    return None


def analysis_validate(fields: list[dict], data: dict) -> tuple[str | None, dict, dict]:
    """(summary or None, {name: valid value}, {name: reason}) of one answer."""
    summary = data.get("summary")
    summary = summary.strip() if isinstance(summary, str) and summary.strip() else None
    values, errors = {}, {}
    for field in fields:
        name = field["name"]
        error = _field_error(field, name in data, data.get(name))
        if error:
            errors[name] = error
        else:
            value = data.get(name)
            values[name] = int(value) if field.get("type") == "integer" and isinstance(value, float) else value
    return summary, values, errors


def _call_text(utterances: list[dict]) -> str:
    lines = []
    for item in utterances:
        start = float(item.get("start") or 0)
        lines.append(f"[{int(start // 60):02d}:{int(start % 60):02d}] Speaker {int(item.get('speaker') or 0) + 1}: {item.get('text', '')}")
    return "Transcript of the call:\n" + "\n".join(lines)


def analysis_create(*, call: Call) -> CallAnalysis | None:
    """Summarize and analyze ``call``'s transcript. Raises ProviderError/ApplicationError for the task."""
    from telephony.providers.llm import structured_object

    analysis = step_begin(CallAnalysis, call)
    if analysis is None:
        return None
    transcript = getattr(call, "transcript", None)
    if transcript is None or transcript.status != StepStatus.DONE:
        raise ApplicationError("The transcript is not stored yet: retry once the transcript step is done.", code="no_transcript")
    agent = call.agent
    fields = [f for f in (agent.analysis_schema if agent else []) or [] if isinstance(f, dict) and f.get("name")]
    provider = agent.llm_provider if agent else "openai"
    model = agent.llm_model if agent else "gpt-4o-mini"
    utterances = transcript.utterances or []
    if not utterances and not (transcript.text or "").strip():
        summary, values, errors = NO_SPEECH_SUMMARY, {f["name"]: None for f in fields}, {}
    else:
        if not utterances:
            utterances = [{"speaker": 0, "start": 0, "text": transcript.text}]
        schema = analysis_json_schema(fields)
        text = _call_text(utterances)

        def ask(extra: str = ""):
            return structured_object(
                organization=call.organization, provider=provider, model=model,
                instructions=INSTRUCTIONS + extra, text=text, schema=schema, name=SCHEMA_NAME,
            ).data  # fmt: skip

        summary, values, errors = analysis_validate(fields, ask())
        if errors or summary is None:
            # Once more, saying what was wrong; then keep what validates from either answer.
            problems = "; ".join(f"{name}: {reason}" for name, reason in errors.items()) or "summary: missing"
            again_summary, again_values, again_errors = analysis_validate(
                fields, ask(f" Your previous answer was invalid ({problems}); follow the schema exactly.")
            )
            summary = summary or again_summary
            for name, value in again_values.items():
                values.setdefault(name, value)
            errors = {name: again_errors.get(name, errors[name]) for name in errors if name not in values}
        if summary is None:
            raise ApplicationError("The model gave no summary, twice: retry, or choose another model for the agent.", code="no_summary")
    analysis.summary = summary
    analysis.fields = {
        f["name"]: {"value": values.get(f["name"]), "valid": f["name"] not in errors, "reason": errors.get(f["name"], "")}
        for f in fields
    }
    analysis.provider = provider
    analysis.model = model
    step_done(
        analysis, call, update_fields=["summary", "fields", "provider", "model"], next_step=None,
        event="analysis.stored", invalid_fields=sorted(errors),
    )  # fmt: skip
    return analysis

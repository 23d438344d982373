"""Agents: create, change and delete them, each change audited with its diff.

Every rule about what an agent may hold lives in ``agent_clean``, the one
validation the portal, the API and the back office share. It checks every
setting and reports every problem at once, keyed by setting, in words that
say what to change (``AgentInvalid.errors``).

The options offered for models, languages and tools are listed once, here
(``LLM_MODELS``, ``STT_MODELS``, ``STT_LANGUAGES``, ``TOOL_TYPES``,
``ANALYSIS_TYPES``); the portal's choices and the API's schema are built
from them.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping

from django.db import IntegrityError, transaction

from accounts.models import Membership
from accounts.principals import Principal, as_principal
from compliance.services import audit_changes, audit_record, audit_snapshot
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from knowledge.models import KnowledgeBase
from telephony.models import Agent, LLMProvider, PhoneNumber, VoicemailAction
from telephony.providers.voices import VoiceCatalog, voice_catalog

# --- what an agent may choose from (the one list) ---------------------------------------

LLM_MODELS: dict[str, tuple[str, ...]] = {
    LLMProvider.OPENAI: ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini"),
    LLMProvider.ANTHROPIC: (
        "claude-3-5-haiku-latest",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "claude-sonnet-4-0",
        "claude-opus-4-1",
    ),
}
# The highest temperature each provider's API accepts (both start at 0).
TEMPERATURE_MAX: dict[str, float] = {LLMProvider.OPENAI: 2.0, LLMProvider.ANTHROPIC: 1.0}

# Deepgram's speech-to-text models and the languages offered with them.
STT_MODELS: dict[str, str] = {
    "nova-3": "Nova-3 (most accurate)",
    "nova-3-medical": "Nova-3 Medical",
    "nova-2": "Nova-2",
    "nova-2-phonecall": "Nova-2 Phone call",
    "enhanced": "Enhanced",
    "base": "Base",
}
STT_LANGUAGES: dict[str, str] = {
    "en-US": "English (United States)",
    "en-GB": "English (United Kingdom)",
    "en-AU": "English (Australia)",
    "en-IN": "English (India)",
    "en": "English (any accent)",
    "es": "Spanish",
    "es-419": "Spanish (Latin America)",
    "fr": "French",
    "fr-CA": "French (Canada)",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "pt-BR": "Portuguese (Brazil)",
    "nl": "Dutch",
    "ja": "Japanese",
    "ko": "Korean",
    "hi": "Hindi",
}

# Tools the conversation engine carries out; each takes the settings listed (besides "type").
TOOL_TYPES: dict[str, str] = {
    "transfer": "Transfer the call to a phone number or to a member in the browser",
    "end_call": "End the call",
    "send_sms": "Text the caller",
    "book_appointment": "Book an appointment",
}
_TOOL_SETTINGS: dict[str, frozenset] = {
    "transfer": frozenset({"number", "user_id", "description"}),
    "end_call": frozenset({"description"}),
    "send_sms": frozenset({"description"}),
    "book_appointment": frozenset({"description"}),
}
MAX_TOOLS = 20

ANALYSIS_TYPES: dict[str, str] = {
    "boolean": "Yes / no",
    "string": "Text",
    "number": "Number",
    "integer": "Whole number",
    "enum": "One of a list",
}
ANALYSIS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ANALYSIS_RESERVED = frozenset({"summary"})
MAX_ANALYSIS_FIELDS = 20
MAX_ENUM_OPTIONS = 50

MAX_NAME = 120
MAX_SYSTEM_PROMPT = 20_000
MAX_FIRST_MESSAGE = 2_000
MAX_DISCLOSURE = 500
MAX_VOICEMAIL_MESSAGE = 1_000
MAX_DESCRIPTION = 500
MIN_CALL_SECONDS, MAX_CALL_SECONDS = 30, 4 * 3600

# The settings a person chooses; voice_name follows voice_id from the voice list.
EDITABLE_FIELDS = (
    "name",
    "system_prompt",
    "first_message",
    "llm_provider",
    "llm_model",
    "temperature",
    "voice_id",
    "stt_language",
    "stt_model",
    "tools",
    "ai_disclosure_enabled",
    "ai_disclosure",
    "recording_disclosure_enabled",
    "recording_disclosure",
    "record_calls",
    "max_call_seconds",
    "voicemail_action",
    "voicemail_message",
    "analysis_schema",
    "knowledge_bases",
)
# The agent's own columns (knowledge_bases is a link table, audited by hand).
_STORED_FIELDS = (*(name for name in EDITABLE_FIELDS if name != "knowledge_bases"), "voice_name")
MAX_KNOWLEDGE_BASES = 20


class AgentInvalid(ApplicationError):
    """Every problem with an agent's settings: ``errors`` = {setting: [message, ...]}."""

    def __init__(self, errors: dict[str, list[str]]):
        first_field = next(iter(errors))
        super().__init__(
            f"Check these settings: {', '.join(errors)}. {errors[first_field][0]}", code="invalid", field=first_field
        )
        self.errors = errors


# --- validation -------------------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.errors.setdefault(field, []).append(message)


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character; remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains characters that are not valid text (unpaired surrogates); remove them"
    return None


def _text(problems: _Problems, values: dict, field: str, label: str, *, max_length: int, required: bool = False) -> str:
    value = values.get(field)
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.add(field, f"{label} must be text.")
        return ""
    value = value.strip()
    if required and not value:
        problems.add(field, f"{label} is required.")
    elif len(value) > max_length:
        problems.add(field, f"{label} is {len(value):,} characters long; keep it to {max_length:,}.")
    elif problem := _text_problem(value):
        problems.add(field, f"{label} {problem}.")
    return value


def _flag(problems: _Problems, values: dict, field: str, label: str) -> bool:
    value = values.get(field)
    if not isinstance(value, bool):
        problems.add(field, f"{label} must be true or false.")
        return False
    return value


def _choice_list(options) -> str:
    return ", ".join(options)


def _clean_llm(problems: _Problems, values: dict) -> tuple[str, str, float]:
    provider, model, temperature = values.get("llm_provider"), values.get("llm_model"), values.get("temperature")
    if provider not in LLM_MODELS:
        problems.add("llm_provider", f"Choose the language model's provider: {_choice_list(LLM_MODELS)}.")
        return "", "", 0.0
    label = LLMProvider(provider).label
    if model not in LLM_MODELS[provider]:
        problems.add(
            "llm_model",
            f"{model!r} is not one of the {label} models JagCall offers; "
            f"choose one of {_choice_list(LLM_MODELS[provider])}."
            if isinstance(model, str) and model
            else f"Choose a {label} model: {_choice_list(LLM_MODELS[provider])}.",
        )
    top = TEMPERATURE_MAX[provider]
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature):
        problems.add("temperature", f"The temperature must be a number between 0 and {top:g}.")
        temperature = 0.0
    elif not 0 <= temperature <= top:
        problems.add(
            "temperature", f"{label} takes a temperature between 0 and {top:g}; {temperature:g} is outside it."
        )
    return provider, model, float(temperature)


def _clean_voice(
    problems: _Problems, values: dict, agent: Agent | None, catalog: VoiceCatalog | None
) -> tuple[str, str]:
    """(voice_id, voice_name). A blank voice means JagCall's default voice."""
    voice_id = values.get("voice_id") or ""
    if not isinstance(voice_id, str):
        problems.add("voice_id", "The voice must be an ElevenLabs voice id (text).")
        return "", ""
    voice_id = voice_id.strip()
    if not voice_id:
        return "", ""
    unchanged = agent is not None and agent.voice_id == voice_id
    if catalog is None or not catalog.available:
        if unchanged:
            return voice_id, agent.voice_name  # could not be checked again: kept as it was
        reason = catalog.error if catalog is not None else "the voice list was not asked for"
        problems.add(
            "voice_id",
            f"The voice could not be checked, so it was not changed. {reason} "
            "Keep the current voice, or choose the new one again later.",
        )
        return voice_id, ""
    voice = catalog.get(voice_id)
    if voice is None:
        problems.add(
            "voice_id",
            f"{voice_id!r} is not one of the voices your ElevenLabs account offers"
            + (" (any more)" if unchanged else "")
            + "; choose one from the list.",
        )
        return voice_id, ""
    return voice_id, voice.name


def _clean_stt(problems: _Problems, values: dict) -> tuple[str, str]:
    language, model = values.get("stt_language"), values.get("stt_model")
    if language not in STT_LANGUAGES:
        problems.add("stt_language", f"Choose the language callers speak: {_choice_list(STT_LANGUAGES)}.")
    if model not in STT_MODELS:
        problems.add("stt_model", f"Choose a Deepgram speech-to-text model: {_choice_list(STT_MODELS)}.")
    return language, model


def _is_member(organization, user_id: uuid.UUID) -> bool:
    return Membership.objects.for_org(organization).filter(user_id=user_id).exists()


def _clean_tools(problems: _Problems, organization, tools) -> list[dict]:
    if tools is None:
        tools = []
    if not isinstance(tools, list):
        problems.add("tools", "Give the tools as a list of objects, each with a type.")
        return []
    if len(tools) > MAX_TOOLS:
        problems.add("tools", f"An agent may have at most {MAX_TOOLS} tools; this one has {len(tools)}.")
        return []
    cleaned, seen = [], {}
    for position, tool in enumerate(tools, 1):
        where = f"Tool {position}"
        if not isinstance(tool, dict):
            problems.add("tools", f"{where} must be an object with a type ({_choice_list(TOOL_TYPES)}).")
            continue
        kind = tool.get("type")
        if not isinstance(kind, str) or kind not in TOOL_TYPES:
            problems.add("tools", f"{where}: the type must be one of {_choice_list(TOOL_TYPES)}.")
            continue
        where = f"{where} ({kind})"
        extra = sorted(str(key) for key in set(tool) - _TOOL_SETTINGS[kind] - {"type"})
        if extra:
            problems.add(
                "tools",
                f"{where}: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not a setting of this tool; "
                f"it takes {_choice_list(sorted(_TOOL_SETTINGS[kind]))}.",
            )
            continue
        entry: dict = {"type": kind}
        identity: tuple = (kind,)
        if kind == "transfer":
            number, user_id = tool.get("number"), tool.get("user_id")
            if bool(number) == bool(user_id):
                problems.add(
                    "tools",
                    f"{where}: name where the call goes: either a phone number (number) "
                    "or a member of the organization (user_id), not both.",
                )
                continue
            if number:
                try:
                    entry["number"] = parse_e164(number if isinstance(number, str) else "")
                except InvalidPhoneNumber as error:
                    problems.add("tools", f"{where}: {error}")
                    continue
                identity = (kind, "number", entry["number"])
            else:
                try:
                    member = uuid.UUID(str(user_id))
                except ValueError:
                    member = None
                if member is None or not _is_member(organization, member):
                    problems.add(
                        "tools", f"{where}: user_id {str(user_id)[:64]!r} is not a member of this organization."
                    )
                    continue
                entry["user_id"] = str(member)
                identity = (kind, "user", entry["user_id"])
        description = tool.get("description", "")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION or _text_problem(description):
            problems.add("tools", f"{where}: the description must be text of at most {MAX_DESCRIPTION} characters.")
            continue
        if description.strip():
            entry["description"] = description.strip()
        if identity in seen:
            problems.add("tools", f"{where} repeats tool {seen[identity]}; keep one of them.")
            continue
        seen[identity] = position
        cleaned.append(entry)
    return cleaned


def _clean_analysis_schema(problems: _Problems, schema) -> list[dict]:
    if schema is None:
        schema = []
    if not isinstance(schema, list):
        problems.add("analysis_schema", "Give the analysis fields as a list of objects with a name and a type.")
        return []
    if len(schema) > MAX_ANALYSIS_FIELDS:
        problems.add(
            "analysis_schema",
            f"The analysis may have at most {MAX_ANALYSIS_FIELDS} fields besides the summary; "
            f"this one has {len(schema)}.",
        )
        return []
    cleaned, seen = [], {}
    allowed = {"name", "type", "description", "options"}
    for position, item in enumerate(schema, 1):
        where = f"Field {position}"
        if not isinstance(item, dict):
            problems.add("analysis_schema", f"{where} must be an object with a name and a type.")
            continue
        extra = sorted(str(key) for key in set(item) - allowed)
        if extra:
            problems.add(
                "analysis_schema",
                f"{where}: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not a setting of an analysis field; "
                "it takes name, type, description and options (for enum).",
            )
            continue
        name, kind = item.get("name"), item.get("type")
        if not isinstance(name, str) or not ANALYSIS_NAME.match(name):
            shown = f" {name[:64]!r}" if isinstance(name, str) and name else ""
            problems.add(
                "analysis_schema",
                f"{where}: the name{shown} must be a snake_case identifier: lower-case letters, digits and "
                "underscores, starting with a letter, at most 64 characters (e.g. appointment_requested).",
            )
            continue
        where = f"{where} ({name})"
        if name in ANALYSIS_RESERVED:
            problems.add("analysis_schema", f"{where}: “summary” is always part of the analysis; choose another name.")
            continue
        if name in seen:
            problems.add("analysis_schema", f"{where}: field {seen[name]} already has this name; names must be unique.")
            continue
        seen[name] = position
        if not isinstance(kind, str) or kind not in ANALYSIS_TYPES:
            problems.add("analysis_schema", f"{where}: the type must be one of {_choice_list(ANALYSIS_TYPES)}.")
            continue
        entry = {"name": name, "type": kind}
        description = item.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION or _text_problem(description):
            problems.add(
                "analysis_schema", f"{where}: the description must be text of at most {MAX_DESCRIPTION} characters."
            )
            continue
        entry["description"] = description.strip()
        options = item.get("options")
        if kind == "enum":
            if not isinstance(options, list) or not options:
                problems.add("analysis_schema", f'{where}: an enum field needs its options, e.g. ["new", "existing"].')
                continue
            clean_options = [o.strip() for o in options if isinstance(o, str)]
            if (
                len(clean_options) != len(options)
                or not all(clean_options)
                or any(len(o) > 100 or _text_problem(o) for o in clean_options)
            ):
                problems.add(
                    "analysis_schema", f"{where}: each option must be non-empty text of at most 100 characters."
                )
                continue
            if len(set(clean_options)) != len(clean_options):
                problems.add("analysis_schema", f"{where}: the options repeat a value; list each once.")
                continue
            if len(clean_options) > MAX_ENUM_OPTIONS:
                problems.add("analysis_schema", f"{where}: at most {MAX_ENUM_OPTIONS} options.")
                continue
            entry["options"] = clean_options
        elif options:
            problems.add("analysis_schema", f"{where}: only enum fields take options; remove them or make it an enum.")
            continue
        cleaned.append(entry)
    return cleaned


def linked_knowledge_bases(agent: Agent) -> list[str]:
    """The ids of the knowledge bases the agent answers from, sorted."""
    return sorted(
        str(pk)
        for pk in KnowledgeBase.objects.for_org(agent.organization_id).filter(agents=agent).values_list("pk", flat=True)
    )


def _link_knowledge_bases(agent: Agent, ids: list[str]) -> None:
    """Replace the agent's links (through the link table: the ids are already this organization's)."""
    through = Agent.knowledge_bases.through
    through.objects.filter(agent_id=agent.pk).delete()
    through.objects.bulk_create([through(agent_id=agent.pk, knowledgebase_id=pk) for pk in ids])


def _clean_knowledge_bases(problems: _Problems, organization, value) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        problems.add("knowledge_bases", "Give the knowledge bases as a list of their ids.")
        return []
    ids = []
    for item in value:
        try:
            ids.append(str(uuid.UUID(str(item))))
        except ValueError:
            problems.add("knowledge_bases", f"{str(item)[:60]!r} is not a knowledge base id.")
    ids = sorted(set(ids))
    if len(ids) > MAX_KNOWLEDGE_BASES:
        problems.add("knowledge_bases", f"An agent answers from at most {MAX_KNOWLEDGE_BASES} knowledge bases.")
    # [!!] Only this organization's: another organization's id reads exactly like an unknown one.
    known = {str(pk) for pk in KnowledgeBase.objects.for_org(organization).filter(pk__in=ids).values_list("pk", flat=True)}
    for missing in (i for i in ids if i not in known):
        problems.add("knowledge_bases", f"There is no knowledge base {missing} in this organization.")
    return [i for i in ids if i in known]


def _current_values(agent: Agent | None) -> dict:
    if agent is not None:
        values = {name: getattr(agent, name) for name in EDITABLE_FIELDS if name != "knowledge_bases"}
        values["knowledge_bases"] = linked_knowledge_bases(agent)
        return values
    defaults = {"knowledge_bases": []}
    for name in EDITABLE_FIELDS:
        if name == "knowledge_bases":
            continue
        field = Agent._meta.get_field(name)
        defaults[name] = field.get_default()
    defaults["system_prompt"] = ""
    return defaults


def agent_clean(
    *, organization, data: Mapping, agent: Agent | None = None, catalog: VoiceCatalog | None = None
) -> dict:
    """The agent's settings after applying ``data`` (only the keys given change), or AgentInvalid.

    ``catalog``: the voice list (``voice_catalog``) to check a voice against;
    without it, only an unchanged voice is accepted.
    """
    problems = _Problems()
    unknown = sorted(str(key) for key in data if key not in EDITABLE_FIELDS)
    for key in unknown:
        problems.add(key, "Agents have no such setting.")
    values = {**_current_values(agent), **{key: value for key, value in data.items() if key in EDITABLE_FIELDS}}
    cleaned: dict = {}

    cleaned["name"] = _text(problems, values, "name", "The name", max_length=MAX_NAME, required=True)
    if cleaned["name"]:
        clash = Agent.objects.for_org(organization).filter(name__iexact=cleaned["name"])
        if agent is not None:
            clash = clash.exclude(pk=agent.pk)
        if clash.exists():
            problems.add("name", f"Another agent is already called “{cleaned['name']}”; choose another name.")
    cleaned["system_prompt"] = _text(
        problems, values, "system_prompt", "The system prompt", max_length=MAX_SYSTEM_PROMPT, required=True
    )
    cleaned["first_message"] = _text(
        problems, values, "first_message", "The first message", max_length=MAX_FIRST_MESSAGE
    )
    cleaned["llm_provider"], cleaned["llm_model"], cleaned["temperature"] = _clean_llm(problems, values)
    cleaned["voice_id"], cleaned["voice_name"] = _clean_voice(problems, values, agent, catalog)
    cleaned["stt_language"], cleaned["stt_model"] = _clean_stt(problems, values)
    cleaned["tools"] = _clean_tools(problems, organization, values.get("tools"))

    for kind, label in (("ai", "The AI disclosure"), ("recording", "The recording disclosure")):
        enabled = _flag(problems, values, f"{kind}_disclosure_enabled", f"Whether {label[4:]} is spoken")
        text = _text(problems, values, f"{kind}_disclosure", label, max_length=MAX_DISCLOSURE)
        if enabled and not text:
            problems.add(
                f"{kind}_disclosure",
                f"{label} is on, so it needs the words the agent says first; write them, or turn it off.",
            )
        cleaned[f"{kind}_disclosure_enabled"], cleaned[f"{kind}_disclosure"] = enabled, text
    cleaned["record_calls"] = _flag(problems, values, "record_calls", "Recording calls")

    seconds = values.get("max_call_seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        problems.add("max_call_seconds", "The maximum call length must be a whole number of seconds.")
    elif not MIN_CALL_SECONDS <= seconds <= MAX_CALL_SECONDS:
        problems.add(
            "max_call_seconds",
            f"The maximum call length must be between {MIN_CALL_SECONDS} seconds and 4 hours "
            f"({MAX_CALL_SECONDS} seconds); {seconds} is outside it.",
        )
    cleaned["max_call_seconds"] = seconds

    action = values.get("voicemail_action")
    if action not in VoicemailAction.values:
        problems.add("voicemail_action", f"Choose what happens on voicemail: {_choice_list(VoicemailAction.values)}.")
    cleaned["voicemail_action"] = action
    cleaned["voicemail_message"] = _text(
        problems, values, "voicemail_message", "The voicemail message", max_length=MAX_VOICEMAIL_MESSAGE
    )
    if (
        action == VoicemailAction.LEAVE_MESSAGE
        and not cleaned["voicemail_message"]
        and "voicemail_message" not in problems.errors
    ):
        problems.add("voicemail_message", "Leaving a message needs the message; write it, or choose to hang up.")

    cleaned["analysis_schema"] = _clean_analysis_schema(problems, values.get("analysis_schema"))
    cleaned["knowledge_bases"] = _clean_knowledge_bases(problems, organization, values.get("knowledge_bases"))

    if problems.errors:
        raise AgentInvalid(problems.errors)
    return cleaned


def _catalog_for(*, organization, data: Mapping, agent: Agent | None) -> VoiceCatalog | None:
    """The voice list, when the result names a voice (asked before any transaction: it may go to ElevenLabs)."""
    voice_id = data.get("voice_id", agent.voice_id if agent is not None else "")
    if not isinstance(voice_id, str) or not voice_id.strip():
        return None
    return voice_catalog(organization=organization)


def agent_problems(*, organization, data: Mapping, agent: Agent | None = None) -> dict[str, list[str]]:
    """What agent_clean would refuse in ``data`` ({} when nothing): for an adapter that found
    problems of its own (wrong JSON types) and reports them together with these."""
    catalog = _catalog_for(organization=organization, data=data, agent=agent)
    try:
        agent_clean(organization=organization, data=data, agent=agent, catalog=catalog)
    except AgentInvalid as error:
        return error.errors
    return {}


# --- writes -----------------------------------------------------------------------------


def _require(organization, actor) -> Principal:
    principal = as_principal(actor, organization)
    principal.require("agents.manage")
    return principal


def _name_taken(name: str) -> AgentInvalid:
    return AgentInvalid({"name": [f"Another agent is already called “{name}”; choose another name."]})


def agent_create(*, organization, actor, data: Mapping) -> Agent:
    """A new agent with ``data`` over the defaults (disclosures on); audited as agent.created."""
    principal = _require(organization, actor)
    catalog = _catalog_for(organization=organization, data=data, agent=None)
    with transaction.atomic():
        cleaned = agent_clean(organization=organization, data=data, catalog=catalog)
        knowledge_bases = cleaned.pop("knowledge_bases")
        agent = Agent(organization=organization, **cleaned)
        try:
            with transaction.atomic():
                agent.save()
        except IntegrityError:  # the same name saved at the same moment by another request
            raise _name_taken(cleaned["name"]) from None
        _link_knowledge_bases(agent, knowledge_bases)
        changes = audit_changes(None, agent, fields=_STORED_FIELDS)
        if knowledge_bases:
            changes["knowledge_bases"] = {"before": [], "after": knowledge_bases}
        audit_record(
            action="agent.created", organization=organization, actor=principal, resource=agent, changes=changes
        )
    return agent


def agent_update(*, organization, actor, agent: Agent, data: Mapping) -> Agent:
    """Apply ``data`` (only the settings given change); audited as agent.updated with the diff, if anything changed."""
    principal = _require(organization, actor)
    # ElevenLabs is asked (or its cached answer read) before the row is locked, never while it is.
    catalog = _catalog_for(organization=organization, data=data, agent=agent)
    with transaction.atomic():
        agent = Agent.objects.for_org(organization).select_for_update().get(pk=agent.pk)
        cleaned = agent_clean(organization=organization, data=data, agent=agent, catalog=catalog)
        knowledge_bases, linked = cleaned.pop("knowledge_bases"), linked_knowledge_bases(agent)
        before = audit_snapshot(agent)
        for name, value in cleaned.items():
            setattr(agent, name, value)
        changes = audit_changes(before, agent, fields=_STORED_FIELDS)
        if knowledge_bases != linked:
            _link_knowledge_bases(agent, knowledge_bases)
            changes["knowledge_bases"] = {"before": linked, "after": knowledge_bases}
        if not changes:
            return agent
        try:
            with transaction.atomic():
                agent.save(update_fields=[*(name for name in changes if name != "knowledge_bases"), "updated_at"])
        except IntegrityError:
            raise _name_taken(cleaned["name"]) from None
        audit_record(
            action="agent.updated", organization=organization, actor=principal, resource=agent, changes=changes
        )
    return agent


def agent_delete(*, organization, actor, agent: Agent) -> None:
    """Delete an agent; refused (409) while it answers any of the organization's numbers. Audited as agent.deleted."""
    principal = _require(organization, actor)
    with transaction.atomic():
        agent = Agent.objects.for_org(organization).select_for_update().get(pk=agent.pk)
        numbers = list(
            PhoneNumber.objects.for_org(organization)
            .filter(agent=agent, released_at__isnull=True)
            .order_by("number")
            .values_list("number", flat=True)
        )
        if numbers:
            those = "that number" if len(numbers) == 1 else "those numbers"
            raise ApplicationError(
                f"{agent.name} answers {', '.join(numbers)}. Assign {those} to another agent (or to none) on the "
                "Phone numbers page first, then delete the agent.",
                code="agent_in_use",
                status=409,
            )
        agent_id, changes = agent.pk, audit_changes(agent, None, fields=_STORED_FIELDS)
        metadata = {"name": agent.name}
        agent.delete()
        audit_record(
            action="agent.deleted",
            organization=organization,
            actor=principal,
            resource_type="agent",
            resource_id=str(agent_id),
            changes=changes,
            metadata=metadata,
        )

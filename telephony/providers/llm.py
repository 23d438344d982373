"""The LLMs (OpenAI, Anthropic) through their official SDKs, built by jagcall.kernel.providers.

``structured_object`` asks a model for one JSON object that follows a JSON Schema:

- OpenAI: Chat Completions with ``response_format`` ``json_schema`` (``strict``),
  and ``store=False``: the request asks OpenAI not to keep the completion for its
  dashboard, evals or distillation (docs/security/providers.md, claim C17).
- Anthropic: Messages with one tool whose ``input_schema`` is the schema and
  ``tool_choice`` forcing it, so the answer is that tool's input. Anthropic's API
  has no per-request retention flag: what it keeps is set by the account's terms
  (API inputs and outputs are not used for training; zero data retention is an
  agreement with Anthropic for the account, not a request parameter).

What is sent: the instructions, the text given (for the post-call analysis: the
call's transcript with speaker labels and times) and the schema. Nothing else
about the organization, the call or its parties.

The key is the organization's own (integrations.ProviderCredential) when it
connected one, else the platform's. Errors come out as ``ProviderError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jagcall.kernel.providers import ProviderError, anthropic_client, openai_client, provider_operation

ANALYSIS_TOOL = "record_call_analysis"
MAX_OUTPUT_TOKENS = 2048


@dataclass(frozen=True)
class StructuredAnswer:
    data: dict
    provider: str
    model: str


def organization_api_key(organization, provider: str) -> str | None:
    """The organization's own key for ``provider``, or None to use the platform's."""
    from integrations.selectors import credential_get

    credential = credential_get(organization=organization, provider=provider)
    if credential is None:
        return None
    return (credential.values or {}).get("api_key") or None


def structured_object(
    *, organization, provider: str, model: str, instructions: str, text: str, schema: dict, name: str
) -> StructuredAnswer:
    """One JSON object following ``schema`` (a strict JSON Schema object), from ``provider``'s ``model``."""
    key = organization_api_key(organization, provider)
    if provider == "openai":
        return StructuredAnswer(_openai(key, model, instructions, text, schema, name), provider, model)
    if provider == "anthropic":
        return StructuredAnswer(_anthropic(key, model, instructions, text, schema, name), provider, model)
    raise ProviderError(provider or "llm", "analyze", f"unknown LLM provider {provider!r}: choose OpenAI or Anthropic")


def _openai(key, model, instructions, text, schema, name) -> dict:
    with provider_operation("openai", "analyze"):
        completion = openai_client(key).chat.completions.create(
            model=model,
            messages=[{"role": "system", "content": instructions}, {"role": "user", "content": text}],
            response_format={"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}},
            store=False,  # [!!] C17: ask OpenAI not to keep this completion
            max_completion_tokens=MAX_OUTPUT_TOKENS,
        )
    if not completion.choices:
        raise ProviderError("openai", "analyze", "the model returned no answer: try again")
    message = completion.choices[0].message
    if getattr(message, "refusal", None):
        raise ProviderError("openai", "analyze", f"the model refused: {message.refusal}")
    try:
        data = json.loads(message.content or "")
    except ValueError:
        raise ProviderError("openai", "analyze", "the model's answer is not JSON", retryable=True) from None
    if not isinstance(data, dict):
        raise ProviderError("openai", "analyze", "the model's answer is not a JSON object", retryable=True)
    return data


def _anthropic(key, model, instructions, text, schema, name) -> dict:
    with provider_operation("anthropic", "analyze"):
        message = anthropic_client(key).messages.create(
            model=model,
            max_tokens=MAX_OUTPUT_TOKENS,
            system=instructions,
            messages=[{"role": "user", "content": text}],
            tools=[{"name": name, "description": "Record the analysis of the call.", "input_schema": schema}],
            tool_choice={"type": "tool", "name": name},
        )
    for block in message.content:
        if getattr(block, "type", None) == "tool_use" and block.name == name:
            if not isinstance(block.input, dict):
                raise ProviderError("anthropic", "analyze", "the model's answer is not a JSON object", retryable=True)
            return dict(block.input)
    raise ProviderError("anthropic", "analyze", "the model did not answer with the analysis", retryable=True)


# --- a written reply (texts) ---------------------------------------------------------------------

MAX_REPLY_TOKENS = 400


def chat_reply(
    *, organization, provider: str, model: str, instructions: str, history: list[dict], temperature: float = 0.7
) -> str:
    """The model's next message in a written conversation.

    ``history``: [{"role": "user" | "assistant", "content": text}], oldest first, ending with the
    person's message. OpenAI is asked not to store the completion (C17), as for the analysis.
    """
    key = organization_api_key(organization, provider)
    if provider == "openai":
        with provider_operation("openai", "reply"):
            completion = openai_client(key).chat.completions.create(
                model=model,
                messages=[{"role": "system", "content": instructions}, *history],
                temperature=temperature,
                store=False,  # [!!] C17
                max_completion_tokens=MAX_REPLY_TOKENS,
            )
        if not completion.choices or not (completion.choices[0].message.content or "").strip():
            raise ProviderError("openai", "reply", "the model returned no answer", retryable=True)
        return completion.choices[0].message.content.strip()
    if provider == "anthropic":
        # Anthropic wants the turns to alternate and start with the person: merge neighbours of one role.
        turns: list[dict] = []
        for item in history:
            if turns and turns[-1]["role"] == item["role"]:
                turns[-1] = {"role": item["role"], "content": turns[-1]["content"] + "\n" + item["content"]}
            else:
                turns.append(dict(item))
        while turns and turns[0]["role"] != "user":
            turns.pop(0)
        with provider_operation("anthropic", "reply"):
            message = anthropic_client(key).messages.create(
                model=model, max_tokens=MAX_REPLY_TOKENS, system=instructions, messages=turns, temperature=temperature
            )
        text = "".join(getattr(block, "text", "") for block in message.content if getattr(block, "type", "") == "text")
        if not text.strip():
            raise ProviderError("anthropic", "reply", "the model returned no answer", retryable=True)
        return text.strip()
    raise ProviderError(provider or "llm", "reply", f"unknown LLM provider {provider!r}: choose OpenAI or Anthropic")

"""A JSON value valid for a JSON Schema, made from the conversation's own words: what the LLM
stand-ins answer for OpenAI's ``response_format: json_schema`` and Anthropic's forced tool input.

Covers what structured outputs and tool schemas use: object (properties, required), array
(items, minItems, maxItems), string (enum, const, format date / date-time / time / email / uri,
minLength, maxLength), integer and number (minimum, maximum, exclusive bounds, multipleOf),
boolean, null, type lists, anyOf / oneOf / allOf, and $ref into $defs / definitions. Strings
are sentences of the conversation, in turn; a property named like a summary gets a short one
(who said what first, and the last words, quoted from a transcript of "[mm:ss] Speaker: words"
lines), a description, notes or text the whole conversation, one whose name suggests a phone
number or email gets one.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta


_TURN = re.compile(r"^\[\d{1,3}:\d{2}(?::\d{2})?\]\s*([^:\n]{1,40}):\s*(.+)$")
SUMMARY_MAX = 500


def summary_of(text: str) -> str:
    """A short summary of a conversation: the turns of a transcript quoted, or its first sentences."""
    turns = [match.groups() for line in (text or "").splitlines() if (match := _TURN.match(line.strip()))]
    if len(turns) < 2:
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text or "") if s.strip()]
        return " ".join(sentences[:2])[:SUMMARY_MAX] or "The caller asked for an appointment."
    first = turns[0][0]
    speakers = list(dict.fromkeys(speaker for speaker, _ in turns))
    summary = f"A call of {len(turns)} turns between {' and '.join(speakers)}."
    answer = next((index for index, (speaker, _) in enumerate(turns) if speaker != first), None)
    if answer is not None:
        summary += f" {turns[answer][0]} said: “{turns[answer][1]}”"
        reply = next((words for speaker, words in turns[answer + 1 :] if speaker == first), None)
        if reply:
            summary += f" {first} answered: “{reply}”"
    summary += f" It ended with {turns[-1][0]}: “{turns[-1][1]}”"
    return summary[:SUMMARY_MAX]


class SchemaFiller:
    def __init__(self, schema: dict, text: str) -> None:
        self.root = schema
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text or "") if s.strip()]
        self.text = " ".join(sentences) or "The caller asked for an appointment."
        self._sentences = itertools.cycle(sentences or [self.text])
        self.summary = summary_of(text)

    def fill(self) -> object:
        return self.value(self.root, name="")

    def _resolve(self, schema: dict) -> dict:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 32:
            target: object = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")] if part else target
            schema, seen = target, seen + 1
        return schema

    def value(self, schema: dict, name: str) -> object:
        schema = self._resolve(schema)
        if not isinstance(schema, dict) or not schema:
            return self._string({}, name)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [self._resolve(o) for o in schema[key]]
                chosen = next((o for o in options if o.get("type") != "null"), options[0])
                return self.value(chosen, name)
        if schema.get("allOf"):
            merged: dict = {}
            for part in schema["allOf"]:
                part = self._resolve(part)
                properties = {**merged.get("properties", {}), **part.get("properties", {})}
                merged = {**merged, **part, "properties": properties}
                merged["required"] = sorted(set(merged.get("required", [])) | set(part.get("required", [])))
            return self.value(merged, name)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        return getattr(self, f"_{kind}")(schema, name)

    def _object(self, schema: dict, name: str) -> dict:
        properties = schema.get("properties", {})
        return {key: self.value(sub, key) for key, sub in properties.items()}

    def _array(self, schema: dict, name: str) -> list:
        count = max(schema.get("minItems", 0), min(2, schema.get("maxItems", 2)))
        items = schema.get("items", {})
        if isinstance(items, list):  # tuple form
            return [self.value(sub, name) for sub in items]
        return [self.value(items, name) for _ in range(count)]

    def _string(self, schema: dict, name: str) -> str:
        lowered = name.lower()
        fmt = schema.get("format")
        tomorrow = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
        if fmt == "date-time":
            value = tomorrow.isoformat().replace("+00:00", "Z")
        elif fmt == "date":
            value = tomorrow.date().isoformat()
        elif fmt == "time":
            value = "14:00:00"
        elif fmt == "email" or "email" in lowered:
            value = "caller@example.com"
        elif fmt in ("uri", "url") or lowered.endswith("url"):
            value = "https://example.com/"
        elif "phone" in lowered or lowered in ("to", "from", "number"):
            value = "+14155550123"
        elif "summary" in lowered:
            value = self.summary
        elif any(word in lowered for word in ("description", "notes", "text", "body", "content")):
            value = self.text
        else:
            value = next(self._sentences)
        maximum = schema.get("maxLength")
        if maximum is not None:
            value = value[:maximum]
        return value.ljust(schema.get("minLength", 0), ".")

    def _integer(self, schema: dict, name: str) -> int:
        return int(self._number(schema, name, integer=True))

    def _number(self, schema: dict, name: str, integer: bool = False) -> float:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        step = 1 if integer else 0.5
        if low is not None and high is not None:
            value = (low + high) / 2
        elif low is not None:
            value = low + step
        elif high is not None:
            value = min(high - step, 1)
        else:
            value = 1
        if integer:
            value = int(value)
        multiple = schema.get("multipleOf")
        if multiple:
            value = round(value / multiple) * multiple
        return value

    def _boolean(self, schema: dict, name: str) -> bool:
        return True

    def _null(self, schema: dict, name: str) -> None:
        return None


def instance_for(schema: dict, text: str) -> object:
    """A value valid for ``schema``, with strings taken from ``text``."""
    return SchemaFiller(schema, text).fill()

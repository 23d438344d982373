"""What the two LLM stand-ins (OpenAI, Anthropic) share: the text of a conversation, scripted
replies, token counts and the pieces a streamed reply arrives in.

Scripted replies (``replies``) are taken in order, one a request, then ``default_reply``. An item
is a string (the assistant says it) or a dict ``{"tool": name, "arguments": {...}}`` (the
assistant calls that function, optionally saying ``"text"`` first), as a model does when a
conversation calls for it: the call is answered whatever ``tools`` the request offered, so a
caller that did not offer it finds out. The request that brings the tool's result back takes
the next item, usually the text that follows. ``first_token_latency`` seconds pass before the
first event of a streamed reply (benchmarks); streamed text comes in word-sized deltas (a word,
its leading space, punctuation apart), as a model's tokens do, so sentence aggregation downstream
sees sentences end mid-stream.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

DEFAULT_REPLY = "Certainly, I can help with that. Could you tell me which day and time suit you best?"


def text_of(content) -> str:
    """The text of a message's content: a string, or a list of parts with "text" (or "content")."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part for part in content if isinstance(part, dict)]
        return " ".join(text_of(part.get("text") or part.get("content") or "") for part in parts)
    return ""


def conversation_text(messages: list, system: object = None) -> str:
    """The words of the conversation (not the system prompt, unless nothing else is there)."""
    spoken = " ".join(
        text_of(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") not in ("system", "developer")
    ).strip()
    if spoken:
        return spoken
    return " ".join([text_of(system)] + [text_of(m.get("content")) for m in messages if isinstance(m, dict)]).strip()


def tokens(text: str) -> int:
    return max(1, len(text.split()) * 4 // 3)


@dataclass
class ScriptedTurn:
    """One scripted answer: text, a function call, or both (text first)."""

    text: str | None = None
    tool: str | None = None
    arguments: dict = field(default_factory=dict)


def scripted_turn(item: str | dict) -> ScriptedTurn:
    if isinstance(item, dict):
        if not isinstance(item.get("tool"), str) or not isinstance(item.get("arguments", {}), dict):
            raise ValueError(f"A scripted tool call is {{'tool': name, 'arguments': {{...}}}}, not {item!r}")
        arguments = dict(item.get("arguments") or {})
        return ScriptedTurn(text=item.get("text") or None, tool=item["tool"], arguments=arguments)
    return ScriptedTurn(text=str(item))


class ScriptedReplies:
    """Replies given in order (``replies``: strings or tool calls), then ``default_reply``."""

    default_reply = DEFAULT_REPLY

    def _init_replies(self, replies: list[str | dict] | None) -> None:
        self.replies: list[str | dict] = list(replies or [])
        self.api_key = getattr(self, "api_key", None) or "sk-standin-" + secrets.token_hex(16)
        self.first_token_latency = 0.0  # seconds before the first event of a streamed reply

    def next_turn(self) -> ScriptedTurn:
        with self._lock:
            item = self.replies.pop(0) if self.replies else self.default_reply
        return scripted_turn(item)

    def next_reply(self) -> str:
        """The next scripted text (a scripted tool call gives its text, if any, or its arguments)."""
        turn = self.next_turn()
        if turn.tool is None:
            return turn.text or ""
        return turn.text or f"{turn.tool}({', '.join(f'{k}={v!r}' for k, v in turn.arguments.items())})"

    def _after_first_token_latency(self, events: Iterator[str]) -> Iterator[str]:
        """The stream's events, the first one held back ``first_token_latency`` seconds."""
        latency = self.first_token_latency
        for index, event in enumerate(events):
            if index == 0 and latency > 0:
                time.sleep(latency)
            yield event


_TOKEN = re.compile(r"\s*(?:[\w']+|[^\w\s])|\s+$")


def token_chunks(text: str) -> list[str]:
    """Text in word-sized deltas ("Hello", "!", " How", " can", ...) that join back into it exactly."""
    pieces = _TOKEN.findall(text)
    return pieces if "".join(pieces) == text else chunks_of(text)


def chunks_of(text: str, size: int = 3) -> list[str]:
    """Text in pieces of a few words (the deltas a streamed reply arrives in)."""
    words = text.split(" ")
    return [" ".join(words[i : i + size]) + (" " if i + size < len(words) else "") for i in range(0, len(words), size)]

"""What the two LLM stand-ins (OpenAI, Anthropic) share: the text of a conversation, scripted
replies, and token counts."""

from __future__ import annotations

import secrets

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


class ScriptedReplies:
    """Replies given in order (``replies``), then ``default_reply``."""

    default_reply = DEFAULT_REPLY

    def _init_replies(self, replies: list[str] | None) -> None:
        self.replies = list(replies or [])
        self.api_key = getattr(self, "api_key", None) or "sk-standin-" + secrets.token_hex(16)

    def next_reply(self) -> str:
        with self._lock:
            return self.replies.pop(0) if self.replies else self.default_reply


def chunks_of(text: str, size: int = 3) -> list[str]:
    """Text in pieces of a few words (the deltas a streamed reply arrives in)."""
    words = text.split(" ")
    return [" ".join(words[i : i + size]) + (" " if i + size < len(words) else "") for i in range(0, len(words), size)]

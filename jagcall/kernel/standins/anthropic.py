"""A stand-in for Anthropic's Messages API (POST /v1/messages, plain and ``stream: true`` with the
events message_start, content_block_start / _delta / _stop, message_delta, message_stop), in the
JSON the anthropic SDK parses, and its models list (GET /v1/models, ``limit``).

Replies: the items of ``replies``, in order, then ``default_reply``: a string is a text block, a
dict ``{"tool": name, "arguments": {...}}`` (optionally with ``"text"``: a text block first) a
``tool_use`` block with that input, stop_reason ``tool_use`` (see llm.py). Streamed, text comes
in word-sized ``text_delta`` events and a tool's input in ``input_json_delta`` pieces, after
``first_token_latency`` seconds. With ``tools`` and a
``tool_choice`` of ``{"type": "tool", "name": ...}`` (or ``{"type": "any"}``: the first tool), the
reply is one ``tool_use`` block whose ``input`` satisfies that tool's ``input_schema`` (strings
from the conversation, see schema.py), stop_reason ``tool_use``. Every request body is kept in
``messages``, with the ``anthropic-version`` header it came with in ``versions``. Auth:
``x-api-key``; errors in Anthropic's ``{"type": "error", "error": {type, message}}`` shape.
"""

from __future__ import annotations

import json
import secrets

from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply, sse_reply
from jagcall.kernel.standins.llm import ScriptedReplies, conversation_text, text_of, token_chunks, tokens
from jagcall.kernel.standins.schema import instance_for

MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}  # fmt: skip


class AnthropicStandIn(ScriptedReplies, StandIn):
    name = "anthropic"

    def __init__(self, api_key: str | None = None, replies: list[str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key or "sk-ant-standin-" + secrets.token_hex(16)
        self._init_replies(replies)
        self.messages: list[dict] = []
        self.versions: list[str] = []
        # Scripted forced-tool inputs: dicts returned in order, as they are (valid or not), before generated ones.
        self.structured_replies: list[dict] = []

    def error_reply(self, status: int, message: str) -> Reply:
        request_id = "req_" + secrets.token_hex(12)
        body = {"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message},
                "request_id": request_id}  # fmt: skip
        return json_reply(body, status=status, headers={"request-id": request_id})

    @staticmethod
    def _models(query: dict[str, str]) -> dict:
        """GET /v1/models (newest first, ``limit`` honoured), as the SDK's models.list() pages it."""
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 20
        data = [{"type": "model", "id": model, "display_name": model, "created_at": "2025-05-14T00:00:00Z"}
                for model in MODELS[: max(1, min(limit, 1000))]]  # fmt: skip
        return {"data": data, "has_more": limit < len(MODELS), "first_id": data[0]["id"], "last_id": data[-1]["id"]}

    def handle(self, request: RecordedRequest) -> Reply:
        if not secrets.compare_digest(request.header("x-api-key"), self.api_key):
            return self.error_reply(401, "invalid x-api-key")
        if request.path == "/v1/models" and request.method == "GET":
            return json_reply(self._models(request.query))
        if request.path != "/v1/messages" or request.method != "POST":
            return self.error_reply(404, f"Not found: {request.method} {request.path}")
        version = request.header("anthropic-version")
        if not version:
            return self.error_reply(400, "anthropic-version: header is required")
        body = request.json
        if not isinstance(body, dict):
            return self.error_reply(400, "The request body is not valid JSON.")
        with self._lock:
            self.messages.append(body)
            self.versions.append(version)
        for field in ("model", "max_tokens"):
            if not body.get(field):
                return self.error_reply(400, f"{field}: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_reply(400, "messages: at least one message is required")
        text = conversation_text(messages, body.get("system"))
        blocks = self._content(body, text)
        if isinstance(blocks, Reply):
            return blocks
        stop = "tool_use" if any(block["type"] == "tool_use" for block in blocks) else "end_turn"
        said = " ".join(block.get("text") or json.dumps(block.get("input")) for block in blocks)
        usage = {
            "input_tokens": tokens(text + text_of(body.get("system"))),
            "output_tokens": tokens(said),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "service_tier": "standard",
        }
        message = {"id": "msg_" + secrets.token_hex(12), "type": "message", "role": "assistant",
                   "model": body["model"], "content": blocks, "stop_reason": stop, "stop_sequence": None,
                   "usage": usage}  # fmt: skip
        if body.get("stream"):
            return sse_reply(self._after_first_token_latency(self._stream(message)))
        return json_reply(message)

    def _content(self, body: dict, text: str) -> list[dict] | Reply:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and "input_schema" in t]
        choice = body.get("tool_choice") or {}
        kind = choice.get("type") if isinstance(choice, dict) else None
        if tools and kind in ("tool", "any"):
            tool = tools[0] if kind == "any" else next((t for t in tools if t.get("name") == choice.get("name")), None)
            if tool is None:
                return self.error_reply(400, f"tool_choice names a tool that is not in tools: {choice.get('name')!r}")
            with self._lock:
                scripted = self.structured_replies.pop(0) if self.structured_replies else None
            tool_input = scripted if scripted is not None else instance_for(tool["input_schema"], text)
            block_id = "toolu_" + secrets.token_hex(12)
            return [{"type": "tool_use", "id": block_id, "name": tool["name"], "input": tool_input}]
        turn = self.next_turn()
        blocks = [{"type": "text", "text": turn.text}] if turn.text or turn.tool is None else []
        if turn.tool is not None:
            blocks.append({"type": "tool_use", "id": "toolu_" + secrets.token_hex(12), "name": turn.tool,
                           "input": turn.arguments})  # fmt: skip
        return blocks

    @staticmethod
    def _stream(message: dict):
        def event(name: str, data: dict) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        usage = message["usage"]
        start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
        yield event("message_start", {"message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                yield event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                yield event("ping", {})
                for piece in token_chunks(block["text"]):
                    delta = {"type": "text_delta", "text": piece}
                    yield event("content_block_delta", {"index": index, "delta": delta})
            else:
                yield event("content_block_start", {"index": index, "content_block": {**block, "input": {}}})
                encoded = json.dumps(block["input"])
                for i in range(0, len(encoded), 24):
                    delta = {"type": "input_json_delta", "partial_json": encoded[i : i + 24]}
                    yield event("content_block_delta", {"index": index, "delta": delta})
            yield event("content_block_stop", {"index": index})
        yield event("message_delta", {"delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                      "usage": {"output_tokens": usage["output_tokens"]}})  # fmt: skip
        yield event("message_stop", {})

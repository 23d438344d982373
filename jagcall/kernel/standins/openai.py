"""A stand-in for OpenAI's Chat Completions (POST /v1/chat/completions, plain and ``stream=True``
server-sent events) and models list (GET /v1/models, /v1/models/{id}), in the JSON the openai SDK
parses.

Replies: the items of ``replies``, in order, then ``default_reply``: a string is said, a dict
``{"tool": name, "arguments": {...}}`` (optionally with ``"text"``) is a call of that function
(``finish_reason`` ``tool_calls``), see llm.py. Streamed (``stream: true``), a reply arrives as
chat.completion.chunk events: the role, the text in word-sized deltas, each tool call opened
with its id and name and its arguments in pieces, the finish reason, then the usage when
``stream_options.include_usage`` asks for it, after ``first_token_latency`` seconds. With ``response_format``
``json_schema`` the reply is a JSON object valid for that schema (strings from the conversation,
see schema.py); ``json_object`` gives ``{"reply": ...}``. With ``tools`` and a ``tool_choice``
naming a function (or "required"), the reply is a tool call whose arguments satisfy its
parameters. ``structured_replies`` scripts json_schema answers, returned as given (even invalid
ones). Every request body is kept in ``completions`` (so a test can assert, say, that ``store``
was false). Auth: ``Authorization: Bearer <api_key>``; errors in OpenAI's
``{"error": {message, type, param, code}}`` shape.
"""

from __future__ import annotations

import json
import secrets
import time

from jagcall.kernel.standins.base import RecordedRequest, Reply, StandIn, json_reply, sse_reply
from jagcall.kernel.standins.llm import ScriptedReplies, conversation_text, token_chunks, tokens
from jagcall.kernel.standins.schema import instance_for

ARGUMENT_PIECE = 12  # characters of a tool call's arguments a streamed delta carries
MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-5-mini")
ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "rate_limit_error", 500: "server_error", 503: "server_error"}  # fmt: skip


class OpenAIStandIn(ScriptedReplies, StandIn):
    name = "openai"

    def __init__(self, api_key: str | None = None, replies: list[str] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self._init_replies(replies)
        self.completions: list[dict] = []
        # Scripted structured answers: dicts returned in order for ``json_schema`` requests, as they are
        # (valid for the schema or not), before the generated ones.
        self.structured_replies: list[dict] = []

    def error_reply(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> Reply:
        error = {"message": message, "type": ERROR_TYPES.get(status, "api_error"), "param": param, "code": code}
        return json_reply({"error": error}, status=status, headers={"x-request-id": "req_" + secrets.token_hex(12)})

    def handle(self, request: RecordedRequest) -> Reply:
        scheme, _, key = request.header("authorization").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key.strip(), self.api_key):
            return self.error_reply(401, "Incorrect API key provided.", code="invalid_api_key")
        if request.path == "/v1/models" and request.method == "GET":
            return json_reply({"object": "list", "data": [self._model(m) for m in MODELS]})
        if request.path.startswith("/v1/models/") and request.method == "GET":
            model = request.path.removeprefix("/v1/models/")
            if model not in MODELS:
                message = f"The model '{model}' does not exist"
                return self.error_reply(404, message, param="model", code="model_not_found")
            return json_reply(self._model(model))
        if request.path == "/v1/chat/completions" and request.method == "POST":
            return self._chat(request)
        return self.error_reply(404, f"Invalid URL ({request.method} {request.path})")

    @staticmethod
    def _model(model: str) -> dict:
        return {"id": model, "object": "model", "created": 1715367049, "owned_by": "system"}

    def _chat(self, request: RecordedRequest) -> Reply:
        body = request.json
        if not isinstance(body, dict):
            return self.error_reply(400, "We could not parse the JSON body of your request.")
        with self._lock:
            self.completions.append(body)
        if not body.get("model"):
            return self.error_reply(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_reply(400, "'messages' must be a non-empty array", param="messages")
        text = conversation_text(messages)
        content, tool_calls = self._answer(body, text)
        if isinstance(content, Reply):
            return content
        base = {"id": "chatcmpl-" + secrets.token_hex(12), "created": int(time.time()), "model": body["model"],
                "system_fingerprint": "fp_standin", "service_tier": "default"}  # fmt: skip
        usage = {"prompt_tokens": tokens(text), "completion_tokens": tokens(content or json.dumps(tool_calls)),
                 "total_tokens": 0}  # fmt: skip
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        finish = "tool_calls" if tool_calls else "stop"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = self._stream(base, content, tool_calls, finish, usage if include_usage else None)
            return sse_reply(self._after_first_token_latency(events))
        message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
        if tool_calls:
            message["tool_calls"] = tool_calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return json_reply({**base, "object": "chat.completion", "choices": [choice], "usage": usage})

    def _answer(self, body: dict, text: str) -> tuple[str | None | Reply, list | None]:
        forced = self._forced_tool(body)
        if isinstance(forced, Reply):
            return forced, None
        if forced is not None:
            arguments = instance_for(forced.get("parameters") or {"type": "object"}, text)
            call = {"id": "call_" + secrets.token_hex(12), "type": "function",
                    "function": {"name": forced["name"], "arguments": json.dumps(arguments)}}  # fmt: skip
            return None, [call]
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if not isinstance(schema, dict):
                message = "response_format.json_schema.schema is required"
                return self.error_reply(400, message, param="response_format"), None
            with self._lock:
                scripted = self.structured_replies.pop(0) if self.structured_replies else None
            return json.dumps(scripted if scripted is not None else instance_for(schema, text)), None
        if response_format.get("type") == "json_object":
            return json.dumps({"reply": self.next_reply()}), None
        turn = self.next_turn()
        if turn.tool is None:
            return turn.text, None
        call = {"id": "call_" + secrets.token_hex(12), "type": "function",
                "function": {"name": turn.tool, "arguments": json.dumps(turn.arguments)}}  # fmt: skip
        return turn.text, [call]

    def _forced_tool(self, body: dict) -> dict | None | Reply:
        tools = [t.get("function", {}) for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice")
        if not tools or choice in (None, "auto", "none"):
            return None
        if choice == "required":
            return tools[0]
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        tool = next((t for t in tools if t.get("name") == name), None)
        if tool is None:
            message = f"tool_choice names a function that is not in tools: {name!r}"
            return self.error_reply(400, message, param="tool_choice")
        return tool

    def _stream(self, base: dict, content: str | None, tool_calls: list | None, finish: str, usage: dict | None):
        def event(delta: dict | None, finish_reason: str | None = None, **extra) -> str:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            choices = [] if delta is None else [choice]
            chunk = {**base, "object": "chat.completion.chunk", "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n"

        yield event({"role": "assistant", "content": "" if content is not None else None, "refusal": None})
        for piece in token_chunks(content) if content else []:
            yield event({"content": piece})
        for index, call in enumerate(tool_calls or []):
            opening = {"index": index, "id": call["id"], "type": "function",
                       "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            yield event({"tool_calls": [opening]})
            arguments = call["function"]["arguments"]
            for i in range(0, len(arguments), ARGUMENT_PIECE):
                piece = {"index": index, "function": {"arguments": arguments[i : i + ARGUMENT_PIECE]}}
                yield event({"tool_calls": [piece]})
        yield event({}, finish)
        if usage is not None:
            yield event(None, usage=usage)
        yield "data: [DONE]\n\n"

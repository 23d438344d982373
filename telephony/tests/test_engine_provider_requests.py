"""The tools' requests to Twilio (a transfer, a text, the hang-up) run on threads of their own, not on the
process's one database thread: while one call's request is under way, every other call's database work
goes on. The conversation's side, with the services stood in by slow ones (the services themselves run
against the Twilio stand-in in test_engine_tools.py, test_engine_sms_tool.py and test_engine_call.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from channels.db import database_sync_to_async

from telephony.engine import conversation as conversation_module
from telephony.engine.conversation import Conversation
from telephony.tests.engine_support import browser_settings

SLOW = 0.6  # seconds Twilio takes to answer (a real line's few hundred milliseconds, and then some)
TRANSFER = {"type": "transfer", "number": "+14155550100", "description": "the front desk"}


class _Params:
    """What Pipecat hands a tool: the LLM's arguments and where the result goes."""

    def __init__(self, arguments: dict) -> None:
        self.arguments = arguments
        self.results: list[dict] = []

    async def result_callback(self, result, properties=None):
        self.results.append(result)


@pytest.fixture
def requests(monkeypatch):
    """The threads each stood-in service ran on, by name; each takes SLOW seconds."""
    threads: dict[str, int] = {}

    def slow(name, said):
        def service(*args, **kwargs):
            threads[name] = threading.get_ident()
            time.sleep(SLOW)
            return said

        return service

    monkeypatch.setattr(conversation_module, "call_transfer", slow("transfer", "Transferring you now."))
    monkeypatch.setattr(conversation_module, "text_the_caller", slow("text", "I've sent you a text."))
    monkeypatch.setattr(conversation_module, "call_end", slow("hang-up", True))
    return threads


def _conversation(**changes) -> tuple[Conversation, list[dict]]:
    conversation = Conversation(browser_settings(**changes), link=None)
    records: list[dict] = []

    async def record(**fields):
        records.append(fields)

    conversation._record_turn = record
    return conversation, records


async def _database_work_waited_while(tool) -> tuple[float, int]:
    """Seconds another call's database work waited while ``tool``'s request to Twilio was under way, and its thread."""
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(tool)
    await asyncio.sleep(0.05)  # the request is under way
    began = loop.time()
    shared = await database_sync_to_async(threading.get_ident)()  # a record, a search: any call's work
    waited = loop.time() - began
    await running
    return waited, shared


async def test_a_transfer_under_way_holds_up_no_other_calls_database_work(requests):
    conversation, records = _conversation(tools=(TRANSFER,))
    params = _Params({"destination": 1})

    waited, shared = await _database_work_waited_while(conversation._tool_transfer(params))

    assert waited < SLOW / 3
    assert requests["transfer"] != shared
    assert params.results == [{"ok": True, "result": "The call was handed over."}]
    assert records[-1]["tool"] == {"name": "transfer_call", "ok": True, "target": "the front desk"}
    assert conversation.end_reason == "transferred"


async def test_a_text_under_way_holds_up_no_other_calls_database_work(requests):
    conversation, records = _conversation(tools=({"type": "send_sms"},))
    params = _Params({"body": "Our address is 1 Main Street."})

    waited, shared = await _database_work_waited_while(conversation._tool_send_sms(params))

    assert waited < SLOW / 3
    assert requests["text"] != shared
    assert params.results == [{"ok": True, "result": "I've sent you a text."}]
    assert records[-1]["tool"] == {"name": "send_sms", "ok": True}


async def test_a_hang_up_under_way_holds_up_no_other_calls_database_work(requests):
    conversation, _records = _conversation(channel="phone", call_id="c")

    waited, shared = await _database_work_waited_while(conversation.end("time_limit"))

    assert waited < SLOW / 3
    assert requests["hang-up"] != shared
    assert conversation.end_reason == "time_limit"

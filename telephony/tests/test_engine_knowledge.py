"""The knowledge search of a caller's turn begins once Smart Turn has judged it complete and its final
transcript is in, before the turn is handed over to the LLM: the conversation's side, with the search stood in by a slow one that records its queries
(the search itself is knowledge's, tested there; a whole turn with passages runs in
telephony/tests/test_agent_test_socket.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from pipecat.frames.frames import TranscriptionFrame, VADUserStartedSpeakingFrame
from pipecat.processors.aggregators.llm_context import LLMContext

from telephony.engine import conversation as conversation_module
from telephony.engine.conversation import KNOWLEDGE_HEADER, SEARCHES_AHEAD, Conversation
from telephony.tests.engine_support import browser_settings

SEARCH_SECONDS = 0.15


@pytest.fixture
def searches(monkeypatch):
    """The queries searched, in order; each search takes SEARCH_SECONDS in its thread."""
    import time

    queries: list[str] = []

    def slow_search(settings, query):
        queries.append(query)
        if query == "fail":
            raise RuntimeError("the knowledge search failed")
        time.sleep(SEARCH_SECONDS)
        passage = {"chunk": "c1", "document": "handbook.md", "pages": "1", "score": 0.9, "text": f"about {query}"}
        return [passage], SEARCH_SECONDS

    monkeypatch.setattr(conversation_module, "conversation_knowledge", slow_search)
    return queries


@pytest.fixture(autouse=True)
async def drained():
    """After each test, the searches it left running are over: the next one's wait only for their own."""
    from channels.db import database_sync_to_async

    yield
    await database_sync_to_async(lambda: None)()  # queued behind them on the same thread


def _conversation() -> Conversation:
    config = browser_settings(system_prompt="Be kind.", knowledge=True)
    return Conversation(config, link=None)


def _final(text: str) -> TranscriptionFrame:
    return TranscriptionFrame(text, "caller", "2026-12-07T00:00:00Z")


def _context(said: str) -> LLMContext:
    return LLMContext(messages=[{"role": "system", "content": "Be kind."}, {"role": "user", "content": said}])


async def _hand_over(conversation: Conversation, context: LLMContext) -> float:
    """Seconds the hand-over to the LLM waited for the turn's knowledge."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    await conversation.retrieve(context, conversation._clock.get_time)
    return loop.time() - began


async def test_the_search_begins_with_the_final_transcript_and_the_hand_over_does_not_search_again(searches):
    conversation = _conversation()
    conversation._turn_analyzed()  # Smart Turn: the turn is complete
    await conversation.observe(_final("What are your hours?"), 0)
    await asyncio.sleep(SEARCH_SECONDS + 0.1)  # the wait for the STT's confirmation, longer than the search
    assert searches == ["What are your hours?"]

    context = _context("What are your hours?")
    waited = await _hand_over(conversation, context)

    assert waited < SEARCH_SECONDS / 2  # the passages were there already
    assert searches == ["What are your hours?"]
    system = context.get_messages()[0]["content"]
    assert KNOWLEDGE_HEADER in system and "about What are your hours?" in system
    assert [p["text"] for p in conversation._pending_retrieved] == ["about What are your hours?"]


async def test_a_final_before_smart_turns_verdict_is_searched_for_when_the_verdict_comes(searches):
    conversation = _conversation()
    await conversation.observe(VADUserStartedSpeakingFrame(), 0)
    await conversation.observe(_final("What are your hours?"), 0)
    await asyncio.sleep(0.05)
    assert searches == []  # the caller may only have paused; Smart Turn's inference has the cores

    conversation._turn_analyzed()
    await asyncio.sleep(SEARCH_SECONDS + 0.05)
    assert searches == ["What are your hours?"]
    assert await _hand_over(conversation, _context("What are your hours?")) < SEARCH_SECONDS / 2
    assert searches == ["What are your hours?"]


async def test_a_hand_over_before_the_search_ends_waits_only_for_the_rest_of_it(searches):
    conversation = _conversation()
    conversation._turn_analyzed()
    await conversation.observe(_final("Do you take new patients?"), 0)
    await asyncio.sleep(0.05)

    waited = await _hand_over(conversation, _context("Do you take new patients?"))

    assert waited < SEARCH_SECONDS - 0.02
    assert searches == ["Do you take new patients?"]
    assert [p["text"] for p in conversation._pending_retrieved] == ["about Do you take new patients?"]


async def test_words_said_after_the_search_began_are_searched_for_whole(searches):
    conversation = _conversation()
    conversation._turn_analyzed()
    await conversation.observe(_final("What are"), 0)  # Smart Turn judged a pause complete: searched
    await conversation.observe(VADUserStartedSpeakingFrame(), 0)  # but the caller goes on
    await conversation.observe(_final("your hours on Saturday?"), 0)
    await asyncio.sleep(0.01)
    assert searches == ["What are"]
    conversation._turn_analyzed()
    await asyncio.sleep(SEARCH_SECONDS * 2 + 0.1)
    assert searches == ["What are", "What are your hours on Saturday?"]

    # the aggregator joined the finals its own way: the same words are the same query
    context = _context("What are  your hours on Saturday? ")
    waited = await _hand_over(conversation, context)

    assert waited < SEARCH_SECONDS / 2
    assert len(searches) == 2
    assert "about What are your hours on Saturday?" in context.get_messages()[0]["content"]


async def test_a_turn_whose_words_were_not_searched_ahead_is_searched_at_the_hand_over(searches):
    conversation = _conversation()
    conversation._turn_analyzed()
    await conversation.observe(_final("Hello"), 0)
    await asyncio.sleep(0.01)

    context = _context("Hello, can I book a cleaning?")  # the LLM gets more than the finals seen so far
    waited = await _hand_over(conversation, context)

    assert waited >= SEARCH_SECONDS * 0.9
    assert searches == ["Hello", "Hello, can I book a cleaning?"]
    assert [p["text"] for p in conversation._pending_retrieved] == ["about Hello, can I book a cleaning?"]
    assert conversation._searches == {} and conversation._heard == []  # the next turn starts afresh


async def test_the_last_turns_final_seen_after_its_hand_over_starts_no_search_and_the_next_turn_does(searches):
    conversation = _conversation()
    conversation._turn_analyzed()
    await _hand_over(conversation, _context("Yes please."))
    await conversation.observe(_final("Yes please."), 0)  # the observer saw it after the hand-over
    await asyncio.sleep(0.01)
    assert searches == ["Yes please."] and conversation._searches == {}

    await conversation.observe(VADUserStartedSpeakingFrame(), 0)  # the caller's next turn
    await conversation.observe(_final("And on Sunday?"), 0)
    conversation._turn_analyzed()
    await asyncio.sleep(0.01)
    assert searches == ["Yes please.", "And on Sunday?"]


async def test_searches_ahead_are_bounded_for_a_caller_who_goes_on_and_on(searches):
    conversation = _conversation()
    conversation._turn_analyzed()
    for word in ("one", "two", "three", "four", "five"):
        await conversation.observe(_final(word), 0)
    assert len(conversation._searches) == SEARCHES_AHEAD
    await asyncio.gather(*conversation._searches.values())
    assert searches == ["one", "one two", "one two three"]


async def test_no_search_ahead_for_an_agent_without_knowledge(searches):
    conversation = _conversation()
    conversation.settings = dataclasses.replace(conversation.settings, knowledge=False)
    conversation._turn_analyzed()
    await conversation.observe(_final("What are your hours?"), 0)
    context = _context("What are your hours?")
    await _hand_over(conversation, context)
    assert searches == []
    assert KNOWLEDGE_HEADER not in context.get_messages()[0]["content"]


async def test_a_failed_search_ahead_leaves_the_turn_answered_without_passages(searches, caplog):
    conversation = _conversation()
    conversation._turn_analyzed()
    await conversation.observe(_final("fail"), 0)
    await asyncio.sleep(0.05)
    context = _context("fail")
    with caplog.at_level(logging.ERROR, logger="telephony.engine.conversation"):
        await _hand_over(conversation, context)
    assert searches == ["fail"]
    assert conversation._pending_retrieved == []
    assert context.get_messages()[0]["content"].startswith("Be kind.")
    assert KNOWLEDGE_HEADER not in context.get_messages()[0]["content"]
    assert "knowledge search failed" in caplog.text

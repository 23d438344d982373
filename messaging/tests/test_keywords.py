"""Which texts are an opt-out, an opt-in or a request for help (messaging/keywords.py), property-based.

The free-text rule is written in the module's docstring; these tests hold it to its examples and to
generated variants: requests to stop being texted in many phrasings unsubscribe, and texts that only
contain a stop word (negated, or about something else: "stop by tomorrow?") do not.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from messaging.keywords import (
    HELP_KEYWORDS, OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, Intent, intent_of, is_free_text_revocation, keyword_of,
)  # fmt: skip

_AROUND = st.text(alphabet=string.whitespace + string.punctuation + "¡¿…“”‘’«»🙏👍", max_size=6)
_ALL = sorted(OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS)


def _cased(word: str, cases: list[bool]) -> str:
    return "".join(c.lower() if lower else c for c, lower in zip(word, cases, strict=False))


@given(
    keyword=st.sampled_from(_ALL),
    cases=st.lists(st.booleans(), min_size=11, max_size=11),
    before=_AROUND,
    after=_AROUND,
)
def test_any_keyword_in_any_case_with_spaces_and_punctuation_around_is_that_keyword(keyword, cases, before, after):
    assert keyword_of(before + _cased(keyword, cases) + after) == keyword


@given(keyword=st.sampled_from(sorted(OPT_OUT_KEYWORDS)), cases=st.lists(st.booleans(), min_size=11, max_size=11))
def test_every_opt_out_keyword_is_an_opt_out(keyword, cases):
    assert intent_of(f" {_cased(keyword, cases)}! ") == (Intent.OPT_OUT, keyword)


@pytest.mark.parametrize("body", ["opt out", "Opt-Out", "OPT OUT."])
def test_opt_out_written_as_two_words_is_optout(body):
    assert intent_of(body) == (Intent.OPT_OUT, "OPTOUT")


@given(
    keyword=st.sampled_from(_ALL),
    extra=st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=5),
    where=st.sampled_from(["before", "after"]),
)
def test_a_keyword_glued_to_other_letters_is_not_a_keyword(keyword, extra, where):
    body = extra + keyword if where == "before" else keyword + extra
    if body.upper() in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS:  # "STOP"+"ALL" is STOPALL
        return
    assert keyword_of(body) is None


def test_start_yes_unstop_opt_in_and_help_info_ask_for_help():
    assert {intent_of(word)[0] for word in ("START", "yes", "Unstop")} == {Intent.OPT_IN}
    assert {intent_of(word)[0] for word in ("HELP", "info?")} == {Intent.HELP}


def test_twilios_opt_out_type_is_honoured_whatever_the_text():
    assert intent_of("Arrêt", opt_out_type="STOP") == (Intent.OPT_OUT, "STOP")
    assert intent_of("Reprendre", opt_out_type="START") == (Intent.OPT_IN, "START")
    assert intent_of("Aide", opt_out_type="HELP") == (Intent.HELP, "HELP")


# --- free-text revocations ------------------------------------------------------------------------

_POLITE_BEFORE = st.sampled_from(["", "please ", "Please, ", "hi, ", "Hello. ", "can you ", "could you please ", "pls "])
_POLITE_AFTER = st.sampled_from(["", ".", "!", "?", " thanks", " now", " please", " asap!", " 🙏"])
_STOP_VERBS = st.sampled_from(["stop", "Stop", "STOP", "quit", "cease"])
_WHAT = st.sampled_from(
    ["texting me", "messaging me", "sending me texts", "sending me these messages", "contacting me", "calling me",
     "the texts", "all these messages", "texting", "sending me reminders", "spamming me", "bothering me"]
)  # fmt: skip
_REMOVALS = st.sampled_from(
    ["remove me from your list", "take me off your list", "Unsubscribe me", "opt me out", "I want to opt out",
     "no more texts", "leave me alone", "lose my number", "delete my number", "don't text me again",
     "Do not contact me", "never text me", "do not call me", "we would like to unsubscribe"]
)  # fmt: skip


@given(before=_POLITE_BEFORE, verb=_STOP_VERBS, what=_WHAT, after=_POLITE_AFTER)
def test_a_request_to_stop_texting_in_many_phrasings_is_a_revocation(before, verb, what, after):
    body = f"{before}{verb} {what}{after}"
    assert is_free_text_revocation(body), body
    assert intent_of(body)[0] in (Intent.OPT_OUT_FREE_TEXT, Intent.OPT_OUT)


@given(before=_POLITE_BEFORE, removal=_REMOVALS, after=_POLITE_AFTER)
def test_a_request_to_be_removed_is_a_revocation(before, removal, after):
    assert is_free_text_revocation(f"{before}{removal}{after}")


@pytest.mark.parametrize(
    "body", ["stop please", "Please stop", "STOP NOW", "unsubscribe, thanks", "stop it", "Stop all please"]
)
def test_a_keyword_with_only_politeness_around_it_is_a_revocation(body):
    assert intent_of(body) == (Intent.OPT_OUT_FREE_TEXT, "")


_NEGATIONS = st.sampled_from(["don't", "do not", "never", "please don't", "dont", "Please do not"])


@given(negation=_NEGATIONS, what=_WHAT, after=_POLITE_AFTER)
def test_a_negated_stop_is_not_a_revocation(negation, what, after):
    body = f"{negation} stop {what}{after}"
    assert not is_free_text_revocation(body), body


@pytest.mark.parametrize(
    "body",
    [
        "don't stop",
        "stop by tomorrow?",  # the documented judgement: a visit, not a revocation
        "Can I stop by at 3?",
        "I'll stop at the pharmacy then text you",
        "stop at the shop, text you later",
        "the bus stop",
        "the end of the month works",
        "Yes I'll be there",
        "What time do you close?",
        "can we end at 4?",
        "send me the address",
        "call me back please",
        "Stop! I'm on my way",
        "I need to cancel my appointment",
        "please don't stop sending the reminders",
        "",
    ],
)
def test_texts_that_are_not_revocations(body):
    assert intent_of(body) == (Intent.NONE, "")


@given(body=st.text(alphabet=string.ascii_letters + " .,!?'", max_size=80))
def test_no_text_without_a_stop_or_removal_word_is_a_revocation(body):
    lowered = body.lower()
    markers = ("stop", "quit", "cease", "end", "remove", "take", "unsubscribe", "opt", "no more", "leave", "lose",
               "delete", "forget", "don", "do not", "never", "not", "won", "cancel", "revoke", "want", "would", "wish",
               "dont", "didn")  # fmt: skip
    if any(marker in lowered for marker in markers):
        return
    assert not is_free_text_revocation(body)

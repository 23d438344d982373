"""What an inbound text asks for: an opt-out, an opt-in, help, or nothing of the kind.

Keywords (CTIA, Twilio's defaults, the FCC's 2025 revocation rule): the whole
text is one word, in any case, spaces and punctuation around it ignored
("Stop!", " quit. ").

- opt-out: STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT (also "OPT OUT");
- opt-in: START, YES, UNSTOP;
- help: HELP, INFO.

Consent may be revoked "by any reasonable means" (47 CFR 64.1200(a)(10),
in force since April 2025), so a text that asks in words to stop being
contacted is a revocation too. The rule chosen, so that it can be reviewed:

1. A request to stop being contacted: a stop verb (stop, quit, cease, end)
   followed (with at most three words such as me, all, these, your between) by a contacting verb or noun (texting,
   messaging, sending, contacting, calling, bothering, texts, messages...):
   "please stop texting me", "can you stop sending these?", "stop the texts".
2. A request not to be contacted: "don't / do not / never" + text, message,
   contact, call + me/us: "don't text me again", "do not contact us".
3. A request to be taken off: "remove me", "take me off", "unsubscribe me",
   "opt me out", "I want to opt out", "no more texts/messages", "leave me alone",
   "lose my number", "delete my number".
4. A keyword with only politeness around it: "stop please", "please stop",
   "STOP NOW", "unsubscribe, thanks".

Not a revocation: a stop verb that is negated ("don't stop", "please don't stop
texting me", "never stop sending the reminders"), or that has no contacting word
after it ("stop by tomorrow?", "can I stop by at 3", "the bus stop", "the end of
the month"). "Stop by tomorrow?" is read as a visit, not a revocation: its only
stop word is "stop by", which is not about messages. A question is a revocation
when it asks for one ("can you stop texting me?").

A free-text revocation is acted on at once (with the one confirmation) and
flagged for a member to review; a false positive is one click to undo.
"""

from __future__ import annotations

import enum
import re
import unicodedata

OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# A keyword is one short word; longer texts are not read as one.
_LONGEST_KEYWORD_TEXT = 64
_SURROUNDING = re.compile(r"^[\W_]+|[\W_]+$")


class Intent(enum.Enum):
    NONE = "none"
    OPT_OUT = "opt_out"  # a keyword
    OPT_OUT_FREE_TEXT = "opt_out_free_text"  # in the person's own words
    OPT_IN = "opt_in"
    HELP = "help"


def _normalized(body: str) -> str:
    text = unicodedata.normalize("NFKC", body or "")
    return text.replace("’", "'").replace("‘", "'").replace("`", "'")


def keyword_of(body: str) -> str | None:
    """The keyword ``body`` is, upper case ("STOP", "OPTOUT"), or None."""
    if not body or len(body) > _LONGEST_KEYWORD_TEXT:
        return None
    word = _SURROUNDING.sub("", _normalized(body)).upper()
    word = re.sub(r"^OPT[\s\-_]+OUT$", "OPTOUT", word)
    if word in OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS:
        return word
    return None


_STOP = r"(?:stop|quit|cease|end)"
_CONTACTING = (
    r"(?:text(?:s|ing)?|messag(?:e|es|ing)|sms|send(?:ing)?|contact(?:ing)?|call(?:s|ing)?|bother(?:ing)?|"
    r"spam(?:ming)?|email(?:s|ing)?|reminders?|notifications?|alerts?|promotions?|offers?)"
)
# The only words allowed between the stop verb and what it stops ("stop all these texts").
_FILLER = r"(?:me|us|all|the|these|those|this|your|any|of|with|them|my|so|many|more|automated|marketing)"
_NEGATION = r"(?:don'?t|do\s+not|never|not|won'?t|dont|didn'?t)"
_REQUESTS = [
    # 1. stop + a contacting word within three words ("stop texting me", "stop sending me these texts")
    re.compile(rf"(?<!\w){_STOP}\s+(?:{_FILLER}\s+){{0,3}}?{_CONTACTING}(?!\w)"),
    # 2. don't text me / do not contact us
    re.compile(
        rf"(?<!\w){_NEGATION}\s+(?:ever\s+)?(?:text|message|contact|call|sms|email)\s+(?:me|us|this\s+number)(?!\w)"
    ),
    # 3. take me off
    re.compile(
        r"(?<!\w)(?:remove\s+(?:me|my\s+number|this\s+number)|take\s+(?:me|my\s+number)\s+off|"
        r"unsubscribe\s+(?:me|us|this\s+number)|opt\s+(?:me|us)\s+out|(?:i|we)\s+(?:want|would\s+like|wish)\s+to\s+"
        r"(?:opt[\s-]?out|unsubscribe)|no\s+more\s+(?:texts|messages|calls|sms)|leave\s+(?:me|us)\s+alone|"
        r"(?:lose|delete|forget)\s+my\s+number)(?!\w)"
    ),
]
_POLITE = r"(?:please|pls|plz|now|thanks|thank\s+you|thx|it|all|asap|immediately|already)"
_POLITE_KEYWORD = re.compile(
    rf"^(?:{_POLITE}\s+)*(?:stop|stopall|unsubscribe|cancel|quit|end|revoke|opt\s*-?\s*out)(?:\s+{_POLITE})*$"
)


def _negated(text: str, start: int) -> bool:
    """Is the phrase at ``start`` negated by the few words before it ("please don't stop texting")?"""
    before = text[max(0, start - 30) : start]
    return re.search(rf"(?<!\w){_NEGATION}(?:\s+\w+){{0,2}}\s*$", before) is not None


def is_free_text_revocation(body: str) -> bool:
    """Does ``body`` ask, in words, to stop being texted or contacted? (The rule is in the module's docstring.)"""
    if not body:
        return False
    text = re.sub(r"\s+", " ", _normalized(body).lower())
    words_only = re.sub(r"[^\w\s'-]", " ", text)
    words_only = re.sub(r"\s+", " ", words_only).strip()
    if _POLITE_KEYWORD.match(words_only):
        return True
    for index, pattern in enumerate(_REQUESTS):
        for match in pattern.finditer(words_only):
            if index == 0 and _negated(words_only, match.start()):
                continue
            return True
    return False


def intent_of(body: str, *, opt_out_type: str = "") -> tuple[Intent, str]:
    """What an inbound text asks, and the keyword it used ("" for free text or nothing).

    ``opt_out_type``: Twilio's Advanced Opt-Out ``OptOutType`` (STOP, START, HELP), honoured first.
    """
    kind = (opt_out_type or "").strip().upper()
    keyword = keyword_of(body)
    if kind == "STOP":
        return Intent.OPT_OUT, keyword or "STOP"
    if kind == "START":
        return Intent.OPT_IN, keyword or "START"
    if kind == "HELP":
        return Intent.HELP, keyword or "HELP"
    if keyword in OPT_OUT_KEYWORDS:
        return Intent.OPT_OUT, keyword
    if keyword in OPT_IN_KEYWORDS:
        return Intent.OPT_IN, keyword
    if keyword in HELP_KEYWORDS:
        return Intent.HELP, keyword
    if is_free_text_revocation(body):
        return Intent.OPT_OUT_FREE_TEXT, ""
    return Intent.NONE, ""

"""Messaging: agent replies to texts and their loop guard."""

from jagcall.kernel.env import env

# An agent answering texts stops after this many automatic replies in a row in one conversation (no member
# wrote in between), and sends at most MESSAGING_AGENT_REPLIES_PER_WINDOW in MESSAGING_AGENT_REPLY_WINDOW_SECONDS:
# two bots answering each other stop within a few messages.
MESSAGING_AGENT_MAX_CONSECUTIVE_REPLIES = env("MESSAGING_AGENT_MAX_CONSECUTIVE_REPLIES", default=5, cast=int)
MESSAGING_AGENT_REPLIES_PER_WINDOW = env("MESSAGING_AGENT_REPLIES_PER_WINDOW", default=3, cast=int)
MESSAGING_AGENT_REPLY_WINDOW_SECONDS = env("MESSAGING_AGENT_REPLY_WINDOW_SECONDS", default=60, cast=int)
# How many earlier messages of the conversation the agent reads before replying.
MESSAGING_AGENT_HISTORY = env("MESSAGING_AGENT_HISTORY", default=20, cast=int)
# A CSV of contacts larger than this many rows is imported by Celery with a progress bar; smaller at once.
MESSAGING_IMPORT_INLINE_ROWS = env("MESSAGING_IMPORT_INLINE_ROWS", default=200, cast=int)
MESSAGING_IMPORT_MAX_BYTES = env("MESSAGING_IMPORT_MAX_BYTES", default=5 * 1024 * 1024, cast=int)

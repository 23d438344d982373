"""CSV and JSON Lines exports, streamed a keyset batch at a time (never all rows in memory).

Each export ends with the latest signed digest of the organization's chain
head (compliance/digests.py) when one has been written: in JSON Lines a last
line ``{"chain_digest": {...}}``; in CSV a last row whose first cell is
``#chain_digest`` and whose second is the digest as JSON. With the rows of an
unfiltered export and the public key, anyone can check that the chain they
were given reaches the head that was signed.
"""

from __future__ import annotations

import csv
import io
import json

from asgiref.sync import sync_to_async

from compliance.chain import format_time

CSV_COLUMNS = (
    "occurred_at", "id", "seq", "action", "outcome", "actor_type", "actor", "actor_key", "api_key_prefix",
    "resource_type", "resource_id", "ip", "user_agent", "request_id", "changes", "metadata", "prev_hash", "hash",
)
# A cell starting with one of these is a formula in spreadsheet programs (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ROWS_PER_CHUNK = 500


def event_as_dict(event) -> dict:
    """One event as exported in JSON Lines; the same shape as the API's items."""
    return {
        "id": str(event.id),
        "occurred_at": format_time(event.occurred_at),
        "seq": event.seq,
        "action": event.action,
        "outcome": event.outcome,
        "actor": {
            "type": event.actor_type,
            "label": event.actor_label,
            "user_id": str(event.actor_id) if event.actor_id else None,
            "api_key_prefix": event.api_key_prefix or None,
        },
        "resource": {"type": event.resource_type or None, "id": event.resource_id or None},
        "ip": str(event.ip) if event.ip else None,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "changes": event.changes,
        "metadata": event.metadata,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False)
    value = str(value)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_row(event) -> list:
    return [
        _cell(format_time(event.occurred_at)), _cell(event.id), _cell(event.seq), _cell(event.action),
        _cell(event.outcome), _cell(event.actor_type), _cell(event.actor_label), _cell(event.actor_key),
        _cell(event.api_key_prefix), _cell(event.resource_type), _cell(event.resource_id), _cell(event.ip),
        _cell(event.user_agent), _cell(event.request_id), _cell(event.changes), _cell(event.metadata),
        _cell(event.prev_hash), _cell(event.hash),
    ]


CHAIN_DIGEST_CSV_MARKER = "#chain_digest"


def _digest_json(digest: dict) -> str:
    return json.dumps(digest, sort_keys=True, separators=(",", ":"))


def csv_chunks(events, digest: dict | None = None):
    """CSV text (header first) in chunks of a few hundred rows, then the chain digest row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    count = 0
    for event in events:
        writer.writerow(_csv_row(event))
        count += 1
        if count % _ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if digest:
        writer.writerow([CHAIN_DIGEST_CSV_MARKER, _digest_json(digest)])
    yield buffer.getvalue()


def jsonl_chunks(events, digest: dict | None = None):
    lines = []
    for event in events:
        lines.append(json.dumps(event_as_dict(event), ensure_ascii=False, sort_keys=True))
        if len(lines) == _ROWS_PER_CHUNK:
            yield "\n".join(lines) + "\n"
            lines = []
    if digest:
        lines.append(json.dumps({"chain_digest": digest}, sort_keys=True, separators=(",", ":")))
    if lines:
        yield "\n".join(lines) + "\n"


async def as_async(chunks):
    """Serve a synchronous chunk generator to an ASGI server without buffering it.

    Django's StreamingHttpResponse, given a sync iterator under ASGI, reads it
    whole into memory first; each chunk here is produced in the sync thread
    (which holds the database connection) as the client takes it.
    """
    done = object()
    step = sync_to_async(lambda: next(chunks, done), thread_sensitive=True)
    while True:
        chunk = await step()
        if chunk is done:
            return
        yield chunk

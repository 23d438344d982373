"""Benchmark of the encryption kernel (jagcall/kernel/crypto): fields, listings, files.

Run from the repository root:

    .venv/bin/python bench/crypto.py [--rows 1000] [--repeat 15] [--file-mb 200]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under a fresh directory in /tmp (or JAGCALL_DATA_DIR /
--data-dir when given), creates a scratch test database, and at the end drops
it, stops the servers it started and removes the directory.

What it measures:

1. Field throughput on 1 KB values: the organization's Tink AEAD called
   directly, and the same work through the field path (pre_save on
   SecretNote.body, then decryption through the descriptor and through
   field.decrypt), so the field's own overhead shows.
2. Listing cost, the target of the encryption design: a listing of --rows
   rows touching two encrypted fields (SecretNote.body, .details) against
   the same rows unencrypted (PlainNote), alternating A/B in one run, with a
   warm key cache; plus the first listing after the key cache is emptied.
3. Encrypted files: a --file-mb MB file produced by a generator (never whole
   in memory) saved through EncryptedFileStorage and read back in 1 MB
   chunks, with throughput, stored-size overhead and the peak RSS increase
   sampled every 20 ms; repeated at --small-file-mb MB to show the peak does
   not grow with the file.

Figures are medians over --repeat rounds. MB means 2**20 bytes throughout.
Nothing is asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import io
import json
import os
import pstats
import resource
import shlex
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, scratch_database, section  # noqa: E402

MB = 1024 * 1024
KB = 1024


# --- small helpers -----------------------------------------------------------------


def spread(values):
    """min-max of a list of seconds, in ms, for the printed detail lines."""
    return f"min {min(values) * 1e3:.2f} / max {max(values) * 1e3:.2f} ms"


def timed(function, *args):
    gc.collect()
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


class PeakRss:
    """Peak resident memory of this process while the block runs (psutil, sampled every 20 ms)."""

    def __init__(self, interval=0.02):
        import psutil

        self.process = psutil.Process()
        self.interval = interval

    def __enter__(self):
        gc.collect()
        self.maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB  # Linux reports KB
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        rss = self.process.memory_info().rss
        self.samples += 1
        if rss > self.peak:
            self.peak = rss

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KB
        return False

    @property
    def increase(self):
        return self.peak - self.base

    @property
    def maxrss_increase(self):
        return self.maxrss_after - self.maxrss_before


# --- the data ----------------------------------------------------------------------------

WORDS = (
    "caller asked about the invoice from march and wants a callback tomorrow morning before ten "
    "the agent confirmed the address and noted that the card on file expires next month so a new "
    "one is needed please follow up with billing and mark the ticket as waiting on customer"
).split()


def body_text(i: int, length: int = 200) -> str:
    words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(60)]
    text = f"Note {i}: " + " ".join(words)
    return text[:length]


def details_dict(i: int) -> dict:
    return {
        "caller": f"+1 415 555 {i % 10000:04d}",
        "duration_s": 30 + i % 900,
        "tags": ["billing", "callback"] if i % 2 else ["support"],
        "agent": ["alex", "sam", "kim"][i % 3],
    }


def title_for(i: int, rows: int) -> str:
    # Scrambled so ORDER BY title really sorts.
    return f"call {(i * 7919) % max(rows, 1):06d}"


class GeneratedRecording(io.RawIOBase):
    """``size`` bytes produced 1 MB at a time, hashed (SHA-256) as they are produced.

    Each megabyte is a fixed random block with its index in the first 8
    bytes, so no two segments are equal; the whole file never exists in memory.
    """

    def __init__(self, size: int, block: bytes):
        super().__init__()
        self.size = size
        self.block = block
        self.sha256 = hashlib.sha256()
        self._made = 0
        self._index = 0
        self._pending = memoryview(b"")

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self._pending:
            remaining = self.size - self._made
            if remaining <= 0:
                return 0
            piece = self._index.to_bytes(8, "big") + self.block[8:]
            if remaining < len(piece):
                piece = piece[:remaining]
            self._index += 1
            self._made += len(piece)
            self.sha256.update(piece)
            self._pending = memoryview(piece)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class NullSink(io.RawIOBase):
    """Counts what is written and keeps nothing."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def writable(self):
        return True

    def write(self, data):
        size = memoryview(data).nbytes
        self.count += size
        return size


# --- 1. field throughput --------------------------------------------------------------------


def bench_fields(org, *, values: int, repeat: int, results: dict):
    from jagcall.kernel.crypto.fields import FORMAT, Ciphertext
    from jagcall.kernel.crypto.keys import organization_keys
    from tests.crypto_example.models import SecretNote

    section(f"1. Field throughput: {values:,} values of 1 KB, median of {repeat}")
    primitive = organization_keys(org.id).aead
    field = SecretNote._meta.get_field("body")
    pool_size = 1000
    texts = [os.urandom(KB // 2).hex() for _ in range(pool_size)]  # 1024 ASCII characters each
    plaintexts = [text.encode() for text in texts]
    order = [k % pool_size for k in range(values)]

    # The direct path: one fixed associated data, the way a caller of Tink would.
    fixed_ad = f"jagcall:field:v1|{org.id}|crypto_example.secretnote|body|bench".encode()
    raw_ciphertexts = [primitive.encrypt(p, fixed_ad) for p in plaintexts]

    # The field path: real instances, each with its own primary key and associated data.
    writers = [SecretNote(organization=org, title="bench", body=text) for text in texts]
    sealed = [field.pre_save(note, True) for note in writers]
    readers = []
    for note, value in zip(writers, sealed):
        reader = SecretNote.from_db("default", ["id", "organization_id", "body"], [note.pk, org.id, Ciphertext(bytes(value))])
        readers.append((reader, reader.__dict__, Ciphertext(bytes(value))))
    assert readers[0][0].body == texts[0]  # the field path decrypts what it encrypted

    def direct_encrypt():
        encrypt = primitive.encrypt
        for k in order:
            encrypt(plaintexts[k], fixed_ad)

    def direct_decrypt():
        decrypt = primitive.decrypt
        for k in order:
            decrypt(raw_ciphertexts[k], fixed_ad)

    def field_encrypt():
        pre_save = field.pre_save
        for k in order:
            note = writers[k]
            note.body = texts[k]
            pre_save(note, True)

    def field_decrypt_descriptor():
        for k in order:
            reader, state, value = readers[k]
            state["body"] = value  # as loaded from the database: not decrypted yet
            reader.body

    def field_decrypt_method():
        decrypt = field.decrypt
        for k in order:
            reader, _state, value = readers[k]
            decrypt(reader, value)

    def empty_loop():
        for k in order:
            reader, state, value = readers[k]
            state["body"] = value

    variants = [
        ("Tink aead.encrypt (direct)", "direct_encrypt", direct_encrypt),
        ("Tink aead.decrypt (direct)", "direct_decrypt", direct_decrypt),
        ("field set + pre_save (encrypt)", "field_encrypt", field_encrypt),
        ("field descriptor .body (decrypt)", "field_decrypt_descriptor", field_decrypt_descriptor),
        ("field.decrypt() (decrypt)", "field_decrypt_method", field_decrypt_method),
        ("  loop + state reset alone", "empty_loop", empty_loop),
    ]
    for _label, _key, function in variants:  # warm-up
        function()
    times = {key: [] for _label, key, _f in variants}
    for _round in range(repeat):
        for _label, key, function in variants:
            times[key].append(timed(function))
    print(f"{'path':<36} {'median ms':>10} {'µs/op':>8} {'ops/s':>10} {'MB/s':>8}   spread")
    for label, key, _function in variants:
        seconds = median(times[key])
        per_op = seconds / values * 1e6
        ops = values / seconds
        throughput = values * KB / seconds / MB
        results[f"fields.{key}"] = {"seconds": seconds, "us_per_op": per_op, "ops": ops, "mbps": throughput}
        print(f"{label:<36} {seconds * 1e3:>10.1f} {per_op:>8.2f} {ops:>10,.0f} {throughput:>8.1f}   {spread(times[key])}")
    enc_over = results["fields.field_encrypt"]["us_per_op"] - results["fields.direct_encrypt"]["us_per_op"]
    dec_over = results["fields.field_decrypt_descriptor"]["us_per_op"] - results["fields.direct_decrypt"]["us_per_op"]
    results["fields.encrypt_overhead_us"] = enc_over
    results["fields.decrypt_overhead_us"] = dec_over
    print(f"field overhead over direct Tink: encrypt +{enc_over:.2f} µs/op, decrypt (descriptor) +{dec_over:.2f} µs/op")
    print(f"stored size of a 1 KB value: {len(FORMAT) + len(raw_ciphertexts[0])} bytes "
          f"(jc1 3 + Tink prefix 5 + nonce 12 + data 1024 + tag 16)")
    del writers, readers, sealed, raw_ciphertexts
    gc.collect()


# --- 2. listing cost ------------------------------------------------------------------------


def insert_rows(org, rows: int):
    from django.db import connection

    from tests.crypto_example.models import PlainNote, SecretNote

    plain = [
        PlainNote(organization=org, title=title_for(i, rows), body=body_text(i), details=details_dict(i))
        for i in range(rows)
    ]
    secret = [
        SecretNote(organization=org, title=title_for(i, rows), body=body_text(i), details=details_dict(i))
        for i in range(rows)
    ]
    start = time.perf_counter()
    PlainNote.objects.bulk_create(plain, batch_size=500)
    plain_seconds = time.perf_counter() - start
    start = time.perf_counter()
    SecretNote.objects.bulk_create(secret, batch_size=500)
    secret_seconds = time.perf_counter() - start
    with connection.cursor() as cursor:
        for model in (PlainNote, SecretNote):
            cursor.execute(f'VACUUM ANALYZE "{model._meta.db_table}"')
        sizes = {}
        for model in (PlainNote, SecretNote):
            table = model._meta.db_table
            cursor.execute(
                f'SELECT avg(octet_length("body")), avg(octet_length("details"::text)), '
                f'pg_total_relation_size(%s) FROM "{table}"',
                [table],
            )
            sizes[model.__name__] = cursor.fetchone()
        cursor.execute(
            f'SELECT avg(octet_length("details")) FROM "{SecretNote._meta.db_table}"'
        )
        secret_details_bytes = cursor.fetchone()[0]
    return plain_seconds, secret_seconds, sizes, secret_details_bytes


def bench_listing(org, *, rows: int, repeat: int, profile: bool, results: dict):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from jagcall.kernel.crypto import keys
    from jagcall.kernel.crypto.fields import FORMAT, Ciphertext, associated_data
    from jagcall.kernel.crypto.keys import organization_keys
    from tests.crypto_example.models import PlainNote, SecretNote

    section(f"2. Listing cost: {rows:,} rows, two encrypted fields, median of {repeat} alternating A/B rounds")
    plain_seconds, secret_seconds, sizes, secret_details_bytes = insert_rows(org, rows)
    print(f"inserted {rows:,} PlainNote rows in {plain_seconds * 1e3:.0f} ms and {rows:,} SecretNote rows in "
          f"{secret_seconds * 1e3:.0f} ms (bulk_create, encrypting 2 fields per row)")
    p_body, p_details, p_total = sizes["PlainNote"]
    s_body, _s_details_text, s_total = sizes["SecretNote"]
    print(f"average stored bytes: body {float(p_body):.0f} plain vs {float(s_body):.0f} encrypted bytea; "
          f"details {float(p_details):.0f} (jsonb as text) vs {float(secret_details_bytes):.0f} encrypted bytea")
    print(f"table size incl. indexes and TOAST: PlainNote {p_total / KB:.0f} KB, SecretNote {s_total / KB:.0f} KB")

    columns = ("organization", "title", "body", "details")  # organization_id: the associated data needs it

    def fetch(model):
        return list(model.objects.for_org(org).only(*columns).order_by("title")[:rows])

    def touch(notes):
        # What a template listing does: read both fields of every row.
        total = 0
        for note in notes:
            total += len(note.body)
            total += len(note.details)
        return total

    def listing(model):
        return touch(fetch(model))

    expected = touch(fetch(PlainNote))
    organization_keys(org.id)  # warm key cache
    assert touch(fetch(SecretNote)) == expected, "the encrypted listing must read back the same plaintext"
    with CaptureQueriesContext(connection) as queries:
        listing(SecretNote)
    secret_queries = len(queries)
    with CaptureQueriesContext(connection) as queries:
        listing(PlainNote)
    plain_queries = len(queries)
    print(f"queries per listing: plain {plain_queries}, encrypted {secret_queries} (warm key cache)")
    print(f"SQL: {queries.captured_queries[0]['sql'][:160]}...")

    for _ in range(2):  # warm-up
        listing(PlainNote)
        listing(SecretNote)
        fetch(PlainNote)
        fetch(SecretNote)

    times = {"plain": [], "secret": [], "plain_fetch": [], "secret_fetch": []}
    for round_ in range(repeat):
        pair = [("plain", PlainNote), ("secret", SecretNote)]
        if round_ % 2:
            pair.reverse()
        for key, model in pair:
            times[key].append(timed(listing, model))
        for key, model in pair:
            times[f"{key}_fetch"].append(timed(fetch, model))

    plain_ms = median(times["plain"]) * 1e3
    secret_ms = median(times["secret"]) * 1e3
    ratio = secret_ms / plain_ms
    plain_fetch_ms = median(times["plain_fetch"]) * 1e3
    secret_fetch_ms = median(times["secret_fetch"]) * 1e3
    results["listing"] = {
        "rows": rows,
        "plain_ms": plain_ms,
        "secret_ms": secret_ms,
        "ratio": ratio,
        "overhead_pct": (ratio - 1) * 100,
        "plain_fetch_ms": plain_fetch_ms,
        "secret_fetch_ms": secret_fetch_ms,
        "plain_queries": plain_queries,
        "secret_queries": secret_queries,
    }
    print(f"{'listing (fetch + touch body, details)':<44} {'median ms':>10}   spread")
    print(f"{'  plain     PlainNote':<44} {plain_ms:>10.2f}   {spread(times['plain'])}")
    print(f"{'  encrypted SecretNote':<44} {secret_ms:>10.2f}   {spread(times['secret'])}")
    print(f"  ratio encrypted/plain {ratio:.3f}  ->  overhead {(ratio - 1) * 100:+.1f}%  (target: under +10%)")
    print(f"{'fetch only (no field touched)':<44} {'median ms':>10}")
    print(f"{'  plain':<44} {plain_fetch_ms:>10.2f}   {spread(times['plain_fetch'])}")
    print(f"{'  encrypted (bytea, not decrypted)':<44} {secret_fetch_ms:>10.2f}   {spread(times['secret_fetch'])}")
    decrypt_share = (secret_ms - secret_fetch_ms) - (plain_ms - plain_fetch_ms)
    print(f"  => of the {secret_ms - plain_ms:+.2f} ms difference, fetching accounts for "
          f"{secret_fetch_ms - plain_fetch_ms:+.2f} ms and decrypting on access for {decrypt_share:+.2f} ms")
    print("     (the plain fetch already parses details' JSON; the encrypted one leaves it to the first access)")

    # Context: the same listings rendered by a template, as a page would.
    from django.template import Context, Engine

    template = Engine(autoescape=True).from_string(
        "<table>{% for note in notes %}<tr><td>{{ note.title }}</td><td>{{ note.body|truncatechars:80 }}</td>"
        "<td>{{ note.details.agent }}</td><td>{{ note.details.caller }}</td></tr>{% endfor %}</table>"
    )

    def rendered(model):
        return template.render(Context({"notes": fetch(model)}))

    assert rendered(PlainNote) == rendered(SecretNote)
    render_times = {"plain": [], "secret": []}
    for round_ in range(repeat):
        pair = [("plain", PlainNote), ("secret", SecretNote)]
        if round_ % 2:
            pair.reverse()
        for key, model in pair:
            render_times[key].append(timed(rendered, model))
    plain_render_ms = median(render_times["plain"]) * 1e3
    secret_render_ms = median(render_times["secret"]) * 1e3
    results["listing"].update(plain_render_ms=plain_render_ms, secret_render_ms=secret_render_ms)
    print(f"{'fetch + render a template table':<44} {'median ms':>10}")
    print(f"{'  plain':<44} {plain_render_ms:>10.2f}   {spread(render_times['plain'])}")
    print(f"{'  encrypted':<44} {secret_render_ms:>10.2f}   {spread(render_times['secret'])}")
    print(f"  ratio {secret_render_ms / plain_render_ms:.3f}  ->  overhead {(secret_render_ms / plain_render_ms - 1) * 100:+.1f}%")

    # Cold key cache: the first listing after the cache is emptied (one DB read + two unwraps).
    cold = []
    for _ in range(max(5, repeat // 3)):
        keys.evict()
        cold.append(timed(listing, SecretNote))
    keys.evict()
    gc.collect()
    start = time.perf_counter()
    organization_keys(org.id)
    unwrap_ms = (time.perf_counter() - start) * 1e3
    results["listing"].update(cold_first_ms=cold[0] * 1e3, cold_median_ms=median(cold) * 1e3, unwrap_ms=unwrap_ms)
    print(f"cold key cache (keys.evict() before the listing): first {cold[0] * 1e3:.2f} ms, "
          f"median of {len(cold)} {median(cold) * 1e3:.2f} ms; organization_keys() miss alone {unwrap_ms:.2f} ms")

    # The same listing with only(title, body, details): the tenant queryset keeps
    # organization loaded (the associated data needs it), so this stays one query.
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        notes = list(SecretNote.objects.for_org(org).only("title", "body", "details").order_by("title")[:rows])
        touch(notes)
        deferred_ms = (time.perf_counter() - start) * 1e3
    results["listing"].update(deferred_org_queries=len(queries), deferred_org_ms=deferred_ms)
    print(f"only('title', 'body', 'details') without naming 'organization' -> {len(queries)} query(ies), "
          f"{deferred_ms:.1f} ms (for_org() querysets always load organization_id, which the associated data needs)")

    # Where the decrypting time goes, per listing (2 values per row), warm cache.
    notes = fetch(SecretNote)
    loaded = [(note, note.__dict__, note.__dict__["body"], note.__dict__["details"]) for note in notes]
    assert all(isinstance(item[2], Ciphertext) for item in loaded)
    body_field = SecretNote._meta.get_field("body")
    details_field = SecretNote._meta.get_field("details")
    primitive = organization_keys(org.id).aead
    prepared = [
        (bytes(b)[len(FORMAT):], associated_data(n, "body"), bytes(d)[len(FORMAT):], associated_data(n, "details"))
        for n, _s, b, d in loaded
    ]
    plaintexts = [(primitive.decrypt(b, ab), primitive.decrypt(d, ad)) for b, ab, d, ad in prepared]

    def via_descriptor():
        for note, state, body, details in loaded:
            state["body"] = body
            state["details"] = details
            note.body
            note.details

    def reset_only():
        for note, state, body, details in loaded:
            state["body"] = body
            state["details"] = details

    def tink_only():
        decrypt = primitive.decrypt
        for b, ab, d, ad in prepared:
            decrypt(b, ab)
            decrypt(d, ad)

    def key_lookups():
        org_id = org.id
        for _ in loaded:
            organization_keys(org_id)
            organization_keys(org_id)

    def build_ad():
        for note, _s, _b, _d in loaded:
            associated_data(note, "body")
            associated_data(note, "details")

    def copies():
        for _n, _s, body, details in loaded:
            bytes(body)[len(FORMAT):]
            bytes(details)[len(FORMAT):]

    def decode():
        for b, d in plaintexts:
            body_field.decode_value(b)
            details_field.decode_value(d)

    def plain_touch():
        for note in plain_notes:
            note.body
            note.details

    # Diagnostics, not the kernel's code: Tink's per-key primitive without the keyset
    # wrapper (private API), and a leaner decrypt path the kernel could adopt.
    try:
        key_primitive = primitive._primitive_set.primary().primitive
        prefix = len(FORMAT) + 5  # jc1 + Tink's 5-byte key prefix
        unprefixed = [(bytes(b)[prefix:], ab, bytes(d)[prefix:], ad) for (_n, _s, b, d), (_b, ab, _d, ad) in zip(loaded, prepared)]
    except AttributeError:
        key_primitive = None

    def tink_key_primitive():
        decrypt = key_primitive.decrypt
        for b, ab, d, ad in unprefixed:
            decrypt(b, ab)
            decrypt(d, ad)

    meta = SecretNote._meta
    ad_base = f"jagcall:field:v1|{org.id}|{meta.app_label}.{meta.model_name}|"
    start_of_ciphertext = len(FORMAT)

    def lean_decrypt(notes):
        # One key lookup per listing, one str(pk) per row, AD from a cached prefix.
        decrypt = organization_keys(org.id).aead.decrypt
        loads = json.loads
        total = 0
        for note in notes:
            state = note.__dict__
            row = f"|{note.pk}"
            body = decrypt(state["body"][start_of_ciphertext:], (ad_base + "body" + row).encode()).decode()
            details = loads(decrypt(state["details"][start_of_ciphertext:], (ad_base + "details" + row).encode()))
            state["body"], state["details"] = body, details
            total += len(body) + len(details)
        return total

    def lean_path():
        for note, state, body, details in loaded:
            state["body"] = body
            state["details"] = details
        lean_decrypt(notes)

    def lean_listing():
        return lean_decrypt(fetch(SecretNote))

    assert lean_listing() == expected
    lean_path()
    assert all(state["body"] == p[0].decode() for (_n, state, _b, _d), p in zip(loaded, plaintexts))

    plain_notes = fetch(PlainNote)
    parts = [
        ("descriptor access, both fields (total)", via_descriptor),
        ("  loop + state reset alone", reset_only),
        ("  Tink aead.decrypt", tink_only),
        ("  organization_keys() cache hits", key_lookups),
        ("  associated_data() f-strings", build_ad),
        ("  bytes() copy + FORMAT slice", copies),
        ("  decode (utf-8 / json.loads)", decode),
        ("plain attribute access, both fields", plain_touch),
        ("what-if: lean kernel path (see comments)", lean_path),
    ]
    if key_primitive is not None:
        parts.insert(3, ("    of which per-key primitive, no wrapper", tink_key_primitive))
    for _label, function in parts:
        function()
    part_times = {label: [] for label, _f in parts}
    for _ in range(repeat):
        for label, function in parts:
            part_times[label].append(timed(function))
    print(f"where decrypting on access goes, per listing of {rows:,} rows ({2 * rows:,} values):")
    breakdown = {}
    for label, _function in parts:
        ms = median(part_times[label]) * 1e3
        breakdown[label.strip()] = ms
        print(f"  {label:<42} {ms:>8.2f} ms  ({ms * 1e3 / (2 * rows):.2f} µs/value)")
    results["listing"]["breakdown"] = breakdown
    floor_pct = breakdown["Tink aead.decrypt"] / results["listing"]["plain_ms"] * 100
    results["listing"]["floor_pct"] = floor_pct
    print(f"  floor, Tink's decrypt calls alone, against the plain listing: +{floor_pct:.1f}%")

    # What-if, measured like the real thing: plain listing vs fetch + the lean decrypt path, A/B.
    what_if = {"plain": [], "lean": []}
    for round_ in range(repeat):
        pair = [("plain", lambda: listing(PlainNote)), ("lean", lean_listing)]
        if round_ % 2:
            pair.reverse()
        for key, function in pair:
            what_if[key].append(timed(function))
    lean_ratio = median(what_if["lean"]) / median(what_if["plain"])
    results["listing"]["lean_pct"] = (lean_ratio - 1) * 100
    results["listing"]["lean_ms"] = median(what_if["lean"]) * 1e3
    print(f"  what-if listing with the lean path: {median(what_if['lean']) * 1e3:.2f} ms vs plain "
          f"{median(what_if['plain']) * 1e3:.2f} ms -> {(lean_ratio - 1) * 100:+.1f}%")

    if profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(repeat):
            listing(SecretNote)
        profiler.disable()
        print(f"cProfile of {repeat} encrypted listings (top 20 by own time):")
        stream = io.StringIO()
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(20)
        print("\n".join("  " + line for line in stream.getvalue().splitlines() if line.strip()))


# --- 3. files -------------------------------------------------------------------------------


def bench_file(org, size_mb: int, block: bytes, results: dict, key: str):
    from django.core.files import File

    from jagcall.kernel.crypto.keys import organization_keys
    from jagcall.kernel.crypto.storage import CHUNK, HEADER_SIZE, EncryptedFileStorage, encrypted_upload_to, file_associated_data
    from tests.crypto_example.models import SecretNote

    size = size_mb * MB
    storage = SecretNote._meta.get_field("attachment").storage
    assert isinstance(storage, EncryptedFileStorage)
    name = encrypted_upload_to(SecretNote(organization=org), "recording.wav")

    # Context: producing + hashing the source alone, and Tink's streaming encryption to nowhere.
    source = GeneratedRecording(size, block)
    start = time.perf_counter()
    for _chunk in iter(lambda: source.read(CHUNK), b""):
        pass
    generate_seconds = time.perf_counter() - start
    source = GeneratedRecording(size, block)
    sink = NullSink()
    start = time.perf_counter()
    with organization_keys(org.id).streaming.new_encrypting_stream(sink, file_associated_data(org.id, name)) as stream:
        for chunk in iter(lambda: source.read(CHUNK), b""):
            stream.write(chunk)
    tink_seconds = time.perf_counter() - start

    source = GeneratedRecording(size, block)
    with PeakRss() as write_rss:
        start = time.perf_counter()
        saved = storage.save_for(organization_id=org.id, name=name, content=File(source, name="recording.wav"))
        write_seconds = time.perf_counter() - start
    assert saved == name
    stored = storage.size(name)

    reader_sha = hashlib.sha256()
    read_bytes = 0
    with PeakRss() as read_rss:
        start = time.perf_counter()
        with storage.open_for(organization_id=org.id, name=name) as handle:
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    break
                reader_sha.update(chunk)
                read_bytes += len(chunk)
        read_seconds = time.perf_counter() - start
    equal = reader_sha.digest() == source.sha256.digest() and read_bytes == size
    storage.delete(name)

    row = {
        "size_mb": size_mb,
        "generate_mbps": size / generate_seconds / MB,
        "tink_encrypt_mbps": size / tink_seconds / MB,
        "tink_ciphertext": sink.count,
        "write_mbps": size / write_seconds / MB,
        "read_mbps": size / read_seconds / MB,
        "write_s": write_seconds,
        "read_s": read_seconds,
        "write_peak_mb": write_rss.increase / MB,
        "read_peak_mb": read_rss.increase / MB,
        "write_maxrss_mb": write_rss.maxrss_increase / MB,
        "read_maxrss_mb": read_rss.maxrss_increase / MB,
        "maxrss_before_mb": write_rss.maxrss_before / MB,
        "maxrss_after_mb": read_rss.maxrss_after / MB,
        "rss_base_mb": write_rss.base / MB,
        "samples": write_rss.samples + read_rss.samples,
        "stored": stored,
        "overhead_pct": (stored - size) / size * 100,
        "equal": equal,
        "header": HEADER_SIZE,
    }
    results[key] = row
    print(f"{size_mb} MB file {name}")
    print(f"  source generator + SHA-256 alone  {row['generate_mbps']:8.0f} MB/s")
    print(f"  Tink streaming encrypt to a sink  {row['tink_encrypt_mbps']:8.0f} MB/s")
    print(f"  save() through the storage        {row['write_mbps']:8.0f} MB/s  ({write_seconds:.2f} s; "
          f"encrypt to a temporary file, then the backend copies it)")
    print(f"  open() + read in 1 MB chunks      {row['read_mbps']:8.0f} MB/s  ({read_seconds:.2f} s; "
          f"SHA-256 {'matches' if equal else 'DIFFERS'}, {read_bytes:,} bytes)")
    print(f"  peak RSS increase (psutil/20 ms)  write {row['write_peak_mb']:.1f} MB, read {row['read_peak_mb']:.1f} MB "
          f"over a base of {row['rss_base_mb']:.0f} MB ({row['samples']} samples)")
    print(f"  ru_maxrss                         {row['maxrss_before_mb']:.1f} MB before -> {row['maxrss_after_mb']:.1f} MB after "
          f"(+{row['write_maxrss_mb'] + row['read_maxrss_mb']:.1f} MB)")
    print(f"  stored {stored:,} bytes for {size:,}: +{stored - size:,} bytes ({row['overhead_pct']:.4f}%)")
    return row


def bench_files(org, *, big_mb: int, small_mb: int, results: dict):
    section(f"3. Encrypted files: streamed {small_mb} MB and {big_mb} MB")
    block = os.urandom(MB)
    sizes = [small_mb, big_mb] if small_mb != big_mb else [big_mb]
    for index, size_mb in enumerate(sizes):
        bench_file(org, size_mb, block, results, key=f"file.{index}")


# --- summary -------------------------------------------------------------------------------


def print_summary(results: dict, args, facts: dict, elapsed: float):
    section("Summary")
    if "listing" in results:
        listing = results["listing"]
        print(f"{'Listing ' + str(listing['rows']) + ' rows, touch body + details (warm keys)':<58} {'median':>12}")
        print(f"{'  plain (PlainNote)':<58} {listing['plain_ms']:>9.2f} ms")
        print(f"{'  encrypted (SecretNote)':<58} {listing['secret_ms']:>9.2f} ms")
        print(f"{'  ratio encrypted/plain':<58} {listing['ratio']:>12.3f}")
        print(f"{'  overhead (target < +10%)':<58} {listing['overhead_pct']:>+11.1f}%")
        if "plain_render_ms" in listing:
            render_pct = (listing["secret_render_ms"] / listing["plain_render_ms"] - 1) * 100
            print(f"{'  with a template table: plain / encrypted, overhead':<58} {listing['plain_render_ms']:>6.2f} / "
                  f"{listing['secret_render_ms']:.2f} ms, {render_pct:+.1f}%")
        print(f"{'  fetch only: plain / encrypted':<58} {listing['plain_fetch_ms']:>6.2f} / {listing['secret_fetch_ms']:.2f} ms")
        if "floor_pct" in listing:
            print(f"{'  floor: Tink decrypt calls alone, vs plain':<58} {listing['floor_pct']:>+11.1f}%")
            print(f"{'  what-if: lean decrypt path, A/B against plain':<58} {listing['lean_pct']:>+11.1f}%")
        print(f"{'  first listing, cold key cache':<58} {listing['cold_first_ms']:>9.2f} ms")
        print(f"{'  queries per listing: plain / encrypted':<58} {listing['plain_queries']:>6} / {listing['secret_queries']}")
    print(f"{'Fields, 1 KB values':<40} {'µs/op':>8} {'ops/s':>10} {'MB/s':>8}")
    for key, label in (
        ("direct_encrypt", "  Tink encrypt (direct)"),
        ("field_encrypt", "  field pre_save (encrypt)"),
        ("direct_decrypt", "  Tink decrypt (direct)"),
        ("field_decrypt_descriptor", "  field descriptor (decrypt)"),
        ("field_decrypt_method", "  field.decrypt()"),
    ):
        row = results.get(f"fields.{key}")
        if row:
            print(f"{label:<40} {row['us_per_op']:>8.2f} {row['ops']:>10,.0f} {row['mbps']:>8.1f}")
    files = [results[k] for k in sorted(results) if k.startswith("file.")]
    if files:
        print(f"{'Files (streamed)':<16} {'write MB/s':>10} {'read MB/s':>10} {'peak RSS +MB w/r':>18} "
              f"{'ru_maxrss +MB':>14} {'overhead':>10} {'SHA-256':>8}")
        for row in files:
            print(f"{'  ' + str(row['size_mb']) + ' MB':<16} {row['write_mbps']:>10.0f} {row['read_mbps']:>10.0f} "
                  f"{row['write_peak_mb']:>8.1f} / {row['read_peak_mb']:<7.1f} "
                  f"{row['write_maxrss_mb'] + row['read_maxrss_mb']:>14.1f} {row['overhead_pct']:>9.4f}% "
                  f"{'ok' if row['equal'] else 'DIFFERS':>8}")
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"options: rows={args.rows} repeat={args.repeat} file_mb={args.file_mb} small_file_mb={args.small_file_mb} "
          f"field_values={args.field_values}")
    for name, value in facts.items():
        print(f"{name}: {value}")
    print(f"total time: {elapsed:.1f} s")


# --- set-up and tear-down ---------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Benchmark of JagCall's encryption kernel (fields, listings, files).")
    parser.add_argument("--rows", type=int, default=1000, help="rows per model in the listing benchmark (default 1000)")
    parser.add_argument("--repeat", type=int, default=15, help="rounds per measurement; medians are reported (default 15)")
    parser.add_argument("--file-mb", type=int, default=200, help="size of the large streamed file in MB (default 200)")
    parser.add_argument("--small-file-mb", type=int, default=20, help="size of the small streamed file in MB (default 20)")
    parser.add_argument("--field-values", type=int, default=20000, help="1 KB values per field-throughput round (default 20000)")
    parser.add_argument("--data-dir", help="directory for the embedded servers (default: a fresh one under /tmp, removed at the end)")
    parser.add_argument("--skip", action="append", default=[], choices=["fields", "listing", "files"], help="leave a part out")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the encrypted listing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    results: dict = {}
    with scratch_database(args.data_dir, packages=("Django", "tink", "psycopg", "psutil")) as facts:
        from accounts.services import organization_create, user_create

        user = user_create(email="bench@jagcall.invalid", password=None, name="Bench")
        org = organization_create(name="Bench Dental", owner=user)
        print(f"organization {org.id} created with its keys")

        # Files first: ru_maxrss is a high-water mark, so it means most before the other parts grow the heap.
        if "files" not in args.skip:
            bench_files(org, big_mb=args.file_mb, small_mb=args.small_file_mb, results=results)
        if "fields" not in args.skip:
            bench_fields(org, values=args.field_values, repeat=args.repeat, results=results)
        if "listing" not in args.skip:
            bench_listing(org, rows=args.rows, repeat=args.repeat, profile=args.profile, results=results)
        print_summary(results, args, facts, time.perf_counter() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())

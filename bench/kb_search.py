"""Benchmark: knowledge base search with a million chunks in the table, and the recall of its vector ranking.

Run from the repository root:

    .venv/bin/python bench/kb_search.py [--quick] [--rounds 3] [--queries 240]

It needs no network and touches no existing data: it starts its own embedded
PostgreSQL + Redis under .data/bench-kb (--quick: .data/bench-kb-quick; or
--data-dir), keeps the scratch database there, and seeds it once (a later
run finds the organizations it loaded and skips them; --fresh loads again):

- 1,000,000 chunks in 100 organizations (--quick: 100,000 in 20): one
  organization with 100,000 chunks ("large"), one with 10,000 ("small"), the
  others sharing the rest, each organization one knowledge base of documents
  of 500 chunks;
- the two measured organizations' chunks are real: short texts (windows of
  5-14 words over the documents of knowledge/tests/quality/ and the handbook
  of knowledge/tests/handbook.py, and sentences built from a vocabulary of
  the same businesses), embedded with the product's embedder
  (knowledge.processing.embeddings: the product's Embedder, one thread in
  each of two processes) in blocks; the vectors are kept in .data/bench-kb/
  vectors (--vectors-dir), so a later run does not embed them again. The
  other organizations' vectors are the first 4,000 real ones perturbed with
  noise and normalized (cosine about 0.9 to the one each starts from), so
  their rows lie among the measured ones in the HNSW graphs of the partitions
  they share, as other customers' documents would;
- every chunk's text is encrypted as the field encrypts it (its pre_save, with
  the row's organization keys and id, so every hit decrypts; the other
  organizations' chunks repeat a pool of 2,000 texts, each encrypted for its
  own row) and its keyword index is ``index_terms`` of its text;
- the rows are written with COPY into the partitioned table as the tables'
  owner (DATABASE_OWNER_URL: row-level security does not apply to it), with
  the secondary indexes (HNSW, GIN, B-trees; their definitions are taken from
  migration 0001) dropped during the load and built after it, which is
  several times faster than maintaining an HNSW graph row by row.

Measured through ``knowledge.selectors.search`` itself (the application's
role, row-level security on), for the small and the large organization, with
--queries questions (the 75 of knowledge/tests/quality/questions.json and
questions built from the same vocabulary), interleaved, in --rounds rounds:

- latency p50/p95 of a hybrid search with k=5, including the question's
  embedding, and without it (the same search with the question's vector
  looked up instead of computed: every query and decryption is still run);
- rows returned: always k;
- recall@5 of the vector ranking (mode "vector") against the exact top 5 (an
  exact scan in SQL with the same query vector; a hit whose distance ties the
  fifth exact one counts as found).

Settings are compared side by side in the same run (--variant, repeated):
each variant sets the search's HNSW parameters (knowledge.selectors'
HNSW_EF_SEARCH, HNSW_MAX_SCAN_TUPLES, HNSW_ITERATIVE_SCAN) and the
exact/approximate threshold (KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS) for its
searches only. Per variant: medians over the rounds. Goals: p95 < 8 ms at
10k chunks, < 20 ms at 100k, recall@5 >= 0.95, always k rows: PASS/FAIL
lines at the end.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import importlib
import json
import os
import random
import shlex
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median, percentile, scratch_database, section  # noqa: E402

GOAL_P95_SMALL_MS = 8.0
GOAL_P95_LARGE_MS = 20.0
GOAL_RECALL = 0.95
K = 5
QUALITY = ROOT / "knowledge" / "tests" / "quality"
OWNER_EMAIL = "owner@bench-kb.invalid"
CHUNKS_PER_DOCUMENT = 500
FILLER_BASE = 4000

SIZES = {
    # total chunks, organizations, the large one, the small one
    "full": {"total": 1_000_000, "organizations": 100, "large": 100_000, "small": 10_000},
    "quick": {"total": 100_000, "organizations": 20, "large": 40_000, "small": 10_000},
    # Checks that the benchmark runs (with exact_max below 3000 the large one takes the HNSW path); measures nothing.
    "smoke": {"total": 8_000, "organizations": 5, "large": 3_000, "small": 1_000},
}


# --- the texts ----------------------------------------------------------------------------------

SUBJECTS = [
    "the front desk", "our technician", "the billing office", "the night manager", "your dentist", "the vet",
    "the plumber on call", "a hygienist", "the housekeeping team", "the mill's guide", "the pharmacy",
    "the receptionist", "a licensed electrician", "the kitchen", "the concierge", "our nurse", "the museum shop",
]
VERBS = [
    "confirms", "reschedules", "refunds", "inspects", "cleans", "replaces", "books", "cancels", "explains",
    "repairs", "charges for", "waives", "prepares", "checks", "delivers", "records", "answers questions about",
]
OBJECTS = [
    "the water heater", "a late cancellation", "the deposit", "a root canal", "the vaccination record",
    "a burst pipe", "the room key", "the parking permit", "an insurance claim", "the annual checkup",
    "a leaking faucet", "the breakfast order", "the tide schedule", "a crown fitting", "the dog's dental cleaning",
    "the pet's microchip", "a gift card", "the invoice", "the sewer line camera", "a whitening session",
    "the emergency visit", "the pool towels", "the flour grinding demonstration", "the x-ray", "a boarding stay",
]
WHEN = [
    "before noon", "on weekends", "within 24 hours", "after 6 p.m.", "every spring", "on the first visit",
    "at no extra cost", "for a $45 fee", "by phone", "through the portal", "in writing", "the same day",
    "within 14 business days", "once a year", "during the holidays", "at the front entrance", "for members only",
]
QUESTION_FORMS = [
    "How much does it cost when {subject} {verb} {object}?",
    "When does {subject} usually handle {object}?",
    "Can I ask about {object} {when}?",
    "Who should I call about {object}?",
    "Is {object} covered {when}?",
    "What do I need to bring for {object}?",
    "Do you take care of {object} {when}?",
]


def _document_words() -> list[list[str]]:
    from knowledge.tests.handbook import handbook_pages

    documents = [path.read_text(encoding="utf-8").split() for path in sorted(QUALITY.glob("*.md"))
                 if path.name != "README.md"]  # fmt: skip
    documents.append(" ".join(text for _, text in handbook_pages(120, seed=11)).split())
    return documents


def chunk_texts(count: int, *, seed: int = 1) -> list[str]:
    """``count`` distinct short texts: half windows over real documents, half sentences from the vocabulary."""
    rng = random.Random(seed)
    documents = _document_words()
    seen: set[str] = set()
    texts: list[str] = []
    while len(texts) < count:
        if rng.random() < 0.5:
            words = rng.choice(documents)
            length = rng.randint(5, 14)
            start = rng.randrange(len(words) - length)
            text = " ".join(words[start : start + length])
        else:
            text = f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(WHEN)}."
            if rng.random() < 0.4:
                text += f" {rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


def questions(count: int, *, seed: int = 2) -> list[str]:
    """The labelled questions of the quality set, then questions built from the vocabulary, ``count`` in all."""
    labelled = [item["question"] for item in json.loads((QUALITY / "questions.json").read_text(encoding="utf-8"))]
    rng = random.Random(seed)
    out = list(dict.fromkeys(labelled))[:count]
    seen = set(out)
    while len(out) < count:
        question = rng.choice(QUESTION_FORMS).format(
            subject=rng.choice(SUBJECTS), verb=rng.choice(VERBS), object=rng.choice(OBJECTS), when=rng.choice(WHEN)
        )
        if question not in seen:
            seen.add(question)
            out.append(question)
    return out


_worker_embedder = None


def _embed_in_worker(texts: list[str]):
    global _worker_embedder
    if _worker_embedder is None:
        from knowledge.processing.embeddings import Embedder

        _worker_embedder = Embedder(threads=1)
    return _worker_embedder.embed(texts)


def real_vectors(texts: list[str], cache: Path, *, workers: int = 2):
    """The embeddings of ``texts`` (float32, one row each), from ``cache`` when an earlier run made them there.

    Embedded by ``workers`` processes of one thread each (the product's Embedder), in blocks of 2048.
    Returns (vectors, seconds spent embedding; as recorded by the run that embedded them).
    """
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"vectors-{len(texts)}-{digest}.npy"
    timing = path.with_suffix(".json")
    if path.is_file() and timing.is_file():
        return np.load(path), json.loads(timing.read_text())["seconds"]
    vectors = np.empty((len(texts), 384), dtype=np.float32)
    step = 2048
    blocks = [(start, texts[start : start + step]) for start in range(0, len(texts), step)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_embed_in_worker, [texts[:32]] * workers))  # each worker loads the model first
        began = time.perf_counter()
        done = 0
        for (start, block), result in zip(blocks, pool.map(_embed_in_worker, [block for _, block in blocks])):
            vectors[start : start + len(block)] = result
            done += len(block)
            if done % (step * 10) < step or done == len(texts):
                elapsed = time.perf_counter() - began
                print(f"  embedded {done:>7,} texts in {elapsed:6.1f} s ({done / elapsed:,.0f}/s)")
                sys.stdout.flush()
    seconds = time.perf_counter() - began
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    timing.write_text(json.dumps({"seconds": seconds, "texts": len(texts), "workers": workers}))
    return vectors, seconds


def cached_real_vectors(texts: list[str], cache: Path, generate):
    """``real_vectors`` of ``texts``, taken from a cache of a longer list that starts with them when there is one."""
    import numpy as np

    for path in sorted(cache.glob("vectors-*.npy")) if cache.is_dir() else []:
        count = int(path.stem.split("-")[1])
        timing = path.with_suffix(".json")
        if count <= len(texts) or not timing.is_file():
            continue
        longer = generate(count)
        if longer[: len(texts)] == texts and path.stem.endswith(
            hashlib.sha256("\n".join(longer).encode()).hexdigest()[:16]
        ):
            recorded = json.loads(timing.read_text())
            return np.load(path, mmap_mode="r")[: len(texts)].copy(), recorded["seconds"] * len(texts) / count
    return real_vectors(texts, cache)


# --- seeding (once per data directory and size) ----------------------------------------------

COLUMNS = (
    "id, organization_id, knowledge_base_id, document_id, ordinal, page_start, page_end, text, embedding, search_terms"
)
_SECONDARY_INDEXES = (
    "knowledge_chunk_base", "knowledge_chunk_document", "knowledge_chunk_terms", "knowledge_chunk_embedding"
)


def _tsvector_binary(literal: str) -> bytes:
    """A tsvector literal of hashed terms ("term:1,4 other:2") in PostgreSQL's binary COPY form."""
    import struct

    parts = [struct.pack(">i", 0)]
    count = 0
    for entry in literal.split():
        lexeme, _, positions = entry.partition(":")
        weights = {"A": 3, "B": 2, "C": 1, "D": 0}
        encoded = []
        for position in positions.split(",") if positions else []:
            weight = weights.get(position[-1], None)
            number = int(position[:-1] if weight is not None else position)
            encoded.append(((weight or 0) << 14) | min(number, 16383))
        parts.append(lexeme.encode() + b"\x00" + struct.pack(f">H{len(encoded)}H", len(encoded), *encoded))
        count += 1
    parts[0] = struct.pack(">i", count)
    return b"".join(parts)


class CopyRows:
    """Rows of knowledge_chunk in PostgreSQL's binary COPY format, written in blocks through one COPY."""

    def __init__(self, copy):
        import struct

        self.copy = copy
        self.pack_header = struct.Struct(">hi16si16si16si16siiiiii").pack
        self.buffer: list[bytes] = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
        self.size = 0
        self.int4 = struct.Struct(">i").pack
        self.halfvec_head = struct.pack(">ihh", 4 + 2 * 384, 384, 0)

    def add(self, chunk_id, organization_id, base_id, document_id, ordinal, text: bytes, vector16: bytes, terms: bytes):
        row = b"".join((
            self.pack_header(10, 16, chunk_id, 16, organization_id, 16, base_id, 16, document_id,
                             4, ordinal, 4, 1, 4, 1),
            self.int4(len(text)), text, self.halfvec_head, vector16, self.int4(len(terms)), terms,
        ))  # fmt: skip
        self.buffer.append(row)
        self.size += len(row)
        if self.size > 8 << 20:
            self.flush()

    def flush(self):
        self.copy.write(b"".join(self.buffer))
        self.buffer = []
        self.size = 0

    def close(self):
        self.buffer.append(b"\xff\xff")
        self.flush()


def _organization(name: str, slug: str, owner):
    from accounts.models import Organization
    from accounts.services import organization_create

    return Organization.objects.filter(slug=slug).first() or organization_create(name=name, owner=owner, slug=slug)


def plan(size: str) -> list[tuple[str, int]]:
    """(role, chunks) of every organization: the large, the small, then the fillers sharing the rest."""
    spec = SIZES[size]
    fillers = spec["organizations"] - 2
    rest = spec["total"] - spec["large"] - spec["small"]
    counts = [rest // fillers + (1 if index < rest % fillers else 0) for index in range(fillers)]
    return [("large", spec["large"]), ("small", spec["small"])] + [(f"filler-{i:03d}", c) for i, c in enumerate(counts)]


def seeded(size: str):
    """The measured organizations and their knowledge bases when an earlier run seeded this size; else None."""
    from django.db import connections

    from accounts.models import Organization
    from knowledge.models import KnowledgeBase

    found = {}
    for role, chunks in plan(size)[:2]:
        organization = Organization.objects.filter(slug=f"bench-kb-{size}-{role}").first()
        base = KnowledgeBase.objects.for_org(organization).first() if organization else None
        if base is None or base.chunk_count != chunks:
            return None
        found[role] = (organization, base)
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM knowledge_chunk")
        total = cursor.fetchone()[0]
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = ANY(%s)", [list(_SECONDARY_INDEXES)])
        indexes = cursor.fetchone()[0]
    if total != SIZES[size]["total"] or indexes != len(_SECONDARY_INDEXES):
        return None
    return found


def _loaded(organization, base, chunks: int) -> bool:
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM knowledge_chunk WHERE organization_id = %s", [organization.pk])
        return base is not None and base.chunk_count == chunks and cursor.fetchone()[0] == chunks


def seed(size: str, vectors_dir: Path, *, roles=None, fresh: bool = False):
    """Every organization's chunks (or those of ``roles``), loaded with COPY, then the indexes built.

    An organization loaded by an earlier run is kept. Returns the measured organizations (role: (organization,
    knowledge base)) and the seeding's timings.
    """
    import numpy as np
    from django.db import connections

    from accounts.models import User
    from accounts.services import user_create
    from knowledge.models import Chunk, Document, DocumentKind, DocumentStatus, KnowledgeBase
    from knowledge.search_terms import index_terms

    timings: dict[str, float] = {}
    began = time.perf_counter()
    layout = [(role, chunks) for role, chunks in plan(size) if roles is None or role in roles]
    spec = SIZES[size]
    real_count = spec["large"] + spec["small"]
    texts = chunk_texts(real_count)
    vectors = None
    # The other organizations' vectors start from the first FILLER_BASE real ones (embedded first, and kept).
    filler_base, _ = cached_real_vectors(texts[:FILLER_BASE], vectors_dir, chunk_texts)
    rng = np.random.default_rng(3)
    owner = User.objects.filter(email=OWNER_EMAIL).first() or user_create(
        email=OWNER_EMAIL, password=None, name="Bench Owner"
    )
    owner_connection = connections["owner"]
    field = Chunk._meta.get_field("text")
    encrypt_seconds = terms_seconds = 0.0
    measured = {}
    loaded = 0
    to_load = 0
    for role, chunks in layout:
        organization = _organization(f"Bench KB {size} {role}", f"bench-kb-{size}-{role}", owner)
        if fresh or not _loaded(organization, KnowledgeBase.objects.for_org(organization).first(), chunks):
            to_load += chunks
    with owner_connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM knowledge_chunk")
        present = cursor.fetchone()[0]
    for number, (role, chunks) in enumerate(layout):
        organization = _organization(f"Bench KB {size} {role}", f"bench-kb-{size}-{role}", owner)
        base = KnowledgeBase.objects.for_org(organization).first()
        if role in ("large", "small"):
            measured[role] = (organization, base)
        if not fresh and _loaded(organization, base, chunks):
            continue
        if not loaded and to_load > present:
            # Most of the table is still to come: its indexes are built after the load, which is several
            # times faster than maintaining them row by row. A smaller load goes into the indexes as it is.
            with owner_connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {', '.join(_SECONDARY_INDEXES)}")
        loaded += chunks
        with owner_connection.cursor() as cursor:
            cursor.execute("DELETE FROM knowledge_chunk WHERE organization_id = %s", [organization.pk])
        KnowledgeBase.objects.for_org(organization).delete()
        base = KnowledgeBase.objects.create(organization=organization, name="Handbooks", chunk_count=0)
        documents = Document.objects.bulk_create([
            Document(
                organization=organization, knowledge_base=base, name=f"Handbook {index + 1}.md",
                kind=DocumentKind.TEXT, file=f"bench/{organization.pk}/{index}.md", size_bytes=1,
                content_hash=f"bench-{index}", status=DocumentStatus.READY,
                chunks_total=CHUNKS_PER_DOCUMENT, chunks_done=CHUNKS_PER_DOCUMENT, pages_total=1, pages_done=1,
            )
            for index in range((chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT)
        ])  # fmt: skip
        if role in ("large", "small"):
            if vectors is None:
                vectors, timings["embedding of the real texts (as recorded)"] = cached_real_vectors(
                    texts, vectors_dir, chunk_texts
                )
            offset = 0 if role == "large" else spec["large"]
            own_texts = texts[offset : offset + chunks]
            own_vectors = vectors[offset : offset + chunks]
            measured[role] = (organization, base)
        else:  # real vectors perturbed: cosine about 0.9 to the one each starts from
            picks = rng.integers(0, len(filler_base), size=chunks)
            noise = rng.normal(0.0, 0.5 / np.sqrt(384), size=(chunks, 384)).astype(np.float32)
            own_vectors = filler_base[picks] + noise
            own_vectors /= np.linalg.norm(own_vectors, axis=1, keepdims=True)
            own_texts = [texts[index] for index in picks[: min(chunks, 2000)]]
        clock = time.perf_counter()
        pool_terms = [_tsvector_binary(t) for t in index_terms(own_texts, organization_id=organization.pk)]
        terms_seconds += time.perf_counter() - clock
        halves = own_vectors.astype(">f2")
        sample = Chunk(organization_id=organization.pk)
        with owner_connection.cursor() as cursor:
            with cursor.cursor.copy(f"COPY knowledge_chunk ({COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                rows = CopyRows(copy)
                for index in range(chunks):
                    clock = time.perf_counter()
                    chunk_id = uuid.uuid4()
                    sample.pk = chunk_id
                    sample.text = own_texts[index % len(own_texts)]
                    sealed = bytes(field.pre_save(sample, True))
                    encrypt_seconds += time.perf_counter() - clock
                    rows.add(
                        chunk_id.bytes, organization.pk.bytes, base.pk.bytes,
                        documents[index // CHUNKS_PER_DOCUMENT].pk.bytes, index % CHUNKS_PER_DOCUMENT, sealed,
                        halves[index].tobytes(), pool_terms[index % len(pool_terms)],
                    )  # fmt: skip
                rows.close()
        KnowledgeBase.objects.for_org(organization).filter(pk=base.pk).update(chunk_count=chunks)
        base.chunk_count = chunks
        if number % 10 == 0 or number == len(layout) - 1:
            elapsed = time.perf_counter() - began
            print(f"  organization {number + 1:>3}/{len(layout)} ({role}, {chunks:,} chunks) loaded; {elapsed:6.1f} s")
            sys.stdout.flush()
    timings["chunks loaded now"] = loaded
    timings["load (COPY, encryption, terms)"] = time.perf_counter() - began
    timings["of which encryption"] = encrypt_seconds
    timings["of which index_terms"] = terms_seconds
    if roles is not None:
        return measured, timings
    timings.update(build_indexes())
    timings["seeding in all"] = time.perf_counter() - began
    return measured, timings


def build_indexes() -> dict:
    """The chunk table's secondary indexes that are missing, as migration 0001 defines them; then VACUUM ANALYZE."""
    from django.db import connections

    migration = importlib.import_module("knowledge.migrations.0001_initial")
    timings = {}
    with connections["owner"].cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'knowledge_chunk'")
        present = {row[0] for row in cursor.fetchall()}
        # The largest partition's graph (about 160,000 vectors) fits in memory: the build never spills.
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 1")
        for statement in migration.CHUNK_TABLE_SQL:
            name = statement.split()[2] if statement.startswith("CREATE INDEX") else None
            if name and name not in present:
                clock = time.perf_counter()
                cursor.execute(statement)
                timings[f"index {name}"] = time.perf_counter() - clock
                print(f"  built {name} in {timings[f'index {name}']:.1f} s")
                sys.stdout.flush()
        clock = time.perf_counter()
        cursor.execute("VACUUM ANALYZE knowledge_chunk")
        timings["vacuum analyze"] = time.perf_counter() - clock
    return timings


# --- the measurement ---------------------------------------------------------------------------

# A variant's keys: the selectors' HNSW settings and the exact/approximate threshold.
VARIANT_KEYS = {
    "ef_search": ("selectors", "HNSW_EF_SEARCH", int),
    "max_scan": ("selectors", "HNSW_MAX_SCAN_TUPLES", int),
    "iterative": ("selectors", "HNSW_ITERATIVE_SCAN", str),
    "exact_max": ("settings", "KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS", int),
}


def parse_variant(spec: str) -> dict:
    """"shipped" or "key=value,key=value" (keys: ef_search, max_scan, iterative, exact_max)."""
    values = {}
    if spec != "shipped":
        for item in spec.split(","):
            key, _, value = item.partition("=")
            if key not in VARIANT_KEYS:
                raise SystemExit(f"unknown variant key {key!r}; use {', '.join(VARIANT_KEYS)}")
            values[key] = VARIANT_KEYS[key][2](value)
    return values


class applied:
    """The variant's settings for the searches inside the block; the shipped ones again after it."""

    def __init__(self, values: dict):
        self.values = values

    def __enter__(self):
        from django.conf import settings

        from knowledge import selectors

        self.saved = []
        for key, value in self.values.items():
            where, name, _cast = VARIANT_KEYS[key]
            target = selectors if where == "selectors" else settings
            self.saved.append((target, name, getattr(target, name)))
            setattr(target, name, value)

    def __exit__(self, *exc):
        for target, name, value in reversed(self.saved):
            setattr(target, name, value)


def exact_top(organization_id, base_id, vector: str, limit: int = 20) -> list[tuple]:
    """(id, distance) of the ``limit`` nearest chunks by a full scan (the tables' owner: no row-level security)."""
    from django.db import connections

    with connections["owner"].cursor() as cursor:
        cursor.execute(
            """
            WITH scoped AS MATERIALIZED (
                SELECT id, embedding <=> %s::halfvec AS distance FROM knowledge_chunk
                WHERE organization_id = %s AND knowledge_base_id = %s
            )
            SELECT id, distance FROM scoped ORDER BY distance, id LIMIT %s
            """,
            [vector, organization_id, base_id, limit],
        )
        return cursor.fetchall()


def recall_at_k(hits, exact: list[tuple]) -> float:
    """Share of the exact top K found; a chunk as near as the K-th exact one (a tie) counts as found."""
    if len(exact) < K:
        return 1.0 if len(hits) == len(exact) else 0.0
    bound = exact[K - 1][1] + 1e-6
    acceptable = {chunk_id for chunk_id, distance in exact if distance <= bound}
    return min(K, sum(1 for hit in hits if hit.chunk_id in acceptable)) / K


def approximate_short(organization, base, vector: str) -> bool:
    """Whether the HNSW walk alone returned fewer candidates than search asks (so the exact search answered)."""
    from django.db import connection

    from knowledge import selectors
    from knowledge.scope import organization_scope

    candidates = max(4 * K, 20)
    with organization_scope(organization), connection.cursor() as cursor:
        rows = selectors._approximate(
            cursor, organization_id=str(organization.pk), bases=[str(base.pk)], vector=vector, limit=candidates
        )
    return len(rows) < candidates


def vector_literal(vector) -> str:
    return "[" + ",".join(f"{float(value):.6f}" for value in vector) + "]"


def measure_recall(measured: dict, variants: dict, asked: list[str]) -> dict:
    """Per variant and organization: mean recall@5 of mode "vector", the worst query's, and the exact fallbacks."""
    from django.conf import settings

    from knowledge.processing.embeddings import embed_query
    from knowledge.selectors import search

    vectors = {question: vector_literal(embed_query(question)) for question in asked}
    exact = {
        (role, question): exact_top(str(organization.pk), str(base.pk), vectors[question])
        for role, (organization, base) in measured.items()
        for question in asked
    }
    results = {}
    for name, values in variants.items():
        with applied(values):
            for role, (organization, base) in measured.items():
                recalls, fallbacks, short_rows = [], 0, 0
                approximate = base.chunk_count > settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS
                for question in asked:
                    hits = search(organization, [base], question, K, mode="vector")
                    short_rows += len(hits) != K
                    recalls.append(recall_at_k(hits, exact[(role, question)]))
                    if approximate:
                        fallbacks += approximate_short(organization, base, vectors[question])
                results[(name, role)] = {
                    "recall": sum(recalls) / len(recalls),
                    "worst": min(recalls),
                    "fallbacks": fallbacks,
                    "plan": "hnsw" if approximate else "exact",
                    "short_rows": short_rows,
                }
    return results


class embeddings_known:
    """Inside the block, search takes each question's vector from ``vectors`` instead of running the model.

    So "without the embedding" is the same search, every query and decryption included, minus the model.
    """

    def __init__(self, vectors: dict):
        self.vectors = vectors

    def __enter__(self):
        from knowledge import selectors

        self.saved = selectors.embed_query
        selectors.embed_query = self.vectors.__getitem__

    def __exit__(self, *exc):
        from knowledge import selectors

        selectors.embed_query = self.saved


def measure_latency(measured: dict, variants: dict, asked: list[str], rounds: int) -> dict:
    """Per variant and organization, per round: p50/p95 of hybrid searches with and without the embedding."""
    from knowledge.processing.embeddings import embed_query
    from knowledge.selectors import search

    known = {question: embed_query(question) for question in asked}
    per_round: dict = {(name, role): [] for name in variants for role in measured}
    rows_seen: dict = {(name, role): set() for name in variants for role in measured}
    embedding_rounds = []
    for index in range(rounds):
        order = list(asked)
        random.Random(100 + index).shuffle(order)
        names = list(variants) if index % 2 == 0 else list(reversed(variants))
        times = {key: [] for key in per_round}
        without = {key: [] for key in per_round}
        embeddings = []
        gc.collect()
        for number, question in enumerate(order):
            clock = time.perf_counter()
            embed_query(question)
            embeddings.append(time.perf_counter() - clock)
            roles = list(measured) if number % 2 == 0 else list(reversed(measured))
            for name in names:
                with applied(variants[name]):
                    for role in roles:
                        organization, base = measured[role]
                        clock = time.perf_counter()
                        hits = search(organization, [base], question, K)
                        times[(name, role)].append(time.perf_counter() - clock)
                        rows_seen[(name, role)].add(len(hits))
                        with embeddings_known(known):
                            clock = time.perf_counter()
                            hits = search(organization, [base], question, K)
                            without[(name, role)].append(time.perf_counter() - clock)
                        rows_seen[(name, role)].add(len(hits))
        for key in per_round:
            per_round[key].append({
                "p50_ms": percentile(times[key], 0.5) * 1e3, "p95_ms": percentile(times[key], 0.95) * 1e3,
                "p50_without_ms": percentile(without[key], 0.5) * 1e3,
                "p95_without_ms": percentile(without[key], 0.95) * 1e3,
            })  # fmt: skip
        embedding_rounds.append(
            {"p50_ms": percentile(embeddings, 0.5) * 1e3, "p95_ms": percentile(embeddings, 0.95) * 1e3}
        )
        print(f"  round {index + 1}: " + " | ".join(
            f"{name} {role} p95 {per_round[(name, role)][-1]['p95_ms']:.1f} "
            f"(w/o emb. {per_round[(name, role)][-1]['p95_without_ms']:.1f})"
            for name in variants for role in measured
        ) + f" | embedding p50 {embedding_rounds[-1]['p50_ms']:.1f} ms")  # fmt: skip
        sys.stdout.flush()
    summary = {
        key: {field: median([r[field] for r in results]) for field in results[0]} | {"rows": sorted(rows_seen[key])}
        for key, results in per_round.items()
    }
    embedding = {field: median([r[field] for r in embedding_rounds]) for field in embedding_rounds[0]}
    return summary, embedding, per_round


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Knowledge base search with a million chunks: latency and recall.")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 chunks in 20 organizations (40k and 10k measured)")  # fmt: skip
    parser.add_argument("--smoke", action="store_true", help="8,000 chunks: checks that the benchmark runs")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported (default 3)")
    parser.add_argument("--queries", type=int, default=240, help="questions per round (default 240)")
    parser.add_argument("--variant", action="append", default=None,
                        help='settings compared side by side: "shipped" or e.g. "ef_search=40,iterative=strict_order,'
                             'max_scan=20000,exact_max=20000" (repeatable; default: shipped)')  # fmt: skip
    parser.add_argument("--data-dir", default=None,
                        help="directory for the embedded servers and the kept database "
                             "(default .data/bench-kb, with --quick .data/bench-kb-quick)")  # fmt: skip
    parser.add_argument("--vectors-dir", default=str(ROOT / ".data" / "bench-kb" / "vectors"),
                        help="where the embedded texts' vectors are kept (default .data/bench-kb/vectors)")
    parser.add_argument("--fresh", action="store_true", help="load every organization again (the vectors are kept)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    size = "smoke" if args.smoke else "quick" if args.quick else "full"
    variants = {spec: parse_variant(spec) for spec in (args.variant or ["shipped"])}
    data_dir = Path(args.data_dir or ROOT / ".data" / ("bench-kb" if size == "full" else f"bench-kb-{size}")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
    with scratch_database(str(data_dir), packages=("Django", "psycopg", "pgvector", "onnxruntime"), keep=True) as facts:
        from django.conf import settings

        from jagcall.kernel.crypto.keys import organization_keys
        from knowledge.processing.embeddings import get_embedder

        spec = SIZES[size]
        section(f"Seeding: {spec['total']:,} chunks in {spec['organizations']} organizations")
        measured = None if args.fresh else seeded(size)
        timings = {}
        if measured is None:
            measured, timings = seed(size, Path(args.vectors_dir).resolve(), fresh=args.fresh)
            for name, value in timings.items():
                print(f"  {name}: {value:,.1f}{' s' if isinstance(value, float) else ''}")
        else:
            print(f"  seeded before (reused; --fresh seeds again)")
        for role, (organization, base) in measured.items():
            print(f"  {role}: {base.chunk_count:,} chunks (organization {organization.pk})")
            organization_keys(organization.pk)  # warm key cache, as in a running server
        get_embedder()
        asked = questions(args.queries)

        section("Warm-up (30 questions once per variant and organization)")
        measure_latency(measured, variants, asked[:30], 1)

        section(f"Recall@{K} of the vector ranking against the exact top {K} ({len(asked)} questions)")
        recall = measure_recall(measured, variants, asked)
        for (name, role), row in recall.items():
            print(f"  {name:<40} {role:<6} {row['plan']:<6} recall {row['recall']:.4f} "
                  f"(worst query {row['worst']:.2f}),"
                  f" exact fallbacks {row['fallbacks']}, searches short of {K} rows {row['short_rows']}")

        section(f"Latency ({args.rounds} rounds x {len(asked)} questions x {len(variants)} variants x 2 organizations)")
        summary, embedding, _ = measure_latency(measured, variants, asked, args.rounds)
        print_summary(summary, embedding, recall, measured, variants, args, facts, settings, timings,
                      time.perf_counter() - began)  # fmt: skip
    return 0


def print_summary(summary, embedding, recall, measured, variants, args, facts, settings, timings, elapsed) -> None:
    from knowledge import selectors

    section(f"Summary (hybrid, k={K}; medians over {args.rounds} rounds)")
    print(f"  {'variant':<40} {'org':<6} {'chunks':>7} {'p50':>6} {'p95':>6} {'p50 w/o':>8} {'p95 w/o':>8} "
          f"{'recall':>7} {'rows':>5}")  # fmt: skip
    for (name, role), row in summary.items():
        chunks = measured[role][1].chunk_count
        print(f"  {name:<40} {role:<6} {chunks:>7,} {row['p50_ms']:>6.2f} {row['p95_ms']:>6.2f} "
              f"{row['p50_without_ms']:>8.2f} {row['p95_without_ms']:>8.2f} {recall[(name, role)]['recall']:>7.4f} "
              f"{','.join(map(str, row['rows'])):>5}")  # fmt: skip
    print(f"  the question's embedding alone: p50 {embedding['p50_ms']:.2f} ms, p95 {embedding['p95_ms']:.2f} ms")
    print(f"  (ms; 'w/o': the same search with the question's vector known, so without the model's run)")
    print()
    first = next(iter(variants))
    goals = {"small": GOAL_P95_SMALL_MS, "large": GOAL_P95_LARGE_MS}
    for name in variants:
        for role in measured:
            row, chunks = summary[(name, role)], measured[role][1].chunk_count
            print(f"{'PASS' if row['p95_ms'] < goals[role] else 'FAIL'}: [{name}] {role} ({chunks:,} chunks) "
                  f"p95 {row['p95_ms']:.1f} ms with the embedding (goal < {goals[role]:.0f} ms); "
                  f"{row['p95_without_ms']:.1f} ms without")  # fmt: skip
            print(f"{'PASS' if recall[(name, role)]['recall'] >= GOAL_RECALL else 'FAIL'}: [{name}] {role} "
                  f"recall@{K} {recall[(name, role)]['recall']:.4f} (goal >= {GOAL_RECALL})")
            always = row["rows"] == [K] and recall[(name, role)]["short_rows"] == 0
            print(f"{'PASS' if always else 'FAIL'}: [{name}] {role} rows returned {row['rows']} (goal always {K})")
        if name == first and len(variants) > 1:
            print()
    print()
    print(f"command: {shlex.join(getattr(sys, 'orig_argv', [sys.executable, *sys.argv]))}")
    print(f"shipped settings: HNSW_EF_SEARCH={selectors.HNSW_EF_SEARCH}"
          f" HNSW_MAX_SCAN_TUPLES={selectors.HNSW_MAX_SCAN_TUPLES}"
          f" HNSW_ITERATIVE_SCAN={selectors.HNSW_ITERATIVE_SCAN}"
          f" KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS={settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS}")
    print(f"options: quick={args.quick} rounds={args.rounds} queries={args.queries}")
    seeding = f"{timings['seeding in all']:.1f} s" if timings else "reused from a previous run"
    print(f"seeding: {seeding}")
    for key, value in facts.items():
        print(f"{key}: {value}")
    try:
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    except OSError:
        pass
    print(f"total time: {elapsed:.1f} s")


if __name__ == "__main__":
    sys.exit(main())

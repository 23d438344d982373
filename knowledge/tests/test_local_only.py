"""C18 and C36: documents are chunked and embedded on our own servers; no text leaves for an embedding API.

While a document is processed and searched, the only connections opened are to the project's own
PostgreSQL and Redis (observed with Python's audit hooks, which see every socket connect and name
lookup of the process); the embedding model is read from the installed package's files; and the
knowledge app's code imports no HTTP client or provider SDK at all.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from knowledge.processing import embeddings
from knowledge.selectors import search
from knowledge.services import document_add, document_process, knowledge_base_create
from knowledge.tests.pdfs import text_pdf
from knowledge.tests.test_documents import HANDBOOK

pytestmark = pytest.mark.django_db

_events: list[tuple[str, tuple]] = []
_recording = False


def _hook(event, args):
    if _recording and event in ("socket.connect", "socket.getaddrinfo", "socket.sendto", "urllib.Request"):
        _events.append((event, args))


sys.addaudithook(_hook)  # an audit hook cannot be removed; it records only while _recording is set


def _own_services() -> set[tuple[str, int]]:
    ours = set()
    for url in (settings.DATABASE_URL, settings.REDIS_URL):
        parts = urlsplit(url)
        ours.add((parts.hostname, parts.port))
    return ours


def test_processing_and_searching_talk_only_to_our_own_database_and_redis(organization, owner):
    global _recording
    base = knowledge_base_create(organization=organization, actor=owner, name="Handbook")
    documents = [
        document_add(organization=organization, actor=owner, knowledge_base=base, name="a.md", content=HANDBOOK.encode()),
        document_add(
            organization=organization, actor=owner, knowledge_base=base, name="b.pdf",
            content=text_pdf([["Parking is behind the building on Elm Street."]]),
        ),
    ]  # fmt: skip
    _events.clear()
    _recording = True
    try:
        import redis

        redis.Redis.from_url(settings.REDIS_URL).ping()  # the hook sees connections: this one must be recorded
        assert any(event == "socket.connect" for event, _ in _events)
        for document in documents:
            assert document_process(document) == "ready"
        hits = search(organization, [base], "Where can I park?", k=3)
    finally:
        _recording = False
    assert hits
    ours = _own_services()
    for event, args in _events:
        if event == "socket.connect":
            address = args[1]
            assert isinstance(address, (str, bytes)) or (address[0], address[1]) in ours, (event, args)
        else:
            host = args[0]
            assert host in {h for h, _ in ours}, (event, args)


def test_the_model_is_read_from_the_installed_packages_files():
    model, tokenizer = embeddings._model_path(), embeddings._tokenizer_path()
    site = [Path(p).resolve() for p in sys.path if p.endswith("site-packages")]
    for path in (model, tokenizer):
        assert path.is_file() and any(root in path.resolve().parents for root in site), path


FORBIDDEN = {"requests", "httpx", "urllib.request", "aiohttp", "openai", "anthropic", "huggingface_hub",
             "sentence_transformers", "cohere", "jagcall.kernel.providers"}  # fmt: skip


def test_the_knowledge_app_imports_no_http_client_or_provider_sdk():
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in root.rglob("*.py"):
        if "tests" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(root)}: {name}" for name in names
                      if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)]  # fmt: skip
    assert not found, found

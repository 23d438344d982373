import pytest


@pytest.fixture(scope="session")
def embedder():
    """The process's one embedder: the model loads once per test session (per xdist worker)."""
    from knowledge.processing.embeddings import get_embedder

    return get_embedder()

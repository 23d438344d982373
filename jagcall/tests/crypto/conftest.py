import pytest

from jagcall.kernel.crypto import keys


@pytest.fixture
def swap_master(settings):
    """Point this process at another master keyset for one test, then restore everything."""
    saved = (keys.master._aead, keys.master._handle, keys.master.source)
    saved_settings = (settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI)

    def use(*, inline="", file="", uri=""):
        settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI = inline, file, uri
        keys.evict()
        return keys.master.load(force=True)

    yield use
    keys.master._aead, keys.master._handle, keys.master.source = saved
    settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI = saved_settings
    keys.evict()


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    keys.evict()
    yield
    keys.evict()

import pytest

from jagcall.kernel.crypto import keys


@pytest.fixture
def swap_master(settings):
    """Point this process at another master keyset for one test, then restore everything."""
    saved = {name: value for name, value in vars(keys.master).items() if name != "_lock"}
    saved_settings = (settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI)

    def use(*, inline="", file="", uri=""):
        settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI = inline, file, uri
        keys.evict()
        return keys.master.load(force=True)

    yield use
    vars(keys.master).update(saved)
    settings.JAGCALL_MASTER_KEYSET, settings.JAGCALL_MASTER_KEYSET_FILE, settings.JAGCALL_MASTER_KEY_URI = saved_settings
    keys.evict()


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    keys.evict()
    yield
    keys.evict()

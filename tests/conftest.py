import pytest


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # never touch the user's cache dir from tests
    monkeypatch.setenv("RECIPECHECK_CACHE_DIR", str(tmp_path_factory.mktemp("rc-cache")))

"""The whole suite runs with a test pseudonym key of real length: outside
``yibao demo`` a run refuses to start without one (transforms/privacy.py).
Set at import, before any test, so subprocesses (``yibao …``, Beam workers)
inherit it; a test that needs another key or none sets or removes it with
monkeypatch and calls ``pseudonym_key.cache_clear()``."""
import os

TEST_PSEUDONYM_KEY = "yibao-test-suite-pseudonym-key-not-secret"
os.environ["YIBAO_PSEUDONYM_KEY"] = TEST_PSEUDONYM_KEY

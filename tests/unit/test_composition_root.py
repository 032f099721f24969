"""Nothing creates AWS clients at import; the container builds adapters lazily from settings."""

import importlib
import sys

from deflect.bootstrap import Container
from deflect.settings import Settings


def test_importing_handlers_creates_no_clients(monkeypatch):
    import boto3

    created = []
    monkeypatch.setattr(boto3.session.Session, "client", lambda *a, **k: created.append(a) or None)
    for name in ["intake", "retrieval", "approval", "escalation", "writeback", "triage"]:
        module = f"_import_probe_{name}"
        spec = importlib.util.spec_from_file_location(module, f"functions/{name}/app.py")
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        spec.loader.exec_module(loaded)
    assert created == []


def test_settings_are_typed_and_read_from_the_given_environment():
    config = Settings.from_env({"SUPPORT_TABLE": "T1", "WEBHOOK_MAX_BODY_BYTES": "1024", "KNOWLEDGE_BACKEND": "opensearch"})
    assert config.support_table == "T1"
    assert config.webhook_max_body_bytes == 1024
    assert config.knowledge_backend == "opensearch"


def test_overrides_replace_adapters_without_building_clients():
    fake_store = object()
    container = Container(Settings.from_env({}), store=fake_store)
    assert container.store is fake_store
    assert "_clients" not in container.__dict__

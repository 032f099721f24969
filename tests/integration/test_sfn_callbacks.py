"""A task callback is sent once: when its answer is lost, the approval service must learn "unknown", not have
botocore send it again and get "task does not exist" back for a token the first attempt already used."""

from __future__ import annotations

import socket
import threading

import pytest

from deflect.bootstrap import Container
from deflect.domain.errors import TransientFailure
from deflect.settings import Settings


@pytest.fixture
def hangs_up():
    """127.0.0.1 server that reads each request and closes the connection without answering; counts requests."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    seen: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(65536))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}", seen
    server.close()


def test_a_callback_whose_answer_is_lost_is_sent_once_and_reported_unknown(hangs_up, monkeypatch):
    url, seen = hangs_up
    for name, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    workflow = Container(Settings.from_env({"AWS_ENDPOINT_URL": url, "AWS_REGION": "us-east-1"})).workflow

    with pytest.raises(TransientFailure):
        workflow.send_task_success("token-1", {"decision_id": "d-1"})
    assert len([r for r in seen if b"SendTaskSuccess" in r]) == 1

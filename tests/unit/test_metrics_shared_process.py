"""On the local stack every function runs in one process and Powertools keeps one metric set per process: one
handler's flush must never fail another's invocation."""

import threading

from deflect.observability import metrics


def test_handlers_flushing_metrics_at_once_never_fail_each_other(capsys):  # capsys: EMF lines
    shared = metrics()
    failures: list[str] = []

    def handler_calls() -> None:
        for _ in range(3000):
            try:
                shared.add_metric(name="TicketsTriaged", unit="Count", value=1)
                shared.flush_metrics()
            except Exception as error:  # what failed an escalation step under load: SchemaValidationError
                failures.append(type(error).__name__)

    threads = [threading.Thread(target=handler_calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []

"""Dynamic batching: the Batcher alone, then concurrent HTTP requests to a real server."""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import CancelledError, ThreadPoolExecutor

import pytest
from serve_helpers import SENTENCES, post_json

from seq2seq.serve.batcher import Batcher, BatcherClosed


class Recorder:
    """A run function that records its batches; the first call waits for `release`."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[tuple[list[str], object]] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.fail_on = fail_on

    def __call__(self, texts, key):
        self.started.set()
        self.release.wait(10)
        self.batches.append((list(texts), key))
        if self.fail_on in texts:
            raise RuntimeError("model failure")
        return [f"{key}:{text}" for text in texts]


def _busy_batcher(recorder: Recorder, **options) -> Batcher:
    """A batcher whose worker is busy with a first job until `recorder.release` is set."""
    batcher = Batcher(recorder, **options)
    batcher.submit(["first"], "A", options["max_tokens"])  # a full batch: runs at once
    assert recorder.started.wait(5)
    return batcher


def test_queued_jobs_with_the_same_options_share_a_batch():
    recorder = Recorder()
    batcher = _busy_batcher(recorder, max_tokens=100, max_wait=0)
    keys = ["A", "B", "A", "A", "B"]
    futures = [batcher.submit([f"t{i}", f"u{i}"], key, 2) for i, key in enumerate(keys)]
    recorder.release.set()
    results = [f.result(5) for f in futures]
    batcher.close(5)
    assert results == [[f"{key}:t{i}", f"{key}:u{i}"] for i, key in enumerate(keys)]
    assert recorder.batches == [
        (["first"], "A"),
        (["t0", "u0", "t2", "u2", "t3", "u3"], "A"),  # the oldest job's options first
        (["t1", "u1", "t4", "u4"], "B"),
    ]
    assert batcher.stats.batches == 3 and batcher.stats.jobs == 6


def test_on_start_runs_in_the_worker_thread_before_any_batch():
    events = []
    batcher = Batcher(
        lambda texts, key: events.append(("batch", threading.current_thread())) or texts,
        max_tokens=10,
        max_wait=0,
        on_start=lambda: events.append(("start", threading.current_thread())),
    )
    assert batcher.submit(["a"], "A", 1).result(5) == ["a"]
    batcher.close(5)
    assert [name for name, _ in events] == ["start", "batch"]
    assert events[0][1] is events[1][1] is not threading.main_thread()


def test_the_server_worker_decodes_with_the_servers_thread_count():
    import torch

    from seq2seq.serve.app import _same_threads

    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(1)
        apply = _same_threads()
        torch.set_num_threads(2)  # the process's count changes afterwards: the worker keeps 1
        worker = threading.Thread(target=lambda: (apply(), seen.append(torch.get_num_threads())))
        worker.start()
        worker.join(5)
    finally:
        torch.set_num_threads(before)
    assert seen == [1]


def test_token_budget_bounds_a_batch_but_a_large_job_runs_alone():
    recorder = Recorder()
    batcher = _busy_batcher(recorder, max_tokens=7, max_wait=0)
    costs = [3, 3, 3, 20, 1]
    futures = [batcher.submit([f"t{i}"], "A", cost) for i, cost in enumerate(costs)]
    recorder.release.set()
    for f in futures:
        f.result(5)
    batcher.close(5)
    assert [texts for texts, _ in recorder.batches] == [
        ["first"],
        ["t0", "t1"],
        ["t2"],  # t3 would pass the budget: it waits for the next batch
        ["t3"],
        ["t4"],
    ]


def test_under_concurrency_the_first_job_waits_up_to_max_wait_for_company():
    recorder = Recorder()
    batcher = _busy_batcher(recorder, max_tokens=100, max_wait=0.4)
    first = batcher.submit(["a"], "A", 1)  # arrives while the worker is busy: concurrency
    recorder.release.set()
    start = time.monotonic()
    time.sleep(0.1)
    second = batcher.submit(["b"], "A", 1)
    assert first.result(5) == ["A:a"] and second.result(5) == ["A:b"]
    assert time.monotonic() - start >= 0.25  # nobody filled the budget: it waited
    assert recorder.batches[1:] == [(["a", "b"], "A")]
    batcher.close(5)


def test_clients_answered_by_a_batch_rejoin_the_next_one():
    """The wait counts from the end of the previous batch: a client answered by it sends its
    next request within max_wait and joins the job that queued, long ago, during that batch
    (counting from that job's arrival, it would have left alone)."""
    recorder = Recorder()
    batcher = _busy_batcher(recorder, max_tokens=100, max_wait=0.3)
    answered = batcher.submit(["a0"], "A", 100)  # the next batch, on its own (a full budget)
    queued = batcher.submit(["b0"], "A", 1)
    time.sleep(0.4)  # longer than max_wait: b0's own deadline has passed
    rejoined = []

    def client() -> None:  # answered, it reads the answer and sends its next request
        answered.result(5)
        time.sleep(0.05)
        rejoined.append(batcher.submit(["a1"], "A", 1))

    thread = threading.Thread(target=client)
    thread.start()
    recorder.release.set()
    thread.join(5)
    assert queued.result(5) == ["A:b0"] and rejoined[0].result(5) == ["A:a1"]
    batcher.close(5)
    assert [texts for texts, _ in recorder.batches] == [["first"], ["a0"], ["b0", "a1"]]


def test_a_lone_client_is_not_delayed():
    recorder = Recorder()
    recorder.release.set()
    batcher = Batcher(recorder, max_tokens=100, max_wait=2.0)
    for text in ("a", "b", "c"):  # one request at a time, each after the previous answer
        start = time.monotonic()
        assert batcher.submit([text], "A", 1).result(5) == [f"A:{text}"]
        assert time.monotonic() - start < 1.0
    batcher.close(5)


def test_a_failing_batch_fails_its_requests_only_and_cancelled_jobs_are_skipped():
    recorder = Recorder(fail_on="bad")
    batcher = _busy_batcher(recorder, max_tokens=100, max_wait=0)
    failing = [batcher.submit(["bad"], "B", 1), batcher.submit(["x"], "B", 1)]
    cancelled = batcher.submit(["gone"], "C", 1)
    assert cancelled.cancel()  # its client went away
    later = batcher.submit(["ok"], "A", 1)
    recorder.release.set()
    for f in failing:
        with pytest.raises(RuntimeError, match="model failure"):
            f.result(5)
    assert later.result(5) == ["A:ok"]
    with pytest.raises(CancelledError):
        cancelled.result(0)
    assert all("gone" not in texts for texts, _ in recorder.batches)
    batcher.close(5)


def test_close_finishes_queued_jobs_then_refuses_new_ones():
    recorder = Recorder()
    batcher = _busy_batcher(recorder, max_tokens=100, max_wait=5.0)
    queued = batcher.submit(["q"], "B", 1)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    recorder.release.set()
    closer.join(5)
    assert not closer.is_alive()  # closing cut the 5 s wait short
    assert queued.result(0) == ["B:q"]
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"], "A", 1)


def test_several_workers_run_batches_at_once_and_each_job_once():
    """Two workers: while one runs a batch the other takes the next; every job is served once,
    with its own results, and the counters add up."""
    both = threading.Barrier(2, timeout=5)
    seen: list[tuple[str, list[str]]] = []
    lock = threading.Lock()

    def run(texts, key):
        if texts[0].startswith("first"):
            both.wait()  # returns only once the two workers hold a batch each
        with lock:
            seen.append((threading.current_thread().name, list(texts)))
        return [f"{key}:{text}" for text in texts]

    batcher = Batcher(run, max_tokens=1, max_wait=0, workers=2)
    firsts = [batcher.submit([f"first{i}"], "A", 1) for i in range(2)]
    assert [f.result(5) for f in firsts] == [["A:first0"], ["A:first1"]]
    futures = [batcher.submit([f"t{i}"], "A", 1) for i in range(40)]
    assert [f.result(5) for f in futures] == [[f"A:t{i}"] for i in range(40)]
    batcher.close(5)
    assert {name for name, texts in seen if texts[0].startswith("first")} == {
        "seq2seq-batcher-0",
        "seq2seq-batcher-1",
    }
    assert sorted(text for _, texts in seen for text in texts) == sorted(
        ["first0", "first1"] + [f"t{i}" for i in range(40)]
    )
    assert batcher.stats.jobs == batcher.stats.texts == 42 and batcher.stats.batches == len(seen)


def test_with_several_workers_a_lone_client_is_served_by_the_first():
    names = []
    batcher = Batcher(
        lambda texts, key: names.append(threading.current_thread().name) or texts,
        max_tokens=100,
        max_wait=2.0,
        workers=3,
    )
    for text in "abcdef":  # one request at a time: the first worker is always idle
        start = time.monotonic()
        assert batcher.submit([text], "A", 1).result(5) == [text]
        assert time.monotonic() - start < 1.0
    batcher.close(5)
    assert names == ["seq2seq-batcher-0"] * 6


def test_close_stops_every_worker():
    batcher = Batcher(lambda texts, key: texts, max_tokens=10, max_wait=0, workers=3)
    assert batcher.submit(["a"], "A", 1).result(5) == ["a"]
    batcher.close(5)
    assert not any(thread.is_alive() for thread in batcher._threads)
    with pytest.raises(ValueError, match="workers 0 < 1"):
        Batcher(lambda texts, key: texts, max_tokens=10, max_wait=0, workers=0)


@pytest.fixture
def live_server(tiny_run):
    """A real uvicorn server in a thread on a free port, with a translator whose calls are
    counted; yields (url, calls)."""
    import uvicorn

    from seq2seq.inference.translate import Translator
    from seq2seq.serve.app import Batching, create_app

    translator = Translator.load(tiny_run, device="cpu", precision="fp32")
    calls: list[int] = []
    translate = translator.translate

    def counted(texts, **options):
        calls.append(len(texts))
        return translate(texts, **options)

    translator.translate = counted
    batching = Batching(max_tokens=100_000, max_wait_ms=300, workers=2)
    app = create_app(translator, batching=batching)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/", calls
    server.should_exit = True
    thread.join(30)
    sock.close()


def test_concurrent_requests_are_served_in_fewer_model_calls(live_server, translator):
    url, calls = live_server
    texts = (SENTENCES * 3)[:16]
    expected = [translator.translate([text])[0].text for text in texts]  # one at a time
    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(lambda t: post_json(url + "v1/translate", {"text": t}), texts))
    assert [status for status, _ in answers] == [200] * len(texts)
    assert [body["translations"][0]["text"] for _, body in answers] == expected
    assert sum(calls) == len(texts)
    assert len(calls) < len(texts) / 2, calls  # batched: a few calls for 16 requests

"""`seq2seq serve` as a process: bad requests, SIGTERM with a request in flight, CLI errors."""

from __future__ import annotations

import signal
import socket
import statistics
import threading
import time

import pytest
import torch
from serve_helpers import SENTENCES, get_json, post_json

from seq2seq.cli import main


def _raw(url: str, data: bytes) -> bytes:
    """Send raw bytes to the server's port and read what comes back (possibly nothing)."""
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_hundred_bad_requests_leave_the_server_serving(server_process, translator):
    server = server_process(
        *("--max-texts", "3", "--max-chars", "50", "--max-body-bytes", "2000", "--workers", "2")
    )
    assert "(2 x 1 threads, beam" in "\n".join(server.lines)
    url = server.url + "v1/translate"
    bad = [
        (b"{", 400),
        (b'{"text": ["a", 1]}', 422),
        (b'{"text": []}', 422),
        (b'{"text": ["a", "b", "c", "d"]}', 413),
        (b'{"text": "' + b"x" * 51 + b'"}', 413),
        (b'{"text": "a", "beam": 11}', 422),
        (b'{"text": "a", "path": "/etc/passwd"}', 422),
        (b'{"text": "' + b"x" * 3000 + b'"}', 413),
        (b'{"text": "\xff"}', 400),
        (b"null", 400),
    ]
    statuses = [post_json(url, bad[i % len(bad)][0])[0] for i in range(90)]
    assert statuses == [bad[i % len(bad)][1] for i in range(90)]
    for garbage in (  # not even HTTP, or HTTP that lies about its body
        b"\x00\x01\x02 hello\r\n\r\n",
        b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n{}",
        b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
        b"POST /v1/translate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ) * 2:
        reply = _raw(server.url, garbage)
        assert reply == b"" or reply.split(b" ")[1][:1] == b"4", reply[:200]
    status, body = post_json(url, {"text": SENTENCES[:2]})
    assert status == 200
    assert [t["text"] for t in body["translations"]] == [
        t.text for t in translator.translate(SENTENCES[:2])
    ]
    assert server.proc.poll() is None


def test_answers_are_not_held_back_by_nagles_algorithm(server_process):
    server = server_process()
    took = []
    for _ in range(15):  # headers and body are two writes: with Nagle, the body waits ~40 ms
        start = time.perf_counter()
        assert get_json(server.url + "health")[0] == 200
        took.append(time.perf_counter() - start)
    assert statistics.median(took) < 0.02, took


def test_sigterm_lets_the_requests_in_flight_finish(server_process, translator):
    server = server_process("--max-wait-ms", "1500", "--workers", "1")
    url = server.url + "v1/translate"
    batch = (SENTENCES * 11)[:64]  # keeps the worker busy ...
    late = SENTENCES[:2]  # ... so this one, arriving meanwhile, waits 1.5 s for company
    answers: dict[str, tuple] = {}
    clients = [
        threading.Thread(target=lambda: answers.update(batch=post_json(url, {"text": batch}))),
        threading.Thread(target=lambda: answers.update(late=post_json(url, {"text": late}))),
    ]
    for client in clients:
        client.start()
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while get_json(server.url + "health")[1]["in_flight"] < 2 and "late" not in answers:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "late" not in answers  # both requests are in the server
    server.proc.send_signal(signal.SIGTERM)
    for client in clients:
        client.join(60)
    assert server.proc.wait(60) == 0
    for name, texts in (("batch", batch), ("late", late)):
        status, body = answers[name]
        assert status == 200
        assert [t["text"] for t in body["translations"]] == [
            t.text for t in translator.translate(texts)
        ]
    log = "\n".join(server.lines)
    assert "Shutting down" in log and "Traceback" not in log
    with pytest.raises(OSError):  # and nobody listens any more
        get_json(server.url + "health", timeout=2)


def test_command_line_errors_exit_2_with_one_line(tiny_run, tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        with socket.create_server(("127.0.0.1", 0)) as busy:
            port = busy.getsockname()[1]
            code = main(["serve", str(tiny_run), "--port", str(port), "--device", "cpu"])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"seq2seq serve: error: --host 127.0.0.1 --port {port}: ")
        assert "in use" in err and "\n" not in err
        code = main(["serve", str(tmp_path / "no-such-run"), "--port", "0"])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("seq2seq serve: error: ") and "no-such-run" in err
        assert "\n" not in err
        code = main(["serve", str(tiny_run), "--port", "0", "--beam", "5", "--max-beam", "4"])
        assert code == 2
        assert "--max-beam: 4 is below the default beam 5" in capsys.readouterr().err
        assert main(["serve", str(tiny_run), "--port", "70000"]) == 2
        assert "--port" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)

"""Helpers of the server tests: demo sentences, `seq2seq serve` in a subprocess, HTTP calls."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

#: Sentences of the demo corpus' kind (the tiny model is trained on it).
SENTENCES = [
    "They have eight hundred letters.",
    "My brother gets up at twenty past seven.",
    "She sells six houses.",
    "Sixty-four times two is one hundred and twenty-eight.",
    "We have three cats.",
    "She was born on Sunday, August thirteenth, 1961.",
]


def helper_module(path: str):
    """A helper module of another test folder, by its path under tests/ ("viz/chromium.py")."""
    file = Path(__file__).parents[1] / path
    spec = importlib.util.spec_from_file_location(file.stem, file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ServerProcess:
    """`python -m seq2seq serve RUN --port 0 ...` in a subprocess; `url` once it listens."""

    def __init__(self, run: Path, *args: str, timeout: float = 60.0) -> None:
        cmd = [sys.executable, "-m", "seq2seq", "serve", str(run), "--port", "0"]
        cmd += ["--device", "cpu", "--precision", "fp32", "--threads", "1", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = self._wait_for_url(timeout)
        self._wait_ready(timeout)

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith("seq2seq serve: http://"):
                    return line.split()[2]
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError("the server did not start:\n" + "\n".join(self.lines))

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if get_json(self.url + "health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("the server does not answer /health:\n" + "\n".join(self.lines))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait(30)
        self._reader.join(5)
        return code


def post_json(url: str, body: Any, timeout: float = 60.0) -> tuple[int, Any]:
    """(status, decoded JSON) of a POST; errors are returned, not raised."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    return _fetch(request, timeout)


def get_json(url: str, timeout: float = 10.0) -> tuple[int, Any]:
    return _fetch(urllib.request.Request(url), timeout)


def _fetch(request: urllib.request.Request, timeout: float) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())

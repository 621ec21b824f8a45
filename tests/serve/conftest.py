"""Fixtures of the server tests: a tiny trained run, and `seq2seq serve` in a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import ServerProcess, helper_module

pytest.importorskip("starlette", reason="needs the serve extra (pip install -e '.[serve]')")
pytest.importorskip("uvicorn", reason="needs the serve extra (pip install -e '.[serve]')")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny transformer (1+1 layers, 2 heads) trained for a few steps on the demo corpus."""
    root = tmp_path_factory.mktemp("serve")
    return helper_module("training/run_factory.py").make_tiny_run(
        root,
        overrides=[
            "train.max_steps=30",
            "train.validate_every=30",
            "train.num_alignment_plots=0",
        ],
    )


@pytest.fixture(scope="session")
def translator(tiny_run):
    """The reference: the Python API on the same run, fp32 on the CPU, as the server runs."""
    from seq2seq.inference.translate import Translator

    return Translator.load(tiny_run, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def server_process(tiny_run):
    """Start a server for the module: server_process(*options) -> ServerProcess."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(tiny_run, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """One intra-op thread, as the servers of these tests run with (--threads 1): the tiny
    model gains nothing from more, and on a busy machine they wait for one another."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

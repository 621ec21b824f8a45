"""`seq2seq serve`: an HTTP server for a trained model, with a page that shows its attention.

    seq2seq serve RUN_DIR                          # http://127.0.0.1:8080/
    seq2seq serve RUN_DIR --port 9000 --beam 4 --max-wait-ms 10
    curl -s localhost:8080/v1/translate -d '{"text": ["A dog runs.", "Two men talk."]}'

Endpoints (JSON; every error is {"error": message, "field": name, "status": code}):
  POST /v1/translate  {"text": "..." | ["...", ...], "beam": 5, "n_best": 1,
                       "alignments": false, "attention": false}
                      -> {"translations": [{"text", "score", "log_prob", "pieces",
                          "nbest" (n_best > 1), "alignment" ([src word, tgt word] pairs),
                          "attention" (the page viewer's payload)}], "beam", "n_best"}
  GET  /v1/model      languages, architecture, attention of each slot, size, limits
  GET  /health        {"status": "ok", "queued", "batches", "jobs", "texts", ...}
  GET  /              a page: type a sentence, see its translation and its attention
                      (slot, layer, head, pieces or words; no resource from the network)

Requests that arrive together are translated together: an idle worker takes the queued texts
with the same options up to --max-batch-tokens (source subwords x beam), waiting, when other
requests are about, at most --max-wait-ms for more after the first (or after its previous
batch, so that the clients it answered can rejoin); a lone request never waits. --workers
threads (default 2 on 2 cores or more) run batches at once on one copy of the model, each with
--threads intra-op threads (default: the cores divided among them).
Limits: --max-texts texts per request, --max-chars characters per text, beam 1..--max-beam,
n_best <= beam, --max-body-bytes; over them the request gets status 413 (sizes) or 422
(values), invalid JSON 400. No request can name a file or a model. The server listens on
127.0.0.1 unless --host says otherwise; it has no authentication, so expose it beyond the
machine only behind a proxy that adds one.

SIGTERM or Ctrl-C: stop accepting connections, finish the requests in flight (at most
--shutdown-timeout seconds), then exit 0 (SIGTERM) or 130 (Ctrl-C). Needs the `serve` extra:
pip install -e ".[serve]".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from seq2seq.commands import number_in, positive_int
from seq2seq.commands.translate import add_decode_options, decode_workers, load_translator

logger = logging.getLogger(__name__)


class ServeError(ValueError):
    """A server that cannot start: a busy port, contradictory limits."""


def add_parser(subparsers) -> None:
    """Register the `serve` subcommand."""
    p = subparsers.add_parser(
        "serve",
        help="serve a trained model over HTTP, with a page that shows its attention",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_decode_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=number_in(int, ge=0, le=65535),
        default=8080,
        help="port (default 8080; 0: any free port, printed at startup)",
    )
    p.add_argument(
        "--max-batch-tokens",
        type=positive_int,
        default=8192,
        metavar="N",
        help="token budget of a batch: source subwords x beam (default 8192)",
    )
    p.add_argument(
        "--max-wait-ms",
        type=number_in(float, ge=0, le=10_000),
        default=20.0,
        metavar="MS",
        help="under concurrency, longest wait for more requests to batch with the first, "
        "counted from it or from the previous batch's end (default 20)",
    )
    p.add_argument("--max-texts", type=positive_int, default=64, help="texts per request (64)")
    p.add_argument(
        "--max-chars", type=positive_int, default=1000, help="characters per text (1000)"
    )
    p.add_argument("--max-beam", type=positive_int, help="largest beam (default max(10, beam))")
    p.add_argument(
        "--max-body-bytes", type=positive_int, default=1_000_000, help="request body size"
    )
    p.add_argument(
        "--shutdown-timeout",
        type=number_in(float, gt=0),
        default=30.0,
        metavar="S",
        help="on SIGTERM, longest wait for the requests in flight (default 30)",
    )
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Bind the address, load the model, serve until SIGTERM or Ctrl-C."""
    from seq2seq.serve import require_serve_extra

    require_serve_extra()
    sock = _bind(args.host, args.port)  # first: a busy port fails before the model loads
    with sock:
        server, banner = _server(args, sock)
        print(f"seq2seq serve: {banner}", file=sys.stderr)
        sys.stderr.flush()
        with _sigterm_stops_server():
            server.run(sockets=[sock])
    return 0


def _server(args: argparse.Namespace, sock: socket.socket) -> tuple[Any, str]:
    """The uvicorn server of the model of args.run, and the line announcing its address."""
    import torch
    import uvicorn

    from seq2seq.serve.app import Batching, create_app
    from seq2seq.serve.schema import Limits

    workers = decode_workers(args)  # the batcher's; each request's batch runs in one of them
    threads = torch.get_num_threads()
    translator = load_translator(args, workers=1)
    max_beam = args.max_beam or max(10, translator.beam)
    if translator.beam > max_beam:
        raise ServeError(f"--max-beam: {max_beam} is below the default beam {translator.beam}")
    limits = Limits(args.max_texts, args.max_chars, max_beam, args.max_body_bytes)
    batching = Batching(args.max_batch_tokens, args.max_wait_ms, workers)
    config = uvicorn.Config(
        create_app(translator, limits=limits, batching=batching),
        log_config=None,
        access_log=args.access_log,
        lifespan="on",
        timeout_graceful_shutdown=args.shutdown_timeout,
    )
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
    if not _is_loopback(args.host):
        logger.warning("listening on %s: reachable from the network, no authentication", host)
    return uvicorn.Server(config), f"{url} ({workers} x {threads} threads, beam {translator.beam})"


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (an error naming the option when it cannot be had).

    Made with protocol IPPROTO_TCP (not 0, as `socket.create_server` does) so that asyncio
    turns Nagle's algorithm off on each connection: otherwise the body of every response,
    written after its headers, waits ~40 ms for the client's delayed ACK.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise ServeError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        raise ServeError(f"--host {host} --port {port}: {e.strerror or e}") from None
    return sock


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


@contextlib.contextmanager
def _sigterm_stops_server() -> Iterator[None]:
    """Let uvicorn's SIGTERM handler drain the server, then exit 0 rather than 143.

    uvicorn handles SIGTERM (stop accepting, finish the requests in flight, shut down) and
    raises the signal again once done, with the handler it found restored; that handler is a
    no-op here, so the command returns 0 after a graceful shutdown.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Load benchmark of `seq2seq serve`: throughput and latency under 1, 8 and 32 clients.

Usage:
    python scripts/bench_serve.py RUN_DIR                       # beam 5, 3 rounds
    python scripts/bench_serve.py RUN_DIR --requests 128 --rounds 1 --concurrency 1,4,16
    python scripts/bench_serve.py RUN_DIR --out docs/results/serve/bench_serve.txt

What is measured, on loopback, on the source side of Multi30k test_2016_flickr (the first
--requests sentences, one sentence per request):
* the server (`seq2seq serve RUN --port 0`, started as a subprocess with the options after
  `--` passed through): for each concurrency C, C client threads (each with its own
  keep-alive connection) send the requests as fast as the answers come; sentences/s = requests
  / wall time, latency percentiles over the requests, errors = non-200 answers or failures.
* one client alone on the sentences of exactly 13 words (--words): the p50 latency the goal
  speaks of ("under 150 ms for a 13-word sentence").
* the batch job: `seq2seq translate RUN --input FILE --output FILE` on the same sentences with
  the same decoding options (--beam, --stopping); its time is the command's wall time minus
  that of the same command on an empty input (start-up and model loading), so both sides count
  translation only. It runs before the first concurrency and after each one, and each
  concurrency's share is its sentences/s against the mean of the two runs beside it: the
  machine's speed drifts within a round, and the shares of adjacent measurements are steadier.
Each round measures everything once; the table shows the median of the rounds (sentences/s,
the share of the batch job's, latencies, and the mean number of requests per model batch, read
from the server's /health counters), then each round's share at the highest concurrency. The
server and the clients share the machine's cores, as a batch job and its reader would not.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT / "data" / "multi30k" / "test_2016_flickr.en.gz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory or .pt checkpoint")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="source sentences (.gz ok)")
    p.add_argument("--requests", type=int, default=256, help="requests per concurrency")
    p.add_argument("--concurrency", default="1,8,32", help="client counts, comma-separated")
    p.add_argument("--words", type=int, default=13, help="sentence length of the latency run")
    p.add_argument("--word-requests", type=int, default=40, help="requests of that run")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--stopping", choices=("exact", "early"),
                   help="beam search's stopping rule of the server and the batch job "
                   "(default: the run's decode.stopping)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, help="also write the report here")
    p.add_argument("--", dest="server_args", metavar="SERVE_OPTION", nargs="*",
                   help="options of `seq2seq serve` for the server (after --)")  # fmt: skip
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    args = p.parse_args(argv[:cut])
    args.server_args = argv[cut + 1 :]
    return args


def read_sentences(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


# --- the server -------------------------------------------------------------------------------


class Server:
    """`seq2seq serve` in a subprocess on a free port."""

    def __init__(self, run: str, decode: list[str], extra: list[str]) -> None:
        cmd = [sys.executable, "-m", "seq2seq", "serve", run, "--port", "0", *decode]
        self.cmd = cmd + extra
        self.proc = subprocess.Popen(self.cmd, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.address: tuple[str, int] | None = None
        started = threading.Event()
        threading.Thread(target=self._read, args=(started,), daemon=True).start()
        if not started.wait(120) or self.address is None:
            self.stop()
            raise SystemExit("bench_serve: the server did not start:\n" + "\n".join(self.lines))

    def _read(self, started: threading.Event) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if line.startswith("seq2seq serve: http://"):
                host_port = line.split()[2].split("//")[1].rstrip("/")
                host, port = host_port.rsplit(":", 1)
                self.address = (host, int(port))
                self.banner = line.strip()
                started.set()
        started.set()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(60)


class Client:
    """One keep-alive connection posting {"text": sentence}."""

    def __init__(self, address: tuple[str, int], beam: int) -> None:
        self.address, self.beam = address, beam
        self.conn = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        """A connection without Nagle's delay (http.client sends the headers and the body in
        two writes; the second would wait ~40 ms for the server's delayed ACK), as urllib3,
        httpx and browsers set it."""
        conn = http.client.HTTPConnection(*self.address, timeout=120)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def translate(self, text: str) -> str:
        body = json.dumps({"text": text, "beam": self.beam})
        try:
            self.conn.request("POST", "/v1/translate", body, {"Content-Type": "application/json"})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = self._connect()
            raise
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return json.loads(data)["translations"][0]["text"]


def load(address, beam: int, sentences: list[str], clients: int) -> dict:
    """Send every sentence once from `clients` threads; throughput, latencies, errors."""
    latencies: list[float] = []
    outputs: dict[int, str] = {}
    errors: list[str] = []
    lock = threading.Lock()
    todo = iter(range(len(sentences)))

    def worker() -> None:
        client = Client(address, beam)
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            start = time.perf_counter()
            try:
                text = client.translate(sentences[i])
            except Exception as e:
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                outputs[i] = text

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"sent_s": len(latencies) / wall, **percentiles(latencies), "errors": len(errors),
            "outputs": outputs, "first_error": errors[0] if errors else ""}  # fmt: skip


def percentiles(latencies: list[float]) -> dict[str, float]:
    if len(latencies) < 2:
        value = latencies[0] * 1000 if latencies else float("nan")
        return {"p50": value, "p95": value, "p99": value}
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": cuts[49] * 1000, "p95": cuts[94] * 1000, "p99": cuts[98] * 1000}


# --- the batch job ----------------------------------------------------------------------------


def decode_options(args) -> list[str]:
    """The decoding options the server and the batch job share."""
    return ["--beam", str(args.beam)] + (["--stopping", args.stopping] if args.stopping else [])


def batch_job(
    run: str, decode: list[str], sentences: list[str], tmp: Path
) -> tuple[float, list[str]]:
    """(sentences/s of `seq2seq translate` net of its start-up, its output lines)."""

    def timed(lines: list[str], name: str) -> float:
        src, out = tmp / f"{name}.en", tmp / f"{name}.de"
        src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        cmd = [sys.executable, "-m", "seq2seq", "translate", run, *decode]
        start = time.perf_counter()
        subprocess.run([*cmd, "--input", str(src), "--output", str(out)], check=True,
                       stderr=subprocess.DEVNULL)  # fmt: skip
        return time.perf_counter() - start

    startup = timed([], "empty")
    total = timed(sentences, "batch")
    outputs = (tmp / "batch.de").read_text(encoding="utf-8").splitlines()
    return len(sentences) / max(total - startup, 1e-9), outputs


# --- rounds and the report --------------------------------------------------------------------


def health(address) -> dict:
    conn = http.client.HTTPConnection(*address, timeout=30)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def one_round(args, address, sentences, word_sentences, tmp: Path) -> dict:
    """Each concurrency between two runs of the batch job: its share is taken against their
    mean, so that the machine's drift within a round cancels out."""
    job = decode_options(args)
    batches = [batch_job(args.run, job, sentences, tmp)]
    result: dict = {}
    for clients in args.levels:
        before = health(address)
        result[clients] = load(address, args.beam, sentences, clients)
        after = health(address)
        served = max(1, after["batches"] - before["batches"])
        result[clients]["per_batch"] = (after["jobs"] - before["jobs"]) / served
        batches.append(batch_job(args.run, job, sentences, tmp))
        beside = (batches[-2][0] + batches[-1][0]) / 2
        result[clients]["share"] = result[clients]["sent_s"] / beside
    result["batch"] = (statistics.median(b[0] for b in batches), batches[0][1])
    result["words"] = load(address, args.beam, word_sentences, 1)
    return result


def machine() -> str:
    """The git commit, the CPU model and core count, the torch version."""
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, cwd=ROOT).stdout.strip()  # fmt: skip
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else "unknown CPU"  # fmt: skip
    torch = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return f"git {rev}, {cpu} x {os.cpu_count()}, torch {torch}"


def report(args, rounds: list[dict], n: int, n_words: int, server: Server) -> str:
    med = statistics.median
    batch = med(r["batch"][0] for r in rounds)
    lines = [
        f"$ python scripts/bench_serve.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}",
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}",
        f"server: seq2seq {' '.join(shlex.quote(a) for a in server.cmd[3:])}",
        f"  {server.banner}",
        f"{n} requests of one Multi30k test sentence each per concurrency, beam {args.beam}, "
        f"median of {len(rounds)} round(s); vs batch: sentences/s against the mean of the batch "
        "jobs run just before and just after",
        "",
        f"{'clients':>8} {'sent/s':>8} {'vs batch':>9} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7} {'req/batch':>10}",
    ]
    for clients in args.levels:
        rows = [r[clients] for r in rounds]
        sent = med(x["sent_s"] for x in rows)
        lines.append(
            f"{clients:>8} {sent:>8.1f} {med(x['share'] for x in rows):>8.1%} "
            f"{med(x['p50'] for x in rows):>8.0f} "
            f"{med(x['p95'] for x in rows):>8.0f} {med(x['p99'] for x in rows):>8.0f} "
            f"{sum(x['errors'] for x in rows):>7} {med(x['per_batch'] for x in rows):>10.1f}"
        )
    job = " ".join(decode_options(args))
    lines.append(f"{'batch':>8} {batch:>8.1f} {'100%':>9}   (seq2seq translate {job}, one job)")
    top = args.levels[-1]
    per_round = ", ".join(f"{r[top]['share']:.1%}" for r in rounds)
    lines.append(f"{top} clients against the batch jobs beside them, per round: {per_round}")
    words = [r["words"] for r in rounds]
    lines += [
        "",
        f"one client, {n_words} sentences of {args.words} words: p50 "
        f"{med(x['p50'] for x in words):.0f} ms, p95 {med(x['p95'] for x in words):.0f} ms, "
        f"errors {sum(x['errors'] for x in words)}",
    ]
    same = [
        sum(out == r["batch"][1][i] for i, out in r[args.levels[-1]]["outputs"].items())
        for r in rounds
    ]
    lines.append(
        f"outputs at {args.levels[-1]} clients equal to the batch job's: "
        f"{min(same)}/{n} (worst round)"
    )
    errors = [
        x["first_error"] for r in rounds for k, x in r.items() if k != "batch" and x["errors"]
    ]
    if errors:
        lines.append(f"first error: {errors[0]}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.levels = [int(c) for c in args.concurrency.split(",")]
    every = read_sentences(args.data)
    sentences = every[: args.requests]
    word_sentences = [s for s in every if len(s.split()) == args.words][: args.word_requests]
    server = Server(args.run, decode_options(args), args.server_args)
    rounds = []
    try:
        warm = [every[-i] for i in range(1, 9)]
        load(server.address, args.beam, warm, 8)  # first calls allocate and compile
        with tempfile.TemporaryDirectory() as tmp:
            for i in range(args.rounds):
                rounds.append(one_round(args, server.address, sentences, word_sentences, Path(tmp)))
                print(f"round {i + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.stop()
    text = report(args, rounds, len(sentences), len(word_sentences), server)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

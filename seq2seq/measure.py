"""``python -m seq2seq.measure STATS.json COMMAND [ARGS...]``: runs one ``seq2seq``
command (e.g. ``train CONFIG --run-dir DIR``) in this process and writes its exit code, wall time,
peak resident memory and, when the command used CUDA, peak GPU memory to STATS.json.

``seq2seq compare`` trains each variant through this module in a process of its own, so that
each variant's memory is measured alone. The peak is the kernel's high-water mark of this
process's address space (``VmHWM`` in ``/proc/self/status``), read just before exit. The
``ru_maxrss`` of ``getrusage``/``wait4`` is only a fallback where /proc is missing: it survives
``exec``, so a child started by a large process (the comparison, after loading and evaluating
earlier variants) reports the parent's peak whenever that is the higher one. The GPU figure is
the CUDA caching allocator's peak of allocated memory on the process's GPU
(:func:`seq2seq.runtime.device.peak_memory_mib`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def peak_rss_kib() -> tuple[int | None, str]:
    """(peak resident memory of this process in KiB, where the number comes from)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]), "VmHWM"
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # not a Unix system
        return None, "unavailable"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (peak // 1024 if sys.platform == "darwin" else peak), "ru_maxrss"  # bytes on macOS


def peak_gpu_mib() -> float | None:
    """Peak allocated CUDA memory of this process's current GPU in MiB; None without CUDA use."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    from seq2seq.runtime.device import peak_memory_mib

    return peak_memory_mib(torch.device("cuda", torch.cuda.current_device()))


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``seq2seq ARGS`` and writes the stats file, whatever the outcome."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(
            "usage: python -m seq2seq.measure STATS.json COMMAND [ARGS...]",
            file=sys.stderr,
        )
        return 2
    from seq2seq.cli import main as cli_main
    from seq2seq.fileio import write_atomic

    stats_path, command = Path(args[0]), args[1:]
    started = time.perf_counter()
    code = 1
    try:
        code = cli_main(command)
    finally:
        peak, source = peak_rss_kib()
        stats = {
            "exit_code": code,
            "wall_seconds": time.perf_counter() - started,
            "peak_rss_kib": peak,
            "memory_source": source,
            "peak_gpu_mib": peak_gpu_mib(),
        }
        write_atomic(json.dumps(stats) + "\n", stats_path)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

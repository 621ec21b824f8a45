"""An HTTP server for a trained translator: `seq2seq serve RUN` (extra: ``pip install -e
".[serve]"``, Starlette and uvicorn).

`create_app(translator)` (in `seq2seq.serve.app`) is the ASGI application: ``POST
/v1/translate``, ``GET /v1/model``, ``GET /health`` and the page at ``/``. Requests are
checked against `schema.Limits`, and translated by worker threads in dynamic batches
(`batcher.Batcher`). This package imports Starlette only in `seq2seq.serve.app`, so the rest
of seq2seq works without the extra; `require_serve_extra` says what to install.
"""

from __future__ import annotations

import importlib.util


class ServeExtraMissing(ValueError):
    """Starlette or uvicorn is not installed."""


def require_serve_extra() -> None:
    """Raise :class:`ServeExtraMissing` naming what to install when the extra is missing."""
    missing = [name for name in ("starlette", "uvicorn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ServeExtraMissing(
            f'seq2seq serve needs {" and ".join(missing)}: pip install -e ".[serve]" '
            f"(or pip install starlette uvicorn)"
        )

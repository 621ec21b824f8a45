"""Keep freed memory in the process on glibc, instead of handing it back to the kernel.

glibc's ``malloc`` serves every request above its mmap threshold (at most 32 MiB by default)
with a fresh ``mmap`` and returns it with ``munmap`` when it is freed. A training step of an NMT
model allocates several tensors far above that size (the logits of a 4096-token batch over an
8000-word vocabulary are 131 MB, and so are their log-probabilities and gradients), so every
step maps them anew and the kernel zero-fills them page by page: on a 2-core machine the tiny
Multi30k Transformer spent about a third of its CPU time in the kernel on these page faults.

:func:`retain_freed_memory` raises the mmap and trim thresholds with ``mallopt`` so that such
blocks come from the heap and go back to it when freed; the next step reuses them without a
fault. This is what PyTorch's performance guide gets by preloading jemalloc or tcmalloc, done in
process with the C library that is already there. The resident size then stays near the peak
of the run instead of falling between steps.

It changes nothing when the C library is not glibc, when the user has set glibc's own variables
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``: their choice
stands), or when ``SEQ2SEQ_MALLOC=system`` asks for the C library's defaults.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from typing import Any

logger = logging.getLogger(__name__)

#: ``mallopt`` parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks up to this size are served from (and freed back to) the heap.
THRESHOLD = 1 << 30  # 1 GiB

#: Environment variables by which the user has chosen glibc's malloc settings already.
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

#: ``SEQ2SEQ_MALLOC`` values: ``retain`` (the default) or ``system`` (leave malloc alone).
ENV = "SEQ2SEQ_MALLOC"
CHOICES = ("retain", "system")

_applied = False


class AllocatorSettingError(ValueError):
    """A ``SEQ2SEQ_MALLOC`` value that is not one of :data:`CHOICES`."""


def retain_freed_memory() -> bool:
    """Sets glibc's mmap and trim thresholds to :data:`THRESHOLD`; True when they were set.

    Safe to call more than once and on any platform: it returns False, changing nothing, where it
    does not apply (see the module docstring). Raises AllocatorSettingError for a bad
    ``SEQ2SEQ_MALLOC``.
    """
    global _applied
    choice = os.environ.get(ENV, "retain").strip().lower() or "retain"
    if choice not in CHOICES:
        raise AllocatorSettingError(
            f"environment variable {ENV}: got {choice!r}, expected one of {CHOICES}"
        )
    if _applied:
        return True
    if choice == "system" or any(name in os.environ for name in _USER_SETTINGS):
        return False
    mallopt = _glibc_function("mallopt", [ctypes.c_int, ctypes.c_int])
    if mallopt is None:
        return False
    if not (mallopt(M_MMAP_THRESHOLD, THRESHOLD) and mallopt(M_TRIM_THRESHOLD, THRESHOLD)):
        logger.debug("mallopt refused a threshold of %d bytes; malloc left as it is", THRESHOLD)
        return False
    _applied = True
    logger.debug("glibc malloc keeps freed blocks up to %d bytes in the heap", THRESHOLD)
    return True


def release_freed_memory() -> bool:
    """Hands the heap's free blocks back to the kernel (glibc ``malloc_trim``); True if it ran.

    For measurements of peak resident memory: after it, the resident size follows live memory
    again, so a peak counter reset next starts from the memory actually in use.
    """
    malloc_trim = _glibc_function("malloc_trim", [ctypes.c_size_t])
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def _glibc_function(name: str, argtypes: list[Any]) -> Any | None:
    """The C library's function ``name`` (returning int) on Linux with glibc, else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function

"""JAX settings bayesplit relies on, applied once.

* double precision on CPU (dense-mass adaptation and the allocator's polish need it);
* a persistent compilation cache, so a CLI command compiles its samplers and solvers
  once per machine, not once per process. Directory: ``$BAYESPLIT_JAX_CACHE`` or
  ``${XDG_CACHE_HOME:-~/.cache}/bayesplit/jax`` (not capped: delete it to reclaim the space);
  set ``BAYESPLIT_JAX_CACHE=off`` to disable it. Every
  compilation is kept, however quick: NumPyro's set-up compiles ~200 one-op programs per
  fit, each far below JAX's default threshold of 1 s (a repeated 1-chain 30-draw fit in a
  new process: 20 s with a 0.5 s threshold, 7.6 s with none;
  experiments/benchmarks/compile_cache.md);
* :func:`release_compiled_if_crowded` before each fit, so a process that fits many times
  (campaigns, the closed loop) does not run out of memory mappings.
"""

from __future__ import annotations

import os
from pathlib import Path

_DONE = False

#: CPU devices JAX is asked for: NumPyro runs one chain per device (``parallel``), and the
#: chain method changes the draws of a seed.
CPU_DEVICES = max(4, os.cpu_count() or 1)


def reserve_cpu_devices() -> None:
    """Ask XLA for :data:`CPU_DEVICES` CPU devices, unless the user's ``XLA_FLAGS`` say.

    Only heeded before JAX starts its backend, so ``import bayesplit`` does it: set when
    the fitting module was imported, it came after a ``prior_predictive`` or ``predict``
    had started JAX, and one seed drew another posterior (chains one after another).
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={CPU_DEVICES}".strip()
        )


def default_cache_dir() -> Path:
    """Where compiled samplers are cached unless ``BAYESPLIT_JAX_CACHE`` says otherwise
    (a folder, or ``off``): ``$XDG_CACHE_HOME/bayesplit/jax``, else ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bayesplit" / "jax"


def configure() -> None:
    global _DONE
    if _DONE:
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    where = os.environ.get("BAYESPLIT_JAX_CACHE", str(default_cache_dir()))
    if where.lower() not in ("off", "0", "none", ""):
        try:
            Path(where).mkdir(parents=True, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", where)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            # no jax_compilation_cache_max_size: a capped cache needs filelock (not a core
            # dependency) and an access-time file per entry, which entries written uncapped
            # lack, so every write warned and the cache stopped growing
        except OSError:
            pass  # a read-only home only costs compile time
    _DONE = True


def prng_key(seed: int):
    """The PRNG key of a seed from 0 to 2^63 - 1, the same whether or not JAX runs in 64 bits.

    ``jax.random.PRNGKey`` keeps only the low 32 bits of a seed without 64-bit mode (a GPU
    fit does not turn it on), so seeds 2^32 apart drew the same posterior there. The key
    built from both 32-bit halves is the one ``PRNGKey`` gives in 64-bit mode, so CPU fits
    draw what they always drew.
    """
    import numpy as np

    return np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)


#: Clear JAX's in-memory executables once the process uses this share of the kernel's
#: memory-mapping limit.
MAPS_SHARE = 0.6


def _count_maps() -> tuple[int, int] | None:
    try:
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
        with open("/proc/self/maps", "rb") as f:
            used = sum(1 for _ in f)
    except (OSError, ValueError):
        return None  # not Linux: nothing to watch
    return used, limit


def release_compiled_if_crowded(share: float | None = None) -> bool:
    """Drop JAX's compiled executables when the process nears its memory-mapping limit.

    Every NUTS fit leaves ~1,300 mappings of compiled code behind on CPU (measured with
    jax 0.10), and at the default limit of 65,530 a process dies after ~45 fits with "LLVM
    compilation error: Cannot allocate memory". Clearing costs one recompilation, so it is
    done only when needed. Returns True when it cleared.
    """
    share = MAPS_SHARE if share is None else share
    counts = _count_maps()
    if counts is None or counts[0] < share * counts[1]:
        return False
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    return True

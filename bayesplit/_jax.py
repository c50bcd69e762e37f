"""JAX settings bayesplit relies on, applied once.

* double precision on CPU (dense-mass adaptation and the allocator's polish need it);
* a persistent compilation cache, so a CLI command compiles its samplers and solvers
  once per machine, not once per process. Directory: ``$BAYESPLIT_JAX_CACHE`` or
  ``~/.cache/bayesplit/jax``; set ``BAYESPLIT_JAX_CACHE=off`` to disable it.
"""

from __future__ import annotations

import os
from pathlib import Path

_DONE = False


def configure() -> None:
    global _DONE
    if _DONE:
        return
    import jax

    jax.config.update("jax_enable_x64", True)
    where = os.environ.get("BAYESPLIT_JAX_CACHE", str(Path.home() / ".cache" / "bayesplit" / "jax"))
    if where.lower() not in ("off", "0", "none", ""):
        try:
            Path(where).mkdir(parents=True, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", where)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        except OSError:
            pass  # a read-only home only costs compile time
    _DONE = True

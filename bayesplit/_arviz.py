"""Every ArviZ call bayesplit makes, in one place.

ArviZ 0.x (InferenceData) is what Python 3.11 resolves to; ArviZ 1.x moves to
xarray DataTree. Keeping the calls here makes that move one module.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import arviz as az
import numpy as np
import xarray as xr

InferenceData = az.InferenceData


@contextmanager
def _quiet() -> Iterator[None]:
    """Hold back ArviZ's own log lines (e.g. "Shape validation failed" for one chain):
    bayesplit's diagnostics say the same in its own words, and the CLI keeps stderr to
    one line per problem."""
    # ArviZ 0.x logs through its own Logger object, which getLogger("arviz") does not return
    logs = {id(x): x for x in (getattr(az, "_log", None), logging.getLogger("arviz")) if x}
    levels = {k: log.level for k, log in logs.items()}
    for log in logs.values():
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for k, log in logs.items():
            log.setLevel(levels[k])


def rhat(ds: xr.Dataset) -> xr.Dataset:
    with _quiet():
        return az.rhat(ds, method="rank")


def ess(ds: xr.Dataset, method: str) -> xr.Dataset:
    with _quiet():
        return az.ess(ds, method=method)


def bfmi(idata) -> float:
    if "energy" not in idata.sample_stats:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.min(az.bfmi(idata)))


def from_numpyro(mcmc, coords: dict, dims: dict):
    import numpyro

    # ArviZ runs the model once on a draw from the prior (for its shapes): a user law NaN
    # in a part of its prior (log(E - A·N^-α)) failed NumPyro's argument checks there,
    # after the sampling, with a traceback, though the fit itself was sound
    with numpyro.validation_enabled(False):
        return az.from_numpyro(mcmc, coords=coords, dims=dims)


def from_dict(**kwargs):
    return az.from_dict(**kwargs)


def loo(idata, var_name: str = "log_loss"):
    """PSIS-LOO with the Pareto-k values (warnings are reported by the caller, not printed)."""
    with warnings.catch_warnings(), _quiet():
        warnings.simplefilter("ignore")
        return az.loo(idata, pointwise=True, var_name=var_name)


def to_netcdf(idata, path) -> None:
    """Write ``idata`` as ``InferenceData.to_netcdf`` does (one netCDF group per ArviZ
    group, numeric variables gzip-compressed), with HDF5's Fletcher32 checksum on each
    compressed variable's chunks as well.

    ArviZ's ``to_netcdf`` takes no encoding, so its loop is repeated here: the checksum
    makes HDF5 refuse to read a chunk whose stored bytes changed after it was written.
    Variable-length strings (coordinates, run ids) cannot be filtered, so they carry none.
    """
    path = str(path)
    xr.Dataset(attrs=idata.attrs).to_netcdf(path, mode="w", engine="h5netcdf")
    for group in idata.groups():
        data = idata[group]
        encoding = {
            name: {"zlib": True, "fletcher32": True}
            for name, var in data.variables.items()
            if not unfiltered(var)
        }
        data.to_netcdf(path, mode="a", group=group, engine="h5netcdf", encoding=encoding)


def unfiltered(var) -> bool:
    """Whether :func:`to_netcdf` writes ``var`` without compression and checksum: text
    (variable-length strings) and scalars, which HDF5 cannot chunk or filter (ArviZ's own
    test of what it compresses)."""
    return not (var.ndim and var.dtype.kind in "biufcS")


def from_netcdf(path):
    return az.from_netcdf(str(path), engine="h5netcdf")


def concat_groups(idata, **groups) -> None:
    idata.add_groups(groups)

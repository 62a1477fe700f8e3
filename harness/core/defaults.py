"""Defaults the CLI shows in its help, kept free of heavy imports so that ``harness --help``
answers at once. The modules that use them import them from here."""

from pathlib import Path

VERSION = "0.1.0"  # the harness's own, recorded with every result (and the package's version)
REFERENCE_ROOT = Path("reference_models")  # the cache of original models and pools
# Worker processes sharing one GPU on a GPU task when neither --jobs nor --workers-per-device
# says otherwise. Provisional: not yet measured on a GPU in this repository
# (bench/bench_runs_per_device.py measures runs per hour at K workers against 1 and is the way to
# choose it).
WORKERS_PER_DEVICE = 4
LEVEL = 0.95  # of every interval
TUNING_TRIALS = 30  # trials a ``harness tune`` study has in all
TUNING_RUNS = 32  # N per trial: runs of the submission and models in the reference pool

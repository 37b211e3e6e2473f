"""Imported by every Python process the tests start (tests/conftest.py puts this folder on PYTHONPATH):
those processes, DDP ranks included, cannot reach the network either."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("_tformer_network_guard", Path(__file__).with_name("network_guard.py"))
_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_guard)
_guard.install()

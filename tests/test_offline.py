"""No test touches the network (tests/offline): connections to other machines fail at once, naming the fix, here
and in every process a test starts; this machine stays reachable."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.offline.network_guard import is_local

# The guard's error, NetworkAccessInTests, is a ConnectionRefusedError. Matched by name: a process that
# sitecustomize.py set up first (a pytest-xdist worker) raises the class of that copy of the module.
GUARD = ConnectionRefusedError


@pytest.mark.parametrize("host", ["192.0.2.1", "8.8.8.8", "2001:db8::1"])
def test_connections_to_other_machines_are_refused(host):
    with pytest.raises(GUARD, match=f"connection to '{host}' refused") as err:
        socket.create_connection((host, 80), timeout=1)
    assert type(err.value).__name__ == "NetworkAccessInTests"


def test_name_lookups_and_downloads_are_refused():
    with pytest.raises(GUARD, match="tests never touch the network"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(urllib.error.URLError, match="tests never touch the network"):
        urllib.request.urlopen("https://example.com", timeout=1)


def test_this_machine_is_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert all(is_local(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", None))
    assert not any(is_local(h) for h in ("example.com", "10.0.0.1", "192.168.1.1"))


@pytest.mark.slow
def test_processes_started_by_tests_are_offline_too():
    code = "import urllib.request; urllib.request.urlopen('https://example.com', timeout=1)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "tests never touch the network" in proc.stderr

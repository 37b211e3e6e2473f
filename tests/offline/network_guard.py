"""No test touches the network: connections to anything but this machine fail at once, naming the host.

Installed in the pytest process (tests/conftest.py) and in every Python process the tests start
(sitecustomize.py beside this file). Local connections (127.0.0.0/8, ::1, localhost, Unix sockets) work: the
download tests serve files from 127.0.0.1, DDP ranks meet on 127.0.0.1, W&B talks to its local service.
"""

from __future__ import annotations

import ipaddress
import socket

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", ""}


class NetworkAccessInTests(ConnectionRefusedError):
    """A test (or a process it started) tried to reach another machine."""


def is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode()
    host = str(host).strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a host name other than localhost: resolving it already needs the network
    return address.is_loopback or address.is_unspecified


def refuse(host) -> NetworkAccessInTests:
    return NetworkAccessInTests(
        f"tests never touch the network: connection to {host!r} refused (tests/offline/network_guard.py); "
        f"put the data the test needs under DATA_DIR (make data) or serve it from 127.0.0.1"
    )


def install() -> None:
    if getattr(socket, "_tformer_guarded", False):
        return
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def checked(address) -> None:
        if isinstance(address, tuple) and not is_local(address[0]):
            raise refuse(address[0])

    def guarded_connect(self, address):
        checked(address)
        return connect(self, address)

    def guarded_connect_ex(self, address):
        checked(address)
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        if not is_local(host):
            raise refuse(host)
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex = guarded_connect, guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo
    socket._tformer_guarded = True

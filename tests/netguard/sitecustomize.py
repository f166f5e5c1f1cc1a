"""Loaded at start-up by every Python process the test suite starts (it is put on
PYTHONPATH by tests/conftest.py), notebook kernels included: refuse network access.

Any attempt to connect a socket to an address outside the loopback range raises
``NetworkAccessBlocked`` and is appended to the file named by
``$FINETUNE_UTILS_NETLOG``; the test session fails at its end if that file is not empty,
so a library that swallows the error still fails the run.
"""

import os
import socket

_ALLOWED_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", ""}


class NetworkAccessBlocked(RuntimeError):
    pass


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    if isinstance(host, bytes):
        host = host.decode()
    return host in _ALLOWED_HOSTS or host.startswith("127.") or host.startswith("::ffff:127.")


def _check(sock, address):
    if sock.family == getattr(socket, "AF_UNIX", None) or _is_local(address):
        return
    message = f"network access blocked during tests: {address!r} (pid {os.getpid()})"
    log = os.environ.get("FINETUNE_UTILS_NETLOG")
    if log:
        with open(log, "a") as fh:
            fh.write(message + "\n")
    raise NetworkAccessBlocked(message)


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def guarded_connect(self, address):
    _check(self, address)
    return _real_connect(self, address)


def guarded_connect_ex(self, address):
    _check(self, address)
    return _real_connect_ex(self, address)


def guarded_sendto(self, *args):
    _check(self, args[-1])
    return _real_sendto(self, *args)


_real_sendto = socket.socket.sendto
socket.socket.connect = guarded_connect
socket.socket.connect_ex = guarded_connect_ex
socket.socket.sendto = guarded_sendto

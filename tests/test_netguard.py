"""The test suite itself must never reach the network: check the guard works."""

import socket
import subprocess
import sys

import pytest


def test_non_loopback_connection_is_blocked_and_logged(guard, monkeypatch, tmp_path):
    log = tmp_path / "blocked.log"
    monkeypatch.setenv("FINETUNE_UTILS_NETLOG", str(log))  # keep the session's log clean
    assert socket.socket.connect is guard.guarded_connect
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(guard.NetworkAccessBlocked, match="192.0.2.1"):
            sock.connect(("192.0.2.1", 80))  # TEST-NET-1: blocked before any packet leaves
    finally:
        sock.close()
    assert "192.0.2.1" in log.read_text()


def test_loopback_is_allowed():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname(), timeout=5)
    conn, _ = server.accept()
    client.sendall(b"ok")
    assert conn.recv(2) == b"ok"
    for s in (client, conn, server):
        s.close()


def test_child_processes_are_guarded_too():
    """Notebook kernels are child processes: they load the guard via PYTHONPATH."""
    code = "import socket; print(socket.socket.connect.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "guarded_connect"

"""Shared fixtures for the integration tests: every server binds 127.0.0.1
on a port chosen at run time, lives in a temp dir, and is stopped by PID."""
import os
import random
import socket
import subprocess
import time

import pytest

SOURCE_DIR = os.environ.get("SEALGATE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SEALGATE_BIN = os.environ.get("SEALGATE_BIN", os.path.join(SOURCE_DIR, "build", "sealgate"))


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_EPHEMERAL_LOW = _ephemeral_low()
_handed_out = set()


def free_port():
    """A port to give a server, below the kernel's ephemeral range: a port
    from bind(0) is released before the server binds it, and any outgoing
    connection (a busy test or benchmark beside us) can take it meanwhile."""
    low, high = 20000, max(20001, _EPHEMERAL_LOW - 1)
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def wait_port(port, timeout=10.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@pytest.fixture
def sealgate_bin():
    assert os.access(SEALGATE_BIN, os.X_OK), f"sealgate binary not built: {SEALGATE_BIN}"
    return SEALGATE_BIN


def run(args, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("timeout", 60)
    return subprocess.run(args, **kw)

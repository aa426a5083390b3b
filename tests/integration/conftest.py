"""Shared fixtures for the integration tests: every server binds 127.0.0.1
on a port chosen at run time, lives in a temp dir, and is stopped by PID."""
import os
import socket
import subprocess
import time

import pytest

SOURCE_DIR = os.environ.get("SEALGATE_SOURCE_DIR",
                            os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SEALGATE_BIN = os.environ.get("SEALGATE_BIN", os.path.join(SOURCE_DIR, "build", "sealgate"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

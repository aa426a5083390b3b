"""A 50 MiB message through Postfix and sealgate (SMTP and LMTP variants)
arrives byte-identical: sealgate spools it to a file (spool_memory_max is 1M)
and streams it to the reinjection listener."""
import time

import pytest

from postfix_harness import MailPath, make_message
from test_postfix import at_sink, check_same_message


@pytest.fixture(params=["lmtp", "smtp"])
def path(request):
    mp = MailPath(request.param)
    try:
        mp.start()
        yield mp
    finally:
        mp.stop(keep=request.session.testsfailed > 0)


def test_50mib_message(path):
    line = bytes(0x21 + (i % 90) for i in range(76)) + b"\r\n"
    body = line * (50 * 1024 * 1024 // len(line))
    msg = make_message(f"big-{path.proto}@x.test", body=body)
    t0 = time.monotonic()
    path.postfix.send(msg, timeout=180)
    (got, _), = at_sink(path, f"big-{path.proto}@x.test", timeout=180)
    print(f"{path.proto}: {len(msg) / 2**20:.1f} MiB through Postfix and sealgate "
          f"in {time.monotonic() - t0:.1f} s")
    check_same_message(msg, got)

"""The one check that sealgate's log holds no content: no Subject, no body
text (the tests' markers), no key material. Shared by the fault and bounce
tests (test_faults.py, test_bounce.py)."""
import re

# What key material looks like in a log line: armored blocks, PEM, or a
# long run of base64/hex that no queue ID, fingerprint or address explains.
KEY_PATTERNS = [
    re.compile(r"-----BEGIN [A-Z0-9 ]*(PRIVATE|PGP|CERTIFICATE|ENCRYPTED)"),
    re.compile(r"[A-Za-z0-9+/]{100,}={0,2}"),
]


def assert_log_clean(log, markers):
    """Fail, naming the line, if the log has a marker, a Subject or key
    material."""
    for line in log.splitlines():
        for m in markers:
            assert m not in line, f"marker {m!r} in sealgate's log: {line}"
        assert "subject:" not in line.lower(), f"a Subject in sealgate's log: {line}"
        for p in KEY_PATTERNS:
            assert not p.search(line), f"key material in sealgate's log: {line}"

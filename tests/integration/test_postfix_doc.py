"""doc/postfix.md quotes the etc/postfix/ files that the Postfix tests use,
unchanged, so the documented lines are the tested lines."""
import os
import subprocess

import pytest

from postfix_harness import ETC, SOURCE_DIR


@pytest.mark.parametrize("name", ["main.cf-lmtp", "main.cf-smtp", "master.cf-sealgate",
                                  "main.cf-submission", "master.cf-submission"])
def test_doc_quotes_tested_file(name):
    with open(os.path.join(SOURCE_DIR, "doc", "postfix.md")) as f:
        doc = f.read()
    with open(os.path.join(ETC, name)) as f:
        text = f.read()
    assert "```\n" + text + "```" in doc, f"doc/postfix.md does not quote etc/postfix/{name}"


def test_doc_sealgate_block_is_valid(tmp_path):
    """The sealgate.conf lines the guide shows pass `sealgate serve --check`."""
    binary = os.environ.get("SEALGATE_BIN", os.path.join(SOURCE_DIR, "build", "sealgate"))
    with open(os.path.join(SOURCE_DIR, "doc", "postfix.md")) as f:
        doc = f.read()
    start = doc.index("\n```\n", doc.index("sealgate (`etc/sealgate.conf`")) + 5
    block = doc[start:doc.index("```", start)]
    assert "lmtp_listen = 127.0.0.1:10024" in block
    conf = tmp_path / "sealgate.conf"
    conf.write_text(block + f"state_dir = {tmp_path}\n")
    r = subprocess.run([binary, "serve", "-c", str(conf), "--check"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr

"""doc/postfix.md quotes the etc/postfix/ files that the Postfix tests use,
unchanged, so the documented lines are the tested lines."""
import os

import pytest

from postfix_harness import ETC, SOURCE_DIR


@pytest.mark.parametrize("name", ["main.cf-lmtp", "main.cf-smtp", "master.cf-sealgate"])
def test_doc_quotes_tested_file(name):
    with open(os.path.join(SOURCE_DIR, "doc", "postfix.md")) as f:
        doc = f.read()
    with open(os.path.join(ETC, name)) as f:
        text = f.read()
    assert "```\n" + text + "```" in doc, f"doc/postfix.md does not quote etc/postfix/{name}"

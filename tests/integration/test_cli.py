"""The command line: version, help, unknown commands, exit codes."""
from conftest import run


def test_version(sealgate_bin):
    r = run([sealgate_bin, "version"], text=True)
    assert r.returncode == 0
    assert r.stdout.startswith("sealgate ")
    assert "librnp" in r.stdout


def test_help_lists_commands(sealgate_bin):
    r = run([sealgate_bin, "help"], text=True)
    assert r.returncode == 0
    for cmd in ("serve", "version", "help"):
        assert f"  {cmd} " in r.stdout


def test_unknown_command(sealgate_bin):
    r = run([sealgate_bin, "frobnicate"], text=True)
    assert r.returncode == 64
    assert "unknown command 'frobnicate'" in r.stderr

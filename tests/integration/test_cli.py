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


def test_sample_config_is_valid(sealgate_bin, tmp_path):
    """etc/sealgate.conf, the file the README points admins at, must pass --check."""
    import os
    from conftest import SOURCE_DIR
    r = run([sealgate_bin, "serve", "-c", os.path.join(SOURCE_DIR, "etc", "sealgate.conf"), "--check"],
            text=True)
    assert r.returncode == 0, r.stderr
    assert "is valid" in r.stdout


def test_bad_config_names_file_and_line(sealgate_bin, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("listen = 127.0.0.1:2525\nmax_sessions = many\n")
    r = run([sealgate_bin, "serve", "-c", str(conf), "--check"], text=True)
    assert r.returncode == 78
    assert f"{conf}:2: max_sessions: 'many' is not a valid number" in r.stderr


def test_command_line_overrides(sealgate_bin, tmp_path):
    r = run([sealgate_bin, "serve", "--state-dir", str(tmp_path), "--listen", "127.0.0.1:2525",
             "--lmtp", "127.0.0.1:2424", "--relay", "127.0.0.1:2626", "--print-config"], text=True)
    assert r.returncode == 0, r.stderr
    for line in (f"state_dir = {tmp_path}", "listen = 127.0.0.1:2525",
                 "lmtp_listen = 127.0.0.1:2424", "relay = 127.0.0.1:2626"):
        assert line + "\n" in r.stdout
    r = run([sealgate_bin, "serve", "--relay", "nowhere", "--check"], text=True)
    assert r.returncode == 78
    assert "command line: relay: 'nowhere': missing port" in r.stderr

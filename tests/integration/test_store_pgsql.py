"""The store test suite (tests/unit/test-store.c) against a real
PostgreSQL 15 started in a temp dir, plus what only a server shows:
the schema as PostgreSQL sees it, and two instances sharing one store."""
import os
import subprocess

import pytest

from keys_helpers import BUILD_DIR, Postgres


@pytest.fixture(scope="module")
def pg():
    server = Postgres().start()
    yield server
    server.stop()


def test_store_suite_on_postgresql(pg):
    url = pg.createdb("suite")
    exe = os.path.join(BUILD_DIR, "tests", "test-store")
    r = subprocess.run([exe], env={**os.environ, "SG_STORE_TEST_URL": url},
                       capture_output=True, text=True, timeout=120)
    print(r.stdout, r.stderr)
    assert r.returncode == 0
    # Every test ran against the server; only the SQLite-file checks skip.
    out = r.stdout + r.stderr
    assert "PASSED  ] 9 test(s)" in out
    assert "SKIPPED ] test_sqlite_file" in out
    # The suite really wrote to this server.
    out = pg.psql("suite", "select count(*) from user_keys where addr = 'bob@list.test'")
    assert out.stdout.strip() == "1"
    out = pg.psql("suite", "select max(version) from schema_version")
    assert out.stdout.strip() == "2"


def test_cli_on_postgresql_shared_store(pg, sealgate_bin, tmp_path):
    """Two 'instances' (CLI runs with different state dirs) see one store."""
    url = pg.createdb("shared")
    cfg = tmp_path / "sealgate.conf"
    cfg.write_text(f"store = {url}\n")
    mk = tmp_path / "master.key"
    r = subprocess.run([sealgate_bin, "key", "init-master", "--master-key", str(mk)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    for sd in ("a", "b"):
        r = subprocess.run([sealgate_bin, "key", "list", "-c", str(cfg), "--state-dir",
                            str(tmp_path / sd)], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
    out = pg.psql("shared", "select count(*) from schema_version")
    assert out.stdout.strip() == "2"


def test_concurrent_first_open_migrates_once(pg, sealgate_bin, tmp_path):
    """Several instances opening a fresh database at once: the migration
    lock lets one migrate; the others wait and find the schema current."""
    url = pg.createdb("race")
    procs = [subprocess.Popen([sealgate_bin, "key", "list", "--store", url, "--state-dir",
                               str(tmp_path / f"s{i}")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert [rc for _, _, rc in results] == [0, 0, 0, 0], results
    out = pg.psql("race", "select count(*), max(version) from schema_version")
    assert out.stdout.strip() == "2|2"


def test_domain_rotation_one_at_a_time(pg, sealgate_bin, tmp_path):
    """[domain] on PostgreSQL: four instances rotating at once (advisory
    lock) make one set of keys, not four; destruction then empties the rows."""
    url = pg.createdb("domain")
    mk = tmp_path / "master.key"
    assert subprocess.run([sealgate_bin, "key", "init-master", "--master-key", str(mk)],
                          capture_output=True, timeout=30).returncode == 0
    cfg = tmp_path / "sealgate.conf"
    cfg.write_text(f"store = {url}\nmaster_key_file = {mk}\ndomain_names = a.test\n")
    now = 1_900_000_000
    env = {**os.environ, "SEALGATE_NOW": str(now)}
    r = subprocess.run([sealgate_bin, "domain", "-c", str(cfg), "init"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    env["SEALGATE_NOW"] = str(now + 86400)
    procs = [subprocess.Popen([sealgate_bin, "domain", "-c", str(cfg), "--state-dir",
                               str(tmp_path / f"s{i}"), "rotate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(4)]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in procs]
    assert [rc for _, _, rc in results] == [0, 0, 0, 0], results
    made = sorted(int(o.split()[1]) for o, _, _ in results)
    assert made == [0, 0, 0, 1], results
    out = pg.psql("domain", "select count(*) from domain_keys where kind = 'encryption'")
    assert out.stdout.strip() == "8"
    env["SEALGATE_NOW"] = str(now + 60 * 86400)
    r = subprocess.run([sealgate_bin, "domain", "-c", str(cfg), "rotate"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "8 destroyed" in r.stdout, (r.stdout, r.stderr)
    out = pg.psql("domain", "select count(*) from private_keys where purpose in "
                            "('domain-decrypt', 'domain-epoch')")
    assert out.stdout.strip() == "14"  # the 7 new keys, two rows each

"""Schema migrations: idempotent, refused on a newer database, and checked
by every daemon at start-up."""

import subprocess

from conftest import Daemon, pp_bin, run


def _migrate(conf):
    return subprocess.run([pp_bin(), "-c", conf, "db", "migrate"], capture_output=True,
                          text=True, timeout=60)


def test_migrate_is_idempotent_and_versioned(db, pp_tmp):
    conf = db.config(pp_tmp + "/pp.conf")
    r = _migrate(conf)
    assert r.returncode == 0, r.stderr
    assert "up to date" in r.stdout
    latest = db.sql("SELECT max(version) FROM schema_version")[0][0]
    assert latest >= 1
    r = run([pp_bin(), "-c", conf, "db", "version"])
    assert "version %d" % latest in r.stdout


def test_migrate_refuses_a_newer_schema(db, pp_tmp):
    conf = db.config(pp_tmp + "/pp.conf")
    db.sql("INSERT INTO schema_version (version, name) VALUES (999, 'from the future')")
    r = _migrate(conf)
    assert r.returncode == 1
    assert "version 999" in r.stderr and "refusing" in r.stderr
    # Nothing was touched: the future row is still the newest.
    assert db.sql("SELECT max(version) FROM schema_version")[0][0] == 999


def test_daemon_refuses_a_schema_it_does_not_speak(db, pp_tmp):
    conf = db.config(pp_tmp + "/pp.conf")
    db.sql("INSERT INTO schema_version (version, name) VALUES (999, 'from the future')")
    d = Daemon("sender", conf)
    assert d.wait(10) == 1
    assert "run: practicepost db migrate" in d.log()


def test_migrate_on_an_empty_database(pg_cluster, pp_tmp):
    pg_cluster.create_db("empty_migrate")
    try:
        from conftest import write_config
        conf = write_config(pp_tmp + "/pp.conf", pg_cluster.conninfo("empty_migrate"))
        r = _migrate(conf)
        assert r.returncode == 0, r.stderr
        assert "from version 0" in r.stdout
        states = pg_cluster.sql("empty_migrate",
                                "SELECT enum_range(NULL::message_state)::text")[0][0]
        assert "pending_sync" in states and "received" in states
    finally:
        pg_cluster.drop_db("empty_migrate")

"""Least-privilege database roles (common/sql/roles.sql).

`practicepost db migrate` creates pp_fetcher, pp_composer, pp_sender, pp_sms,
pp_watchdog and pp_operator and grants each only what it needs; the daemons
and the CLI take theirs with SET ROLE ([database] roles). Each test here
takes a role in psycopg2 and proves that a forbidden action fails with a
permission error (not some other error) and that the allowed ones work, or
runs the real daemons with roles on.
"""

import os

import psycopg2
import psycopg2.errors
import pytest

from conftest import pp_bin, run, write_config
from test_fetcher import encrypt_secret

STAGES = ["pp_fetcher", "pp_composer", "pp_sender", "pp_sms", "pp_watchdog"]
ROLES = STAGES + ["pp_operator"]
FROM = "reminders@smile.example"
PASSWORD = "correct horse battery"


# --------------------------------------------------------------------------
# helpers


def seed(db):
    """A practice, a patient, an email account, one outgoing and one incoming
    message (each with a body); returns their ids."""
    ids = {}
    ids["practice"] = db.sql("INSERT INTO practices (name, mail_domain, time_zone) VALUES "
                             "('Smile Dental', 'smile.example', 'Europe/London') "
                             "RETURNING id")[0][0]
    ids["person"] = db.sql("INSERT INTO people (practice_id, first_name, last_name, email) "
                           "VALUES (%s, 'Anna', 'Jones', 'anna@patient.example') RETURNING id",
                           (ids["practice"],))[0][0]
    ids["account"] = db.sql("INSERT INTO email_accounts (practice_id, name, from_address, "
                            "smtp_host, smtp_tls, smtp_auth) VALUES (%s, 'front desk', %s, "
                            "'127.0.0.1', 'none', false) RETURNING id",
                            (ids["practice"], FROM))[0][0]
    ids["out"] = db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, to_addr, subject, body, message_id_header) VALUES (%s, 'out', 'email', "
        "'sent', %s, %s, 'anna@patient.example', 'Your results', 'SECRET CLINICAL TEXT', "
        "'<out-1@smile.example>') RETURNING id",
        (ids["practice"], ids["account"], ids["person"]))[0][0]
    ids["in"] = db.sql(
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, subject, body, body_text) VALUES (%s, 'in', 'email', 'received', %s, %s, "
        "'Re: Your results', 'raw', 'thanks') RETURNING id",
        (ids["practice"], ids["account"], ids["person"]))[0][0]
    return ids


def as_role(db, role):
    """A connection (autocommit) that has taken role with SET ROLE."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SET ROLE %s" % role)
    return conn


def execute(conn, sql, params=None):
    """Run sql in its own transaction (rolled back); rows or None."""
    conn.autocommit = False
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.rollback()
        conn.autocommit = True


def forbidden(conn, sql, params=None):
    """sql fails for lack of a privilege (SQLSTATE 42501) with PostgreSQL's
    own wording, not the audit trigger's or a constraint's."""
    with pytest.raises(psycopg2.errors.InsufficientPrivilege) as e:
        execute(conn, sql, params)
    text = str(e.value)
    assert "permission denied" in text or "must be owner" in text, text
    assert "append-only" not in text, text


def allowed(conn, sql, params=None):
    return execute(conn, sql, params)


def grants(db):
    """Every table, column and sequence privilege the roles hold."""
    return db.sql(
        "SELECT 't', grantee::text, table_name::text, '', privilege_type::text "
        "FROM information_schema.role_table_grants WHERE grantee LIKE 'pp\\_%%' UNION ALL "
        "SELECT 'c', grantee, table_name, column_name, privilege_type "
        "FROM information_schema.column_privileges WHERE grantee LIKE 'pp\\_%%' UNION ALL "
        "SELECT 's', r.rolname, c.relname, '', 'USAGE' FROM pg_class c "
        "CROSS JOIN pg_roles r WHERE c.relkind = 'S' AND r.rolname LIKE 'pp\\_%%' "
        "AND has_sequence_privilege(r.oid, c.oid, 'USAGE') ORDER BY 1, 2, 3, 4, 5")


def record_current_user(db, table):
    """A trigger on table that writes the acting role to whoami."""
    db.sql("CREATE TABLE IF NOT EXISTS whoami (who text, tbl text, op text)")
    db.sql("GRANT INSERT ON whoami TO PUBLIC")
    db.sql("CREATE OR REPLACE FUNCTION whoami_note() RETURNS trigger LANGUAGE plpgsql AS $$ "
           "BEGIN INSERT INTO whoami VALUES (current_user, TG_TABLE_NAME, TG_OP); "
           "RETURN NULL; END $$")
    db.sql("CREATE TRIGGER whoami_%s AFTER INSERT OR UPDATE ON %s FOR EACH STATEMENT "
           "EXECUTE FUNCTION whoami_note()" % (table, table))


def who(db, table):
    return sorted({r[0] for r in db.sql("SELECT who FROM whoami WHERE tbl = %s", (table,))})


# --------------------------------------------------------------------------
# the roles and the migration


def test_roles_are_nologin_groups_the_migrating_login_can_take(db):
    rows = db.sql("SELECT rolname, rolcanlogin, rolsuper, rolcreaterole, rolcreatedb "
                  "FROM pg_roles WHERE rolname LIKE 'pp\\_%' ORDER BY rolname")
    assert [r[0] for r in rows] == sorted(ROLES)
    assert all(r[1:] == (False, False, False, False) for r in rows)
    for role in ROLES:
        assert db.sql("SELECT pg_has_role(current_user, %s, 'MEMBER')", (role,)) == [(True,)]
    # no role owns anything in the database
    owned = db.sql("SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
                   "WHERE r.rolname LIKE 'pp\\_%'")
    assert owned == []


def test_migrate_twice_is_idempotent(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"))
    before = grants(db)
    assert before
    for _ in range(2):
        r = run([pp_bin("practicepost"), "-c", conf, "db", "migrate"])
        assert "schema is up to date" in r.stdout
        assert "database roles granted" in r.stdout
        assert grants(db) == before


def test_migrate_a_second_database_on_the_same_server(db, pg_cluster, pp_tmp):
    """The roles exist already (cluster-wide): a new practice database gets
    its own grants, the same as every other's."""
    name = db.name + "_b"
    pg_cluster.create_db(name)
    try:
        conf = os.path.join(pp_tmp, "b.conf")
        write_config(conf, pg_cluster.conninfo(name))
        r = run([pp_bin("practicepost"), "-c", conf, "db", "migrate"])
        assert "database roles granted" in r.stdout
        other = pg_cluster.sql(name, "SELECT count(*) FROM information_schema.role_table_grants "
                                     "WHERE grantee LIKE 'pp\\_%%'")[0][0]
        assert other == db.sql("SELECT count(*) FROM information_schema.role_table_grants "
                               "WHERE grantee LIKE 'pp\\_%%'")[0][0]
    finally:
        pg_cluster.drop_db(name)


def test_migrate_with_roles_off_leaves_the_roles_alone(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), database={"roles": "off"})
    before = grants(db)
    r = run([pp_bin("practicepost"), "-c", conf, "db", "migrate"])
    assert "roles left alone" in r.stdout
    assert grants(db) == before


def test_bad_roles_setting_is_refused(db, pp_tmp):
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), database={"roles": "maybe"})
    r = run([pp_bin("practicepost"), "-c", conf, "db", "version"], check=False)
    assert r.returncode != 0
    assert '[database] roles = "maybe" is not on, off or auto' in r.stderr


# --------------------------------------------------------------------------
# forbidden and allowed actions, role by role


def test_fetcher_reads_what_filing_needs_but_no_body(db):
    ids = seed(db)
    conn = as_role(db, "pp_fetcher")
    for column in ("body", "subject", "body_text", "body_html", "body_html_safe",
                   "description", "server_reply", "last_error"):
        forbidden(conn, "SELECT %s FROM messages WHERE id = %%s" % column, (ids["out"],))
    forbidden(conn, "SELECT * FROM messages WHERE id = %s", (ids["out"],))
    forbidden(conn, "SELECT data FROM attachments")
    forbidden(conn, "UPDATE messages SET body = '' WHERE id = %s", (ids["out"],))
    forbidden(conn, "DELETE FROM messages WHERE id = %s", (ids["out"],))
    forbidden(conn, "UPDATE people SET email = 'x@y.example' WHERE id = %s", (ids["person"],))
    # filing a reply by In-Reply-To: the outgoing message's id, person and Message-ID
    assert allowed(conn, "SELECT id, person_id, category, to_addr FROM messages "
                         "WHERE direction = 'out' AND message_id_header = %s",
                   ("<out-1@smile.example>",)) == [
        (ids["out"], ids["person"], "", "anna@patient.example")]
    # storing an incoming message and an outgoing one's delivery outcome
    new = allowed(conn, "INSERT INTO messages (practice_id, direction, channel, state, "
                        "email_account_id, subject, body) VALUES (%s, 'in', 'email', "
                        "'received', %s, 'Hi', 'raw') RETURNING id",
                  (ids["practice"], ids["account"]))
    assert new[0][0] > ids["in"]
    allowed(conn, "UPDATE messages SET delivery = 'bounced', delivery_at = now() "
                  "WHERE id = %s", (ids["out"],))
    allowed(conn, "UPDATE people SET email_bounced_at = now() WHERE id = %s", (ids["person"],))


def test_sender_cannot_write_people(db):
    ids = seed(db)
    conn = as_role(db, "pp_sender")
    forbidden(conn, "INSERT INTO people (practice_id, first_name) VALUES (%s, 'Eve')",
              (ids["practice"],))
    forbidden(conn, "UPDATE people SET email = 'eve@evil.example' WHERE id = %s",
              (ids["person"],))
    forbidden(conn, "DELETE FROM people WHERE id = %s", (ids["person"],))
    forbidden(conn, "INSERT INTO messages (practice_id, direction, channel, state, "
                    "email_account_id) VALUES (%s, 'out', 'email', 'queued', %s)",
              (ids["practice"], ids["account"]))
    assert allowed(conn, "SELECT email FROM people WHERE id = %s", (ids["person"],)) == [
        ("anna@patient.example",)]
    allowed(conn, "UPDATE messages SET state = 'sent', sent_at = now() WHERE id = %s",
            (ids["out"],))


@pytest.mark.parametrize("role", ROLES)
def test_nobody_but_the_migration_role_changes_the_schema(db, role):
    seed(db)
    conn = as_role(db, role)
    forbidden(conn, "CREATE TABLE evil (x int)")
    forbidden(conn, "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    forbidden(conn, "CREATE VIEW evil AS SELECT 1")
    forbidden(conn, "ALTER TABLE messages ADD COLUMN evil text")
    forbidden(conn, "ALTER TABLE people DISABLE TRIGGER ALL")
    forbidden(conn, "CREATE INDEX evil ON messages (id)")
    forbidden(conn, "DROP TABLE audit_log")
    forbidden(conn, "DROP TABLE messages")
    forbidden(conn, "DROP FUNCTION pp_audit_append_only() CASCADE")
    forbidden(conn, "TRUNCATE messages")
    # a GRANT without the grant option fails, or grants nothing (a warning)
    try:
        granted = allowed(conn, "GRANT SELECT ON messages TO PUBLIC; "
                                "SELECT has_table_privilege('public', 'messages', 'SELECT')")
    except psycopg2.errors.InsufficientPrivilege:
        granted = [(False,)]
    assert granted == [(False,)]
    forbidden(conn, "INSERT INTO schema_version (version, name) VALUES (999, 'evil')")


@pytest.mark.parametrize("role", ROLES)
def test_audit_log_is_insert_only(db, role):
    ids = seed(db)
    db.sql("INSERT INTO audit_log (actor, action, message_id) VALUES ('fetcher', 'received', "
           "%s)", (ids["in"],))
    conn = as_role(db, role)
    forbidden(conn, "UPDATE audit_log SET detail = 'rewritten'")
    forbidden(conn, "DELETE FROM audit_log")
    forbidden(conn, "TRUNCATE audit_log")
    allowed(conn, "INSERT INTO audit_log (actor, action, message_id) VALUES (%s, 'read', %s)",
            (role[3:], ids["in"]))
    if role == "pp_operator":   # the operator reads the timelines
        assert allowed(conn, "SELECT count(*) FROM audit_log") == [(1,)]
    else:
        forbidden(conn, "SELECT * FROM audit_log")


ALLOWED = {
    "pp_composer": [
        "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
        "person_id, body) VALUES (%(practice)s, 'out', 'email', 'queued', %(account)s, "
        "%(person)s, 'Dear Anna')",
        "SELECT body FROM messages WHERE id = %(out)s",
        "SELECT first_name, email FROM people WHERE id = %(person)s",
    ],
    "pp_sender": [
        "SELECT body, to_addr FROM messages WHERE id = %(out)s",
        "UPDATE email_accounts SET rate_tat = now() WHERE id = %(account)s",
    ],
    "pp_sms": [
        "INSERT INTO messages (practice_id, direction, channel, state, person_id, body) "
        "VALUES (%(practice)s, 'in', 'sms', 'received', %(person)s, 'YES')",
        "SELECT mobile FROM people WHERE id = %(person)s",
    ],
    "pp_fetcher": [
        "INSERT INTO mailbox_state (email_account_id, mailbox, uidvalidity) "
        "VALUES (%(account)s, 'INBOX', 1)",
        "UPDATE email_accounts SET in_next_poll = now() WHERE id = %(account)s",
    ],
    "pp_watchdog": [
        "INSERT INTO service_checkins (stage, instance, host, pid, state, started_at) "
        "VALUES ('sender', 'sender@h:1', 'h', 1, 'running', now())",
        "SELECT channel, state::text, count(*) FROM messages GROUP BY 1, 2",
        "INSERT INTO diagnostics (stage, severity, code, text) "
        "VALUES ('watchdog', 'info', 'x', 'y')",
    ],
    "pp_operator": [
        "INSERT INTO people (practice_id, first_name) VALUES (%(practice)s, 'Eve')",
        "UPDATE messages SET read_at = now() WHERE id = %(in)s",
        "SELECT body FROM messages WHERE id = %(out)s",
        "DELETE FROM messages WHERE id = %(in)s",
    ],
}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_can_do_its_work(db, role):
    ids = seed(db)
    conn = as_role(db, role)
    for sql in ALLOWED[role]:
        allowed(conn, sql, ids)


@pytest.mark.parametrize("role", ["pp_watchdog", "pp_composer"])
def test_no_secrets_for_stages_that_log_in_nowhere(db, role):
    seed(db)
    conn = as_role(db, role)
    for column in ("smtp_secret", "in_secret", "smtp_username", "in_username"):
        forbidden(conn, "SELECT %s FROM email_accounts" % column)
    for column in ("secret", "callback_secret", "status_secret"):
        forbidden(conn, "SELECT %s FROM sms_accounts" % column)


def test_watchdog_reads_no_message_content(db):
    ids = seed(db)
    conn = as_role(db, "pp_watchdog")
    forbidden(conn, "SELECT body FROM messages WHERE id = %s", (ids["out"],))
    forbidden(conn, "SELECT subject FROM messages WHERE id = %s", (ids["out"],))
    forbidden(conn, "SELECT email FROM people")


# --------------------------------------------------------------------------
# the daemons and the CLI with roles on


def test_sender_delivers_as_pp_sender(db, pp_tmp, smtp_sink):
    ids = seed(db)
    db.sql("UPDATE email_accounts SET smtp_port = %s, per_minute = 1000000", (smtp_sink.port,))
    body = ("From: <%s>\r\nTo: <anna@patient.example>\r\nSubject: Hello\r\n"
            "Message-ID: <roles-1@smile.example>\r\n\r\nSee you.\r\n" % FROM)
    msg = db.sql("INSERT INTO messages (practice_id, direction, channel, state, "
                 "email_account_id, person_id, from_addr, to_addr, subject, body, "
                 "message_id_header, size_bytes) VALUES (%s, 'out', 'email', 'queued', %s, %s, "
                 "%s, 'anna@patient.example', 'Hello', %s, '<roles-1@smile.example>', %s) "
                 "RETURNING id", (ids["practice"], ids["account"], ids["person"], FROM, body,
                                  len(body)))[0][0]
    record_current_user(db, "messages")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), database={"roles": "on"},
                     sender={"poll_interval_ms": "100"})
    r = run([pp_bin("practicepost-sender"), "-c", conf, "--once"], timeout=60)
    assert smtp_sink.wait_for(1)[0]["data"] == body.encode()
    assert db.sql("SELECT state::text FROM messages WHERE id = %s", (msg,)) == [("sent",)]
    assert who(db, "messages") == ["pp_sender"]
    assert "permission denied" not in r.stderr


def test_fetcher_files_a_reply_as_pp_fetcher(db, pp_tmp, dovecot):
    ids = seed(db)
    conf = db.config(os.path.join(pp_tmp, "pp.conf"), database={"roles": "on"},
                     fetcher={"poll_interval_ms": "100", "connect_timeout_seconds": "5"})
    dovecot.add_user("rolesdesk", PASSWORD)
    db.sql("UPDATE email_accounts SET in_protocol = 'imap', in_host = '127.0.0.1', "
           "in_port = %s, in_tls = 'none', in_username = 'rolesdesk', in_secret = %s, "
           "in_next_poll = now() WHERE id = %s",
           (dovecot.imap_port, encrypt_secret(os.path.join(pp_tmp, "secret.key"), PASSWORD),
            ids["account"]))
    dovecot.deliver("rolesdesk", "\r\n".join([
        "From: someone@elsewhere.example", "To: <%s>" % FROM, "Subject: Re: Your results",
        "Message-ID: <reply-1@elsewhere.example>", "In-Reply-To: <out-1@smile.example>",
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", "Thank you.", ""]))
    record_current_user(db, "messages")
    r = run([pp_bin("practicepost-fetcher"), "-c", conf, "--once"], timeout=90)
    rows = db.sql("SELECT person_id, related_message_id, filed_by FROM messages "
                  "WHERE message_id_header = '<reply-1@elsewhere.example>'")
    assert rows == [(ids["person"], ids["out"], "rule:reference")], r.stderr
    assert who(db, "messages") == ["pp_fetcher"]
    assert "permission denied" not in r.stderr


def test_cli_acts_as_pp_operator_and_migrates_as_the_login(db, pp_tmp):
    record_current_user(db, "installation")
    conf = db.config(os.path.join(pp_tmp, "pp.conf"))
    run([pp_bin("practicepost"), "-c", conf, "db", "genuine", "yes"])
    assert who(db, "installation") == ["pp_operator"]
    login = db.sql("SELECT current_user")[0][0]
    r = run([pp_bin("practicepost"), "-c", conf, "db", "version"])
    assert "schema version" in r.stdout
    off = db.config(os.path.join(pp_tmp, "off.conf"), database={"roles": "off"})
    run([pp_bin("practicepost"), "-c", off, "db", "genuine", "no"])
    assert who(db, "installation") == sorted(["pp_operator", login])


def test_missing_grants_fail_clearly_with_roles_on_and_warn_with_auto(db, pp_tmp):
    """A database whose grants name no role (as if migrated by an older
    build): roles = on refuses to run, the default runs with a warning."""
    db.sql("REVOKE SELECT ON schema_version FROM pp_sender")
    on = db.config(os.path.join(pp_tmp, "on.conf"), database={"roles": "on"})
    r = run([pp_bin("practicepost-sender"), "-c", on, "--once"], check=False, timeout=60)
    assert r.returncode != 0
    assert "cannot take the database role pp_sender: this database has no grants for it " \
           "(run: practicepost db migrate, or set [database] roles = off)" in r.stderr
    auto = db.config(os.path.join(pp_tmp, "auto.conf"))
    r = run([pp_bin("practicepost-sender"), "-c", auto, "--once"], timeout=60)
    assert "database role pp_sender not taken: this database has no grants for it" in r.stderr
    # db migrate puts the grant back
    run([pp_bin("practicepost"), "-c", auto, "db", "migrate"])
    r = run([pp_bin("practicepost-sender"), "-c", on, "--once"], timeout=60)
    assert "not taken" not in r.stderr

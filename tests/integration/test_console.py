"""The web console without a browser: sessions and their cookies, who may sign in and what each
key sees, pagination and search over 10,000 nodes (by index and LIMIT), escaping."""

from __future__ import annotations

import logging
import re
import sqlite3
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event

from opscm.app.credentials import add_key, remove_key
from opscm.service import backups
from opscm.service.context import Caller
from tests.support.clock import FakeClock
from tests.support.console import (
    associate_chef,
    associate_puppet,
    console_app,
    disassociate,
    healthy_server,
    node_name,
    seed_puppet_nodes,
    sign_in,
    sign_out,
)
from tests.support.server import start_server

ACCOUNT = "123456789012"
REGION = "us-east-1"
CALLER = Caller(ACCOUNT, REGION)
SEEDED = 10_000


@pytest.fixture(scope="module")
def clock():
    return FakeClock()


@pytest.fixture(scope="module")
def console(tmp_path_factory, clock):
    with console_app(tmp_path_factory.mktemp("console"), clock) as (app, http):
        healthy_server(app, CALLER, "web-puppet")
        healthy_server(app, CALLER, "web-chef", "ChefAutomate")
        healthy_server(app, CALLER, "big-fleet")
        for node in ("alpha.example.com", "beta.example.com", "gamma.example.com"):
            associate_puppet(app, CALLER, "web-puppet", node)
        disassociate(app, CALLER, "web-puppet", "beta.example.com")
        associate_chef(app, CALLER, "web-chef", "chef-node-1")
        with app.deps.uow(read_only=True) as uow:
            big = uow.servers.get(ACCOUNT, REGION, "big-fleet")
        seed_puppet_nodes(app.deps.uow, big.id, SEEDED, clock.now())
        yield app, http


@pytest.fixture
def http(console):
    app, client = console
    client.cookies.clear()
    return client


def new_key(app, clock, **kwargs):
    return add_key(app.deps.uow, app.secret_box, clock.now(), **kwargs)


@pytest.fixture(scope="module")
def admin(console, clock):
    app, _ = console
    return new_key(app, clock, name="console-admin", account=ACCOUNT)


def signed_in(http, key):
    answer = sign_in(http, key.access_key_id, key.secret_access_key)
    assert answer.status_code == 303 and answer.headers["location"] == "/console", answer.text
    return answer


def session_cookie(answer) -> str:
    (cookie,) = [value for value in answer.headers.get_list("set-cookie") if value.startswith("opscm_console=")]
    return cookie


# -- sessions ------------------------------------------------------------------------------------


def test_session_cookie_is_httponly_strict_and_not_secure_over_http(http, admin):
    cookie = session_cookie(signed_in(http, admin))
    attributes = {part.strip().split("=")[0].lower(): part for part in cookie.split(";")[1:]}
    assert "httponly" in attributes and attributes["samesite"].strip().lower() == "samesite=strict"
    assert attributes["path"].strip() == "Path=/console"
    assert attributes["max-age"].strip() == "Max-Age=900"  # the idle time: 15 minutes
    assert "secure" not in attributes


def test_session_cookie_is_secure_over_https(console, admin):
    app, _ = console
    from starlette.testclient import TestClient

    with TestClient(app.asgi, base_url="https://testserver", follow_redirects=False) as https:
        form = https.get("/console/sign-in")
        assert "; secure" in form.headers["set-cookie"].lower()
        assert "; secure" in session_cookie(signed_in(https, admin)).lower()


def test_tls_server_sets_secure_cookies(tmp_path):
    """A real ``opscm serve --tls-self-signed``: both cookies carry Secure."""
    server = start_server(tmp_path, "--tls-self-signed", "--ca-key-bits", "2048", "--schedule-interval", "0")
    try:
        key_id, secret = server.access_key
        with httpx.Client(base_url=server.url, verify=server.ca_bundle) as https:
            answer = sign_in(https, key_id, secret)
            assert answer.status_code == 303
            assert "secure" in [part.strip().lower() for part in session_cookie(answer).split(";")]
            assert https.get("/console").status_code == 200
    finally:
        server.stop()


def test_session_ends_after_fifteen_idle_minutes(http, admin, clock):
    signed_in(http, admin)
    for _ in range(3):  # each page view moves the deadline
        clock.advance(timedelta(minutes=14))
        assert http.get("/console").status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    answer = http.get("/console")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"


def test_session_ends_after_twelve_hours_however_busy(http, admin, clock):
    signed_in(http, admin)
    for _ in range(12 * 6 - 1):
        clock.advance(timedelta(minutes=10))
        assert http.get("/console/search").status_code == 200
    clock.advance(timedelta(minutes=10, seconds=1))
    assert http.get("/console/search").status_code == 303


def test_forged_or_foreign_cookie_is_no_session(http, admin):
    signed_in(http, admin)
    cookie = http.cookies.get("opscm_console")
    http.cookies.set("opscm_console", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB"), path="/console")
    assert http.get("/console").status_code == 303


def test_sign_out_needs_the_session_token_and_ends_the_session(http, admin):
    signed_in(http, admin)
    page = http.get("/console")
    assert http.post("/console/sign-out", data={"csrf": "guessed"}).status_code == 403
    assert http.get("/console").status_code == 200  # still signed in
    answer = sign_out(http, page.text)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
    assert 'opscm_console=""' in answer.headers["set-cookie"]
    assert http.get("/console").status_code == 303


# -- who may sign in ---------------------------------------------------------------------------------


def test_sign_in_needs_the_forms_token(http, admin):
    http.get("/console/sign-in")
    form = {"csrf": "made-up", "access_key_id": admin.access_key_id, "secret_access_key": admin.secret_access_key}
    answer = http.post("/console/sign-in", data=form)
    assert answer.status_code == 403 and "opscm_console=" not in answer.headers.get("set-cookie", "").replace("opscm_console_sign_in=", "")


def test_wrong_secret_and_unknown_key_are_refused_alike(http, admin):
    secret = admin.secret_access_key
    wrong = sign_in(http, admin.access_key_id, secret[:-1] + ("x" if secret[-1] != "x" else "y"))  # surely another
    unknown = sign_in(http, "AKIA" + "Q" * 16, admin.secret_access_key)
    for answer in (wrong, unknown):
        assert answer.status_code == 401
        assert "The access key ID or the secret access key is not valid." in answer.text
        assert not [c for c in answer.headers.get_list("set-cookie") if c.startswith("opscm_console=")]


def test_key_without_describe_star_is_refused(console, http, clock):
    app, _ = console
    narrow = new_key(app, clock, account=ACCOUNT, actions=["opsworks-cm:DescribeServers", "opsworks-cm:AssociateNode"])
    answer = sign_in(http, narrow.access_key_id, narrow.secret_access_key)
    assert answer.status_code == 403 and "opsworks-cm:Describe*" in answer.text
    reader = new_key(app, clock, account=ACCOUNT, actions=["opsworks-cm:Describe*"])
    signed_in(http, reader)


def test_removed_key_is_signed_out_at_its_next_request(console, http, clock):
    app, _ = console
    key = new_key(app, clock, account=ACCOUNT, actions=["opsworks-cm:*"])
    signed_in(http, key)
    assert http.get("/console").status_code == 200
    remove_key(app.deps.uow, key.access_key_id)
    assert http.get("/console").status_code == 303


def test_secrets_are_neither_rendered_nor_logged(http, admin, caplog):
    with caplog.at_level(logging.DEBUG):
        signed_in(http, admin)
        pages = [http.get(path).text for path in ("/console", "/console/servers/us-east-1/web-puppet", "/console/search?q=a")]
        http.cookies.clear()
        sign_in(http, admin.access_key_id, "wrong-" + admin.secret_access_key)
    assert admin.access_key_id in pages[0]
    for text in [*pages, caplog.text]:
        assert admin.secret_access_key not in text


# -- what each key sees ----------------------------------------------------------------------------


def test_key_limited_to_server_names_sees_only_those(console, http, clock):
    app, _ = console
    limited = new_key(app, clock, account=ACCOUNT, actions=["opsworks-cm:Describe*"], server_names=["web-chef"])
    signed_in(http, limited)
    listing = http.get("/console").text
    assert "web-chef" in listing and "web-puppet" not in listing and "big-fleet" not in listing
    assert http.get("/console/servers/us-east-1/web-chef").status_code == 200
    assert http.get("/console/servers/us-east-1/web-puppet").status_code == 404
    assert "alpha.example.com" not in http.get("/console/search?q=example").text
    assert "web-puppet" not in http.get("/console/certificates").text


def test_another_accounts_server_is_not_found_like_a_missing_one(console, http, clock):
    app, _ = console
    stranger = new_key(app, clock, account="new", actions=["opsworks-cm:*"])
    signed_in(http, stranger)
    assert "web-puppet" not in http.get("/console").text
    theirs = http.get("/console/servers/us-east-1/web-puppet")
    missing = http.get("/console/servers/us-east-1/no-such-server")
    assert theirs.status_code == missing.status_code == 404
    assert _main(theirs.text) == _main(missing.text)
    assert http.get("/console/servers/xx-nowhere-1/web-puppet").status_code == 404


def _main(html: str) -> str:
    return html[html.index("<main>") :]


# -- pages -----------------------------------------------------------------------------------------


def test_servers_page_shows_engine_status_endpoint_nodes_backup_and_maintenance(http, admin):
    signed_in(http, admin)
    page = http.get("/console").text
    row = _row(page, "web-puppet")
    assert "Puppet" in row and "HEALTHY" in row and "127.0.0.1" in row
    assert re.search(r'<td class="num">2</td>', row)  # alpha and gamma; beta was disassociated
    assert "none" in row  # no backup yet
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row)  # the next maintenance window
    assert f'<td class="num">{SEEDED}</td>' in _row(page, "big-fleet")
    assert "<svg" in page and "Association requests per hour" in page


def _row(page: str, server: str) -> str:
    start = page.index(f">{server}</a>")
    return page[start : page.index("</tr>", start)]


def test_server_page_lists_nodes_with_certificates_keys_and_revocations(http, admin):
    signed_in(http, admin)
    page = http.get("/console/servers/us-east-1/web-puppet").text
    nodes = page[page.index('id="node-table"') : page.index('id="revoked"')]
    assert "alpha.example.com" in nodes and "gamma.example.com" in nodes and "beta.example.com" not in nodes
    assert "certificate serial" in nodes and "expires" in nodes
    revoked = page[page.index('id="revoked-table"') :]
    assert "beta.example.com" in revoked[: revoked.index("</table>")] and "revoked" in revoked
    assert "Server web-puppet creation started" in page  # an event
    chef = http.get("/console/servers/us-east-1/web-chef").text
    assert "chef-node-1" in chef and re.search(r"key fingerprint <code>[0-9a-f]{64}</code>", chef)


def test_backups_are_listed_and_text_is_escaped(console, http, admin):
    app, _ = console
    backups.create_backup(app.deps, CALLER, {"ServerName": "web-chef", "Description": "<script>alert(1)</script>"})
    signed_in(http, admin)
    page = http.get("/console/servers/us-east-1/web-chef").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "web-chef-" in page[page.index('id="backup-table"') :]
    csp = http.get("/console").headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp


def test_certificates_expiring_within_thirty_days_are_listed_and_highlighted(console, http, admin, clock):
    app, _ = console
    only_web = new_key(app, clock, account=ACCOUNT, actions=["opsworks-cm:Describe*"], server_names=["web-puppet"])
    signed_in(http, admin)
    assert 'id="none-expiring"' in http.get("/console/certificates").text
    start = clock.now()
    try:
        clock.advance(timedelta(days=365 - 20))  # the seeded fleet's certificates last a year
        signed_in(http, admin)
        page = http.get("/console/certificates").text
        assert page.count('<tr class="expiring">') == 500 and 'id="more-expiring"' in page
        assert node_name(0) in page and "web-puppet" not in page
        clock.advance(timedelta(days=4 * 365))  # the built-in CA's own certificates last five years
        signed_in(http, only_web)
        page = http.get("/console/certificates").text
    finally:
        clock.set(start)
    table = page[page.index('id="expiring-table"') :]
    assert table.count('<tr class="expiring">') == 2
    assert "alpha.example.com" in table and "gamma.example.com" in table and "beta.example.com" not in table


def test_associations_per_hour_chart_counts_this_hour(http, admin):
    signed_in(http, admin)
    page = http.get("/console/servers/us-east-1/web-puppet").text
    # Three associations and one disassociation, all in the current hour: the last bar.
    assert "3 associated, 1 disassociated, 0 failed</title>" in page
    assert 'aria-label="Association requests per hour: 4 in the last 24 hours"' in page


# -- pagination and search -------------------------------------------------------------------------


def _names(page: str) -> list[str]:
    if 'id="node-table"' not in page:
        return []
    table = page[page.index('id="node-table"') : page.index('id="revoked"')]
    return re.findall(r'<td class="node-name">([^<\s]+)', table)


def _link(page: str, which: str) -> str:
    return re.search(rf'id="{which}" href="([^"#]+)', page).group(1).replace("&amp;", "&")


def test_pages_of_ten_thousand_nodes_go_forward_and_back(http, admin):
    signed_in(http, admin)
    base = "/console/servers/us-east-1/big-fleet"
    first = http.get(base).text
    assert _names(first) == [node_name(i) for i in range(50)]
    assert f"{SEEDED} nodes" in first and 'id="previous-page"' not in first
    second = http.get(base + _link(first, "next-page")).text
    assert _names(second) == [node_name(i) for i in range(50, 100)]
    back = http.get(base + _link(second, "previous-page")).text
    assert _names(back) == _names(first)
    last = http.get(base + "?size=200&after=" + node_name(SEEDED - 150)).text
    assert _names(last) == [node_name(i) for i in range(SEEDED - 149, SEEDED)]
    assert 'id="next-page"' not in last and 'id="previous-page"' in last


def test_search_by_name_pages_through_matches(http, admin):
    signed_in(http, admin)
    base = "/console/servers/us-east-1/big-fleet"
    found = http.get(base + "?q=NODE-012").text  # without case: node-01200 .. node-01299
    assert "100 nodes whose name contains" in found
    assert _names(found) == [node_name(i) for i in range(1200, 1250)]
    more = http.get(base + _link(found, "next-page")).text
    assert _names(more) == [node_name(i) for i in range(1250, 1300)] and 'id="next-page"' not in more
    assert _names(http.get(base + "?q=no_such%25node").text) == []  # % and _ are literal
    everywhere = http.get("/console/search?q=gamma").text
    assert "gamma.example.com" in everywhere and "web-puppet" in everywhere
    revoked = http.get("/console/search?q=beta.example").text
    assert "beta.example.com" in revoked and 'class="badge revoked">revoked' in revoked


def test_node_page_query_walks_the_primary_key_with_a_limit(console, http, admin):
    """No OFFSET, no sort of the server's 10,000 rows: SQLite searches the (server_id, name) index
    from the page's edge and stops at LIMIT."""
    app, _ = console
    statements: list[str] = []

    def trace(connection, _record):
        connection.set_trace_callback(statements.append)

    event.listen(app.database, "connect", trace)
    app.database.dispose()  # new connections, traced
    try:
        signed_in(http, admin)
        http.get(f"/console/servers/us-east-1/big-fleet?after={node_name(5000)}")
    finally:
        event.remove(app.database, "connect", trace)
        app.database.dispose()
    (query,) = [s for s in statements if s.startswith("SELECT") and "FROM nodes" in s and "LIMIT" in s]
    assert query.endswith("ORDER BY name ASC LIMIT 51") and "OFFSET" not in query
    database = sqlite3.connect(app.settings.data_dir / "opscm.db")
    plan = " | ".join(row[3] for row in database.execute("EXPLAIN QUERY PLAN " + query))
    database.close()
    assert "USING INDEX sqlite_autoindex_nodes_1 (server_id=? AND name>?)" in plan, plan
    assert "TEMP B-TREE" not in plan, plan

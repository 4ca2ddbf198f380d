"""The web console in headless Chromium against a real ``opscm serve``: sign in, every page, a
node found by name, a revoked certificate marked so, a wrong secret refused, another account's
server not found. A screenshot of each page is kept under test-artifacts/console/."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from opscm.domain.nodes import NodeClaim, NodeState
from opscm.store.database import open_database, sqlite_url
from opscm.store.sql import SqlPuppetCas
from opscm.store.unit_of_work import SqlUnitOfWorkFactory
from tests.support.accounts import add_account_key
from tests.support.browser import chromium, page_change, require_browser, screenshot
from tests.support.requests import create_server_params, make_csr, public_pem, rsa_key
from tests.support.server import start_server, wait_for_status

pytestmark = pytest.mark.browser

PUPPET_NODES = ("web-01.example.com", "web-02.example.com", "db-01.example.com")
REVOKED_NODE = "db-01.example.com"
SHORT_LIVED = "short-lived.example.com"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """An opscm with a Puppet server (two nodes in force, one disassociated: its certificate
    revoked), a Chef server with one node, and another account's server."""
    require_browser()
    data_dir = tmp_path_factory.mktemp("console-browser")
    server = start_server(data_dir, "--ca-key-bits", "2048", "--schedule-interval", "0")
    try:
        client = server.client()
        puppet, chef = f"puppet-{uuid.uuid4().hex[:6]}", f"chef-{uuid.uuid4().hex[:6]}"
        for name, engine in ((puppet, "Puppet"), (chef, "ChefAutomate")):
            client.create_server(**create_server_params(name, engine))
        for name in (puppet, chef):
            wait_for_status(client, name)
        for node in PUPPET_NODES:
            csr = [{"Name": "PUPPET_NODE_CSR", "Value": make_csr(node)}]
            client.associate_node(ServerName=puppet, NodeName=node, EngineAttributes=csr)
        client.disassociate_node(ServerName=puppet, NodeName=REVOKED_NODE, EngineAttributes=[])
        chef_key = [{"Name": "CHEF_ORGANIZATION", "Value": "default"}, {"Name": "CHEF_NODE_PUBLIC_KEY", "Value": public_pem(rsa_key())}]
        client.associate_node(ServerName=chef, NodeName="chef-node-01", EngineAttributes=chef_key)
        client.create_backup(ServerName=chef, Description="before the upgrade")
        _add_short_lived_certificate(data_dir, client.describe_servers(ServerName=puppet)["Servers"][0]["ServerArn"])
        other = server.client(key=add_account_key(data_dir))
        theirs = f"theirs-{uuid.uuid4().hex[:6]}"
        other.create_server(**create_server_params(theirs, "ChefAutomate"))
        yield server, puppet, chef, theirs
    finally:
        server.stop()


def _add_short_lived_certificate(data_dir, server_arn: str) -> None:
    """opscm's CA issues five-year certificates: one ending in ten days is written to the store
    as an association would write it (its PEM a stand-in: the console never shows it)."""
    server_id = server_arn.rsplit("/", 1)[1]
    now = datetime.now(timezone.utc)
    database = open_database(sqlite_url(data_dir))
    try:
        with SqlUnitOfWorkFactory(database)() as uow:
            uow.bind(SqlPuppetCas).add_certificate(server_id, 10_000, SHORT_LIVED, "-", now + timedelta(days=10))
            uow.nodes.claim(NodeClaim(server_id, SHORT_LIVED, NodeState.ASSOCIATED, "f" * 64, "10000", now))
            uow.commit()
    finally:
        database.dispose()


def _sign_in(driver, key_id: str, secret: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "access_key_id").send_keys(key_id)
    driver.find_element(By.ID, "secret_access_key").send_keys(secret)
    with page_change(driver):
        driver.find_element(By.ID, "sign-in").click()


def test_console_in_a_browser(fleet):
    from selenium.webdriver.common.by import By

    server, puppet, chef, theirs = fleet
    key_id, secret = server.access_key
    with chromium() as driver:
        driver.get(server.url + "/console")
        assert driver.current_url.endswith("/console/sign-in")
        screenshot(driver, "01-sign-in")

        _sign_in(driver, key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
        assert "The access key ID or the secret access key is not valid." in driver.find_element(By.CSS_SELECTOR, ".error").text
        assert driver.get_cookie("opscm_console") is None
        screenshot(driver, "02-sign-in-refused")

        _sign_in(driver, key_id, secret)
        assert driver.current_url.endswith("/console")
        servers = driver.find_element(By.ID, "servers").text
        assert puppet in servers and chef in servers and theirs not in servers
        assert driver.find_element(By.CSS_SELECTOR, "svg[role=img]").is_displayed()
        cookie = driver.get_cookie("opscm_console")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        screenshot(driver, "03-servers")

        with page_change(driver):
            driver.find_element(By.LINK_TEXT, puppet).click()
        nodes = driver.find_element(By.ID, "node-table").text
        assert "web-01.example.com" in nodes and REVOKED_NODE not in nodes
        revoked = driver.find_element(By.ID, "revoked-table")
        row = revoked.find_element(By.XPATH, f".//tr[td[normalize-space()='{REVOKED_NODE}']]")
        assert "revoked" in row.find_element(By.CSS_SELECTOR, ".badge").text
        screenshot(driver, "04-server-puppet")

        search = driver.find_element(By.ID, "node-search")
        search.send_keys("WEB-02")
        with page_change(driver):
            search.submit()
        names = [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#node-table td.node-name")]
        assert names == ["web-02.example.com"]
        screenshot(driver, "05-server-node-search")

        driver.get(f"{server.url}/console/servers/us-east-1/{chef}")
        assert "chef-node-01" in driver.find_element(By.ID, "node-table").text
        assert "key fingerprint" in driver.find_element(By.ID, "node-table").text
        assert "before the upgrade" in driver.find_element(By.ID, "backup-table").text
        screenshot(driver, "06-server-chef")

        with page_change(driver):
            driver.find_element(By.LINK_TEXT, "Expiring certificates").click()
        row = driver.find_element(By.XPATH, f"//table[@id='expiring-table']//tr[td[normalize-space()='{SHORT_LIVED}']]")
        assert row.get_attribute("class") == "expiring"
        background = row.find_element(By.TAG_NAME, "td").value_of_css_property("background-color")
        assert background not in ("rgba(0, 0, 0, 0)", "transparent"), background  # highlighted
        screenshot(driver, "07-certificates")

        with page_change(driver):
            driver.find_element(By.LINK_TEXT, "Find a node").click()
        box = driver.find_element(By.ID, "search-text")
        box.send_keys("db-01")
        with page_change(driver):
            box.submit()
        found = driver.find_element(By.XPATH, f"//table[contains(@class,'search-results')]//tr[td[normalize-space()='{REVOKED_NODE}']]")
        assert "revoked" in found.text and found.get_attribute("class") == "is-revoked"
        screenshot(driver, "08-search")

        driver.get(f"{server.url}/console/servers/us-east-1/{theirs}")
        assert driver.find_element(By.TAG_NAME, "h1").text == "There is no such server."
        session = {"opscm_console": driver.get_cookie("opscm_console")["value"]}
        for name in (theirs, "no-such-server"):
            assert httpx.get(f"{server.url}/console/servers/us-east-1/{name}", cookies=session).status_code == 404
        assert httpx.get(f"{server.url}/console/servers/us-east-1/{puppet}", cookies=session).status_code == 200
        screenshot(driver, "09-other-account-not-found")

        with page_change(driver):
            driver.find_element(By.XPATH, "//button[normalize-space()='Sign out']").click()
        assert driver.current_url.endswith("/console/sign-in") and driver.get_cookie("opscm_console") is None
        driver.get(server.url + "/console")
        assert driver.current_url.endswith("/console/sign-in")

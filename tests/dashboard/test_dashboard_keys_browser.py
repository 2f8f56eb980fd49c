"""The Keys & budgets view in a real browser (Debian's Chromium via Playwright, real uvicorn, fake provider).

A key is created in the page, shown once, used for a real request through the gateway, rotated and
revoked there; the gateway's answers to the key prove each step took effect, and the budgets table
shows the spend the request caused. The secret must never reach sessionStorage/localStorage nor
survive its panel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import ADMIN_TOKEN, NO_BROWSER, PROVIDER_KEY, WAIT_MS, Dash, Watched, open_view, sign_in
from tests.fakes.upstream import RunningFake

pytestmark = NO_BROWSER

PRICES = {"gpt-4o-mini": {"input": 1e-3, "output": 2e-3}}  # dollars per token: spend is visible at once


@pytest.fixture
def keyed(make_gateway: Callable[..., Any], fake_upstream: RunningFake) -> Iterator[Dash]:
    """Authentication on (keys are credentials), an admin token, a gateway-wide daily budget."""
    _, server = make_gateway(
        gateway={"admin_token": ADMIN_TOKEN, "authentication": True},
        providers={"openai": {"api_key": PROVIDER_KEY}},
        budgets=[{"name": "company", "usd": 50, "period": "day"}],
        prices=PRICES,
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield Dash(server.url, client, fake_upstream)


def with_key(dash: Dash, key: str) -> httpx.Response:
    return dash.chat(**{"cf-aig-authorization": f"Bearer {key}"})


def stored_anywhere(page: Page, secret: str) -> bool:
    """Whether the secret is in this origin's sessionStorage or localStorage (keys or values)."""
    return bool(
        page.evaluate(
            """(secret) => [sessionStorage, localStorage].some((s) =>
                 Object.keys(s).some((k) => k.includes(secret) || String(s.getItem(k)).includes(secret)))""",
            secret,
        )
    )


def js_number(x: float) -> str:
    """How the page writes a JSON number into an attribute (``String(n)``): ``0`` not ``0.0``."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def budget_spent(dash: Dash, name: str) -> float:
    status, body = dash.admin("budgets", budget=name)
    assert status == 200, body
    return float(body["result"][0]["spent"])


def create_in_page(page: Page, name: str, **fields: str) -> str:
    """Fill and submit the create form; returns the secret the one-time panel shows."""
    form = page.get_by_role("form", name="Create a key")
    form.get_by_label("Name").fill(name)
    for label, value in fields.items():
        form.get_by_label(label).fill(value)
    form.get_by_role("button", name="Create key").click()
    panel = page.get_by_role("region", name=f"New key {name}")
    expect(panel).to_be_visible()
    secret = panel.get_by_label("Key").input_value()
    assert secret.startswith("aigw_") and len(secret) > 40
    return secret


def test_create_use_revoke_a_key_and_see_the_spend(keyed: Dash, watched: Watched) -> None:
    page = watched.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(watched, keyed.url)
    open_view(watched, "keys")
    expect(page.locator("[data-secret]")).to_be_hidden()
    assert page.locator("[data-auth-off]").is_hidden()  # authentication is on here
    company = page.locator("tr[data-budget='company']")
    expect(company.locator("[data-spent]")).to_have_attribute("data-spent", "0")
    expect(page.get_by_text("No keys yet: create one above.")).to_be_visible()

    secret = create_in_page(
        page, "team-web", **{"Allowed models (globs, comma-separated)": "gpt-4o*", "Budget (USD)": "20"}
    )
    panel = page.get_by_role("region", name="New key team-web")
    expect(panel).to_contain_text("you won't see it again")
    assert not stored_anywhere(page, secret)
    # The form is cleared for the next key, back to its defaults.
    form = page.get_by_role("form", name="Create a key")
    expect(form.get_by_label("Name")).to_have_value("")
    expect(form.get_by_label("Budget period")).to_have_value("month")
    panel.get_by_role("button", name="Copy").click()
    expect(panel.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == secret

    # The list shows the key by its prefix, never the secret.
    row = page.locator("tr[data-key='team-web']")
    expect(row).to_contain_text(secret[:12])
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("gpt-4o*")
    expect(row).to_contain_text("$20.00 / month")
    assert secret not in row.inner_text()

    # The key works through the gateway, and the spend shows up in both budgets it counts against.
    assert keyed.chat().status_code == 401  # authentication is on: no key, no answer
    assert with_key(keyed, secret).status_code == 200
    spent = budget_spent(keyed, "company")
    assert spent > 0
    page.get_by_role("button", name="Refresh").first.click()
    expect(company.locator("[data-spent]")).to_have_attribute("data-spent", js_number(spent))
    expect(company.locator("svg.budget-bar rect.spent")).not_to_have_attribute("width", "0")
    key_budget = page.locator("tr[data-budget='key:team-web']")
    expect(key_budget.locator("[data-spent]")).to_have_attribute("data-spent", js_number(spent))
    assert budget_spent(keyed, "key:team-web") == spent  # the key's only request is the gateway's only one
    watched.screenshot("keys")

    # Dismissed, the secret is gone from the page; a reload has never seen it.
    panel.get_by_role("button", name="Dismiss").click()
    expect(panel).to_be_hidden()
    assert secret not in page.content()
    assert page.locator("[data-secret]").input_value() == ""
    page.reload()
    expect(row).to_be_visible()
    assert secret not in page.content() and not stored_anywhere(page, secret)

    # Revoke, behind a confirmation: cancelling changes nothing, confirming refuses the key at once.
    row.get_by_role("button", name="Revoke team-web").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Revoke team-web")
    dialog.get_by_role("button", name="Cancel").click()
    assert with_key(keyed, secret).status_code == 200
    row.get_by_role("button", name="Revoke team-web").click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("Revoked key team-web.")).to_be_visible()
    expect(row).to_have_attribute("data-status", "revoked")
    refused = with_key(keyed, secret)
    assert refused.status_code == 401
    assert refused.json()["error"][0]["code"] == 2033
    watched.assert_clean()


def test_rotate_shows_the_new_secret_once_and_the_old_one_stops(keyed: Dash, watched: Watched) -> None:
    page = watched.page
    sign_in(watched, keyed.url)
    open_view(watched, "keys")
    old = create_in_page(page, "team-b")
    page.get_by_role("region", name="New key team-b").get_by_role("button", name="Dismiss").click()
    assert with_key(keyed, old).status_code == 200

    page.get_by_role("button", name="Rotate team-b").click()
    page.get_by_role("dialog").get_by_role("button", name="Rotate").click()
    panel = page.get_by_role("region", name="New secret for team-b")
    expect(panel).to_be_visible()
    new = panel.get_by_label("Key").input_value()
    assert new.startswith("aigw_") and new != old
    expect(page.locator("tr[data-key='team-b']")).to_contain_text(new[:12])
    assert not stored_anywhere(page, new)

    unknown = with_key(keyed, old)
    assert unknown.status_code == 401 and unknown.json()["error"][0]["code"] == 2009
    assert with_key(keyed, new).status_code == 200
    # A bad name is refused by the API and said in the page, not thrown.
    form = page.get_by_role("form", name="Create a key")
    form.get_by_label("Name").fill("team-b")  # taken by an active key
    form.get_by_label("Name").press("Enter")  # the keyboard submits the form like the button
    expect(page.get_by_text("Could not create the key:")).to_be_visible()
    # The refused POST is the only thing the browser reports.
    assert watched.offsite == []
    assert watched.errors and all("status of 4" in e for e in watched.errors), watched.errors


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_view_fits_a_phone(keyed: Dash, browser: Browser, scheme: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme=scheme)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        w = Watched(page)
        sign_in(w, keyed.url)
        open_view(w, "keys")
        create_in_page(page, f"phone-{scheme}", **{"Budget (USD)": "20"})
        assert with_key(keyed, page.locator("[data-secret]").input_value()).status_code == 200
        page.get_by_role("button", name="Refresh").first.click()
        expect(page.locator("tr[data-budget='company'] [data-spent]")).not_to_have_attribute(
            "data-spent", "0", timeout=WAIT_MS
        )
        # Nothing wider than the phone: tables scroll inside their own box, the page does not.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        w.screenshot(f"keys-phone-{scheme}")
        assert errors == []
    finally:
        context.close()


def test_a_gateway_without_authentication_says_keys_are_not_checked(make_gateway, watched: Watched) -> None:
    _, server = make_gateway()
    page = watched.page
    page.goto(f"{server.url}/admin/#keys")
    expect(page.locator("[data-auth-off]")).to_be_visible()
    expect(page.locator("[data-auth-off]")).to_contain_text("Authentication is off")
    expect(page.get_by_text("No budgets: add [[budgets]] to the config, or a budget to a key.")).to_be_visible()
    watched.assert_clean()

"""The dashboard in a real browser: Debian's Chromium driven by Playwright, real uvicorn, fake provider.

Traffic goes through the gateway to the loopback fake upstream, then the page is used as a person
would: sign in, read the charts, watch the logs table refresh by itself, open a row, give feedback,
purge the cache. Every test also checks that the page asked nothing of any host but the gateway
(each request is intercepted; off-loopback ones are recorded and aborted) and logged no error.
Screenshots land in tests/artifacts/ (git-ignored). Nothing is downloaded: Playwright drives the
system browser through ``executable_path``.
"""

from __future__ import annotations

import json

from playwright.sync_api import expect

from tests.dashboard.conftest import ADMIN_TOKEN, NO_BROWSER, PROVIDER_KEY, WAIT_MS, Dash, Watched, open_view, sign_in

pytestmark = NO_BROWSER


def test_sign_in_and_charts_show_the_traffic(dash: Dash, watched: Watched) -> None:
    dash.chat(**{"cf-aig-metadata": '{"team":"a"}'})
    dash.chat(**{"cf-aig-metadata": '{"team":"a"}'})
    dash.chat("gpt-4o", **{"cf-aig-metadata": '{"team":"b"}'})
    dash.chat("claude-fake-1")
    dash.fake.app.fail(500, times=1)
    assert dash.chat().status_code == 500

    page = watched.page
    sign_in(watched, dash.url)
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("[data-total=requests] .value")).to_have_text("5", timeout=WAIT_MS)
    expect(page.locator("[data-total=errors] .value")).to_have_text("1")
    expect(page.locator("[data-total=tokens_in] .value")).to_have_text("40")  # 4 answers x 10, the error none
    assert page.evaluate("sessionStorage.getItem('aigw.adminToken')") == ADMIN_TOKEN

    # Every chart is drawn from the store's numbers: bars for counts and money, points for rates.
    for chart in ("Requests", "Tokens", "Cost", "Errors"):
        assert page.locator(f"[data-chart='{chart}'] .bars rect").count() >= 1, chart
    assert page.locator("[data-chart='Latency'] circle").count() >= 1
    assert page.locator("[data-chart='Cache hit rate'] circle").count() >= 1
    requests_title = page.locator("[data-chart='Requests'] .hover title").all_text_contents()
    assert any("openai: 4" in t and "anthropic: 1" in t for t in requests_title), requests_title
    providers = page.locator("table[data-breakdown=provider] tbody tr")
    expect(providers).to_have_count(2)
    expect(providers.first).to_contain_text("openai")
    expect(page.locator("table[data-breakdown=model] tbody tr")).to_have_count(3)
    watched.screenshot("analytics")

    # Filters go to the store: one provider, then a metadata value.
    page.get_by_label("Provider", exact=True).fill("anthropic")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("[data-total=requests] .value")).to_have_text("1")
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Metadata key").fill("team")
    page.get_by_label("Metadata value").fill("a")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("[data-total=requests] .value")).to_have_text("2")
    page.get_by_role("button", name="By model").click()
    expect(page.locator("[data-chart='Requests'] .legend")).to_contain_text("gpt-4o-mini")

    # A custom range: two hours ago to one hour ago holds nothing; open-ended to now holds it all.
    page.get_by_role("button", name="Clear").click()
    expect(page.locator("[data-total=requests] .value")).to_have_text("5")
    page.get_by_role("button", name="Custom").click()
    expect(page.get_by_text("Choose a start and an end for the custom range.")).to_be_visible()
    local = (
        "(hours) => { const d = new Date(Date.now() - hours * 3600e3);"
        " d.setMinutes(d.getMinutes() - d.getTimezoneOffset()); return d.toISOString().slice(0, 16); }"
    )
    page.get_by_label("From").fill(page.evaluate(local, 2))
    page.get_by_label("To (empty: now)").fill(page.evaluate(local, 1))
    expect(page.locator("[data-total=requests] .value")).to_have_text("0")
    expect(page.locator("[data-chart='Requests']")).to_contain_text("No data in this range")
    page.get_by_label("To (empty: now)").fill("")
    expect(page.locator("[data-total=requests] .value")).to_have_text("5")

    # The token survives a reload (sessionStorage): no second sign-in.
    page.reload()
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    watched.assert_clean()


def test_logs_refresh_by_themselves_and_feedback_persists(dash: Dash, watched: Watched) -> None:
    first = dash.chat().headers["cf-aig-log-id"]
    page = watched.page
    sign_in(watched, dash.url)
    open_view(watched, "logs")
    expect(page.locator(f"tr[data-id='{first}']")).to_be_visible()
    rows = page.locator("tbody tr[data-id]")
    expect(rows).to_have_count(1)

    # A new request shows up without anyone touching the page.
    streamed = dash.chat(stream=True, **{"cf-aig-event-id": "live-1", "cf-aig-metadata": '{"user":"zoe"}'})
    new_id = streamed.headers["cf-aig-log-id"]
    expect(page.locator(f"tr[data-id='{new_id}']")).to_be_visible(timeout=WAIT_MS)
    expect(rows).to_have_count(2)
    row = page.locator(f"tr[data-id='{new_id}']")
    expect(row).to_contain_text("live-1")
    expect(row).to_contain_text("user=zoe")

    # The detail pane: redacted bodies, the stream as the text that was sent.
    row.click()
    detail = page.get_by_role("complementary", name="Log detail")
    expect(detail.locator("pre[data-body=request]")).to_contain_text('"content": "hello"')
    expect(detail.locator("pre[data-body=response]")).to_contain_text("data: ")
    expect(detail.locator("pre[data-body=response]")).to_contain_text("chunk0")
    assert PROVIDER_KEY not in detail.inner_text()

    detail.locator("button[data-feedback='1']").click()
    expect(detail.locator("button[data-feedback='1']")).to_have_attribute("aria-pressed", "true")
    detail.get_by_label("Score (0–100)").fill("75")
    detail.get_by_role("button", name="Save score").click()
    expect(detail.get_by_role("status")).to_have_text("Saved.")
    status, body = dash.admin(f"logs/{new_id}")
    assert status == 200 and (body["result"]["feedback"], body["result"]["score"]) == (1, 75)
    watched.screenshot("logs")

    # Stored, not just drawn: a fresh page shows the feedback pressed.
    page.reload()
    page.locator(f"tr[data-id='{new_id}']").click()
    expect(page.locator("button[data-feedback='1']")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Score (0–100)")).to_have_value("75")

    # Delete by filter, behind the confirmation.
    page.get_by_label("Event ID").fill("live-1")
    page.get_by_role("button", name="Apply").click()
    expect(rows).to_have_count(1)
    page.get_by_role("button", name="Delete matching…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("event_id=live-1")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("Deleted 1 logs.")).to_be_visible()
    assert dash.admin(f"logs/{new_id}")[0] == 404
    assert dash.admin(f"logs/{first}")[0] == 200
    watched.assert_clean()


def test_purge_from_the_cache_view_makes_the_next_request_miss(dash: Dash, watched: Watched) -> None:
    cached = {"cf-aig-cache-ttl": "60"}
    assert dash.chat(**cached).headers["cf-aig-cache-status"] == "MISS"
    assert dash.chat(**cached).headers["cf-aig-cache-status"] == "HIT"
    page = watched.page
    sign_in(watched, dash.url)
    open_view(watched, "cache")
    expect(page.locator("[data-stat=entries]")).to_have_text("1")
    page.locator("[data-purge=all]").click()
    page.get_by_role("dialog").get_by_role("button", name="Purge").click()
    expect(page.get_by_text("Purged 1 entry (every entry).")).to_be_visible()
    expect(page.locator("[data-stat=entries]")).to_have_text("0")
    watched.screenshot("cache")
    assert dash.chat(**cached).headers["cf-aig-cache-status"] == "MISS"
    watched.assert_clean()


def test_settings_mask_secrets(dash: Dash, watched: Watched) -> None:
    page = watched.page
    sign_in(watched, dash.url)
    open_view(watched, "settings")
    config = page.locator("pre[data-config]")
    expect(config).to_contain_text('"admin_token": "[REDACTED]"')
    expect(page.get_by_role("region", name="Providers")).to_contain_text(f"{dash.fake.url}/v1")
    expect(page.get_by_role("region", name="Health")).to_contain_text("memory")
    shown = json.loads(config.inner_text())
    assert shown["providers"]["openai"]["api_key"] == "[REDACTED]"
    watched.screenshot("settings")
    text = page.content()
    assert ADMIN_TOKEN not in text and PROVIDER_KEY not in text
    watched.assert_clean()


def test_a_wrong_token_shows_an_error(dash: Dash, watched: Watched) -> None:
    page = watched.page
    sign_in(watched, dash.url, token="not-the-admin-token")
    expect(page.locator("#login-error")).to_have_text("That admin token was not accepted.")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('aigw.adminToken')") is None
    # The refused call is the only thing the browser reports.
    assert watched.errors and all("401" in e for e in watched.errors), watched.errors
    assert watched.offsite == []


def test_loopback_gateway_without_admin_token_needs_no_sign_in(make_gateway, watched: Watched) -> None:
    _, server = make_gateway()
    page = watched.page
    page.goto(f"{server.url}/admin/#logs")
    expect(page.locator("#nav a[data-view=logs]")).to_have_attribute("aria-current", "page")
    expect(page.locator("#login")).to_be_hidden()
    expect(page.locator("#sign-out")).to_be_hidden()
    expect(page.get_by_text("No logs match.")).to_be_visible()
    watched.assert_clean()

"""Drives the control plane's dashboard in headless Chromium through Selenium
(tests/tests/dashboard.rs runs it; the Makefile installs the pinned Selenium into
.venv/ and Debian's chromium and chromium-driver).

Reads one JSON object on stdin (the secrets stay out of the process list):
  {"url": "http://127.0.0.1:<admin port>", "secret": "...", "wrong_secret": "...",
   "tenants": ["acme", ...], "out": "<dir for screenshots>"}
and prints one JSON object: what the page showed at each step (numbers, chart
data, tables), every URL the browser requested, the console's errors, and the
screenshots' paths. It asserts nothing itself: the Rust test does.
"""

import json
import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

PATIENCE = 20

# What the page shows, read in the page: numbers from the KPI tiles' data-value,
# chart data from Chart.js's own objects, rows of the two tables, the tenant card.
OBSERVE = """
const d = document;
const value = (id) => { const v = d.getElementById(id).dataset.value; return v === undefined || v === "" ? null : Number(v); };
const chart = (id) => {
  const c = Chart.getChart(id);
  if (!c) return null;
  return {
    labels: (c.data.labels || []).map(String),
    datasets: c.data.datasets.map((s) => ({ label: s.label,
      data: s.data.map((x) => (x !== null && typeof x === "object" ? x.y : x)) })),
    empty: !d.getElementById(id).parentElement.querySelector(".empty").hidden,
  };
};
const rows = (id) => [...d.getElementById(id).tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent));
const card = d.getElementById("tenant-card");
return {
  state: d.documentElement.dataset.state,
  refreshes: Number(d.documentElement.dataset.refreshes || 0),
  tenant: d.getElementById("tenant").value,
  tenant_options: [...d.getElementById("tenant").options].map((o) => o.value),
  kpis: { requests: value("kpi-requests"), success: value("kpi-success"), cost: value("kpi-cost"),
          tokens: value("kpi-tokens"), cache: value("kpi-cache"), saved: value("kpi-saved") },
  kpi_text: { requests: d.getElementById("kpi-requests").textContent, cost: d.getElementById("kpi-cost").textContent,
              success: d.getElementById("kpi-success").textContent },
  charts: Object.fromEntries(["chart-traffic", "chart-spend", "chart-provider-cost", "chart-model-cost",
    "chart-latency", "chart-ttft", "chart-bands", "chart-routing"].map((id) => [id, chart(id)])),
  penalties: rows("penalties"),
  envoys: rows("envoys"),
  envoys_empty: !d.querySelector("#envoys + .empty").hidden,
  tenant_card: card.hidden ? null : { budget: d.getElementById("budget-text").textContent,
    rpm: d.getElementById("rpm-text").textContent, tpm: d.getElementById("tpm-text").textContent,
    key_budgets: Array.from(d.querySelectorAll("#key-budget-list .key-budget")).map((b) => ({
      key: b.dataset.key, name: b.querySelector("h4").textContent,
      text: b.querySelector(".meter-text").textContent })) },
  banner: d.getElementById("banner").hidden ? null : d.getElementById("banner").textContent,
};
"""


def browser():
    options = Options()
    options.binary_location = os.environ.get("AIPIPE_CHROMIUM", "/usr/bin/chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1440,1000", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=os.environ.get("AIPIPE_CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(options=options, service=service)


def wait(driver, what, condition):
    try:
        return WebDriverWait(driver, PATIENCE, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        raise SystemExit(f"drive.py: timed out waiting for {what}; the page showed "
                         f"{json.dumps(driver.execute_script(OBSERVE) if has_app(driver) else None)}")


def has_app(driver):
    return driver.execute_script("return typeof Chart !== 'undefined' && !!document.getElementById('tenant')")


def refreshes(driver):
    return driver.execute_script("return Number(document.documentElement.dataset.refreshes || 0)")


def shown(driver):
    return driver.execute_script("return document.documentElement.dataset.shown || ''")


def after_next_refresh(driver, what, act, tenant, window_ms):
    """Runs `act`, then waits for a refresh of `tenant` over `window_ms` that
    completed after it (the page drops refreshes a newer selection superseded;
    one that ended just before `act` shows the old selection)."""
    before = refreshes(driver)
    act()
    want = f"{tenant}|{window_ms}"
    wait(driver, what, lambda d: refreshes(d) > before and shown(d) == want)
    return driver.execute_script(OBSERVE)


def screenshot(driver, path):
    # The whole page: grow the window until it holds it (the window's frame
    # takes some of its height), then let the charts resize.
    for _ in range(3):
        height = driver.execute_script("return document.documentElement.scrollHeight")
        inner = driver.execute_script("return window.innerHeight")
        if inner >= height:
            break
        size = driver.get_window_size()
        driver.set_window_size(1440, size["height"] + height - inner)
        time.sleep(0.3)
    time.sleep(0.3)
    driver.save_screenshot(path)
    driver.set_window_size(1440, 1000)
    return path


def main():
    spec = json.load(sys.stdin)
    base = spec["url"].rstrip("/")
    out = {"steps": {}, "screenshots": []}
    driver = browser()
    try:
        driver.get(base + "/dashboard")
        wait(driver, "the sign-in form", lambda d: d.find_element(By.ID, "secret").is_displayed())
        out["steps"]["start"] = {"state": driver.execute_script("return document.documentElement.dataset.state")}

        # A wrong secret: the API's 401, the page stays signed out.
        driver.find_element(By.ID, "secret").send_keys(spec["wrong_secret"])
        driver.find_element(By.ID, "signin-button").click()
        wait(driver, "the sign-in error", lambda d: d.find_element(By.ID, "signin-error").is_displayed())
        out["steps"]["wrong_secret"] = driver.execute_script("""return {
            state: document.documentElement.dataset.state,
            error: document.getElementById('signin-error').textContent,
            app_hidden: document.getElementById('app').hidden,
            stored: sessionStorage.getItem('aipipe.adminSecret') };""")
        out["screenshots"].append(screenshot(driver, os.path.join(spec["out"], "dashboard-signin.png")))

        # The right one.
        field = driver.find_element(By.ID, "secret")
        field.clear()
        field.send_keys(spec["secret"])
        driver.find_element(By.ID, "signin-button").click()
        wait(driver, "the first refresh", lambda d: refreshes(d) >= 1)
        first = driver.execute_script(OBSERVE)
        first["field_after_sign_in"] = driver.find_element(By.ID, "secret").get_attribute("value")
        out["steps"]["all"] = first

        # It refreshes by itself (every 5 s), without reloading the page.
        driver.execute_script("window.__samePage = true;")
        started = time.monotonic()
        wait(driver, "a refresh without interaction", lambda d: refreshes(d) > first["refreshes"])
        out["steps"]["auto_refresh"] = {
            "seconds": round(time.monotonic() - started, 2),
            "same_page": driver.execute_script("return window.__samePage === true"),
        }

        hour, quarter = 3600000, 900000
        for tenant in spec["tenants"]:
            observed = after_next_refresh(driver, f"tenant {tenant}",
                                          lambda: Select(driver.find_element(By.ID, "tenant")).select_by_value(tenant),
                                          tenant, hour)
            out["steps"]["tenant:" + tenant] = observed
            if tenant == spec["tenants"][0]:
                out["screenshots"].append(screenshot(driver, os.path.join(spec["out"], f"dashboard-{tenant}.png")))

        observed = after_next_refresh(driver, "all tenants again",
                                      lambda: Select(driver.find_element(By.ID, "tenant")).select_by_value(""),
                                      "", hour)
        out["steps"]["all_again"] = observed
        observed = after_next_refresh(driver, "the 15 min window",
                                      lambda: driver.find_element(By.CSS_SELECTOR, f"#window button[data-window='{quarter}']").click(),
                                      "", quarter)
        out["steps"]["window_15m"] = observed
        out["screenshots"].append(screenshot(driver, os.path.join(spec["out"], "dashboard-all.png")))

        # Where the secret is, and is not, while signed in.
        out["steps"]["secret_places"] = driver.execute_script("""
            const s = arguments[0];
            return { session: sessionStorage.getItem('aipipe.adminSecret') === s,
                     local: localStorage.length, cookie: document.cookie,
                     in_html: document.documentElement.outerHTML.includes(s),
                     in_url: location.href.includes(s) };""", spec["secret"])

        driver.find_element(By.ID, "signout").click()
        wait(driver, "signed out", lambda d: d.find_element(By.ID, "secret").is_displayed())
        out["steps"]["signed_out"] = driver.execute_script("""return {
            state: document.documentElement.dataset.state,
            stored: sessionStorage.getItem('aipipe.adminSecret'),
            app_hidden: document.getElementById('app').hidden };""")

        # Every request the page made (Chrome's DevTools Network events), and
        # which of them carried the secret.
        requests = []
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            request = message["params"]["request"]
            headers = {k.lower(): v for k, v in request.get("headers", {}).items()}
            requests.append({"url": request["url"], "method": request["method"],
                             "secret_header": "x-admin-secret" in headers})
        out["requests"] = requests
        out["console"] = [{"level": e["level"], "message": e["message"]} for e in driver.get_log("browser")]
    finally:
        driver.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The web chat at GET / (tools/webui.c), driven in headless Chromium.

The server (helpers from test_server.py) runs with an API key, so one run
covers both sides of the rule: the page loads without the key, the API calls
it makes need it. The browser types the key into the page's key field, sends
a message with Enter, and the test checks that the reply arrived token by
token (a MutationObserver counts the page's appends to the reply's text
node), that the status bar shows the cache fill and evicted tokens from the
stream, that markup in the user's text stays text, and that "New chat"
starts a new session. A screenshot goes to the pytest temp dir, and to
$WEBUI_SCREENSHOT when set (the docs use docs/img/webui.png).

Needs the Debian packages chromium and chromium-driver (make deps) and the
pip package selenium (scripts/requirements-test.txt); skipped without them.

Run: python -m pytest -q tests/integration/test_webui.py
"""
import os
import re
import shutil
import time

import pytest
import requests

from test_server import KEY, Server, need

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")

need(os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK),
     f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver, or make deps)")
try:
    from selenium import webdriver
except ImportError:
    need(False, "needs selenium (pip install -r scripts/requirements-test.txt)")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

MAX_TOKENS = 24
CACHE_RE = re.compile(r"cache (\d+) / (\d+)")

# Installed before the message is sent: records every change of a reply's
# text, with the length before and after, so the test can tell a streamed
# reply (many small appends) from one set at once.
OBSERVE = """
window.__appends = [];
new MutationObserver(recs => {
  for (const r of recs)
    if (r.type === 'characterData')
      window.__appends.push([r.oldValue.length, r.target.data.length]);
}).observe(document.getElementById('log'),
           {subtree: true, characterData: true, characterDataOldValue: true});
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("webui"), "--slots", "1", "--window", "48",
               "--api-key", KEY, name="webui")
    yield s
    assert s.stop() == 0, s.read_log()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=900,640", "--force-device-scale-factor=1"):
        opts.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    drv = webdriver.Chrome(options=opts, service=service)
    drv.set_page_load_timeout(20)
    yield drv
    drv.quit()


def test_page_headers_and_no_key_needed(srv):
    r = requests.get(srv.url + "/", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'unsafe-inline'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert len(r.content) < 12 * 1024
    page = r.text
    assert "<script>" in page and "v1/chat/completions" in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page), "external resource"
    assert "innerHTML" not in page
    assert requests.get(srv.url + "/index.html", timeout=10).text == page
    assert requests.head(srv.url + "/", timeout=10).status_code == 200
    assert requests.post(srv.url + "/", json={}, timeout=10).status_code == 405
    # the page is public; what it calls is not
    assert requests.get(srv.url + "/v1/models", timeout=10).status_code == 401


def test_chat_streams_and_shows_cache(srv, browser, tmp_path):
    drv = browser
    drv.get(f"{srv.url}/?max_tokens={MAX_TOKENS}&temperature=0")
    wait = WebDriverWait(drv, 30, poll_frequency=0.05)
    drv.execute_script("localStorage.clear(); location.reload();")
    wait.until(lambda d: d.find_element(By.ID, "model").text == "needs an API key")

    key = drv.find_element(By.ID, "key")
    key.send_keys(KEY + Keys.TAB)  # 'change' stores it and reloads the model line
    wait.until(lambda d: "SmolLM2" in d.find_element(By.ID, "model").text)
    session = drv.execute_script("return localStorage.getItem('sinkllm.session')")
    assert re.fullmatch(r"web-[0-9a-f]{24}", session)
    assert drv.execute_script("return localStorage.getItem('sinkllm.key')") == KEY
    assert drv.find_element(By.ID, "cache").text == "cache -"

    drv.execute_script(OBSERVE)
    text = "Hi!\nWhat is <b>2+2</b>?"
    box = drv.find_element(By.ID, "input")
    box.send_keys("Hi!")
    ActionChains(drv).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    box.send_keys("What is <b>2+2</b>?")
    assert box.get_attribute("value") == text
    assert drv.find_elements(By.CSS_SELECTOR, ".msg") == []  # Shift+Enter did not send
    box.send_keys(Keys.ENTER)

    reply = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".msg.assistant"))
    wait.until(lambda d: CACHE_RE.search(d.find_element(By.ID, "status").text))
    wait.until(lambda d: "pending" not in reply.get_attribute("class"))

    user = drv.find_element(By.CSS_SELECTOR, ".msg.user")
    assert user.text == text
    assert user.find_elements(By.TAG_NAME, "b") == [], "user text was parsed as markup"
    assert reply.text.strip(), "no reply text"
    assert "error" not in reply.get_attribute("class"), reply.text
    appends = drv.execute_script("return window.__appends")
    assert len(appends) >= 3, f"reply not streamed token by token: {appends}"
    assert all(b > a for a, b in appends), appends
    assert appends[-1][1] == len(drv.execute_script(
        "return document.querySelector('.msg.assistant').textContent"))

    status = drv.find_element(By.ID, "status").text
    n_cached, capacity = map(int, CACHE_RE.search(status).groups())
    assert 0 < n_cached <= capacity == 4 + 48
    evicted = int(re.search(r"evicted (\d+) \(\+\d+ this turn\)", status).group(1))
    assert re.search(r"\d+\.\d tok/s", status), status
    assert "prefilled" in status and "reused 0" in status

    hist = drv.execute_script("return JSON.parse(localStorage.getItem('sinkllm.history'))")
    assert [m["role"] for m in hist] == ["user", "assistant"]
    assert hist[0]["content"] == text

    # a second turn goes to the same session: only its suffix is pre-filled
    box.send_keys("Thanks.", Keys.ENTER)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == 2)
    last = drv.find_elements(By.CSS_SELECTOR, ".msg.assistant")[1]
    wait.until(lambda d: "pending" not in last.get_attribute("class"))
    status2 = drv.find_element(By.ID, "status").text
    assert int(re.search(r"reused (\d+)", status2).group(1)) > 0, status2
    assert int(re.search(r"evicted (\d+)", status2).group(1)) > evicted, status2
    # what has left the window is faded (issue 14): more turns until the
    # first question has left the 4 + 48 cache; the last reply is all in it;
    # each message's fading follows its token span against the window's
    # start, and survives a reload (the spans are stored)
    def classes():
        return [e.get_attribute("class") for e in drv.find_elements(By.CSS_SELECTOR, ".msg")]
    for turn in range(6):
        if "forgotten" in classes()[0]:
            break
        n = len(drv.find_elements(By.CSS_SELECTOR, ".msg.assistant"))
        box.send_keys("Tell me more.", Keys.ENTER)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant")) == n + 1)
        wait.until(lambda d: "pending" not in d.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]
                   .get_attribute("class"))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".msg")[-1].get_attribute("data-end"))
    c = classes()
    assert "forgotten" in c[0], c
    assert "forgotten" not in c[-1] and "partly" not in c[-1], c
    lo = int(drv.execute_script("return localStorage.getItem('sinkllm.lo')"))
    hist = drv.execute_script("return JSON.parse(localStorage.getItem('sinkllm.history'))")
    assert [("forgotten" in x) for x in c] == [m["end"] <= lo for m in hist], (c, lo, hist)
    assert [("partly" in x) for x in c] == [m["start"] < lo < m["end"] for m in hist], (c, lo, hist)
    drv.refresh()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg")) == len(c))
    assert classes() == c
    box = drv.find_element(By.ID, "input")

    shot = str(tmp_path / "webui.png")
    assert drv.save_screenshot(shot)
    assert os.path.getsize(shot) > 1000
    if os.environ.get("WEBUI_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["WEBUI_SCREENSHOT"])

    # New chat: a new session id, an empty log, cleared stats
    drv.find_element(By.ID, "new").click()
    assert drv.execute_script("return localStorage.getItem('sinkllm.session')") != session
    assert drv.find_elements(By.CSS_SELECTOR, ".msg") == []
    assert drv.find_element(By.ID, "cache").text == "cache -"

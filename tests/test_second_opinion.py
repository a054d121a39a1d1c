"""A language model's second opinion, against a local chat-completions server over a real socket, a real
`relay serve` and `relay worker` on a private Redis: asked after the 201, can only raise, never sees
names or phone numbers; timeouts, refusals, errors, malformed and contradictory answers change nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from support.spine import (
    School,
    Schools,
    WebhookReceiver,
    private_stack,
    wait_until,
)
from vendors.chat_server import ChatServer

from relay.cli.embedded import EmbeddedRedis

HOMEWORK = "请问这周的数学作业是什么？张小明说没记下来，我电话13800001111"  # P2 by the rules


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with ChatServer(key="sk-school") as server:
        yield server


@pytest.fixture(scope="module")
def schools(receiver: WebhookReceiver, llm: ChatServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Schools]:
    base = tmp_path_factory.mktemp("second-opinion")
    server = EmbeddedRedis(base / "redis").start()
    try:
        with private_stack(base, receiver, server, workers=1, RELAY_TRIAGE_LLM_URL=llm.base_url,
                           RELAY_TRIAGE_LLM_MODEL="school-triage-1", RELAY_TRIAGE_LLM_KEY="sk-school",
                           RELAY_TRIAGE_LLM_TIMEOUT_SECONDS="1") as (_, made):
            yield made
    finally:
        server.stop()


def outcome(school: School, request_id: str) -> dict[str, Any]:
    def seen() -> dict[str, Any] | None:
        return next((e for e in school.timeline(request_id)
                     if e["kind"] in ("second_opinion", "second_opinion_failed")), None)

    found: dict[str, Any] = wait_until(seen, 15, "the second opinion on the timeline")
    return found


def test_a_model_that_finds_it_urgent_raises_it_after_the_201_without_seeing_names(
    schools: Schools, llm: ChatServer
) -> None:
    school = schools.new()
    llm.answer({"urgency": "P0", "reason": "孩子可能有危险"})
    created = school.submit(HOMEWORK)
    assert created.status_code == 201 and created.json()["urgency"] == "P2"  # intake never waits for it

    assert outcome(school, created.json()["id"])["verdict"] == "P0"
    record = wait_until(lambda: (r := school.record(created.json()["id"]))["urgency"] == "P0" and r, 10, "the raise")
    assert any("语言模型" in reason for reason in record["reasons"])
    prompt = llm.prompts[-1]
    assert "张小明" not in prompt and "小明" not in prompt and "13800001111" not in prompt
    assert "作业" in prompt
    assert llm.bodies[-1]["model"] == "school-triage-1"


@pytest.mark.parametrize("answer", ["slow", "refusal", "filtered", "not_json", "broken", "http_429", "http_500",
                                    {"urgency": "P9", "reason": "?"}])
def test_no_usable_answer_changes_nothing(schools: Schools, llm: ChatServer, answer: Any) -> None:
    school = schools.new()
    llm.answer(answer)
    created = school.submit(HOMEWORK)
    assert created.status_code == 201
    entry = outcome(school, created.json()["id"])
    assert entry["kind"] == "second_opinion_failed"
    assert school.record(created.json()["id"])["urgency"] == "P2"


def test_a_lower_verdict_is_recorded_and_never_lowers(schools: Schools, llm: ChatServer) -> None:
    school = schools.new()
    llm.answer({"urgency": "P3", "reason": "只是问作业"})
    created = school.submit("孩子今天发烧请假一天")  # P1 by the rules
    entry = outcome(school, created.json()["id"])
    assert entry["kind"] == "second_opinion" and entry["verdict"] == "P3" and entry["applied"] is False
    assert school.record(created.json()["id"])["urgency"] == created.json()["urgency"]


def test_an_emergency_is_not_sent_to_the_model(schools: Schools, llm: ChatServer) -> None:
    school = schools.new()
    asked = len(llm.prompts)
    created = school.submit("孩子在学校晕倒了，没有呼吸")
    assert created.json()["urgency"] == "P0"
    school.submit("请问下周几开家长会？", student_id="s3", guardian_id="g2")
    wait_until(lambda: len(llm.prompts) > asked, 15, "the routine request's question")
    assert all("晕倒" not in prompt for prompt in llm.prompts[asked:])


def test_the_model_with_a_wrong_key_is_an_http_401(schools: Schools, llm: ChatServer) -> None:
    from relay.base.runtime import Runtime
    from relay.base.settings import Settings
    from relay.core.second_opinion import NoOpinion, consult

    runtime = Runtime(Settings(triage_llm_url=llm.base_url, triage_llm_key="wrong", redis_url=schools.stack.redis_url))
    with pytest.raises(NoOpinion) as refused:
        consult(runtime, "孩子发烧了")
    assert refused.value.kind == "http_401"



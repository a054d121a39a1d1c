"""A language model's second opinion on urgency, from a chat-completions API the school or district runs.

Optional (off unless RELAY_TRIAGE_LLM_URL is set). Asked by a worker after the 201, so it never
delays intake; it can only raise urgency (a raise goes through relay/core/retriage.py like a staff
correction would, paging as a P0 does); it never sees names or phone numbers (they are replaced
before the text leaves); its verdict and reason, or why there is none, go on the timeline.

Wire format: OpenAI-compatible `POST {base}/chat/completions` with `model` and `messages`; the
answer's `choices[0].message.content` must hold a JSON object {"urgency": "P0".."P3", "reason": "..."}.
A refusal (`message.refusal`, `finish_reason: content_filter`), an error status, a timeout or an
answer that is not that object is recorded and ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from relay.base import metrics
from relay.base.log import log
from relay.base.runtime import Runtime, get_runtime
from relay.base.store import RequestRecord, add_timeline, load, now_in, transition
from relay.core import retriage
from relay.core.masking import redact as redact  # its home was here
from routing.labels import Category, Urgency

SOURCE = "llm"

_INSTRUCTIONS = (
    "你是学校值班老师的助手。判断家长消息的紧急程度，只回答一个 JSON 对象："
    '{"urgency": "P0|P1|P2|P3", "reason": "一句中文理由"}。'
    "P0：孩子的健康或安全此刻（或一小时内）有危险，学校能采取行动（在校、路上、校车上、未到校）；"
    "包括间接迹象（自伤暗示、被困、误吞不明物、有人要带走孩子）。"
    "P1：今天要办（请假、迟到、今天的接送变更、传染病告知、今天的用药或过敏注意、今天要修的隐患）。"
    "P2：常规（作业、成绩、费用、政策、会议、投诉）。P3：无需处理（感谢、问候、广告、传言、已解决的过去事件）。"
    "演练、安全教育作业、广告、外地新闻不是 P0；否定的症状不是症状。"
)


class Verdict(BaseModel):
    urgency: Urgency
    reason: str = ""


class NoOpinion(Exception):
    """The model gave no usable verdict: the kind says why (timeout, refused, http_<status>, malformed)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def enabled(runtime: Runtime) -> bool:
    return bool(runtime.settings.triage_llm_url)


def _verdict(answer: httpx.Response) -> Verdict:
    if answer.status_code != 200:
        raise NoOpinion(f"http_{answer.status_code}")
    try:
        choice = answer.json()["choices"][0]
        message = choice["message"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise NoOpinion("malformed") from exc
    if message.get("refusal") or choice.get("finish_reason") == "content_filter":
        raise NoOpinion("refused")
    content = str(message.get("content") or "")
    found = re.search(r"\{.*\}", content, re.DOTALL)  # some models wrap the object in prose or a code fence
    try:
        return Verdict.model_validate(json.loads(found.group(0) if found else content))
    except (ValueError, ValidationError) as exc:
        raise NoOpinion("malformed") from exc


def consult(runtime: Runtime, text: str, client: httpx.Client | None = None) -> Verdict:
    settings = runtime.settings
    headers = {"Authorization": f"Bearer {settings.triage_llm_key}"} if settings.triage_llm_key else {}
    body = {"model": settings.triage_llm_model or "default", "temperature": 0,
            "messages": [{"role": "system", "content": _INSTRUCTIONS}, {"role": "user", "content": text}]}
    url = str(settings.triage_llm_url).rstrip("/") + "/chat/completions"
    own = client is None
    client = client or httpx.Client(timeout=settings.triage_llm_timeout_seconds)
    try:
        return _verdict(client.post(url, json=body, headers=headers))
    except httpx.TimeoutException as exc:
        raise NoOpinion("timeout") from exc
    except httpx.HTTPError as exc:
        raise NoOpinion("unreachable") from exc
    finally:
        if own:
            client.close()


def ask(school_id: str, request_id: str) -> str:
    """The job: ask, then raise the request if the model finds it more urgent; record what happened."""
    runtime = get_runtime()
    record = load(runtime.redis, school_id, request_id)
    found = runtime.directories.school(school_id)
    if record is not None and (found is None or found[0] < record.directory_version):
        runtime.directories.reload()  # published a moment ago: this process's view is behind, not wrong
        found = runtime.directories.school(school_id)
    if found is None or record is None or not record.is_open:
        return "gone"
    school = found[1]
    try:
        verdict = consult(runtime, redact(record.text, school, record))
    except NoOpinion as exc:
        metrics.second_opinion(exc.kind)
        _note(runtime, school_id, request_id, "second_opinion_failed", why=exc.kind)
        log.warning("second_opinion_failed", request_id=request_id, school_id=school_id, why=exc.kind)
        return exc.kind
    reason = f"语言模型第二意见：{verdict.urgency.value}（{verdict.reason[:200]}）"
    if verdict.urgency.rank < Urgency(record.urgency).rank:
        metrics.second_opinion("raised")
        _note(runtime, school_id, request_id, "second_opinion", verdict=verdict.urgency.value,
              reason=verdict.reason[:200], applied=True)
        retriage.raise_by(runtime, school, request_id, verdict.urgency, Category(record.category), SOURCE, reason)
        log.info("second_opinion_raised", request_id=request_id, school_id=school_id, urgency=verdict.urgency.value)
        return "raised"
    metrics.second_opinion("kept")
    _note(runtime, school_id, request_id, "second_opinion", verdict=verdict.urgency.value,
          reason=verdict.reason[:200], applied=False)
    return "kept"


def _note(runtime: Runtime, school_id: str, request_id: str, kind: str, **detail: Any) -> None:
    def change(record: RequestRecord, pipe: Any) -> None:
        add_timeline(pipe, record, kind, now_in(record), by=SOURCE, **detail)

    transition(runtime.redis, school_id, request_id, change)

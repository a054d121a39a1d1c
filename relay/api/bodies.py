"""Request bodies: JSON read within a byte limit and a nesting depth, validated into a model with a
machine-readable error code, and texts cleaned of what would hide or reorder them on a screen."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from relay.api.errors import ApiError

# Invisible letters that format characters (Unicode category Cf) do not cover: Hangul fillers.
_INVISIBLE = re.compile(r"[\u115f\u1160\u3164\uffa0]")
MAX_JSON_DEPTH = 8

def _kept(ch: str) -> str:
    category = unicodedata.category(ch)
    if category in ("Zl", "Zp"):
        return "\n"
    # Cc: control characters break pages. Cf: zero-width and bidi controls (U+200B-200F, 202A-202E,
    # 2066-2069, 061C), soft hyphen, tags... hide or reorder text on a staff member's screen.
    # Cs: lone surrogates (JSON "\\ud800") cannot be stored or shown as UTF-8.
    return "" if category in ("Cc", "Cf", "Cs") and ch not in "\n\t" else ch


def clean_text(text: str) -> str:
    """What is stored and shown: NFC, no control or format characters, newlines as \\n, trimmed."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "".join(_kept(ch) for ch in text)
    return unicodedata.normalize("NFC", text).strip()


def depth(value: Any) -> int:
    """How deeply arrays and objects nest (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in children)
    return deepest


async def read_json(request: Request, max_bytes: int) -> Any:
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "请以 JSON 提交 (send Content-Type: application/json)")
    body = await request.body()
    if len(body) > max_bytes:
        raise ApiError(413, "body_too_large", f"内容过长 (the body is over {max_bytes} bytes)")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:  # also a too-deep nesting or a 5,000-digit number
        raise ApiError(400, "invalid_json", "无法解析 JSON (the body is not valid JSON)") from exc
    if depth(value) > MAX_JSON_DEPTH:
        raise ApiError(422, "invalid_body", f"JSON 嵌套过深 (nested deeper than {MAX_JSON_DEPTH} levels)")
    return value


def parse(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_body", "请求体必须是 JSON 对象 (the body must be a JSON object)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        code = "missing_field" if first["type"] == "missing" else "invalid_field"
        raise ApiError(422, code, f"{field}: {first['msg']}") from exc

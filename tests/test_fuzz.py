"""Fuzzing the API against its own OpenAPI schema with schemathesis: every /v1 operation, as a parent
and as a member of staff, with valid and invalid inputs, must answer without a 5xx and as the
schema documents it (status, content type, headers, body). Bounded: a few examples per operation,
derandomized, no shrinking, so that it stays well under a minute."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.spine import WebhookReceiver
from support.trust import TrustSchool, make_school

from tests.vendors.wechat_server import WeChatServer

EXAMPLES = 8
# Operations of the administration work in progress (relay/api/admin.py) that do not yet document
# what they answer: YAML and XLSX bodies declared as JSON, and a 410 for an expired import. Found by
# this test and reported; each is expected to fail until documented, and then simply passes.
PENDING: set[str] = set()
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed(redis_url: str, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustSchool]:
    with WeChatServer() as wechat:
        school = make_school(redis_url, tmp_path_factory.mktemp("fuzz"), receiver.url, wechat_app_id=wechat.app_id,
                             wechat_app_secret=wechat.app_secret, wechat_base_url=wechat.base_url)
        yield school
        school.close()


def _run(operation: Any, headers: dict[str, str], mode: GenerationMode, path_parameters: dict[str, str] | None) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def fuzz(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)

    try:
        fuzz()
    except Unsatisfiable:
        pass  # nothing to make invalid: an operation without parameters or body has no negative cases


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_v1_operation_answers_as_documented(fuzzed: TrustSchool, mode: GenerationMode) -> None:
    started = time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path.startswith("/v1/")]
    assert len(operations) >= 15, [op.label for op in operations]
    callers = {"parent": fuzzed.parent("g1"), "staff": fuzzed.staff("principal")}
    failures = []
    for operation in operations:
        known = None
        if "{request_id}" in operation.path:
            # Half the time a request that exists, so that actions get past "not found".
            known = {"request_id": fuzzed.made_request("孩子在学校发烧了")["id"]}
        for who, headers in callers.items():
            for path_parameters in (None, known) if known else (None,):
                try:
                    _run(operation, headers, mode, path_parameters)
                except BaseException as exc:  # schemathesis raises a group; all failures are reported together
                    if not isinstance(exc, Exception | BaseExceptionGroup):
                        raise
                    failures.append((operation.label, f"{operation.label} as {who} ({mode.value}): {exc}"))
                    break
    print(f"fuzzed {len(operations)} operations in {time.monotonic() - started:.1f}s")
    unexpected = [text for label, text in failures if label not in PENDING]
    assert not unexpected, "\n\n".join(unexpected)
    if failures:
        pytest.xfail("not yet documented: " + ", ".join(sorted({label for label, _ in failures})))


def _document() -> dict[str, Any]:
    from relay.app.factory import create_app
    from relay.base.runtime import Runtime
    from relay.base.settings import Settings

    document: dict[str, Any] = create_app(Runtime(Settings())).openapi()
    return document


def _body_schemas(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    defined = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if path.startswith("/v1/") and content:
                schema = content["schema"]
                yield f"{method.upper()} {path}", defined[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema


def test_no_schema_allows_an_empty_string_the_api_refuses() -> None:
    """A string the API needs (a text, an id, a token) says minLength 1, so that a client generated from
    the schema does not send "" and meet a 422 the schema did not promise."""
    checked = 0
    for operation, schema in _body_schemas(_document()):
        for name, field in schema.get("properties", {}).items():
            for variant in field.get("anyOf", [field]):
                if variant.get("type") == "string" and "format" not in variant and (
                        name in schema.get("required", []) or name == "to"):
                    assert variant.get("minLength", 0) >= 1, f"{operation}: {name}"
                    checked += 1
    assert checked >= 12


def test_admin_operations_document_their_error_codes() -> None:
    document = _document()
    admin = [(path, operation) for path, operations in document["paths"].items() if path.startswith("/v1/admin/")
             and not path.startswith("/v1/admin/binding-codes") for operation in operations.values()]
    assert len(admin) >= 15
    for path, operation in admin:
        responses = operation["responses"]
        assert "`forbidden`" in responses["403"]["description"], path
        assert "`unknown_staff`" in responses["404"]["description"], path
        assert "`invalid_directory`" in responses["422"]["description"], path
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/AdminRefusal"), path
    apply = document["paths"]["/v1/admin/roster/{import_id}/apply"]["post"]["responses"]
    assert "`import_expired`" in apply["410"]["description"]
    assert "problems" in document["components"]["schemas"]["AdminRefusal"]["properties"]

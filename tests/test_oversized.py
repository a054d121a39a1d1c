"""Oversized bodies against a real `relay serve`: refused with 413 `body_too_large` while they arrive,
never read in full, and the API lives on. The memory it takes meanwhile: tests/bench/body_bench.py."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support.spine import School, Schools

MIB = 1024 * 1024
HUGE = 200 * MIB
# What a refused body may have taken from the sender: the limit, plus what the kernel's socket buffers
# on both sides hold before the server closes the connection. Far below the 200 MiB on offer.
READ_AT_MOST = 32 * MIB


@pytest.fixture(scope="module")
def shared(schools: Schools) -> School:
    return schools.new()


class Offered:
    """A body of `size` bytes in 64 KiB chunks, counting what the HTTP client took of it."""

    def __init__(self, size: int, head: bytes = b"") -> None:
        self.size, self.head, self.taken = size, head, 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"a" * (64 * 1024)
        if self.head:
            self.taken += len(self.head)
            yield self.head
        while self.taken < self.size:
            self.taken += len(chunk)
            yield chunk


def _refused(response: httpx.Response, offered: Offered) -> None:
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "body_too_large"
    assert offered.taken < READ_AT_MOST, f"the server read {offered.taken // MIB} MiB of a refused body"


def _alive(school: School) -> None:
    assert school.client.get("/readyz").status_code == 200
    assert school.stack.api is not None and school.stack.api.poll() is None


def test_a_chunked_200_mib_sign_in_body_is_refused_as_it_arrives(shared: School) -> None:
    offered = Offered(HUGE, b'{"code": "')
    with httpx.Client(base_url=shared.stack.url, timeout=60) as client:  # its own connection: the server closes it
        response = client.post("/v1/auth/wechat", content=offered, headers={"Content-Type": "application/json"})
    _refused(response, offered)
    _alive(shared)


def test_a_declared_200_mib_length_is_refused_before_a_byte_is_read(shared: School) -> None:
    offered = Offered(HUGE)
    with httpx.Client(base_url=shared.stack.url, timeout=60) as client:
        response = client.post("/v1/requests", content=offered, headers={
            **shared.parent(), "Content-Type": "application/json", "Content-Length": str(HUGE)})
    _refused(response, offered)
    _alive(shared)


def test_a_200_mib_roster_upload_stops_at_the_upload_limit(shared: School) -> None:
    boundary = "relaybound"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"roster.xlsx\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    offered = Offered(HUGE, head)
    with httpx.Client(base_url=shared.stack.url, timeout=60) as client:
        response = client.post("/v1/admin/roster/check", content=offered, headers={
            **shared.staff("principal"), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    _refused(response, offered)
    _alive(shared)


def test_a_page_form_over_its_limit_is_refused_too(shared: School) -> None:
    offered = Offered(HUGE, b"who=")
    with httpx.Client(base_url=shared.stack.url, timeout=60) as client:
        response = client.post("/staff/login", content=offered,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    _refused(response, offered)
    _alive(shared)

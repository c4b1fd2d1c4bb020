"""The gateway's error answers as typed errors: by status, with code, message, request id and
Retry-After; any other body still maps by status."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

import modelgate_client as mg
from modelgate_client.errors import error_from_answer, parse_retry_after
from tests.unit.client.conftest import Fake, envelope

BY_STATUS = [
    (400, "invalid_json", mg.BadRequest),
    (401, "unauthorized", mg.AuthenticationError),
    (403, "forbidden", mg.PermissionDenied),
    (404, "model_not_found", mg.NotFound),
    (409, "job_not_finished", mg.Conflict),
    (410, "job_results_deleted", mg.Gone),
    (413, "body_too_large", mg.PayloadTooLarge),
    (415, "unsupported_media_type", mg.UnsupportedMediaType),
    (422, "invalid_input", mg.InvalidInput),
    (429, "rate_limited", mg.RateLimited),
    (503, "overloaded", mg.Unavailable),
    (500, "internal", mg.ServerError),
    (502, "bad_gateway", mg.ServerError),
    (405, "method_not_allowed", mg.ModelgateError),
]


@pytest.mark.parametrize(("status", "code", "cls"), BY_STATUS)
def test_envelopes_map_by_status(status: int, code: str, cls: type) -> None:
    response = envelope(status, code, "it went wrong", **{"X-Request-ID": "rid-7"})
    error = error_from_answer(status, response.headers, response.content)
    assert type(error) is cls and isinstance(error, mg.ModelgateError)
    assert (error.code, error.status, error.message) == (code, status, "it went wrong")
    assert error.request_id == "rid-7"  # the header, before the body's
    assert "\n" not in str(error) and code in str(error) and "rid-7" in str(error)
    if status == 503:
        assert isinstance(error, mg.ServerError)


def test_not_an_envelope_maps_by_status_with_http_code() -> None:
    for body in (b"<html>bad gateway</html>", b'{"error": "flat"}', b"[]", b""):
        error = error_from_answer(502, httpx.Headers(), body, "Bad Gateway")
        assert type(error) is mg.ServerError
        assert error.code == "http_502" and error.message == "Bad Gateway"
    error = error_from_answer(404, httpx.Headers(), b"nope")
    assert type(error) is mg.NotFound and error.code == "http_404"


def test_request_id_from_the_body_when_no_header() -> None:
    response = envelope(404, "not_found")
    error = error_from_answer(404, httpx.Headers(), response.content)
    assert error.request_id == "req-body"


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("-4") == 0.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 31
    response = envelope(429, "rate_limited", "slow down", **{"Retry-After": "7"})
    error = error_from_answer(429, response.headers, response.content)
    assert isinstance(error, mg.RateLimited) and error.retry_after == 7.0
    assert "retry after 7 s" in str(error)


def test_too_many_rows_suggests_jobs() -> None:
    response = envelope(413, "too_many_rows", "1001 rows exceed the synchronous limit of 1000")
    error = error_from_answer(413, response.headers, response.content)
    assert isinstance(error, mg.PayloadTooLarge) and error.code == "too_many_rows"
    assert "1001 rows" in error.message and "client.jobs.submit" in error.message


def test_the_client_raises_them_with_the_503_and_415_answers(fake: Fake) -> None:
    fake.script = [envelope(503, "model_not_ready", "loading", **{"Retry-After": "1"})]
    with fake.client(retry=0) as client, pytest.raises(mg.Unavailable) as caught:
        client.predict("iris", [[1, 2, 3, 4]])
    assert caught.value.code == "model_not_ready" and caught.value.retry_after == 1.0
    fake.script = [envelope(415, "unsupported_media_type", "send text/csv")]
    with fake.client(retry=0) as client, pytest.raises(mg.UnsupportedMediaType):
        client.request(
            "POST", "/v1/models/iris/jobs", content=b"x", headers={"Content-Type": "a/b"}
        )


def test_answers_that_are_not_the_json_expected(fake: Fake) -> None:
    fake.script = [httpx.Response(200, content=b"<html>")]
    with fake.client() as client, pytest.raises(mg.BadResponse):
        client.models()
    fake.script = [httpx.Response(200, json={"models": "no"})]
    with fake.client() as client, pytest.raises(mg.BadResponse):
        client.models()
    fake.script = [httpx.Response(200, json={"predictions": [1]})]
    with fake.client() as client, pytest.raises(mg.BadResponse):
        client.predict("iris", [[1, 2, 3, 4]])


def test_connection_failures_name_the_url_and_its_source(
    isolated: object, sleeps: list[float]
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with (
        mg.Client(transport=httpx.MockTransport(refuse)) as client,
        pytest.raises(mg.ConnectionFailed) as caught,
    ):
        client.models()
    error = caught.value
    assert str(error.message) == ("cannot reach http://127.0.0.1:8000 (from default): ConnectError")
    assert error.code == "gateway_unreachable" and error.status is None
    assert error.url == "http://127.0.0.1:8000"
    assert error.source == "default" and isinstance(error.__cause__, httpx.ConnectError)
    assert sleeps == [0.5, 1.0]  # a GET: retried twice with the backoff


def test_timeouts_say_so(fake: Fake, sleeps: list[float]) -> None:
    def slow(request: httpx.Request) -> Exception:
        return httpx.ReadTimeout("slow", request=request)

    fake.script = [slow]
    with fake.client(retry=0) as client, pytest.raises(mg.ConnectionFailed) as caught:
        client.jobs.get("x")
    assert caught.value.code == "gateway_timeout"
    assert "http://gw.test (from argument) did not answer in time" in str(caught.value)

"""Media types compare case-insensitively (RFC 9110), on every route that reads a body.

The job route kept a table of its own that compared them as written, so `Text/CSV` was 415.
"""

from __future__ import annotations

import pytest

from devstack.processes import Gateway

BODY = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"


@pytest.mark.parametrize("content_type", ["Text/CSV", "TEXT/csv; Charset=UTF-8"])
def test_a_job_upload_type_in_any_case_is_accepted(gateway: Gateway, content_type: str) -> None:
    response = gateway.http.post(
        "/v1/models/iris/jobs", content=BODY, headers={"content-type": content_type}
    )
    assert response.status_code == 202, response.text
    # Cancelled at once: a queued job would hold one of the owner's running-job slots.
    assert gateway.http.delete(response.headers["location"]).status_code == 200


def test_a_json_prediction_type_in_any_case_is_accepted(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/v1/models/iris/predict",
        content=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}',
        headers={"content-type": "Application/JSON; Charset=UTF-8"},
    )
    assert response.status_code == 200, response.text


def test_an_unknown_upload_type_is_still_415(gateway: Gateway) -> None:
    response = gateway.http.post(
        "/v1/models/iris/jobs", content=BODY, headers={"content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"

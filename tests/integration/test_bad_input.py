"""Every bad input answers a 4xx in the error envelope, and the gateway goes on serving."""

from __future__ import annotations

import pytest

from devstack.processes import Gateway

GOOD = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
JSON = {"content-type": "application/json"}
RECORD = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

CASES = [
    # (name, path, raw body, headers, status, code)
    (
        "too few features",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2, 3]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "too many features",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2, 3, 4, 5]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "text for a float",
        "/v1/models/iris/predict",
        b'{"instances": [[1, "two", 3, 4]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "bool for a float",
        "/v1/models/iris/predict",
        b'{"instances": [[1, true, 3, 4]]}',
        JSON,
        422,
        "invalid_input",
    ),
    # null is a missing value, which iris's forest takes (scikit-learn 1.9 forests allow NaN):
    # its refusal by a model that does not is in test_missing_values.py.
    (
        "NaN",
        "/v1/models/iris/predict",
        b'{"instances": [[NaN, 2, 3, 4]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "Infinity",
        "/v1/models/iris/predict",
        b'{"instances": [[Infinity, 2, 3, 4]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "huge number",
        "/v1/models/iris/predict",
        b'{"instances": [[1e999, 2, 3, 4]]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "huge integer",
        "/v1/models/iris/predict",
        b'{"instances": [[1' + b"0" * 400 + b", 2, 3, 4]]}",
        JSON,
        422,
        "invalid_input",
    ),
    (
        "version out of range",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2, 3, 4]], "version": 99999999999999999999}',
        JSON,
        404,
        "version_not_found",
    ),
    ("no rows", "/v1/models/iris/predict", b'{"instances": []}', JSON, 422, "invalid_input"),
    (
        "rows not a list",
        "/v1/models/iris/predict",
        b'{"instances": {"a": 1}}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "flat row",
        "/v1/models/iris/predict",
        b'{"instances": [1, 2, 3, 4]}',
        JSON,
        422,
        "invalid_input",
    ),
    (
        "neither key",
        "/v1/models/iris/predict",
        b'{"rows": [[1, 2, 3, 4]]}',
        JSON,
        422,
        "unknown_field",
    ),
    ("empty object", "/v1/models/iris/predict", b"{}", JSON, 422, "invalid_input"),
    ("not an object", "/v1/models/iris/predict", b"[[1, 2, 3, 4]]", JSON, 422, "invalid_input"),
    ("not JSON", "/v1/models/iris/predict", b"sepal=5.1", JSON, 400, "invalid_json"),
    (
        "truncated JSON",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2',
        JSON,
        400,
        "invalid_json",
    ),
    ("empty body", "/v1/models/iris/predict", b"", JSON, 400, "empty_body"),
    (
        "form body",
        "/v1/models/iris/predict",
        b"a=1",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    (
        "unknown model",
        "/v1/models/nope/predict",
        b'{"instances": [[1, 2, 3, 4]]}',
        JSON,
        404,
        "model_not_found",
    ),
    (
        "unknown alias",
        "/v1/models/iris@nope/predict",
        b'{"instances": [[1, 2, 3, 4]]}',
        JSON,
        404,
        "alias_not_found",
    ),
    (
        "unknown version",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2, 3, 4]], "version": 99}',
        JSON,
        404,
        "version_not_found",
    ),
    (
        "bad version",
        "/v1/models/iris/predict",
        b'{"instances": [[1, 2, 3, 4]], "version": "x"}',
        JSON,
        422,
        "invalid_input",
    ),
    ("legacy empty body", "/predict", b"", {}, 400, "empty_body"),
    ("legacy wrong width", "/predict", b'{"features": [[1, 2]]}', JSON, 422, "invalid_input"),
    ("legacy no features", "/predict", b'{"data": [[1, 2, 3, 4]]}', JSON, 422, "invalid_input"),
    ("unknown route", "/v9/whatever", b"{}", JSON, 404, "not_found"),
]


@pytest.mark.parametrize(
    ("name", "path", "body", "headers", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_a_4xx_envelope(gateway: Gateway, name, path, body, headers, status, code):
    response = gateway.http.post(path, content=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    if b"two" in body:
        assert "two" not in error["message"]  # the input is never echoed back
    assert gateway.http.post("/v1/models/iris/predict", json=GOOD).status_code == 200


@pytest.mark.parametrize(
    "record",
    [
        {k: v for k, v in RECORD.items() if k != "petal_width"},
        {**RECORD, "colour": 1.0},
        {**RECORD, "petal_width": "wide"},
    ],
    ids=["missing feature", "unknown feature", "text value"],
)
def test_bad_records(gateway: Gateway, record):
    response = gateway.http.post("/v1/models/iris/predict", json={"records": [RECORD, record]})
    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("row 1")
    assert "wide" not in response.text


def test_too_many_rows_points_to_batch_jobs(gateway: Gateway):
    response = gateway.http.post(
        "/v1/models/iris/predict", json={"instances": [[1.0, 2.0, 3.0, 4.0]] * 1001}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_many_rows"
    assert "/v1/models/iris/jobs" in response.json()["error"]["message"]


def test_body_over_the_limit_by_content_length(gateway: Gateway):
    big = b'{"instances": [' + b"[1.0, 2.0, 3.0, 4.0]," * 5000 + b"[1.0, 2.0, 3.0, 4.0]]}"
    response = gateway.http.post("/v1/models/iris/predict", content=big, headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


def test_body_over_the_limit_while_streaming(gateway: Gateway):
    """No Content-Length (chunked): refused once the streamed bytes pass the limit."""
    sent = 0

    def chunks():
        nonlocal sent
        yield b'{"instances": ['
        for _ in range(200):  # 200 x 4 KiB, far past the 64 KiB limit of this gateway
            sent += 4096
            yield b" " * 4096
        yield b"]}"

    response = gateway.http.post("/v1/models/iris/predict", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert gateway.http.post("/v1/models/iris/predict", json=GOOD).status_code == 200


def test_deep_nesting_is_refused(gateway: Gateway):
    deep = b'{"instances": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    response = gateway.http.post("/v1/models/iris/predict", content=deep, headers=JSON)
    assert response.status_code in (400, 422)
    assert "error" in response.json()

"""Secrets and tenancy over a real uvicorn with API keys: keys never reach a URL or a log line, the page's
streams and images work through short-lived signed links, one key cannot see, delete or reuse another key's
jobs, odd Authorization headers are a 401 (never a 500), /metrics needs a key, the docs are open alike, and
public health bodies name no paths."""
from __future__ import annotations

import http.client
import json
import re
import time

import pytest

from tests.app.server import Server
from tests.conftest import PHOTOS

KEY_A, KEY_B = "alpha-key-1f9e2c", "beta-key-77d0aa"
PAGE = "https://page.example"  # the one origin allowed by CORS
A = {"Authorization": "Bearer " + KEY_A}
B = {"Authorization": "Bearer " + KEY_B}


def _photo(name: str = "astronaut.png"):
    return {"image": (name, (PHOTOS / name).read_bytes())}


@pytest.fixture(scope="module")
def server(engine, tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-secrets")
    srv = Server(engine, tiny_models, root / "data", root / "cache", api_keys="%s,%s" % (KEY_A, KEY_B),
                 webhook_secret="hook-secret", cors_origins=PAGE).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def finished(server):
    """A job of key A that has succeeded, as the job view returns it."""
    with server.client() as client:
        done = client.post("/toonify", files=_photo(), data={"steps": "3", "seed": "1"}, headers=A)
        assert done.status_code == 200, done.text
        return client.get("/jobs/%s" % done.headers["x-toonify-job"], headers=A).json()


def _raw_get(port: int, path: str, authorization: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("GET", path)
    connection.putheader("Authorization", authorization)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


@pytest.mark.parametrize("authorization", ["Bearer \u00e9\u00e8\u00ff".encode("latin-1"), b"Bearer \xff\xfe\x7fx",
                                           b"Bearer " + b"k" * 8000, b"Basic YWxwaGE6", b"Bearer"])
def test_odd_authorization_headers_are_401_not_500(server, authorization):
    assert _raw_get(server.port, "/jobs/anything", authorization) == 401


def test_signed_links_open_the_stream_and_images_without_the_key(server, finished):
    links = finished["links"]
    assert KEY_A not in json.dumps(finished) and "sig=" in links["events"] and "sig=" in links["paste"]
    with server.client() as client:
        for url in (links["paste"], links["results"][0]["toon"], links["results"][0]["aligned"]):
            image = client.get(url)
            assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        with client.stream("GET", links["events"]) as events:
            assert events.status_code == 200
            first = next(line for line in events.iter_lines() if line.startswith("data:"))
        assert json.loads(first[5:])["status"] == "succeeded"
        tampered = re.sub(r"sig=[^&]+", "sig=AAAAAAAAAAAAAAAAAAAAAAAA", links["paste"])
        assert _refused(client.get(tampered), 403, "link_refused", "does not match")
        expired = re.sub(r"exp=\d+", "exp=1000", links["paste"])
        assert _refused(client.get(expired), 403, "link_refused", "expired")
        other_job = links["paste"].replace(finished["id"], "someoneelsesjob")
        assert _refused(client.get(other_job), 403, "link_refused", "does not match")
        assert client.post(links["render"]).status_code == 401  # links open only what they were made for


def _refused(response, status: int, code: str, words: str) -> bool:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert words in response.json()["message"], response.text
    return True


@pytest.mark.parametrize("change, words", [
    (lambda url: re.sub(r"exp=\d+", "exp=\u00b2", url), "'exp' is a Unix time in ASCII digits"),
    (lambda url: re.sub(r"exp=\d+", "exp=%C2%B9", url), "'exp' is a Unix time in ASCII digits"),
    (lambda url: re.sub(r"exp=\d+", "exp=" + "9" * 4400, url), "'exp' is a Unix time in ASCII digits"),
    (lambda url: re.sub(r"exp=\d+", "exp=", url), "'exp' is a Unix time in ASCII digits"),
    (lambda url: url + "&exp=1", "'exp' exactly once (it has it 2 times)"),
    (lambda url: re.sub(r"&sig=[^&]+", "", url), "'sig' exactly once (it has it 0 times)"),
    (lambda url: re.sub(r"sig=[^&]+", "sig=%E2%80%A6", url), "'sig' is 24 URL-safe base64 characters"),
    (lambda url: re.sub(r"owner=[^&]+", "owner=k%D9%A1", url), "'owner' is an owner id"),
    (lambda url: url + "&x=1" * 40, "at most 32 query fields"),
], ids=["superscript-two", "superscript-one-escaped", "4400-digits", "empty", "twice", "missing", "non-ascii",
        "arabic-digit", "40-fields"])
def test_malformed_signed_links_are_400_naming_the_field(server, finished, change, words):
    with server.client() as client:
        for link in (finished["links"]["paste"], finished["links"]["events"]):
            assert _refused(client.get(change(link)), 400, "malformed_link", words)
        assert "Traceback" not in server.log.read_text()


def test_a_signed_link_with_more_query_fields_still_opens(server, finished):
    """Nine fields (the attack run's 500): the link's three, the route's own, and unknown ones it ignores."""
    link = finished["links"]["paste"]
    link += "".join("&extra%d=1" % i for i in range(9 - link.count("&") - 1))
    assert link.count("&") + 1 == 9
    with server.client() as client:
        assert client.get(link).status_code == 200


def test_jobs_and_the_result_cache_are_scoped_per_key(server, finished):
    job_id = finished["id"]
    with server.client() as client:
        assert client.get("/jobs/%s" % job_id, headers=B).status_code == 404
        assert client.get("/jobs/%s/result" % job_id, headers=B).status_code == 404
        assert client.delete("/jobs/%s" % job_id, headers=B).status_code == 404
        assert client.get("/jobs/%s/result" % job_id, headers=A).status_code == 200  # still there for A
        again_b = client.post("/toonify", files=_photo(), data={"steps": "3", "seed": "1"}, headers=B)
        assert again_b.status_code == 200 and again_b.headers["x-toonify-job"] != job_id
        again_a = client.post("/toonify", files=_photo(), data={"steps": "3", "seed": "1"}, headers=A)
        assert again_a.headers["x-toonify-job"] == job_id  # a key still reuses its own results


def test_metrics_need_a_key_and_the_docs_are_open_alike(server):
    with server.client() as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=A).status_code == 200
        for path in ("/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/"):
            assert client.get(path).status_code == 200, path


def test_no_key_or_signature_in_any_log_line(server, finished):
    with server.client() as client:  # keys where a careless client might put them: the query string
        client.get("/jobs/%s?access_token=%s&api_key=%s" % (finished["id"], KEY_A, KEY_B))
        client.get(finished["links"]["paste"])
    log = server.log.read_text()
    signatures = re.findall(r"sig=([^&\s\"]+)", json.dumps(finished))
    assert KEY_A not in log and KEY_B not in log
    assert signatures and not any(sig in log for sig in signatures)
    assert "sig=…" in log and "access_token=…" in log


def test_readyz_names_no_paths_when_the_models_are_missing(engine, tmp_path):
    empty = tmp_path / "no-models-here"
    empty.mkdir()
    srv = Server(engine, empty, tmp_path / "data", tmp_path / "cache").spawn().wait_until("/healthz")
    try:
        with srv.client() as client:
            for _ in range(100):
                body = client.get("/readyz")
                if body.json().get("reason") != "loading the models":
                    break
                time.sleep(0.2)
            assert body.status_code == 503
            assert str(tmp_path) not in body.text and "Traceback" not in body.text
            assert "preload.sh" in body.json()["reason"]
    finally:
        srv.stop()


def test_a_webhook_to_loopback_written_as_nat64_is_refused(server):
    with server.client() as client:
        refused = client.post("/toonify?async=1", files=_photo(), headers=A,
                              data={"webhook": "http://[64:ff9b::7f00:1]:%d/hook" % server.port})
    assert refused.status_code == 422 and "private or local address" in refused.json()["message"], refused.text


def test_cors_preflight_needs_no_key_and_refusals_carry_cors_headers(server, finished):
    """A page on another origin sends a preflight without credentials; then it must be able to read a 401 or
    400 to tell its user what went wrong."""
    with server.client() as client:
        preflight = client.options("/toonify", headers={"Origin": PAGE, "Access-Control-Request-Method": "POST",
                                                        "Access-Control-Request-Headers": "authorization"})
        assert preflight.status_code == 200, preflight.text
        assert preflight.headers["access-control-allow-origin"] == PAGE
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "POST" in preflight.headers["access-control-allow-methods"]
        malformed = re.sub(r"exp=\d+", "exp=%C2%B2", finished["links"]["paste"])
        for response in (client.get("/jobs", headers={"Origin": PAGE}),
                         client.get(malformed, headers={"Origin": PAGE}),
                         client.get("/jobs/nosuchjob", headers=dict(A, Origin=PAGE))):
            assert response.status_code in (400, 401, 404), response.text
            assert response.headers["access-control-allow-origin"] == PAGE, (response.status_code, response.headers)
        unsafe_hook = client.post("/toonify?async=1", files=_photo(), headers=dict(A, Origin=PAGE),
                                  data={"webhook": "http://127.0.0.1:1/hook"})
        assert unsafe_hook.status_code == 422 and unsafe_hook.headers["access-control-allow-origin"] == PAGE
        other = client.options("/toonify", headers={"Origin": "https://evil.example",
                                                    "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
        assert "access-control-allow-origin" not in client.get("/jobs", headers={"Origin": "https://evil.example"}).headers

"""The HTTP API's argument parsing and CORS rules, without a network."""

import json
import secrets

import coincurve
import pytest
from aiohttp.test_utils import TestClient, TestServer

from secretstore.crypto import Secret, ServerKeyId
from secretstore.keyserver.http import BadRequest, Cors, HttpApi, parse_request_signature, parse_threshold


class FakeRequest:
    def __init__(self, **headers):
        self.headers = headers


def test_cors_rules():
    none = Cors.parse(None)
    assert none.check(FakeRequest()) is None  # not a browser
    assert none.check(FakeRequest(Origin="http://127.0.0.1:8082", Host="127.0.0.1:8082")) is None  # same origin
    with pytest.raises(BadRequest, match="Origin"):
        none.check(FakeRequest(Origin="http://a.example", Host="127.0.0.1:8082"))
    listed = Cors.parse("http://a.example, https://b.example:8443")
    assert listed.check(FakeRequest(Origin="http://a.example", Host="h")) == "http://a.example"
    assert listed.check(FakeRequest(Origin="https://b.example:8443", Host="h")) == "https://b.example:8443"
    with pytest.raises(BadRequest):
        listed.check(FakeRequest(Origin="http://c.example", Host="h"))
    assert Cors.parse("*").check(FakeRequest(Origin="http://c.example", Host="h")) == "http://c.example"
    assert Cors.parse("none") == Cors()
    with pytest.raises(ValueError, match="--http-cors"):
        Cors.parse("a.example/path")


def test_signature_forms():
    secret = Secret.random()
    key_id = ServerKeyId(secrets.token_bytes(32))
    signature = coincurve.PrivateKey(bytes(secret)).sign_recoverable(bytes(key_id), hasher=None)
    for text in (signature.hex(), "0x" + signature.hex(), (signature[:64] + bytes([signature[64] + 27])).hex()):
        normalized, requester = parse_request_signature(text, key_id)
        assert requester == secret.public() and normalized == "0x" + signature.hex()
    for bad in (signature.hex()[:-2], signature[:64].hex() + "02", "zz" * 65, "00" * 65):
        with pytest.raises(BadRequest):
            parse_request_signature(bad, key_id)
    # a signature of another id recovers someone else (the ACL then refuses them)
    assert parse_request_signature(signature.hex(), ServerKeyId(secrets.token_bytes(32)))[1] != secret.public()


def test_threshold():
    assert parse_threshold("1", 3) == 1 and parse_threshold("0", 1) == 0
    for bad in ("3", "-1", "x", "", "1.0", "99999"):
        with pytest.raises(BadRequest):
            parse_threshold(bad, 3)


async def test_cors_headers_and_preflight_over_http():
    """The HTTP layer alone (no session is reached: every request here is refused or answered before one starts)."""

    async def no_access(key_id, requester):
        return False

    api = HttpApi(core=None, check_access=no_access, current_set=lambda: [], cors=Cors.parse("http://a.example"))
    async with TestClient(TestServer(api.app())) as client:
        response = await client.options("/server/00/00", headers={"Origin": "http://a.example"})
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://a.example"
        assert "GET" in response.headers["Access-Control-Allow-Methods"]
        response = await client.get("/nope", headers={"Origin": "http://a.example"})
        assert response.status == 400 and response.headers["Access-Control-Allow-Origin"] == "http://a.example"
        assert isinstance(json.loads(await response.text()), str)
        response = await client.get("/nope", headers={"Origin": "http://b.example"})
        assert response.status == 400 and "Origin" in json.loads(await response.text())
        assert "Access-Control-Allow-Origin" not in response.headers
        response = await client.options("/x", headers={"Origin": "http://b.example"})
        assert response.status == 400

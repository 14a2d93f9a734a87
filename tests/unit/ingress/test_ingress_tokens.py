"""Access tokens (ingress.tokens): only our ES256 tokens with every claim right verify."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from ingress.errors import InvalidToken
from ingress.tokens import (
    KeyFileError,
    SigningKeys,
    TokenAuthority,
    new_key_set,
    new_private_jwk,
    rotated,
)

ISSUER, AUDIENCE = "orderstream", "orderstream-api"


def authority(keys: SigningKeys, **kw: Any) -> TokenAuthority:
    return TokenAuthority(
        keys, **{"issuer": ISSUER, "audience": AUDIENCE, "ttl_s": 600, "leeway_s": 10, **kw}
    )


@pytest.fixture
def keys() -> SigningKeys:
    return SigningKeys(new_key_set())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "cust-1",
        "sid": "sess-1",
        "jti": "j",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    return {k: v for k, v in {**base, **overrides}.items() if v is not None}


def signed(keys: SigningKeys, payload: dict[str, Any], **headers: Any) -> str:
    key = keys.signing
    header = {"kid": key.kid, "typ": "at+jwt", **headers}
    return jwt.encode(payload, key.private, algorithm="ES256", headers=header)


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_an_issued_token_verifies_to_its_customer_and_session(keys: SigningKeys) -> None:
    tokens = authority(keys)
    verified = tokens.verify(tokens.issue("cust-1", "sess-1"))
    assert (verified.customer_id, verified.session_id) == ("cust-1", "sess-1")
    header = jwt.get_unverified_header(tokens.issue("c", "s"))
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": keys.signing.kid}


def test_a_token_of_our_own_making_with_every_claim_verifies(keys: SigningKeys) -> None:
    assert authority(keys).verify(signed(keys, claims())).customer_id == "cust-1"


def test_alg_none_is_refused(keys: SigningKeys) -> None:
    header = {"alg": "none", "typ": "at+jwt", "kid": keys.signing.kid}
    token = f"{b64(header)}.{b64(claims())}."
    with pytest.raises(InvalidToken):
        authority(keys).verify(token)


def test_hs256_with_the_public_key_as_the_secret_is_refused(keys: SigningKeys) -> None:
    public_pem = keys.signing.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "at+jwt", "kid": keys.signing.kid}
    signing_input = f"{b64(header)}.{b64(claims())}"
    import hashlib
    import hmac

    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidToken):
        authority(keys).verify(f"{signing_input}.{b64(mac)}")


def test_a_forged_signature_is_refused(keys: SigningKeys) -> None:
    other = SigningKeys({"keys": [{**new_private_jwk(), "kid": keys.signing.kid}]})
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(other, claims()))


def test_a_changed_payload_is_refused(keys: SigningKeys) -> None:
    header, _, signature = signed(keys, claims()).split(".")
    with pytest.raises(InvalidToken):
        authority(keys).verify(f"{header}.{b64(claims(sub='someone-else'))}.{signature}")


def test_an_unknown_kid_is_refused(keys: SigningKeys) -> None:
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(), kid="not-ours"))


def test_an_expired_token_is_refused(keys: SigningKeys) -> None:
    now = int(time.time())
    old = claims(iat=now - 1000, nbf=now - 1000, exp=now - 11)  # past the 10 s leeway
    with pytest.raises(InvalidToken) as caught:
        authority(keys).verify(signed(keys, old))
    assert "expired" in (caught.value.description or "")


def test_within_the_leeway_an_expired_token_still_verifies(keys: SigningKeys) -> None:
    now = int(time.time())
    authority(keys).verify(signed(keys, claims(iat=now - 700, nbf=now - 700, exp=now - 5)))


def test_a_token_not_yet_valid_is_refused(keys: SigningKeys) -> None:
    later = int(time.time()) + 60
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(nbf=later)))
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(iat=later)))


@pytest.mark.parametrize(
    "wrong",
    [{"aud": "another-api"}, {"iss": "someone-else"}, {"aud": ["orderstream-api", "other"]}],
)
def test_a_wrong_audience_or_issuer_is_refused(keys: SigningKeys, wrong: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(**wrong)))


@pytest.mark.parametrize("missing", ["exp", "iat", "nbf", "iss", "aud", "sub", "sid", "jti"])
def test_every_claim_is_required(keys: SigningKeys, missing: str) -> None:
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(**{missing: None})))


def test_another_token_type_or_extra_headers_are_refused(keys: SigningKeys) -> None:
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(), typ="JWT"))
    with pytest.raises(InvalidToken):
        authority(keys).verify(signed(keys, claims(), jku="https://evil.example/jwks"))


@pytest.mark.parametrize(
    "token", ["", "a.b.c", "not-a-jwt", "..", "eyJhbGciOiJFUzI1NiJ9.e30.", "x" * 5000]
)
def test_malformed_tokens_are_refused(keys: SigningKeys, token: str) -> None:
    with pytest.raises(InvalidToken):
        authority(keys).verify(token)


def test_after_rotation_old_tokens_verify_and_new_ones_use_the_new_key() -> None:
    first = new_key_set()
    before = authority(SigningKeys(first))
    old_token = before.issue("c", "s")
    after = authority(SigningKeys(rotated(first)))
    assert after.verify(old_token).customer_id == "c"
    new_token = after.issue("c", "s")
    assert jwt.get_unverified_header(new_token)["kid"] != first["keys"][0]["kid"]
    with pytest.raises(InvalidToken):  # the old set does not know the new key
        before.verify(new_token)


def test_a_key_dropped_from_the_set_no_longer_verifies() -> None:
    first = new_key_set()
    token = authority(SigningKeys(first)).issue("c", "s")
    with pytest.raises(InvalidToken):
        authority(SigningKeys(rotated(first, keep=0))).verify(token)


def test_the_public_jwks_holds_no_private_part(keys: SigningKeys) -> None:
    (public,) = keys.public_jwks["keys"]
    assert "d" not in public
    assert public["kid"] == keys.signing.kid and public["alg"] == "ES256"


@pytest.mark.parametrize(
    "key_set",
    [
        {},
        {"keys": []},
        {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k"}]},  # public only
        {"keys": [{**new_private_jwk(), "kid": "k"}, {**new_private_jwk(), "kid": "k"}]},
    ],
)
def test_unusable_key_sets_are_refused_at_load(key_set: dict[str, Any]) -> None:
    with pytest.raises(KeyFileError):
        SigningKeys(key_set)

"""Customer access tokens: short-lived JWTs signed with ES256 (RFC 7519, RFC 8725).

The signing keys are a JWKS file of private keys (``ORDERSTREAM_JWT_KEYS_FILE``): the
first key signs, every key verifies, so a new key is put first and the old one kept until
the tokens it signed have expired (docs/identity.md, "Rotation"). ``GET
/.well-known/jwks.json`` publishes the public halves.

Verification follows RFC 8725: one algorithm (ES256) and nothing else, whatever the header
says (so no ``none`` and no HS256 with the public key as a secret); a header of exactly
``alg``, ``typ`` (``at+jwt``, RFC 9068) and a ``kid`` we hold; ``iss``, ``aud``, ``exp``,
``iat``, ``nbf``, ``sub``, ``sid`` and ``jti`` required and checked, with a small leeway.
Any failure is one ``InvalidToken`` (401, ``WWW-Authenticate: Bearer error="invalid_token"``).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from ingress.errors import InvalidToken

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"
MAX_TOKEN_CHARS = 4096
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "nbf", "sub", "sid", "jti")
PUBLIC_MEMBERS = ("kty", "crv", "x", "y", "kid", "alg", "use")


class KeyFileError(ValueError):
    """The JWKS file is missing, unreadable or holds no usable ES256 private key."""


def new_private_jwk() -> dict[str, str]:
    """A fresh P-256 private key as a JWK, with a random ``kid``."""
    key = ec.generate_private_key(ec.SECP256R1())
    jwk: dict[str, str] = ECAlgorithm.to_jwk(key, as_dict=True)
    return {**jwk, "kid": secrets.token_urlsafe(12), "alg": ALGORITHM, "use": "sig"}


def new_key_set() -> dict[str, list[dict[str, str]]]:
    return {"keys": [new_private_jwk()]}


def rotated(key_set: Mapping[str, Any], keep: int = 2) -> dict[str, list[dict[str, str]]]:
    """``key_set`` with a new signing key first and at most ``keep`` older ones after it."""
    return {"keys": [new_private_jwk(), *list(key_set.get("keys", []))[:keep]]}


def write_key_file(path: Path, key_set: Mapping[str, Any]) -> None:
    """Write a JWKS file readable by its owner only (it holds private keys)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(key_set, indent=1) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


@dataclass(frozen=True)
class _Key:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public_jwk: dict[str, str]


class SigningKeys:
    """The key set: ``signing`` (the first), ``verifying(kid)`` and the public JWKS."""

    def __init__(self, key_set: Mapping[str, Any]) -> None:
        entries = key_set.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyFileError("a JWKS needs a non-empty 'keys' list")
        keys: list[_Key] = []
        for jwk in entries:
            if not isinstance(jwk, dict) or not jwk.get("kid") or "d" not in jwk:
                raise KeyFileError("every key needs a 'kid' and its private part 'd'")
            if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
                raise KeyFileError(f"key {jwk['kid']}: only EC P-256 (ES256) keys are used")
            private = ECAlgorithm.from_jwk(json.dumps(jwk))
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise KeyFileError(f"key {jwk['kid']}: not a private key")
            public = {m: jwk[m] for m in PUBLIC_MEMBERS if m in jwk}
            public.update(alg=ALGORITHM, use="sig")
            keys.append(_Key(str(jwk["kid"]), private, public))
        if len({k.kid for k in keys}) != len(keys):
            raise KeyFileError("two keys share a 'kid'")
        self.signing = keys[0]
        self._public = {k.kid: k.private.public_key() for k in keys}
        self._jwks = {"keys": [k.public_jwk for k in keys]}

    @classmethod
    def from_file(cls, path: str | Path) -> SigningKeys:
        try:
            key_set = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot read the JWT key file {path}: {exc}") from None
        return cls(key_set)

    def verifying(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self._public.get(kid)

    @property
    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._jwks


@dataclass(frozen=True)
class AccessClaims:
    customer_id: str  # sub
    session_id: str  # sid: the sign-in the token belongs to (revoked at logout)
    expires_at: int  # exp


class TokenAuthority:
    """Issues and verifies access tokens with one ``SigningKeys``."""

    def __init__(
        self,
        keys: SigningKeys,
        *,
        issuer: str,
        audience: str,
        ttl_s: int,
        leeway_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self.ttl_s = ttl_s
        self._leeway_s = leeway_s
        self._clock = clock

    @property
    def public_jwks(self) -> dict[str, list[dict[str, str]]]:
        return self._keys.public_jwks

    def issue(self, customer_id: str, session_id: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": customer_id,
            "sid": session_id,
            "jti": secrets.token_urlsafe(12),
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl_s,
        }
        key = self._keys.signing
        headers = {"kid": key.kid, "typ": TOKEN_TYPE}
        return jwt.encode(claims, key.private, algorithm=ALGORITHM, headers=headers)

    def verify(self, token: str) -> AccessClaims:
        """The token's claims, or ``InvalidToken`` for anything but a valid token of ours."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken() from None
        kid = header.get("kid")
        if (
            header.get("alg") != ALGORITHM
            or header.get("typ") != TOKEN_TYPE
            or set(header) != {"alg", "typ", "kid"}
            or not isinstance(kid, str)
        ):
            raise InvalidToken()
        key = self._keys.verifying(kid)
        if key is None:
            raise InvalidToken()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway_s,
                options={"require": list(REQUIRED_CLAIMS), "strict_aud": True},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the access token has expired") from None
        except jwt.PyJWTError:
            raise InvalidToken() from None
        return _claims(claims, self._clock(), self._leeway_s)


def _claims(claims: Mapping[str, Any], now: float, leeway_s: int) -> AccessClaims:
    sub, sid, iat, exp = claims["sub"], claims["sid"], claims["iat"], claims["exp"]
    if not (isinstance(sub, str) and sub and isinstance(sid, str) and sid):
        raise InvalidToken()
    if not isinstance(iat, int) or iat > now + leeway_s:  # issued in the future
        raise InvalidToken()
    return AccessClaims(customer_id=sub, session_id=sid, expires_at=int(exp))

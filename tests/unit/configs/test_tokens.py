"""Admin JWTs: verification against attacks, claim mapping, issuing, key files and JWKS URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import stat
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from slack_tools.configs.schema import AppConfig
from slack_tools.configs.security.rbac import PERMISSIONS
from slack_tools.configs.security.tokens import (
    DEV_SECRET_FILE,
    build_verifier,
    dev_secret,
    issue_token,
    public_jwks,
    read_jwks,
)
from slack_tools.errors import ConfigError, InvalidToken
from tests.helpers import TEST_JWT_SECRET, assert_no_secret

ISSUER = "slack-tools"
AUDIENCE = "slack-tools-admin"
NOW = datetime.now(UTC)  # for lifetimes of an hour; times near a limit use soon()


def soon(delta: timedelta) -> datetime:
    """Now plus ``delta``, taken when the token is made (a test may start long after import)."""
    return datetime.now(UTC) + delta


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs_config(**jwt_settings: Any) -> AppConfig:
    return AppConfig.model_validate(
        {"security": {"jwt": {"secret": TEST_JWT_SECRET, **jwt_settings}}}
    )


def claims(**changes: Any) -> dict[str, Any]:
    """Valid claims of an operator for tenant acme; a change of None removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "roles": ["operator"],
        "tenants": ["acme"],
        "iat": NOW,
        "exp": NOW + timedelta(hours=1),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs_token(payload: dict[str, Any], secret: str = TEST_JWT_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def refusal(config: AppConfig, token: str) -> str:
    """The message of the InvalidToken ``token`` gets; it never repeats the token."""
    verifier = build_verifier(config)
    assert verifier is not None
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    message = str(caught.value)
    parts = [p for p in (token, *token.split(".")[:2]) if len(p) >= 6]
    assert_no_secret(message, *parts, TEST_JWT_SECRET)
    return message


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    data: dict[str, Any] = jwt.get_algorithm_by_name(algorithm).to_jwk(
        key.public_key(), as_dict=True
    )
    return {**data, "kid": kid}


def jwks_config(tmp_path: Path, *keys: dict[str, Any], **jwt_settings: Any) -> AppConfig:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": list(keys)}))
    return AppConfig.model_validate({"security": {"jwt": {"jwks_file": str(path), **jwt_settings}}})


# --- HS256 -----------------------------------------------------------------------------------


def test_an_hs256_token_becomes_its_actor() -> None:
    """Subject, roles, tenants and the roles' permissions come from a valid token."""
    verifier = build_verifier(hs_config())
    assert verifier is not None
    actor = verifier.verify(hs_token(claims()))
    assert actor.id == "alice"
    assert actor.kind == "token"
    assert actor.roles == {"operator"}
    assert actor.tenants == {"acme"}
    assert not actor.all_tenants
    assert actor.permissions is not None
    assert {"config.read", "alerts.replay"} <= actor.permissions
    assert "config.write" not in actor.permissions


def test_a_star_tenant_means_every_tenant() -> None:
    """``tenants: ["*"]`` lifts the tenant limit; ``admin`` holds the whole catalogue."""
    verifier = build_verifier(hs_config())
    assert verifier is not None
    actor = verifier.verify(hs_token(claims(roles=["admin"], tenants=["*"])))
    assert actor.all_tenants
    assert actor.may_act_for("anyone")
    assert actor.permissions == frozenset(PERMISSIONS)


def test_alg_none_is_refused() -> None:
    """An unsigned token (``alg: none`` in any case) is refused whatever it claims."""
    expires = int((NOW + timedelta(hours=1)).timestamp())
    body = b64(json.dumps(claims(roles=["admin"], tenants=["*"], iat=None, exp=expires)).encode())
    for alg in ("none", "None", "NONE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        assert "Unsigned" in refusal(hs_config(), f"{header}.{body}.")
    assert "malformed" in refusal(hs_config(), f"{header}.{body}")
    no_alg = b64(json.dumps({"typ": "JWT"}).encode())
    assert "Unsigned" in refusal(hs_config(), f"{no_alg}.{body}.")


def test_an_hs256_token_with_its_signature_removed_is_refused() -> None:
    """Dropping the signature of a valid HS256 token does not make it pass."""
    token = hs_token(claims())
    head, body, _ = token.split(".")
    assert "signature" in refusal(hs_config(), f"{head}.{body}.")


def test_a_token_signed_with_another_secret_is_refused() -> None:
    """The signature must verify under the configured secret."""
    forged = hs_token(claims(roles=["admin"]), secret="another-secret-of-at-least-32-bytes!!")
    assert "signature" in refusal(hs_config(), forged)


def test_a_tampered_payload_is_refused() -> None:
    """Changing the roles of a signed token breaks its signature."""
    head, _, signature = hs_token(claims()).split(".")
    body = b64(
        json.dumps(claims(roles=["admin"], iat=None, exp=int(NOW.timestamp()) + 3600)).encode()
    )
    assert "signature" in refusal(hs_config(), f"{head}.{body}.{signature}")


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"exp": timedelta(minutes=-5)}, "expired"),
        ({"nbf": timedelta(minutes=5)}, "not valid yet"),
        ({"aud": "another-service"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"exp": None}, "'exp'"),
        ({"iss": None}, "'iss'"),
        ({"aud": None}, "'aud'"),
        ({"sub": None}, "'sub'"),
        ({"roles": None}, "'roles'"),
        ({"roles": "operator admin", "sub": ""}, "'sub'"),
        ({"roles": [1, 2]}, "list of strings"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-audience",
        "wrong-issuer",
        "no-exp",
        "no-iss",
        "no-aud",
        "no-subject",
        "no-roles",
        "empty-subject",
        "roles-not-strings",
    ],
)
def test_invalid_claims_are_refused(changes: dict[str, Any], fragment: str) -> None:
    """Time, audience, issuer and the required claims are checked, each with its own reason."""
    timed = {k: soon(v) if isinstance(v, timedelta) else v for k, v in changes.items()}
    assert fragment in refusal(hs_config(), hs_token(claims(**timed)))


def test_clock_skew_within_the_leeway_is_accepted() -> None:
    """A token expired 10 s ago passes with the default 30 s leeway, not with 0."""
    token = hs_token(claims(exp=soon(timedelta(seconds=-10))))
    verifier = build_verifier(hs_config())
    assert verifier is not None
    assert verifier.verify(token).id == "alice"
    assert "expired" in refusal(hs_config(leeway_seconds=0), token)


def test_a_secret_is_refused_when_hs256_is_not_an_accepted_algorithm() -> None:
    """security.jwt.algorithms limits what any key accepts, the secret included."""
    assert "algorithms" in refusal(hs_config(algorithms=["RS256"]), hs_token(claims()))


def test_malformed_tokens_are_refused_without_being_echoed() -> None:
    """Garbage, wrong segment counts and bad base64 are 'malformed' and never repeated."""
    for token in ("not-a-jwt", "a.b", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.!!!.x", "..", ""):
        assert "malformed" in refusal(hs_config(), token)


# --- RS256 / ES256 against a JWKS ------------------------------------------------------------


def test_rs256_and_es256_tokens_verify_against_a_jwks_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """Each token is checked with the JWKS key its kid names."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"), jwk_of(ec_key, "ec-1"))
    verifier = build_verifier(config)
    assert verifier is not None
    rs = jwt.encode(claims(sub="rs"), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    es = jwt.encode(claims(sub="es"), ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert verifier.verify(rs).id == "rs"
    assert verifier.verify(es).id == "es"


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Algorithm confusion: an HS256 token keyed with the public PEM never meets HMAC."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"))
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(
        json.dumps(claims(roles=["admin"], iat=None, exp=int(NOW.timestamp()) + 3600)).encode()
    )
    signature = hmac.new(public_pem(rsa_key), f"{header}.{body}".encode(), hashlib.sha256)
    token = f"{header}.{body}.{b64(signature.digest())}"
    assert "algorithm" in refusal(config, token)
    # Without a kid the single RSA key is chosen: still never with HMAC.
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signature = hmac.new(public_pem(rsa_key), f"{header}.{body}".encode(), hashlib.sha256)
    assert "algorithm" in refusal(config, f"{header}.{body}.{b64(signature.digest())}")


def test_the_key_type_decides_the_algorithm(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """A token claiming ES256 under an RSA key's kid is refused, whatever signed it."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"), jwk_of(ec_key, "ec-1"))
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "rsa-1"})
    assert "algorithm" in refusal(config, token)


def test_a_token_signed_by_another_rsa_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    """Same kid, another private key: the signature does not verify."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"))
    intruder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), intruder, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "signature" in refusal(config, token)


def test_an_unknown_kid_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    """A kid the JWKS does not hold is refused, not tried against the other keys."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-2"})
    assert "key id" in refusal(config, token)


def test_without_kid_several_keys_are_ambiguous(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """With two keys configured a token must say which one signed it."""
    config = jwks_config(tmp_path, jwk_of(rsa_key, "rsa-1"), jwk_of(ec_key, "ec-1"))
    token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert "kid" in refusal(config, token)


def test_symmetric_keys_in_a_jwks_are_refused_without_showing_them(tmp_path: Path) -> None:
    """A JWKS is public: an 'oct' key in it is a configuration error that does not quote it."""
    path = tmp_path / "jwks.json"
    secret = b64(b"k" * 32)
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": secret, "kid": "x"}]}))
    with pytest.raises(ConfigError) as caught:
        read_jwks(path, ["HS256", "RS256"])
    assert "symmetric" in str(caught.value)
    assert_no_secret(str(caught.value), secret)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [("{not json", "not JSON"), ('{"keys": []}', "at least one key"), ("[]", "at least one key")],
)
def test_unreadable_jwks_files_name_the_file(tmp_path: Path, content: str, fragment: str) -> None:
    """A broken JWKS file is a ConfigError naming the file and what is wrong."""
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=fragment) as caught:
        read_jwks(path, ["RS256"])
    assert str(path) in str(caught.value)


# --- claim names ------------------------------------------------------------------------------


def test_claim_names_follow_the_configuration() -> None:
    """An identity provider's claims (nested roles, a space-separated string) map to an actor."""
    config = hs_config(
        claims={
            "subject": "preferred_username",
            "roles": "realm_access.roles",
            "tenants": "org.tenants",
        }
    )
    token = hs_token(
        {
            **claims(sub="uuid-1", roles=None, tenants=None),
            "preferred_username": "bob",
            "realm_access": {"roles": ["viewer", "offline_access"]},
            "org": {"tenants": "acme globex"},
        }
    )
    verifier = build_verifier(config)
    assert verifier is not None
    actor = verifier.verify(token)
    assert actor.id == "bob"
    assert actor.roles == {"viewer", "offline_access"}
    assert actor.tenants == {"acme", "globex"}
    assert actor.permissions is not None
    assert "config.read" in actor.permissions
    assert "'realm_access.roles'" in refusal(config, hs_token(claims(preferred_username="bob")))


def test_configured_roles_replace_and_add_to_the_defaults() -> None:
    """security.roles redefines a built-in role and adds new ones; unknown roles grant nothing."""
    config = AppConfig.model_validate(
        {
            "security": {
                "jwt": {"secret": TEST_JWT_SECRET},
                "roles": {"viewer": ["usage.read"], "auditor": ["audit.read"]},
            }
        }
    )
    verifier = build_verifier(config)
    assert verifier is not None
    actor = verifier.verify(hs_token(claims(roles=["viewer", "auditor", "wizard"])))
    assert actor.permissions == frozenset({"usage.read", "audit.read"})


# --- issuing ----------------------------------------------------------------------------------


def test_issued_tokens_verify_and_carry_what_was_asked() -> None:
    """issue_token's roles, tenants, subject and lifetime come back from verification."""
    config = hs_config()
    token = issue_token(["tenant_admin", "viewer"], ["acme"], 600, "carol", config=config, now=NOW)
    verifier = build_verifier(config)
    assert verifier is not None
    actor = verifier.verify(token)
    assert actor.id == "carol"
    assert actor.roles == frozenset({"tenant_admin", "viewer"})
    assert actor.tenants == frozenset({"acme"})
    assert actor.claims["exp"] == int((NOW + timedelta(seconds=600)).timestamp())
    assert actor.claims["iss"] == ISSUER
    assert actor.claims["aud"] == AUDIENCE
    assert isinstance(actor.claims["jti"], str)


def test_issued_tokens_use_the_configured_claim_names() -> None:
    """Tokens issued for an identity provider's layout verify under the same layout."""
    config = hs_config(claims={"subject": "upn", "roles": "app.roles", "tenants": "app.tenants"})
    token = issue_token("operator", ["acme"], 600, "dave", config=config)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert payload["upn"] == "dave"
    assert payload["app"] == {"roles": ["operator"], "tenants": ["acme"]}
    verifier = build_verifier(config)
    assert verifier is not None
    assert verifier.verify(token).id == "dave"


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_tokens_signed_with_a_private_key_verify_against_its_jwks(
    tmp_path: Path, kind: str, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """private_key_file signs (RS256 or ES256 by key type); public_jwks publishes its half."""
    key = rsa_key if kind == "rsa" else ec_key
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(pem(key))
    signer = AppConfig.model_validate(
        {"security": {"jwt": {"private_key_file": str(key_file), "key_id": "k1"}}}
    )
    token = issue_token("admin", ["*"], 600, "erin", config=signer)
    assert jwt.get_unverified_header(token) == {
        "alg": "RS256" if kind == "rsa" else "ES256",
        "typ": "JWT",
        "kid": "k1",
    }
    published = public_jwks(signer)
    assert "d" not in published["keys"][0]  # the public half only
    config = jwks_config(tmp_path, *published["keys"])
    verifier = build_verifier(config)
    assert verifier is not None
    assert verifier.verify(token).all_tenants


def test_issuing_needs_a_key_outside_dev() -> None:
    """Without a private key or secret, issuing is a ConfigError saying what to set."""
    config = AppConfig.model_validate({"environment": "staging"})
    with pytest.raises(ConfigError, match="private_key_file"):
        issue_token("admin", ["*"], 600, "x", config=config)
    assert build_verifier(config) is None


def test_a_lifetime_must_be_positive() -> None:
    """A token that would be born expired is refused."""
    with pytest.raises(ValueError, match="positive"):
        issue_token("admin", ["*"], 0, "x", config=hs_config())


# --- the dev secret ---------------------------------------------------------------------------


def test_dev_generates_one_secret_in_the_data_directory(tmp_path: Path) -> None:
    """With nothing configured in dev, a 0600 secret is made once and shared by CLI and service."""
    config = AppConfig.model_validate({"data_dir": str(tmp_path)})
    token = issue_token("viewer", ["acme"], 600, "frank", config=config)
    path = tmp_path / DEV_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    verifier = build_verifier(config)
    assert verifier is not None
    assert verifier.verify(token).id == "frank"
    assert dev_secret(tmp_path).get_secret_value() == first.strip()
    assert path.read_text() == first


def test_processes_starting_at_once_share_one_dev_secret(tmp_path: Path) -> None:
    """Concurrent first uses agree on one secret and leave no draft file behind."""
    barrier = threading.Barrier(8)
    found: list[str] = []

    def first_use() -> None:
        barrier.wait()
        found.append(dev_secret(tmp_path).get_secret_value())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    assert len(set(found)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [DEV_SECRET_FILE]


# --- JWKS URL ---------------------------------------------------------------------------------


@pytest.fixture
def jwks_server(rsa_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server answering the JWKS of ``rsa_key`` (kid rsa-1); records each request."""
    body = json.dumps({"keys": [jwk_of(rsa_key, "rsa-1")]}).encode()
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", seen
    finally:
        server.shutdown()
        server.server_close()


def test_keys_from_a_jwks_url_are_fetched_once_and_cached(
    jwks_server: tuple[str, list[str]], rsa_key: rsa.RSAPrivateKey
) -> None:
    """Tokens verify against the URL's keys; repeated verifications do not fetch again."""
    url, seen = jwks_server
    config = AppConfig.model_validate({"security": {"jwt": {"jwks_url": url}}})
    verifier = build_verifier(config)
    assert verifier is not None
    assert verifier.fetches
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    for _ in range(3):
        assert verifier.verify(token).id == "alice"
    assert seen == ["/jwks.json"]
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(claims(iat=None, exp=int(NOW.timestamp()) + 3600)).encode())
    signature = hmac.new(public_pem(rsa_key), f"{header}.{body}".encode(), hashlib.sha256)
    assert "algorithm" in refusal(config, f"{header}.{body}.{b64(signature.digest())}")


def test_an_unreachable_jwks_url_refuses_tokens_clearly(rsa_key: rsa.RSAPrivateKey) -> None:
    """When the identity provider cannot be reached, tokens are refused with that reason."""
    config = AppConfig.model_validate(
        {"security": {"jwt": {"jwks_url": "http://127.0.0.1:9/jwks.json"}}}
    )
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "cannot be fetched" in refusal(config, token)

"""Admin API tokens: verify JWTs into an :class:`Actor`, and issue them.

PyJWT does the cryptography and the registered claims (``exp``, ``nbf``, ``iss``,
``aud``). What is ours is the choice of key and of algorithms: the key is picked
by the token's ``kid`` (or is the only one configured), and the algorithms accepted
are those of that key's type, intersected with ``security.jwt.algorithms`` — never
what the token's header asks for. An HS256 token is thus never checked against an
RSA public key, and ``alg: none`` is never accepted. Error messages name what is
wrong with a token, never its content.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr

from slack_tools.configs.schema.types import EnvName
from slack_tools.configs.security.actors import Actor
from slack_tools.configs.security.rbac import ALL, DEFAULT_ROLES, permissions_of
from slack_tools.errors import ConfigError, InvalidToken

if TYPE_CHECKING:
    from slack_tools.configs.schema import AppConfig
    from slack_tools.configs.schema.app import JwtConfig

DEV_SECRET_FILE = "jwt-dev-secret"  # noqa: S105  # nosec B105 - a file name
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def algorithms_for(key: PublicKey | PrivateKey | bytes) -> frozenset[str]:
    """The JWS algorithms a key of this type can verify (or sign) with."""
    if isinstance(key, bytes):
        return HMAC_ALGORITHMS
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        name = EC_ALGORITHMS.get(key.curve.name)
        return frozenset({name}) if name else frozenset()
    return frozenset({"EdDSA"})


@dataclass(frozen=True)
class VerificationKey:
    """One key that may have signed a token, and the algorithms it is accepted with."""

    key: PublicKey | bytes
    algorithms: frozenset[str]
    kid: str | None = None


# --- reading keys ----------------------------------------------------------------------


def _jwk_key(data: Mapping[str, Any], allowed: Collection[str], source: str) -> VerificationKey:
    """A verification key from one JWK; symmetric JWKs are refused (a JWKS is public)."""
    if data.get("kty") == "oct":
        raise ConfigError(f"{source}: a JWKS holds public keys; symmetric (oct) keys are refused.")
    try:
        jwk = jwt.PyJWK(dict(data))
    except jwt.PyJWTError:
        # PyJWT's message quotes the JWK; ours names only where it came from.
        raise ConfigError(f"{source}: a key of this JWKS cannot be read.") from None
    key = jwk.key
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"{source}: JWKS keys must be public RSA, EC or Ed25519 keys.")
    usable = algorithms_for(key) & set(allowed)
    if "alg" in data:
        usable &= {str(data["alg"])}
    kid = data.get("kid")
    return VerificationKey(key, frozenset(usable), str(kid) if kid is not None else None)


def read_jwks(path: str | Path, allowed: Collection[str]) -> list[VerificationKey]:
    """The public keys of a JWKS file (``{"keys": [...]}``)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the JWKS file ({exc.strerror}).") from None
    except ValueError:
        raise ConfigError(f"{path}: the JWKS file is not JSON.") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(f'{path}: a JWKS file is {{"keys": [...]}} with at least one key.')
    return [_jwk_key(k, allowed, str(path)) for k in keys if isinstance(k, dict)]


def read_private_key(path: str | Path) -> PrivateKey:
    """The PEM private key that signs issued tokens (RSA, EC or Ed25519, unencrypted)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the private key ({exc.strerror}).") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key.") from None
    if not isinstance(
        key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ConfigError(f"{path}: the private key must be RSA, EC or Ed25519.")
    return key


def dev_secret(data_dir: str | Path) -> SecretStr:
    """The dev HS256 secret in ``<data_dir>/jwt-dev-secret``, made on first use (mode 0600).

    The service and the CLI of one dev installation share it, so a token issued by
    ``slack-tools token issue`` works against the local service with nothing configured.
    """
    path = Path(data_dir).expanduser() / DEV_SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written aside then linked into place: of two processes starting at once, one
        # links its secret and both read it, never a half-written file.
        draft = path.with_name(f".{DEV_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    text = path.read_text(encoding="ascii").strip()
    if len(text) < 32:  # noqa: PLR2004 - RFC 7518 §3.2, as the schema checks
        raise ConfigError(f"{path}: the dev JWT secret is shorter than 32 bytes; delete it.")
    return SecretStr(text)


def hmac_secret(config: AppConfig) -> SecretStr | None:
    """The HS256 secret in use: configured, else (dev, no JWKS) the generated dev one."""
    jwt_config = config.security.jwt
    if jwt_config.secret is not None:
        return jwt_config.secret
    if (
        config.environment is EnvName.DEV
        and jwt_config.jwks_file is None
        and jwt_config.jwks_url is None
        and jwt_config.private_key_file is None
    ):
        return dev_secret(config.data_dir or "./data")
    return None


# --- verifying ---------------------------------------------------------------------------


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """The claim at ``name``; dots reach into objects (``realm_access.roles``)."""
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _names(value: Any, claim: str) -> frozenset[str]:
    """A list of strings, or one string of names separated by spaces or commas."""
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise InvalidToken(f"The token's {claim!r} claim must be a list of strings.")


_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "The token has expired (exp)."),
    (jwt.ImmatureSignatureError, "The token is not valid yet (nbf or iat)."),
    (jwt.InvalidAudienceError, "The token is meant for another audience (aud)."),
    (jwt.InvalidIssuerError, "The token comes from another issuer (iss)."),
    (jwt.InvalidAlgorithmError, "The token's algorithm is not accepted for its key."),
    (jwt.InvalidSignatureError, "The token's signature does not verify."),
)


def _refusal(exc: jwt.PyJWTError) -> InvalidToken:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return InvalidToken(f"The token has no {exc.claim!r} claim.")
    for kind, message in _REFUSALS:
        if isinstance(exc, kind):
            return InvalidToken(message)
    # Other messages may quote parts of the token: say only that it is malformed.
    return InvalidToken("The token is malformed or its claims are invalid.")


class TokenVerifier:
    """Checks bearer tokens against the configured keys and turns them into actors."""

    def __init__(
        self,
        settings: JwtConfig,
        *,
        roles: Mapping[str, Collection[str]] | None = None,
        keys: Sequence[VerificationKey] = (),
        jwks_client: jwt.PyJWKClient | None = None,
    ) -> None:
        self.settings = settings
        self.roles = {**DEFAULT_ROLES, **(roles or {})}
        self.keys = list(keys)
        self.jwks_client = jwks_client

    @property
    def fetches(self) -> bool:
        """True when verifying may fetch a JWKS over the network (run it off the event loop)."""
        return self.jwks_client is not None

    def verify(self, token: str) -> Actor:
        """The actor a valid token names.

        Raises:
            InvalidToken: unsigned, malformed, wrongly signed, expired, not yet valid,
                for another issuer or audience, or missing a required claim.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken(
                "The token is malformed (expected header.payload.signature)."
            ) from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise InvalidToken("Unsigned tokens (alg: none) are refused.")
        key = self._key_for(header.get("kid"))
        if not key.algorithms:
            raise InvalidToken("The token's key accepts none of security.jwt.algorithms.")
        settings = self.settings
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=sorted(key.algorithms),
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise _refusal(exc) from None
        return self.actor_of(claims)

    def _key_for(self, kid: Any) -> VerificationKey:
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("The token's key id (kid) must be a string.")
        if kid is not None:
            for key in self.keys:
                if key.kid == kid:
                    return key
            if self.jwks_client is not None:
                return self._fetched(kid)
            raise InvalidToken("The token names a key id (kid) that is not configured.")
        # No kid: only an unambiguous configuration says which key signed it.
        if len(self.keys) == 1 and self.jwks_client is None:
            return self.keys[0]
        raise InvalidToken("The token names no key id (kid); several keys could have signed it.")

    def _fetched(self, kid: str) -> VerificationKey:
        assert self.jwks_client is not None
        try:
            jwk = self.jwks_client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise InvalidToken("The identity provider's keys (JWKS) cannot be fetched.") from None
        except jwt.PyJWTError:
            raise InvalidToken(
                "The token names a key id (kid) the identity provider does not have."
            ) from None
        key = jwk.key
        if not isinstance(
            key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
        ):
            raise InvalidToken("The identity provider's key for this token is not a public key.")
        return VerificationKey(key, algorithms_for(key) & set(self.settings.algorithms), kid)

    def actor_of(self, claims: Mapping[str, Any]) -> Actor:
        """The actor of verified ``claims``: subject, roles, tenants by the configured names."""
        names = self.settings.claims
        subject = _claim(claims, names.subject)
        if not isinstance(subject, str) or not subject:
            raise InvalidToken(f"The token has no {names.subject!r} claim naming the caller.")
        raw_roles = _claim(claims, names.roles)
        if raw_roles is None:
            raise InvalidToken(f"The token has no {names.roles!r} claim.")
        roles = _names(raw_roles, names.roles)
        raw_tenants = _claim(claims, names.tenants)
        tenants = frozenset() if raw_tenants is None else _names(raw_tenants, names.tenants)
        return Actor(
            subject,
            roles=roles,
            tenants=tenants - {ALL},
            all_tenants=ALL in tenants,
            kind="token",
            claims=dict(claims),
            permissions=permissions_of(roles, self.roles),
        )


def build_verifier(config: AppConfig) -> TokenVerifier | None:
    """The verifier of ``config``'s admin tokens; ``None`` when no key is configured."""
    settings = config.security.jwt
    keys: list[VerificationKey] = []
    secret = hmac_secret(config)
    if secret is not None:
        keys.append(
            VerificationKey(
                secret.get_secret_value().encode(),
                HMAC_ALGORITHMS & set(settings.algorithms),
                settings.key_id if settings.private_key_file is None else None,
            )
        )
    if settings.jwks_file is not None:
        keys += read_jwks(settings.jwks_file, settings.algorithms)
    client = None
    if settings.jwks_url is not None:
        client = jwt.PyJWKClient(
            settings.jwks_url,
            cache_keys=True,
            lifespan=settings.jwks_cache_seconds,
            timeout=10,
        )
    if not keys and client is None:
        return None
    return TokenVerifier(settings, roles=config.security.roles, keys=keys, jwks_client=client)


# --- issuing -----------------------------------------------------------------------------


def _put(claims: dict[str, Any], name: str, value: Any) -> None:
    *parents, last = name.split(".")
    node = claims
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _signing_key(config: AppConfig) -> tuple[PrivateKey | bytes, str, str | None]:
    settings = config.security.jwt
    if settings.private_key_file is not None:
        key = read_private_key(settings.private_key_file)
        usable = sorted(algorithms_for(key) & set(settings.algorithms))
        if not usable:
            raise ConfigError(
                f"{settings.private_key_file}: this key type signs with none of "
                "security.jwt.algorithms."
            )
        # RS256 before PS*, the first ES by curve: the commonest choice for the key.
        preferred = "RS256" if "RS256" in usable else usable[0]
        return key, preferred, settings.key_id
    secret = hmac_secret(config)
    if secret is None:
        raise ConfigError(
            "No key to sign tokens with: set security.jwt.private_key_file "
            "(or security.jwt.secret in dev)."
        )
    return secret.get_secret_value().encode(), "HS256", settings.key_id


def issue_token(
    roles: str | Iterable[str],
    tenants: Iterable[str],
    ttl: timedelta | float,
    subject: str,
    *,
    config: AppConfig,
    now: datetime | None = None,
) -> str:
    """A signed admin token for ``subject`` with ``roles``, acting for ``tenants``.

    ``tenants`` may be ``["*"]`` for every tenant; ``ttl`` is a duration or seconds.
    Signed with ``security.jwt.private_key_file`` when set, else the HS256 secret.
    """
    role_list = [roles] if isinstance(roles, str) else list(roles)
    lifetime = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
    if lifetime <= timedelta(0):
        raise ValueError("A token's lifetime must be positive.")
    if not subject:
        raise ValueError("A token needs a subject.")
    key, algorithm, kid = _signing_key(config)
    settings = config.security.jwt
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": uuid.uuid4().hex,
    }
    _put(claims, settings.claims.subject, subject)
    _put(claims, settings.claims.roles, role_list)
    _put(claims, settings.claims.tenants, list(tenants))
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def public_jwks(config: AppConfig) -> dict[str, Any]:
    """The JWKS of the configured private key's public half, for ``security.jwt.jwks_file``."""
    settings = config.security.jwt
    if settings.private_key_file is None:
        raise ConfigError("No private key configured: set security.jwt.private_key_file.")
    key = read_private_key(settings.private_key_file)
    public = key.public_key()
    algorithm = jwt.algorithms.get_default_algorithms()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = algorithm["RS256"].to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = algorithm["ES256"].to_jwk(public, as_dict=True)
    else:
        jwk = algorithm["EdDSA"].to_jwk(public, as_dict=True)
    jwk["use"] = "sig"
    if settings.key_id:
        jwk["kid"] = settings.key_id
    return {"keys": [jwk]}

"""Keep secrets out of saved configs and logs.

Anything whose key is named like a credential (a word of its name is ``key``, ``secret``,
``token``, ``password``, ``pw``, ``passwd``, ``credential``, ``sas``, ``signature``, ``auth``, or
it says ``connection_string``; snake, kebab, dotted and camelCase names are split into words) is
replaced by ``***`` in saved configs; passwords in URLs (``s3://user:pass@host``) and signed-URL
query parameters are masked in any text; and every secret value seen in a run's config (URL
passwords included) is masked in log records by ``RedactingFilter`` and in error lines.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Iterable, Set

MASK = "***"
# Names are split into lower-case words (snake_case, kebab-case, dotted paths, camelCase); a name
# is secret when one word, or two adjacent words, is in these sets.
SECRET_WORDS = frozenset({
    "key", "keys", "apikey", "accesskey", "secretkey", "accountkey", "privatekey", "masterkey", "sharedkey",
    "secret", "secrets", "clientsecret", "token", "tokens", "sastoken", "authtoken", "accesstoken",
    "sessiontoken", "refreshtoken", "idtoken", "apitoken", "password", "passwords", "passwd", "pwd", "pw",
    "passphrase", "credential", "credentials", "creds", "auth", "authorization", "signature", "sas",
    "connectionstring", "connstr", "bearer",
})
SECRET_PAIRS = frozenset({("connection", "string"), ("conn", "str"), ("connection", "str"), ("conn", "string")})
_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^/@:\s]*):(?P<pw>[^/@\s]+)@")
_QUERY_SECRET = re.compile(
    r"(?P<k>[?&](?:[A-Za-z0-9\-_]*(?:signature|token|key|secret|password|credential|sig))=)(?P<v>[^&\s'\"]+)", re.I
)
_SECRETS: Set[str] = set()
_MIN_SECRET_LEN = 4


def name_words(name: Any) -> list:
    """``aws_secret_access_key`` -> [aws, secret, access, key]; ``sasToken`` -> [sas, token]."""
    return [w.lower() for w in _WORD_SPLIT.split(str(name)) if w]


def is_secret_name(name: Any) -> bool:
    """True when a config key is named like a credential (``aws_secret_access_key``, ``pw``,
    ``connection_string``, ``sasToken``, ``client_kwargs.aws_session_token``)."""
    words = name_words(name)
    return any(w in SECRET_WORDS for w in words) or any(p in SECRET_PAIRS for p in zip(words, words[1:]))


def redact_text(text: str) -> str:
    """Mask URL passwords, signed-URL parameters and every registered secret value in ``text``."""
    if not text:
        return text
    out = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:{MASK}@", str(text))
    out = _QUERY_SECRET.sub(lambda m: f"{m.group('k')}{MASK}", out)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def redact(obj: Any) -> Any:
    """A copy of a nested dict/list structure with secret-named values masked and URLs cleaned."""
    if isinstance(obj, dict):
        return {k: (MASK if is_secret_name(k) and v not in (None, "", {}, []) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    return obj


def _leaves(obj: Any) -> Set[str]:
    if isinstance(obj, dict):
        return set().union(*(_leaves(v) for v in obj.values())) if obj else set()
    if isinstance(obj, (list, tuple)):
        return set().union(*(_leaves(v) for v in obj)) if obj else set()
    return {str(obj)} if isinstance(obj, (str, int)) and not isinstance(obj, bool) else set()


def secret_values(obj: Any) -> Set[str]:
    """Every value stored under a secret-named key (at any depth), and every URL password."""
    found: Set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            found |= _leaves(v) if is_secret_name(k) else secret_values(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            found |= secret_values(v)
    elif isinstance(obj, str):
        found |= {m.group("pw") for m in _URL_USERINFO.finditer(obj)}
    return {s for s in found if len(s) >= _MIN_SECRET_LEN}


def register_secrets(values: Iterable[str]) -> None:
    """Remember secret values so log records and error lines mask them."""
    _SECRETS.update(v for v in values if v and len(v) >= _MIN_SECRET_LEN)


def redact_config(cfg) -> Any:
    """A redacted plain-dict copy of an OmegaConf config (or dict); registers its secrets."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    register_secrets(secret_values(plain))
    return redact(plain)


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's final message (used on automl's log handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


def install_log_filter(logger_names: Iterable[str] = ("automl", "")) -> None:
    """Put one ``RedactingFilter`` on every handler of the given loggers (idempotent)."""
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter())


def redacted_yaml(cfg) -> str:
    """The config as YAML with secrets masked (what a run folder's config.yaml holds)."""
    import yaml

    return yaml.safe_dump(redact_config(cfg), sort_keys=False, default_flow_style=False)


def register_config_secrets(cfg) -> None:
    """Register a config's secret values (secret-named options, URL passwords) for masking."""
    from omegaconf import DictConfig, OmegaConf

    plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    register_secrets(secret_values(plain))

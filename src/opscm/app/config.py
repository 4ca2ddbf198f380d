"""The operator's configuration file (``opscm serve --config FILE``, TOML): engine backends.

    [backends.corp-chef]
    kind = "chef-server"
    url = "https://chef.example.com"
    organization = "acme"              # left out: organization-less paths (goiardi)
    client_name = "admin"
    client_key = "/etc/opscm/admin.pem"

    [backends.corp-puppet]
    kind = "puppetserver-ca"
    url = "https://puppet.example.com:8140"
    client_cert = "/etc/opscm/puppet-client.pem"
    client_key = "/etc/opscm/puppet-client.key"
    ca_bundle = "/etc/opscm/puppet-ca.pem"

Admin credentials stay in this file and the files it names: they are read here and handed
only to the engine adapters, never to the API, the store or the logs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

CHEF_SERVER = "chef-server"
PUPPETSERVER_CA = "puppetserver-ca"
# Backend names appear in OPSCM_BACKEND and in messages: keep them plain.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix (never a secret)."""


@dataclasses.dataclass(frozen=True)
class ChefServerBackend:
    name: str
    url: str
    client_name: str
    client_key: Path = dataclasses.field(repr=False)
    organization: str | None = None
    ca_bundle: Path | None = None
    endpoint: str | None = None  # host reported as the server's Endpoint; default: the URL's host
    timeout: float = 10.0
    engine = "ChefAutomate"
    kind = CHEF_SERVER


@dataclasses.dataclass(frozen=True)
class PuppetCaBackend:
    name: str
    url: str
    client_cert: Path
    client_key: Path = dataclasses.field(repr=False)
    ca_bundle: Path | None = None
    endpoint: str | None = None
    timeout: float = 10.0
    engine = "Puppet"
    kind = PUPPETSERVER_CA


Backend = ChefServerBackend | PuppetCaBackend


@dataclasses.dataclass(frozen=True)
class Config:
    backends: dict[str, Backend] = dataclasses.field(default_factory=dict)
    warnings: tuple[str, ...] = ()


_KINDS = {
    CHEF_SERVER: (
        ChefServerBackend,
        ("url", "client_name", "client_key"),
        ("organization", "ca_bundle", "endpoint", "timeout"),
    ),
    PUPPETSERVER_CA: (
        PuppetCaBackend,
        ("url", "client_cert", "client_key"),
        ("ca_bundle", "endpoint", "timeout"),
    ),
}
_FILES = ("client_key", "client_cert", "ca_bundle")


def load_config(path: Path) -> Config:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read the configuration file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    return parse_config(data, base=Path(path).resolve().parent)


def parse_config(data: dict, *, base: Path = Path(".")) -> Config:
    warnings: list[str] = []
    unknown = sorted(set(data) - {"backends"})
    if unknown:
        warnings.append(f"unknown configuration section(s) ignored: {', '.join(unknown)}")
    sections = data.get("backends", {})
    if not isinstance(sections, dict):
        raise ConfigError("[backends] must be a table of named backends, e.g. [backends.corp-chef]")
    backends: dict[str, Backend] = {}
    for name, section in sections.items():
        backends[name] = _backend(name, section, base, warnings)
    return Config(backends, tuple(warnings))


def _backend(name: str, section: object, base: Path, warnings: list[str]) -> Backend:
    where = f"[backends.{name}]"
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: a backend name is 1 to 64 letters, digits, '_', '.' and '-', a letter or digit first")
    if not isinstance(section, dict):
        raise ConfigError(f"{where} must be a table")
    kind = section.get("kind")
    if kind not in _KINDS:
        raise ConfigError(f"{where}: kind must be one of {', '.join(map(repr, _KINDS))}, not {kind!r}")
    cls, required, optional = _KINDS[kind]
    missing = [key for key in required if key not in section]
    if missing:
        raise ConfigError(f"{where}: missing {', '.join(missing)}")
    extra = sorted(set(section) - set(required) - set(optional) - {"kind"})
    if extra:
        warnings.append(f"{where}: unknown key(s) ignored: {', '.join(extra)}")
    values: dict[str, object] = {"name": name}
    for key in (*required, *optional):
        if key not in section:
            continue
        value = section[key]
        if key == "timeout":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 300:
                raise ConfigError(f"{where}: timeout must be a number of seconds between 0 and 300")
            values[key] = float(value)
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        values[key] = _file(where, key, value, base, warnings) if key in _FILES else value
    _check_url(where, str(values["url"]), kind)
    return cls(**values)


def _file(where: str, key: str, value: str, base: Path, warnings: list[str]) -> Path:
    path = (base / value).resolve() if not os.path.isabs(value) else Path(value)
    if not path.is_file() or not os.access(path, os.R_OK):
        raise ConfigError(f"{where}: {key} {path} is not a readable file")
    if key == "client_key" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        warnings.append(f"{where}: {path} holds a private key but is readable by others; chmod 600 it")
    return path


def _check_url(where: str, url: str, kind: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: url must be an http:// or https:// URL, not {url!r}")
    if kind == PUPPETSERVER_CA and parts.scheme != "https":
        raise ConfigError(f"{where}: the Puppet Server CA API is served over https only")


def endpoint_of(backend: Backend) -> str:
    """The host nodes use, reported as the server's Endpoint."""
    return backend.endpoint or urlsplit(backend.url).hostname or ""

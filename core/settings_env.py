"""Settings to and from environment variables, and the refusal of published credentials.

A field ``kafka.bootstrap`` is read from ``VIDFLOW_KAFKA_BOOTSTRAP``; top-level fields drop the
group (``VIDFLOW_ENV``). This module knows that mapping, not vidflow's groups: ``core.settings``
hands it the ``Settings`` type and its groups, so a group added there is read, handed to child
processes and checked for default credentials here without another list to keep in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from core.secret import Secret

__all__ = [
    "ENV_PREFIX",
    "SettingsError",
    "environ_of",
    "refuse_default_credentials",
    "settings_from",
]

ENV_PREFIX = "VIDFLOW_"
Groups = Mapping[str, type[msgspec.Struct]]
SettingsT = TypeVar("SettingsT", bound=msgspec.Struct)


class SettingsError(ValueError):
    """The environment describes a configuration vidflow refuses to run with."""


def _variable(name: str, group: str | None = None) -> str:
    """The variable of a field: ``VIDFLOW_<GROUP>_<FIELD>``, or ``VIDFLOW_<FIELD>`` at the top."""
    return f"{ENV_PREFIX}{group}_{name}".upper() if group else f"{ENV_PREFIX}{name}".upper()


def _env_value(raw: str, annotation: Any) -> Any:
    """Turn an env string into what msgspec's lax conversion accepts for the field's type."""
    if "tuple" in str(annotation):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _collect(
    environ: Mapping[str, str], settings_type: type[msgspec.Struct], groups: Groups
) -> dict[str, Any]:
    data: dict[str, Any] = {}
    top_fields = {f.name: f.type for f in msgspec.structs.fields(settings_type)}
    for name, annotation in top_fields.items():
        if name in groups:
            group: dict[str, Any] = {}
            for field in msgspec.structs.fields(groups[name]):
                key = _variable(field.name, name)
                if key in environ:
                    group[field.name] = _env_value(environ[key], field.type)
            if group:
                data[name] = group
        else:
            key = _variable(name)
            if key in environ:
                data[name] = _env_value(environ[key], annotation)
    return data


def _dec_hook(type_: type, obj: Any) -> Any:
    if type_ is Secret:
        return Secret(obj)
    if type_ is Path:
        return Path(obj)
    raise NotImplementedError(type_)


def settings_from(
    environ: Mapping[str, str], settings_type: type[SettingsT], groups: Groups
) -> SettingsT:
    """The settings the variables of ``environ`` describe (defaults for the others); a value of
    the wrong type is a :class:`SettingsError` naming the field."""
    try:
        return msgspec.convert(
            _collect(environ, settings_type, groups),
            settings_type,
            strict=False,
            dec_hook=_dec_hook,
        )
    except msgspec.ValidationError as exc:
        raise SettingsError(f"invalid setting: {exc}") from None


def environ_of(settings: msgspec.Struct, groups: Groups) -> dict[str, str]:
    """The environment variables that read back (:func:`settings_from`) as ``settings``."""

    def text(value: Any) -> str:
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, tuple):
            return ",".join(str(v) for v in value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    environ: dict[str, str] = {}
    for field in msgspec.structs.fields(settings):
        value = getattr(settings, field.name)
        if field.name in groups:
            for inner in msgspec.structs.fields(groups[field.name]):
                environ[_variable(inner.name, field.name)] = text(getattr(value, inner.name))
        else:
            environ[_variable(field.name)] = text(value)
    return environ


def _credentials(settings: msgspec.Struct, groups: Groups) -> dict[str, Secret]:
    """Every credential by its variable, found by type: a ``Secret`` added to any group is
    covered by the production check without another list to keep in step."""
    found: dict[str, Secret] = {}
    for name in groups:
        group = getattr(settings, name)
        for field in msgspec.structs.fields(group):
            value = getattr(group, field.name)
            if isinstance(value, Secret):
                found[_variable(field.name, name)] = value
    return found


def refuse_default_credentials(settings: msgspec.Struct, groups: Groups) -> None:
    """A published default credential in production is no credential at all. An empty default
    means "not used" (no password configured), not a known value, and is left alone."""
    defaults = _credentials(type(settings)(), groups)
    current = _credentials(settings, groups)
    left = sorted(
        name for name, value in current.items() if defaults[name] and value == defaults[name]
    )
    if left:
        raise SettingsError(
            "VIDFLOW_ENV=production refuses default credentials; set " + ", ".join(left)
        )

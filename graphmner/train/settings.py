"""Run settings: the ``model``, ``train`` and ``data`` sections of a run, typed
by their config dataclasses.

A YAML config file gives the paper's hyper-parameters, flags and
``--set section.key=value`` override them. Every value is checked against the
field it sets: ``--set train.head_lr=1e-3`` is a float (YAML alone would read
``1e-3`` as a string), ``--set train.head_lr=abc`` and ``--set
train.nonsense=3`` are a :class:`SettingsError` that names the key and what it
expects.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ('model', 'train', 'data')


class SettingsError(ValueError):
    """A setting that does not fit its config field (a user mistake: the
    message is meant to be shown as one line)."""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return ' or '.join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return ' or '.join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return 'a list'
    if origin is dict or tp is dict:
        return 'a mapping'
    if tp is type(None):
        return 'none'
    return {bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string',
            list: 'a list', tuple: 'a list'}.get(tp, getattr(tp, '__name__', str(tp)))


def coerce(tp: Any, value: Any, raw: str | None = None) -> Any:
    """``value`` (as YAML read it; ``raw`` is the text it came from, if any) as
    type ``tp``, or :class:`TypeError` when it is not one."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None or (isinstance(value, str) and value.lower() == 'none'):
            if type(None) in options:
                return None
        for option in (o for o in options if o is not type(None)):
            try:
                return coerce(option, value, raw)
            except TypeError:
                continue
        raise TypeError
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:  # YAML 1.1 reads 1e-3 (no dot) as a string
                return float(value)
            except ValueError:
                raise TypeError from None
        raise TypeError
    if tp is str:
        if isinstance(value, (dict, list)) or value is None:
            raise TypeError
        return raw if raw is not None else str(value)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise TypeError
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [coerce(item, v) for v in value]
        return tuple(items) if (origin or tp) is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise TypeError
        return dict(value)
    if isinstance(value, tp):
        return value
    raise TypeError


def field_types(config_class: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(config_class)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_class)}


def set_value(section: str, config_class: type, values: dict[str, Any], key: str, value: Any,
              raw: str | None = None) -> None:
    """Checks ``value`` against field ``key`` of ``config_class`` and stores it."""
    types_ = field_types(config_class)
    if key not in types_:
        raise SettingsError(f"unknown setting '{section}.{key}'; valid: "
                            f"{', '.join(f'{section}.{k}' for k in sorted(types_))}")
    try:
        values[key] = coerce(types_[key], value, raw)
    except TypeError:
        shown = raw if raw is not None else value
        raise SettingsError(f"'{section}.{key}' must be {_type_name(types_[key])}, "
                            f'got {shown!r}') from None


def read_config(path: str | Path, classes: Mapping[str, type]) -> dict[str, dict[str, Any]]:
    """The three sections of YAML file ``path`` (missing sections are empty),
    every value typed by the config dataclass of its section in ``classes``."""
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise SettingsError(f"cannot read the config '{path}': {error.strerror}") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"the config '{path}' is not valid YAML: {error}".replace('\n', ' ')) from None
    if not isinstance(loaded, dict) or set(loaded) - set(SECTIONS):
        raise SettingsError(f"the config '{path}' must be a mapping with the sections "
                            f"{', '.join(SECTIONS)}")
    settings: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    for section in SECTIONS:
        for key, value in (loaded.get(section) or {}).items():
            set_value(section, classes[section], settings[section], key, value)
    return settings


def apply_overrides(settings: dict[str, dict[str, Any]], overrides: list[str],
                    classes: Mapping[str, type]) -> None:
    """Applies each ``SECTION.KEY=VALUE`` (``--set``) to ``settings``, typed by
    the config dataclass of its section."""
    for item in overrides:
        key, sep, raw = item.partition('=')
        section, dot, name = key.partition('.')
        if not sep or not dot or section not in SECTIONS:
            raise SettingsError(f"--set takes SECTION.KEY=VALUE with SECTION in {'/'.join(SECTIONS)}, "
                                f"got '{item}'")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        set_value(section, classes[section], settings[section], name, value, raw)

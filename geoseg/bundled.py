"""The models that ship inside geoseg, selectable by name wherever a model file is expected.

``demo`` (the default) has seen only synthetic scenes: it finds the landslides of the bundled
sample scene. ``hokkaido-iburi`` was trained on real imagery of the 2018 Hokkaido Eastern
Iburi earthquake (see its model card, :func:`model_card`). A name is resolved only when no
file of that name exists, so a user's own file called ``demo`` still wins.

>>> resolve_model("demo").name
'demo_model.keras'
>>> resolve_model("runs/model.keras").as_posix()
'runs/model.keras'
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["BUNDLED_MODELS", "CODE_LICENSE", "DEFAULT_MODEL", "bundled_name", "card_facts",
           "model_card", "model_terms", "resolve_model"]

DATA = Path(__file__).resolve().parent / "data"

BUNDLED_MODELS: dict[str, str] = {
    "demo": "demo_model.keras",
    "hokkaido-iburi": "hokkaido_iburi.keras",
}
"""Bundled model names and their files in ``geoseg/data``."""

DEFAULT_MODEL = "demo"
"""The model ``predict`` and ``evaluate`` use when none is given."""

CODE_LICENSE = "Apache-2.0"
"""geoseg's own license (SPDX): a model card whose ``license`` is this adds no terms."""

_FACT = re.compile(r"^- \*\*(?P<key>[^*]+)\*\*: (?P<value>.+)$")


def resolve_model(model: str | os.PathLike[str] | None = None) -> Path:
    """The model file for a bundled model's name, a path, or ``None`` (the default model).

    A name is taken for a bundled model unless a file of that name exists (a folder of that
    name, never a model, does not hide it).
    """
    if model is None:
        model = DEFAULT_MODEL
    name = os.fspath(model)
    if name in BUNDLED_MODELS and not Path(name).is_file():
        return DATA / BUNDLED_MODELS[name]
    return Path(name)


def bundled_name(path: str | os.PathLike[str]) -> str | None:
    """The name of the bundled model at ``path``, or ``None`` for any other file."""
    resolved = Path(path).resolve()
    for name, file_name in BUNDLED_MODELS.items():
        if resolved == (DATA / file_name).resolve():
            return name
    return None


def model_card(path: str | os.PathLike[str]) -> Path | None:
    """The markdown model card of a bundled model (``<file stem>.md`` beside it), if it has one."""
    if bundled_name(path) is None:
        return None
    card = Path(path).resolve().with_suffix(".md")
    return card if card.is_file() else None


def card_facts(card: str | os.PathLike[str]) -> dict[str, str]:
    """The ``- **key**: value`` lines of a model card, in order (what ``geoseg info`` prints).

    Markdown emphasis and links are kept as written; the card is their one source.
    """
    facts: dict[str, str] = {}
    for line in Path(card).read_text(encoding="utf-8").splitlines():
        match = _FACT.match(line.strip())
        if match:
            facts[match["key"]] = match["value"]
    return facts


def model_terms(path: str | os.PathLike[str]) -> str | None:
    """The terms of use a bundled model adds to geoseg's license: its card's ``terms`` when
    the card's ``license`` is another than :data:`CODE_LICENSE`, else None.

    >>> model_terms(resolve_model("hokkaido-iburi")).startswith("the weights are derived")
    True
    >>> model_terms(resolve_model("demo")) is None
    True
    """
    card = model_card(path)
    if card is None:
        return None
    facts = card_facts(card)
    if facts.get("license", CODE_LICENSE) == CODE_LICENSE:
        return None
    return facts.get("terms", f"licensed {facts['license']}")

"""The models that ship inside geoseg, selectable by name wherever a model file is expected.

``demo`` (the default) has seen only synthetic scenes: it finds the landslides of the bundled
sample scene. ``hokkaido-iburi`` was trained on real imagery of the 2018 Hokkaido Eastern
Iburi earthquake (see its model card, :func:`model_card`). A name is resolved only when no
file of that name exists, so a user's own file called ``demo`` still wins.
:func:`bundled_models` lists them with the imagery they know (``geoseg models``, the QGIS
plugin's choice of models).

>>> resolve_model("demo").name
'demo_model.keras'
>>> resolve_model("runs/model.keras").as_posix()
'runs/model.keras'
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoseg.model.model_archive import read_settings

__all__ = ["BUNDLED_MODELS", "CARD_KEYS", "CODE_LICENSE", "DEFAULT_MODEL", "BundledModel",
           "bundled_models", "bundled_name", "card_facts", "model_card", "model_terms",
           "resolve_model"]

DATA = Path(__file__).resolve().parents[1] / "data"

BUNDLED_MODELS: dict[str, str] = {
    "demo": "demo_model.keras",
    "hokkaido-iburi": "hokkaido_iburi.keras",
    "sichuan-aerial": "sichuan_aerial.keras",
}
"""Bundled model names and their files in ``geoseg/data``."""

DEFAULT_MODEL = "demo"
"""The model ``predict`` and ``evaluate`` use when none is given."""

CODE_LICENSE = "Apache-2.0"
"""geoseg's own license (SPDX): a model card whose ``license`` is this adds no terms."""
CARD_KEYS = ("imagery", "license", "works on")
"""The card facts every bundled model's card gives, for :func:`bundled_models`."""

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


@dataclass(frozen=True)
class BundledModel:
    """A bundled model and the imagery it knows, in a few words (``geoseg models``)."""

    name: str
    path: Path
    default: bool
    """The model ``predict`` and ``evaluate`` use when none is given."""
    imagery: str
    """What it was trained on, e.g. ``8-bit RGB satellite imagery``."""
    pixel_size_m: float | None
    """Ground size of its training pixels (from its settings)."""
    license: str
    """Its card's SPDX license of the weights."""
    works_on: str
    """Where it works."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``geoseg models --json``)."""
        return {"name": self.name, "path": str(self.path), "default": self.default,
                "imagery": self.imagery, "pixel_size_m": self.pixel_size_m,
                "license": self.license, "works_on": self.works_on}


def bundled_models() -> list[BundledModel]:
    """Every bundled model, the default first: its file, the pixel size its settings store
    and its card's :data:`CARD_KEYS` facts (their one source)."""
    models = []
    for name in sorted(BUNDLED_MODELS, key=lambda n: (n != DEFAULT_MODEL, n)):
        path = DATA / BUNDLED_MODELS[name]  # even when a file of that name is in the way
        card = model_card(path)
        facts = card_facts(card) if card is not None else {}
        models.append(BundledModel(
            name=name, path=path, default=name == DEFAULT_MODEL,
            imagery=facts["imagery"], pixel_size_m=read_settings(path).pixel_size_m,
            license=facts["license"], works_on=facts["works on"]))
    return models

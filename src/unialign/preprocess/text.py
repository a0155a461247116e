"""Text side of zero-shot evaluation: prompt templates per modality/dataset, and captions as they are.

A zero-shot classifier embeds every class name through several templates, normalises each embedding,
averages over the templates and renormalises (CLIP's prompt ensembling; LAION clip_benchmark). This
module only produces the strings: :func:`class_prompts` gives one list of prompts per class, in class
order. Retrieval uses the dataset's captions unchanged (:func:`captions`).

Templates are Python format strings with one ``{}`` slot (``{c}`` is accepted too) for the class name.
The wording here is our own, a handful per modality; pass your own list for a dataset-specific set.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Iterable, Mapping, Sequence

from unialign.errors import ConfigError

TEMPLATES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "default": (
        "a photo of a {}.",
        "a picture of the {}.",
        "an example of a {}.",
        "{}",
    ),
    "image": (
        "a photo of a {}.",
        "a close-up photo of the {}.",
        "a blurry photo of a {}.",
        "a bright photo of the {}.",
        "a cropped photo of a {}.",
        "a good photo of the {}.",
        "a drawing of a {}.",
    ),
    "video": (
        "a video of {}.",
        "a clip of someone doing {}.",
        "footage showing {}.",
        "a short video: {}.",
        "a person doing {}.",
    ),
    "depth": (
        "a depth map of a {}.",
        "a photo of a {}.",
        "an indoor scene of a {}.",
        "this room is a {}.",
        "a view inside a {}.",
    ),
    "pointcloud": (
        "a point cloud of a {}.",
        "a 3D model of a {}.",
        "a 3D scan of the {}.",
        "a rendering of a 3D {}.",
        "a CAD model of a {}.",
        "a small 3D shape of a {}.",
    ),
    "audio": (
        "the sound of a {}.",
        "a recording of a {}.",
        "audio of the {}.",
        "this is the sound of {}.",
        "a {} can be heard.",
    ),
})

# Dataset name -> template set (lower case); unknown datasets fall back to their modality's set.
DATASET_TEMPLATES: Mapping[str, str] = MappingProxyType({
    "imagenet": "image",
    "modelnet40": "pointcloud",
    "scanobjectnn": "pointcloud",
    "objaverse-lvis": "pointcloud",
    "shapenet": "pointcloud",
    "sun-rgbd": "depth",
    "nyu-depth-v2": "depth",
    "nyud": "depth",
    "esc50": "audio",
    "esc-50": "audio",
    "audioset": "audio",
    "vggsound": "audio",
    "ucf101": "video",
    "kinetics400": "video",
})

# Synonyms of modality names used in configs and datasets.
_ALIASES: Mapping[str, str] = MappingProxyType({
    "point": "pointcloud", "points": "pointcloud", "3d": "pointcloud", "shape": "pointcloud",
    "scene": "depth", "sound": "audio",
})


def templates_for(name: str | None = None) -> tuple[str, ...]:
    """The template set for a dataset or modality name (case-insensitive); "default" when None/unknown.

    Lookup order: a dataset in :data:`DATASET_TEMPLATES`, a modality (or alias) in :data:`TEMPLATES`.
    """
    if not name:
        return TEMPLATES["default"]
    key = name.lower()
    key = DATASET_TEMPLATES.get(key, _ALIASES.get(key, key))
    return TEMPLATES.get(key, TEMPLATES["default"])


def _fill(template: str, classname: str) -> str:
    if "{c}" in template:
        return template.replace("{c}", classname)
    if template.count("{}") != 1:
        raise ConfigError(f"template {template!r} needs exactly one '{{}}' (or '{{c}}') slot for the class name")
    return template.replace("{}", classname)


def clean_classname(name: str) -> str:
    """Class names as prompts want them: underscores to spaces, surrounding whitespace stripped."""
    return " ".join(name.replace("_", " ").split())


def prompts(classname: str, templates: Sequence[str] | str | None = None) -> list[str]:
    """Every template filled with `classname` -> list of prompts (templates: a list or a set name)."""
    if templates is None or isinstance(templates, str):
        templates = templates_for(templates)
    if not templates:
        raise ConfigError("no prompt templates given")
    name = clean_classname(classname)
    if not name:
        raise ConfigError(f"empty class name {classname!r}")
    return [_fill(t, name) for t in templates]


def class_prompts(classnames: Iterable[str], templates: Sequence[str] | str | None = None) -> list[list[str]]:
    """Prompts per class -> list (classes) of lists (templates), both in the given order."""
    out = [prompts(c, templates) for c in classnames]
    if not out:
        raise ConfigError("no class names given")
    return out


def captions(texts: Iterable[str]) -> list[str]:
    """Retrieval captions, passed through unchanged except surrounding whitespace; empty ones fail."""
    out = [str(t).strip() for t in texts]
    empty = [i for i, t in enumerate(out) if not t]
    if empty:
        raise ConfigError(f"empty caption(s) at index {empty[:10]}")
    return out


__all__ = ["DATASET_TEMPLATES", "TEMPLATES", "captions", "class_prompts", "clean_classname", "prompts", "templates_for"]

"""Prompt templates and captions for zero-shot evaluation."""

from __future__ import annotations

import pytest

from unialign.errors import ConfigError
from unialign.preprocess.text import TEMPLATES, captions, class_prompts, clean_classname, prompts, templates_for


def test_every_template_has_one_slot_and_sets_are_non_empty() -> None:
    for name in ("default", "image", "video", "depth", "pointcloud", "audio"):
        assert len(TEMPLATES[name]) >= 4, name
        for t in TEMPLATES[name]:
            assert t.count("{}") == 1, t
        assert len(set(TEMPLATES[name])) == len(TEMPLATES[name])  # no duplicates


def test_lookup_by_dataset_modality_alias_and_fallback() -> None:
    assert templates_for("ModelNet40") == TEMPLATES["pointcloud"]
    assert templates_for("ESC-50") == TEMPLATES["audio"]
    assert templates_for("point") == TEMPLATES["pointcloud"]
    assert templates_for("scene") == TEMPLATES["depth"]
    assert templates_for("nyu-depth-v2") == TEMPLATES["depth"]
    assert templates_for("no-such-set") == TEMPLATES["default"]
    assert templates_for(None) == TEMPLATES["default"]
    with pytest.raises(TypeError):
        TEMPLATES["image"] = ("x {}",)  # type: ignore[index]  # read-only mapping


def test_prompts_fill_the_class_name_in_template_order() -> None:
    assert prompts("dog", ["a {}.", "the {c} barks"]) == ["a dog.", "the dog barks"]
    assert prompts("potted_plant", "pointcloud")[0] == "a point cloud of a potted plant."
    assert prompts("  air   conditioner ", ["{}"]) == ["air conditioner"]
    assert clean_classname("flower_pot") == "flower pot"


def test_class_prompts_shape_and_order() -> None:
    out = class_prompts(["chair", "dog_bark", "rain"], "audio")
    assert len(out) == 3 and all(len(p) == len(TEMPLATES["audio"]) for p in out)
    assert out[1][0] == "the sound of a dog bark." and out[2][-1] == "a rain can be heard."
    assert class_prompts(["a"], ["{}"]) == [["a"]]


def test_bad_inputs_fail_loudly() -> None:
    with pytest.raises(ConfigError, match="slot"):
        prompts("dog", ["no slot here"])
    with pytest.raises(ConfigError, match="slot"):
        prompts("dog", ["{} and {}"])
    with pytest.raises(ConfigError, match="no prompt templates"):
        prompts("dog", [])
    with pytest.raises(ConfigError, match="empty class name"):
        prompts(" _ ", ["{}"])
    with pytest.raises(ConfigError, match="no class names"):
        class_prompts([], "image")


def test_captions_pass_through() -> None:
    caps = ["A dog barks twice.", "  rain on a tin roof "]
    assert captions(caps) == ["A dog barks twice.", "rain on a tin roof"]
    with pytest.raises(ConfigError, match="index \\[1\\]"):
        captions(["ok", "   "])

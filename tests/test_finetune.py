"""Fine-tuning (Table 5 / Table 7 protocol) on the tiny model and the generated world."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import write_world

import unialign
from unialign.data.manifest import DatasetConfig, ManifestDataset
from unialign.eval.zeroshot import ZeroShotClassifier, encode_views
from unialign.finetune import add_parser, finetune, tuned_parameter_names


@pytest.fixture
def world(tmp_path: Path) -> dict[str, dict]:
    return write_world(tmp_path / "world", per_class=4)


def _ds(spec: dict, model: unialign.UniAlign, train: bool) -> ManifestDataset:
    return ManifestDataset("sounds", DatasetConfig(**spec), model.config, train)


def test_adapters_touch_only_the_chosen_modality(tiny: unialign.UniAlign, world: dict) -> None:
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    grads = {n: p.requires_grad for n, p in tiny.named_parameters()}
    res = finetune(tiny, "audio", _ds(world["sounds"], tiny, True), epochs=2, batch_size=4, lr=1e-2, progress=False)
    tuned = set(tuned_parameter_names(tiny, "audio"))
    assert set(res.trainable_names) == tuned | {"head.weight", "head.bias"}
    changed = {k for k, v in tiny.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= tuned
    assert {f"moe.{i}.lora_B.audio" for i in range(2)} <= changed  # zero-initialised B moved
    assert not any(k.startswith("base.") for k in changed)  # frozen CLIP bit-identical
    assert {n: p.requires_grad for n, p in tiny.named_parameters()} == grads  # freezing undone
    # Hand count, tiny config: width D=64, 2 blocks, n=2 experts of rank r=4, E=32, C=2 classes.
    experts = 2 * (64 * 8 + 8 * 64)  # A (D, n r) + B (n r, D) per block
    routers = 2 * (64 * 2)  # (D, n) per block
    tokenizer = 16 * 64 * 8 + 64 + 16 * 64  # Conv1d(n_mels=16 -> 64, k=8) + bias + 16 learned positions
    head = 2 * 32 + 2
    assert res.num_trainable == experts + routers + tokenizer + head == 11_650


def test_paper_audio_count_is_1_8m() -> None:
    from unialign.config import load_model_config
    from unialign.report import build_for_counting

    model = build_for_counting(load_model_config("unialign-vitb16"))
    params = dict(model.named_parameters())
    total = sum(params[n].numel() for n in tuned_parameter_names(model, "audio"))
    assert total == 147_456 + 18_432 + 1_671_936 == 1_837_824


def test_epoch0_head_is_zero_shot(tiny: unialign.UniAlign, world: dict) -> None:
    train, val = _ds(world["sounds"], tiny, True), _ds(world["sounds"], tiny, False)
    res = finetune(tiny, "audio", train, val, epochs=0, batch_size=4, progress=False)
    zs = ZeroShotClassifier.from_text(tiny, train.classnames, train.templates)
    stacks = [val.get(i, 0, False)["inputs"] for i in range(len(val))]  # audio eval: 3 clips -> (3, T, F)
    x = encode_views(tiny, "audio", [s if s.ndim == 3 else s[None] for s in stacks])
    zs_logits, head_logits = zs.logits(x), res.head(x)
    torch.testing.assert_close(head_logits, zs_logits * (tiny.logit_scale / 100.0), rtol=1e-4, atol=1e-4)
    assert torch.equal(head_logits.argmax(1), zs_logits.argmax(1))
    labels = torch.tensor(val.labels)
    assert res.history[0]["val_acc1"] == pytest.approx(float((zs_logits.argmax(1) == labels).float().mean()))
    assert not res.head.bias.any()


@pytest.mark.parametrize(("mode", "lr"), [("adapters", 1e-2), ("linear", 1e-1)])
def test_training_fits_the_tiny_set(tiny: unialign.UniAlign, world: dict, mode: str, lr: float) -> None:
    train, val = _ds(world["sounds"], tiny, True), _ds(world["sounds"], tiny, False)
    before = {k: v.clone() for k, v in tiny.state_dict().items()}
    res = finetune(tiny, "audio", train, val, mode=mode, epochs=20, batch_size=8, lr=lr, progress=False)
    h = res.history  # random tiny CLIP: zero-shot is at chance (0.5), tuning must fit the 8 clips
    assert [r["epoch"] for r in h] == list(range(21))
    assert h[-1]["train_loss"] < 0.5 * h[1]["train_loss"]
    assert h[-1]["val_acc1"] == 1.0 > h[0]["val_acc1"]  # val = the train clips without augmentation
    assert h[-1]["train_acc1"] >= 0.75  # augmented running accuracy
    if mode == "linear":
        assert res.num_trainable == 2 * 32 + 2
        assert all(torch.equal(v, before[k]) for k, v in tiny.state_dict().items())


def test_seeded(tiny: unialign.UniAlign, world: dict) -> None:
    state = {k: v.clone() for k, v in tiny.state_dict().items()}
    heads = []
    for _ in range(2):
        tiny.load_state_dict(state)
        res = finetune(tiny, "audio", _ds(world["sounds"], tiny, True), epochs=1, batch_size=3, progress=False)
        heads.append(res.head.weight.clone())
    assert torch.equal(heads[0], heads[1])


def test_cmd_finetune_writes_checkpoint_and_head(tiny: unialign.UniAlign, world: dict, tmp_path: Path) -> None:
    import argparse

    ckpt = unialign.save_checkpoint(tiny, tmp_path / "ckpt")
    sounds = world["sounds"]
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["finetune", str(ckpt), "--modality", "audio", "--train", sounds["manifest"],
                              "--val", sounds["manifest"], "--classnames", ",".join(sounds["classnames"]),
                              "--out", str(tmp_path / "ft"), "--epochs", "1",
                              "--batch-size", "4", "--device", "cpu", "--no-progress"])
    assert args.func(args) == 0
    out = tmp_path / "ft"
    tuned = unialign.load(out)
    orig = unialign.load(ckpt)
    assert not torch.equal(tuned.moe[0].lora_B["audio"], orig.moe[0].lora_B["audio"])
    assert torch.equal(tuned.moe[0].lora_B["image"], orig.moe[0].lora_B["image"])
    head = load_file(str(out / "head.safetensors"))
    assert head["weight"].shape == (2, 32) and head["bias"].shape == (2,)
    info = json.loads((out / "finetune.json").read_text())
    assert info["num_trainable"] == 11_650 and len(info["history"]) == 2 and info["classnames"] == sounds["classnames"]

"""Configuration dataclasses, YAML in and out, named configs and dotted overrides.

Every architecture and experiment is data: a YAML file loaded into the frozen dataclasses below,
each field commented. Unknown keys and wrong types fail loudly with the dotted path of the key
and the file it came from, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from unialign.errors import ConfigError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VisionConfig:
    """CLIP vision transformer (ViT) architecture."""

    image_size: int = 224  # resolution the position embeddings were trained at
    patch_size: int = 16  # side P of the non-overlapping P x P patches
    width: int = 768  # token width D
    layers: int = 12  # number of transformer blocks
    heads: int = 12  # attention heads (width must divide by heads)
    mlp_ratio: float = 4.0  # FFN hidden width = mlp_ratio * width
    act: str = "quick_gelu"  # FFN activation: "quick_gelu" (OpenAI CLIP) or "gelu"
    ln_eps: float = 1e-5  # LayerNorm epsilon

    @property
    def grid(self) -> int:
        """Patches per side at the native resolution."""
        return self.image_size // self.patch_size


@dataclass(frozen=True)
class TextConfig:
    """The text tower: CLIP's text transformer (paper configuration) or a local Hugging Face encoder.

    ``tower: clip`` (default) is CLIP's causal text transformer, pooled at the end-of-text token; the
    fields from ``context_length`` to ``eot_token_id`` describe it. ``tower: hf`` is a Hugging Face
    encoder directory (e.g. a sentence-transformers model such as all-MiniLM-L6-v2) read with
    ``local_files_only=True``, pooled by ``pooling`` and mapped to the shared space by a
    ``text_projection``; the CLIP fields are then unused (see :mod:`unialign.backbone.text_towers`).
    """

    context_length: int = 77  # maximum tokens, including start and end tokens
    vocab_size: int = 49408  # BPE vocabulary size
    width: int = 512  # token width
    layers: int = 12  # number of transformer blocks
    heads: int = 8  # attention heads
    mlp_ratio: float = 4.0  # FFN hidden width = mlp_ratio * width
    act: str = "quick_gelu"  # FFN activation
    ln_eps: float = 1e-5  # LayerNorm epsilon
    eot_token_id: int = 49407  # pooled position: first occurrence of this id (CLIP's <|endoftext|>)
    tower: str = "clip"  # "clip": CLIP's text transformer (paper); "hf": the encoder at hf_path
    hf_path: str = ""  # tower "hf": local Hugging Face model directory (config.json, weights, tokenizer)
    pooling: str = "mean"  # tower "hf": "mean" (attention-masked, as sentence-transformers) or "cls"
    hf_width: int = 0  # tower "hf": the encoder's hidden size; 0 = read from hf_path/config.json

    def __post_init__(self) -> None:
        if self.tower not in ("clip", "hf"):
            raise ConfigError(f"clip.text.tower must be 'clip' or 'hf', got {self.tower!r}")
        if self.pooling not in ("mean", "cls"):
            raise ConfigError(f"clip.text.pooling must be 'mean' or 'cls', got {self.pooling!r}")
        if self.tower == "hf" and not self.hf_path:
            raise ConfigError("clip.text.tower is 'hf' but clip.text.hf_path is empty: name a local model directory")
        if self.hf_width < 0:
            raise ConfigError(f"clip.text.hf_width must be >= 0, got {self.hf_width}")


@dataclass(frozen=True)
class PreprocessConfig:
    """Image preprocessing constants that belong to the pretrained weights (never guessed)."""

    mean: tuple[float, float, float] = OPENAI_MEAN  # per-channel mean of [0, 1] RGB
    std: tuple[float, float, float] = OPENAI_STD  # per-channel std of [0, 1] RGB
    interpolation: str = "bicubic"  # resize interpolation
    resize_mode: str = "shortest"  # resize the shortest side to image_size, then centre-crop


@dataclass(frozen=True)
class ClipConfig:
    """A CLIP architecture: vision tower, text tower and the shared embedding width."""

    name: str = "custom"  # architecture name, e.g. "ViT-B-16"
    embed_dim: int = 512  # width of the shared (projected) embedding space
    vision: VisionConfig = field(default_factory=VisionConfig)
    text: TextConfig = field(default_factory=TextConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    init_logit_scale: float = math.log(1 / 0.07)  # log of CLIP's logit scale before weights load


@dataclass(frozen=True)
class MoEConfig:
    """Modality-aware mixture of LoRA experts (paper Eq. 5-9, Table 9)."""

    experts_per_modality: int = 2  # n experts in each modality's set B_M (Eq. 5)
    top_k: int = 2  # experts kept per token by the router
    rank: int = 4  # LoRA rank r of every expert
    alpha: float = 32.0  # LoRA scale; each expert's update is (alpha / r) * B A h (Eq. 9)
    routing: str = "grouped"  # "grouped": hierarchical, own set per modality; "global": Eq. 6
    init: str = "random"  # "random": Kaiming A; "clip": A from the frozen FFN's singular vectors
    renormalize: bool = False  # renormalise the kept top-k gates to sum to one (Mixtral style)

    def __post_init__(self) -> None:
        if self.routing not in ("grouped", "global"):
            raise ConfigError(f"moe.routing must be 'grouped' or 'global', got {self.routing!r}")
        if self.init not in ("random", "clip"):
            raise ConfigError(f"moe.init must be 'random' or 'clip', got {self.init!r}")
        if self.experts_per_modality < 1 or self.rank < 1:
            raise ConfigError("moe.experts_per_modality and moe.rank must be >= 1")
        if not 1 <= self.top_k <= self.experts_per_modality and self.routing == "grouped":
            raise ConfigError(
                f"moe.top_k={self.top_k} must lie in [1, experts_per_modality={self.experts_per_modality}]"
            )


@dataclass(frozen=True)
class TeacherConfig:
    """A partial-modal foundation model distilled into UniAlign (Eq. 13-15) and its feature projector."""

    modality: str  # which of the model's modalities the teacher sees
    dim: int  # width of the teacher's cached features
    projector: str = "mlp"  # "mlp" (default, supplement Table 2) or "linear" (ablation)
    hidden_dim: int = 0  # MLP hidden width; 0 means the teacher width
    source: str = ""  # what the teacher is, e.g. "ULIP (PointBERT), 3D <-> image/text"

    def __post_init__(self) -> None:
        if self.projector not in ("mlp", "linear"):
            raise ConfigError(f"teacher projector must be 'mlp' or 'linear', got {self.projector!r}")


@dataclass(frozen=True)
class ModelConfig:
    """A complete UniAlign model: frozen CLIP base, MoE-LoRA, modality tokenizers, teacher projectors."""

    name: str = "custom"  # model name
    clip: ClipConfig = field(default_factory=ClipConfig)  # base architecture (a name or a mapping in YAML)
    moe: MoEConfig = field(default_factory=MoEConfig)
    # modality name -> tokenizer options; "type" picks the registered tokenizer (defaults to the name)
    modalities: dict[str, dict[str, Any]] = field(default_factory=dict)
    teachers: dict[str, TeacherConfig] = field(default_factory=dict)  # teacher name -> projector spec
    grad_checkpointing: bool = False  # recompute each block in backward (use_reentrant=False)
    base: str = ""  # where the frozen CLIP weights came from (a path); "" = random init (tests)

    def __post_init__(self) -> None:
        for name, spec in self.modalities.items():
            if name == "text":
                raise ConfigError("'text' is the anchor modality of the frozen text tower; do not list it")
            if not isinstance(spec, Mapping):
                raise ConfigError(f"modalities.{name} must be a mapping of tokenizer options")
        for tname, teacher in self.teachers.items():
            if teacher.modality not in self.modalities and teacher.modality != "text":
                raise ConfigError(
                    f"teachers.{tname}.modality={teacher.modality!r} is not one of {sorted(self.modalities)}"
                )


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type `tp`, failing with the dotted key path `where`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item_tp = args[0]
        if len(args) != 2 or args[1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
        return tuple(_convert(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool):
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: Mapping[str, Any], where: str = "") -> Any:
    """Build dataclass `cls` from a mapping, rejecting unknown keys (named by their dotted path)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if cls is ModelConfig and key == "clip" and isinstance(value, str):
            value = get_clip_config(value)
        kwargs[key] = _convert(hints[key], value, path)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data (YAML-safe) form of a config dataclass."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


# ---------------------------------------------------------------------------------------------
# files, names and overrides


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _package_configs(sub: str) -> dict[str, Path]:
    root = resources.files("unialign") / "model_configs"
    folder = Path(str(root / sub)) if sub else Path(str(root))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def list_architectures() -> list[str]:
    """Names of the bundled CLIP architectures (``ViT-B-16``, ``ViT-B-32``, ``ViT-L-14``, tiny test ones)."""
    return sorted(_package_configs("arch"))


def list_models() -> list[str]:
    """Names of the bundled UniAlign model configurations."""
    return sorted(_package_configs(""))


def get_clip_config(name: str) -> ClipConfig:
    """The bundled CLIP architecture called `name`."""
    table = _package_configs("arch")
    if name not in table:
        raise ConfigError(f"unknown CLIP architecture {name!r}; known: {sorted(table)}")
    return from_dict(ClipConfig, _read_yaml(table[name]), f"arch {name}")


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `update` into a copy of `base` (mappings merge, anything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["moe.top_k=1", "modalities.audio.n_mels=64"]`` into a nested mapping (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def model_config_dict(name_or_path: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Raw mapping of a model config given as a bundled name, a YAML path or a mapping; plus its origin."""
    if isinstance(name_or_path, Mapping):
        return dict(name_or_path), "<mapping>"
    text = str(name_or_path)
    table = _package_configs("")
    if text in table:
        return _read_yaml(table[text]), f"model {text}"
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        data = _read_yaml(path)
        return (data["model"] if isinstance(data.get("model"), Mapping) else data), str(path)
    raise ConfigError(f"unknown model {text!r}: not a bundled name ({sorted(table)}) nor a config file")


def load_model_config(
    name_or_path: str | Path | Mapping[str, Any] | ModelConfig, overrides: Mapping[str, Any] | None = None
) -> ModelConfig:
    """Load a :class:`ModelConfig` from a bundled name, a YAML file or a mapping, then apply overrides.

    A YAML file may hold the model config at its top level or under a ``model:`` key (experiment files).
    """
    if isinstance(name_or_path, ModelConfig):
        data, origin = to_dict(name_or_path), "<ModelConfig>"
    else:
        data, origin = model_config_dict(name_or_path)
    if overrides:
        if isinstance(data.get("clip"), str) and isinstance(overrides.get("clip"), Mapping):
            data["clip"] = to_dict(get_clip_config(data["clip"]))
        data = deep_merge(data, overrides)
    try:
        return from_dict(ModelConfig, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def save_config(cfg: Any, path: str | Path) -> None:
    """Write a config dataclass as YAML."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))

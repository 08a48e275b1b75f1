"""Loading CLIP (open_clip) for the knowledge bank (text tower) and the backbone (visual tower).

`clip.pretrained` selects the weights:
- an open_clip pretrained tag ("openai"): fetched once into open_clip's cache, then loaded like a file;
- a local file: a state dict (`torch.save` of a dict of tensors, `.bin`/`.pt`/`.pth`, or `.safetensors`),
  read with `torch.load(weights_only=True)`, or OpenAI's original TorchScript archive (`RN50.pt`), which
  is detected and read with `torch.jit.load` (what open_clip's `load_openai_model` does);
- "random": open_clip's random init of `clip.model`, seeded with `RANDOM_INIT_SEED` whatever the caller's RNG
  state, so every stage (embed-prompts' text tower, train's visual tower) builds the same model without a
  weights file, for any model name; it equals the file `init-clip --seed 0` writes (`random_init_clip`);
- None: random init seeded by the caller's torch RNG (what rebuilding a trained model uses before loading it).

Why not `open_clip.create_model(pretrained=path)` or `load_openai_model(path)`: the first refuses TorchScript
archives under weights_only (OpenAI's files are TorchScript), the second falls back to an unrestricted
`torch.load` for anything else. Here the model is built from its open_clip config by name and every kind
of file goes through one `load_state_dict(strict=True)`, so the configured model name is checked against
the weights, and `clip.image_size` can resize the attention-pool positional embedding.

OpenAI weights were trained with QuickGELU: tags and TorchScript archives get it automatically; a local
state dict of OpenAI weights needs the `-quickgelu` model name (a warning says so).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.config import ClipConfig

log = logging.getLogger(__name__)

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[1] / "model_configs"
# OpenAI CLIP's image normalisation (open_clip's default for models without a tag of their own)
CLIP_MEAN: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_MEAN)
CLIP_STD: tuple[float, float, float] = tuple(open_clip.OPENAI_DATASET_STD)
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
RANDOM_INIT = "random"  # clip.pretrained value: a seeded random init instead of weights
RANDOM_INIT_SEED = 0
# integer entries of OpenAI's TorchScript state dicts that are not weights
_OPENAI_JIT_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def register_model_configs() -> list[str]:
    """Make our model configs (`hoi_pipeline/model_configs/*.json`, e.g. hoi-tiny-rn) known to open_clip.

    Idempotent: the folder is added only while one of its names is unknown. Returns the names.
    """
    names = sorted(path.stem for path in MODEL_CONFIG_DIR.glob("*.json"))
    known = set(open_clip.list_models())
    if any(name not in known for name in names):
        open_clip.add_model_config(MODEL_CONFIG_DIR)
    return names


def is_torchscript_archive(path: str | os.PathLike) -> bool:
    """True for a TorchScript archive (OpenAI's original CLIP .pt files), False for other files.

    The test torch.load itself uses: a zip whose top folder holds `constants.pkl`.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def pretrained_identity(clip: ClipConfig) -> str:
    """What `clip.pretrained` stands for, to record in outputs: the tag, or the file's name and digest."""
    if clip.pretrained is None:
        return "random-init"
    if clip.pretrained == RANDOM_INIT:
        return f"random-init:seed{RANDOM_INIT_SEED}"
    path = Path(clip.pretrained)
    if path.is_file():
        return f"file:{path.name}:sha256:{file_digest(path)}"
    return f"open_clip:{clip.model}:{clip.pretrained}"


def load_clip(clip: ClipConfig, device: str | torch.device = "cpu") -> CLIP:
    """Build `clip.model` with the weights `clip.pretrained` names; fp32, eval mode, on `device`.

    Raises FileNotFoundError for a missing local file or weights that cannot be fetched, ValueError for
    an unknown model name or tag, an unreadable file, or weights that do not fit the model.
    """
    register_model_configs()
    model_config = open_clip.get_model_config(clip.model)
    if model_config is None:
        close = difflib.get_close_matches(clip.model, open_clip.list_models(), n=5, cutoff=0.5)
        raise ValueError(
            f"clip.model: '{clip.model}' is not an open_clip model name (close matches: {close}; "
            "all names: open_clip.list_models())"
        )
    _check_image_size(clip, model_config)
    options: dict = {"force_image_size": clip.image_size} if clip.image_size is not None else {}

    if clip.pretrained is None:
        log.debug("CLIP %s: random init (no clip.pretrained)", clip.model)
        model = open_clip.create_model(clip.model, pretrained=None, **options)
        return _finish(model, device)
    if clip.pretrained == RANDOM_INIT:
        log.info("CLIP %s: random init with seed %d (clip.pretrained: %s)", clip.model, RANDOM_INIT_SEED, RANDOM_INIT)
        return _finish(random_init_clip(clip.model, RANDOM_INIT_SEED, **options), device)

    path, tag_config = _weights_file(clip)
    if tag_config is not None:
        options["force_preprocess_cfg"] = {
            key: tag_config[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in tag_config
        }
        if tag_config.get("quick_gelu", False) and not model_config.get("quick_gelu", False):
            log.info("CLIP %s: the '%s' weights were trained with QuickGELU; using it", clip.model, clip.pretrained)
            options["force_quick_gelu"] = True
    if is_torchscript_archive(path):
        if not model_config.get("quick_gelu", False):
            log.info("CLIP %s: %s is an OpenAI TorchScript archive; building with QuickGELU", clip.model, path)
        options["force_quick_gelu"] = True
    elif tag_config is None and _is_openai_gelu_name(clip.model, model_config):
        log.warning(
            "clip.model '%s' uses GELU but OpenAI's CLIP weights need QuickGELU: if %s holds OpenAI weights, "
            "set clip.model: %s-quickgelu",
            clip.model,
            path,
            clip.model,
        )
    state = read_clip_weights(path)
    with _without_random_init_warning():
        model = open_clip.create_model(clip.model, pretrained=None, **options)
    _load_state(model, state, path, clip.model)
    log.info("CLIP %s: loaded weights from %s", clip.model, path)
    return _finish(model, device)


def random_init_clip(model_name: str, seed: int = RANDOM_INIT_SEED, **options) -> CLIP:
    """open_clip's random init of `model_name`, a function of `seed` only (the caller's RNG is left as it was)."""
    register_model_configs()
    with torch.random.fork_rng(devices=[]), _without_random_init_warning():
        torch.manual_seed(seed)
        return open_clip.create_model(model_name, pretrained=None, **options)


def read_clip_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a CLIP weights file (state dict, safetensors, or OpenAI TorchScript archive)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip.pretrained: weights file '{path}' not found")
    if is_torchscript_archive(path):
        try:
            archive = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as error:
            raise ValueError(f"clip.pretrained: {path}: unreadable TorchScript archive ({error})") from error
        state = dict(archive.state_dict())
        for key in _OPENAI_JIT_EXTRAS:
            state.pop(key, None)
    elif path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as error:  # safetensors raises its own error types
            raise ValueError(f"clip.pretrained: {path}: not a readable safetensors file ({error})") from error
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # unpickling, zip and weights_only refusals all mean "not a weights file"
            message = f"clip.pretrained: {path}: not a weights file torch.load can read safely ({error})"
            raise ValueError(message) from error
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"clip.pretrained: {path}: expected a dict of tensors (a model state dict)")
    if all(key.startswith("module.") for key in state):  # saved from DistributedDataParallel
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def clip_image_size(model: CLIP) -> int:
    """Side of the square input the visual tower was built for (pixels)."""
    size = model.visual.image_size
    if isinstance(size, (tuple, list)):
        if size[0] != size[1]:
            raise ValueError(f"CLIP visual input {size} is not square")
        size = size[0]
    return int(size)


def clip_mean_std(model: CLIP | None = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel image mean and std (RGB, [0, 1] scale) the model expects; OpenAI's without a model."""
    if model is None:
        return CLIP_MEAN, CLIP_STD
    mean = getattr(model.visual, "image_mean", None) or CLIP_MEAN
    std = getattr(model.visual, "image_std", None) or CLIP_STD
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def clip_tokenizer(model_name: str):
    """open_clip's tokenizer of a model (BPE vocab ships with open_clip, nothing is downloaded)."""
    register_model_configs()
    return open_clip.get_tokenizer(model_name)


# --------------------------------------------------------------------------------------------
# helpers


def _weights_file(clip: ClipConfig) -> tuple[Path, dict | None]:
    """Local path of the weights, and the open_clip pretrained config when `clip.pretrained` is a tag."""
    value = str(clip.pretrained)
    path = Path(value).expanduser()
    if path.is_file():
        return path, None
    if "/" in value or os.sep in value or path.suffix in WEIGHT_SUFFIXES:
        raise FileNotFoundError(
            f"clip.pretrained: weights file '{value}' not found (relative paths start at {Path.cwd()})"
        )
    tag_config = open_clip.get_pretrained_cfg(clip.model, value)
    if not tag_config:
        tags = open_clip.list_pretrained_tags_by_model(clip.model)
        raise ValueError(
            f"clip.pretrained: '{value}' is neither an existing file nor a pretrained tag of '{clip.model}' "
            f"(its tags: {tags or 'none'})"
        )
    try:
        downloaded = open_clip.download_pretrained(tag_config)
    except Exception as error:  # network errors come in many types (urllib, requests, huggingface_hub)
        source = tag_config.get("url") or f"https://huggingface.co/{tag_config.get('hf_hub', '').rstrip('/')}"
        raise FileNotFoundError(
            f"clip.pretrained: could not fetch the '{value}' weights of {clip.model} ({type(error).__name__}: "
            f"{error}). Without internet access, download them elsewhere ({source}) and set "
            "`clip.pretrained: /path/to/file` (an OpenAI TorchScript .pt works as is; for an OpenAI "
            "state dict use the -quickgelu model name)"
        ) from error
    if not downloaded or not Path(downloaded).is_file():
        raise FileNotFoundError(f"clip.pretrained: fetching the '{value}' weights of {clip.model} gave no file")
    return Path(downloaded), tag_config


def _is_openai_gelu_name(name: str, model_config: dict) -> bool:
    return "openai" in open_clip.list_pretrained_tags_by_model(name) and not model_config.get("quick_gelu", False)


def _check_image_size(clip: ClipConfig, model_config: dict) -> None:
    is_resnet = isinstance(model_config.get("vision_cfg", {}).get("layers"), (list, tuple))
    if clip.image_size is not None and is_resnet and clip.image_size % 32:
        raise ValueError(f"clip.image_size: {clip.image_size} must be a multiple of 32 for {clip.model}")


def _load_state(model: CLIP, state: dict[str, torch.Tensor], path: Path, name: str) -> None:
    state = dict(state)
    # a TorchScript module's state dict also holds non-persistent buffers (open_clip's attn_mask)
    persistent = set(model.state_dict())
    for key, _ in model.named_buffers():
        if key not in persistent:
            state.pop(key, None)
    for key in ("logit_scale", "logit_bias"):  # scalar vs 1-element parameter across versions
        target = getattr(model, key, None)
        if key in state and target is not None and state[key].numel() == target.numel():
            state[key] = state[key].reshape(target.shape)
    _resize_attnpool_positional_embedding(state, model)
    open_clip.model.resize_pos_embed(state, model)  # ViT towers
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        message = str(error)
        if len(message) > 1500:
            message = message[:1500] + " ..."
        raise ValueError(f"clip.pretrained: {path}: weights do not fit clip.model '{name}': {message}") from error


def _resize_attnpool_positional_embedding(state: dict[str, torch.Tensor], model: CLIP) -> None:
    """Interpolate a ModifiedResNet attention-pool positional embedding to the model's grid (clip.image_size)."""
    key = "visual.attnpool.positional_embedding"
    attnpool = getattr(model.visual, "attnpool", None)
    if key not in state or attnpool is None or state[key].shape == attnpool.positional_embedding.shape:
        return
    source = state[key]  # (1 + g0 * g0, C)
    g0 = math.isqrt(source.shape[0] - 1)
    g1 = math.isqrt(attnpool.positional_embedding.shape[0] - 1)
    if g0 * g0 != source.shape[0] - 1 or source.shape[1] != attnpool.positional_embedding.shape[1]:
        return  # not a square grid of the same width: let load_state_dict report the mismatch
    grid = source[1:].float().reshape(1, g0, g0, -1).permute(0, 3, 1, 2)  # (1, C, g0, g0)
    grid = F.interpolate(grid, size=(g1, g1), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(g1 * g1, -1)  # (g1 * g1, C)
    state[key] = torch.cat([source[:1].float(), grid]).to(source.dtype)
    log.info("resized the attention-pool positional embedding from a %dx%d to a %dx%d grid", g0, g0, g1, g1)


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _without_random_init_warning() -> Iterator[None]:
    """Mute open_clip's 'initialized randomly' warning while we build a model whose weights we load next."""
    root = logging.getLogger()
    dropper = _DropRandomInitWarning()
    root.addFilter(dropper)
    try:
        yield
    finally:
        root.removeFilter(dropper)


def _finish(model: CLIP, device: str | torch.device) -> CLIP:
    return model.float().to(device).eval()

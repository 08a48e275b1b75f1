"""CLIP loading: our tiny config, random-init files, TorchScript archives, weights_only, clear errors."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import open_clip
import pytest
import torch

from hoi_pipeline.artifacts import file_digest
from hoi_pipeline.config import ClipConfig
from hoi_pipeline.modeling import clip_loading
from hoi_pipeline.modeling.clip_loading import (
    CLIP_MEAN,
    CLIP_STD,
    clip_image_size,
    clip_mean_std,
    clip_tokenizer,
    is_torchscript_archive,
    load_clip,
    pretrained_identity,
    read_clip_weights,
    register_model_configs,
)
from hoi_pipeline.stages import init_clip

TINY = "hoi-tiny-rn"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny_random-init.pt"
    init_clip.run(model_name=TINY, seed=0, out=path)
    return path


def _tokens(texts: list[str]) -> torch.Tensor:
    return clip_tokenizer(TINY)(texts)


class Unsafe:
    """A pickled object that weights_only loading must refuse."""


def test_register_model_configs_is_idempotent() -> None:
    names = register_model_configs()
    assert {TINY, f"{TINY}-quickgelu"} <= set(names) <= set(open_clip.list_models())
    paths = list(open_clip.factory._MODEL_CONFIG_PATHS)
    assert register_model_configs() == names
    assert open_clip.factory._MODEL_CONFIG_PATHS == paths  # nothing added the second time
    config = open_clip.get_model_config(TINY)
    # attention-pool grid = image_size / 32 (ModifiedResNet downsamples 32x)
    assert config["vision_cfg"]["image_size"] % 32 == 0
    assert not config.get("quick_gelu", False) and open_clip.get_model_config(f"{TINY}-quickgelu")["quick_gelu"]


def test_random_init_file_loads_as_saved_and_runs(tiny_weights: Path) -> None:
    saved = torch.load(tiny_weights, weights_only=True)
    assert isinstance(saved, dict) and all(isinstance(v, torch.Tensor) for v in saved.values())
    model = load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights)))
    assert not model.training
    state = model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[key], saved[key]) for key in saved)
    assert all(p.dtype == torch.float32 for p in model.parameters())

    size = clip_image_size(model)
    assert size == 192
    images = torch.randn(3, 3, size, size)
    with torch.no_grad():
        image_features = model.encode_image(images)
        text_features = model.encode_text(_tokens(["a person riding a horse", "a person and an apple"]))
    assert image_features.shape == (3, 64) and text_features.shape == (2, 64)
    assert torch.isfinite(image_features).all() and torch.isfinite(text_features).all()
    assert not torch.allclose(text_features[0], text_features[1])


def test_init_clip_is_seeded_and_leaves_the_caller_rng_alone(tmp_path: Path) -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    init_clip.run(model_name=TINY, seed=7, out=tmp_path / "a.pt")
    assert torch.equal(torch.rand(3), expected_next)
    init_clip.run(model_name=TINY, seed=7, out=tmp_path / "b.pt")
    init_clip.run(model_name=TINY, seed=8, out=tmp_path / "c.pt")
    a, b, c = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in "abc")
    key = "visual.conv1.weight"
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[key], c[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt", "c.pt"]  # no temporary files left


def test_init_clip_rejects_an_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not-a-model"):
        init_clip.run(model_name="not-a-model", seed=0, out=tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_random_init_without_weights() -> None:
    model = load_clip(ClipConfig(model=TINY, pretrained=None))
    assert model.text_projection.shape == (64, 64) and not model.training


def test_torchscript_archive_is_detected_and_loaded_with_quickgelu(tmp_path: Path, tiny_weights: Path) -> None:
    # OpenAI's original files are TorchScript archives of QuickGELU models; script a tiny one the same way
    register_model_configs()
    torch.manual_seed(1)
    original = open_clip.create_model(f"{TINY}-quickgelu").eval()
    archive = tmp_path / "tiny_openai_style.pt"
    torch.jit.script(original).save(str(archive))
    (tmp_path / "plain.txt").write_text("not a zip")

    assert is_torchscript_archive(archive)
    assert not is_torchscript_archive(tiny_weights)  # torch.save zip without constants.pkl
    assert zipfile.is_zipfile(tiny_weights)
    assert not is_torchscript_archive(tmp_path / "plain.txt")

    # the configured name is the GELU variant: the archive makes it QuickGELU, outputs match exactly
    model = load_clip(ClipConfig(model=TINY, pretrained=str(archive)))
    assert isinstance(model.transformer.resblocks[0].mlp.gelu, open_clip.model.QuickGELU)
    images = torch.randn(2, 3, 192, 192)
    tokens = _tokens(["a person holding a cup", "a person and a dog"])
    with torch.no_grad():
        assert torch.equal(model.encode_image(images), original.encode_image(images))
        assert torch.equal(model.encode_text(tokens), original.encode_text(tokens))


def test_state_dict_wrappers_and_safetensors(tmp_path: Path, tiny_weights: Path) -> None:
    from safetensors.torch import save_file

    state = torch.load(tiny_weights, weights_only=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "ddp.pt")
    save_file(state, str(tmp_path / "tiny.safetensors"))
    for name in ("ddp.pt", "tiny.safetensors"):
        loaded = read_clip_weights(tmp_path / name)
        assert loaded.keys() == state.keys()
        assert all(torch.equal(loaded[k], state[k]) for k in state)
        model = load_clip(ClipConfig(model=TINY, pretrained=str(tmp_path / name)))
        assert torch.equal(model.visual.conv1.weight, state["visual.conv1.weight"])


def test_local_files_are_read_with_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "unsafe.pt"
    torch.save({"visual.conv1.weight": torch.zeros(1), "payload": Unsafe()}, path)
    with pytest.raises(ValueError, match="unsafe.pt"):
        load_clip(ClipConfig(model=TINY, pretrained=str(path)))


def test_image_size_override_resizes_the_attention_pool(tiny_weights: Path) -> None:
    saved = torch.load(tiny_weights, weights_only=True)["visual.attnpool.positional_embedding"]  # (1 + 6*6, C)
    model = load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights), image_size=256))
    assert clip_image_size(model) == 256
    resized = model.visual.attnpool.positional_embedding
    assert resized.shape == (1 + 8 * 8, saved.shape[1])
    assert torch.equal(resized[0], saved[0])  # the class token position is kept
    with torch.no_grad():
        assert model.encode_image(torch.randn(1, 3, 256, 256)).shape == (1, 64)
    with pytest.raises(ValueError, match="multiple of 32"):
        load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights), image_size=200))


def test_normalisation_constants(tiny_weights: Path) -> None:
    assert clip_mean_std() == (CLIP_MEAN, CLIP_STD)
    assert CLIP_MEAN == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert CLIP_STD == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    model = load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights)))
    assert clip_mean_std(model) == (CLIP_MEAN, CLIP_STD)


def test_pretrained_identity(tiny_weights: Path) -> None:
    assert pretrained_identity(ClipConfig(model=TINY, pretrained=None)) == "random-init"
    identity = pretrained_identity(ClipConfig(model=TINY, pretrained=str(tiny_weights)))
    assert identity == f"file:{tiny_weights.name}:sha256:{file_digest(tiny_weights)}"
    assert pretrained_identity(ClipConfig(model="RN50", pretrained="openai")) == "open_clip:RN50:openai"


# --------------------------------------------------------------------------------------------
# errors


def test_missing_local_file_names_the_file_and_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "weights" / "RN50.pt"
    with pytest.raises(FileNotFoundError, match="clip.pretrained") as info:
        load_clip(ClipConfig(model=TINY, pretrained=str(missing)))
    assert str(missing) in str(info.value)
    with pytest.raises(FileNotFoundError, match="RN50.pt"):  # a bare file name is a path too
        load_clip(ClipConfig(model=TINY, pretrained="RN50.pt"))


def test_unknown_model_and_tag() -> None:
    with pytest.raises(ValueError, match="clip.model.*hoi-tiny-rm"):
        load_clip(ClipConfig(model="hoi-tiny-rm", pretrained=None))
    with pytest.raises(ValueError, match="clip.pretrained.*opnai.*openai"):  # lists RN50's tags
        load_clip(ClipConfig(model="RN50", pretrained="opnai"))


def test_hub_failure_says_how_to_use_a_local_file(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(open_clip, "download_pretrained", offline)
    with pytest.raises(FileNotFoundError) as info:
        load_clip(ClipConfig(model="RN50", pretrained="openai"))
    message = str(info.value)
    assert "Network is unreachable" in message and "clip.pretrained: /path/to/file" in message


def test_unreadable_and_mismatched_files(tmp_path: Path, tiny_weights: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint" * 10)
    with pytest.raises(ValueError, match="garbage.pt"):
        load_clip(ClipConfig(model=TINY, pretrained=str(garbage)))

    state = torch.load(tiny_weights, weights_only=True)
    del state["visual.conv1.weight"]
    partial = tmp_path / "partial.pt"
    torch.save(state, partial)
    with pytest.raises(ValueError, match="(?s)do not fit clip.model 'hoi-tiny-rn'.*visual.conv1.weight"):
        load_clip(ClipConfig(model=TINY, pretrained=str(partial)))

    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="dict of tensors"):
        read_clip_weights(tmp_path / "list.pt")


def test_openai_name_without_quickgelu_warns_for_a_local_state_dict(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # pretend the tiny config were an OpenAI model name (RN50 itself is too big for a unit test)
    monkeypatch.setattr(open_clip, "list_pretrained_tags_by_model", lambda name: ["openai"])
    with caplog.at_level(logging.WARNING, logger=clip_loading.__name__):
        load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights)))
    assert any(f"{TINY}-quickgelu" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=clip_loading.__name__):
        load_clip(ClipConfig(model=f"{TINY}-quickgelu", pretrained=str(tiny_weights)))
    assert not [r for r in caplog.records if r.levelno == logging.WARNING and r.name == clip_loading.__name__]


def test_cli_init_clip_and_error_exit_code(tmp_path: Path) -> None:
    from hoi_pipeline import cli

    out = tmp_path / "models" / "tiny.pt"
    assert cli.main(["init-clip", "--model", TINY, "--seed", "3", "--out", str(out)]) == 0
    assert out.is_file()
    annotations = tmp_path / "missing.json"
    config = '{"clip": {"model": "hoi-tiny-rn", "pretrained": "nowhere/tiny.pt", "device": "cpu"}}'
    out_bank = str(tmp_path / "b.h5")
    args = ["embed-prompts", "--config-json", config, "--annotations", str(annotations), "--out", out_bank]
    assert cli.main(args) == 2
    assert not (tmp_path / "b.h5").exists()


def test_the_tiny_demo_tower_stays_small(tiny_weights: Path) -> None:
    """The demo trains a few hundred iterations at batch 8 on 2 CPU cores: keep the tiny tower cheap.

    (Its speed is measured by the benchmarks, not asserted here: a timed test fails on a busy machine.)
    """
    model = load_clip(ClipConfig(model=TINY, pretrained=str(tiny_weights)))
    assert sum(p.numel() for p in model.visual.parameters()) < 3_000_000

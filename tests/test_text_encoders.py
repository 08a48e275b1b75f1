"""The knowledge bank from RoBERTa (Table 2 Exp 10): a tiny random-init RoBERTa folder made offline."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hoi_pipeline.checkpoints import load_trained_model
from hoi_pipeline.config import ClipConfig, LossConfig, ModelConfig, TrainConfig
from hoi_pipeline.knowledge_bank_file import check_text_encoder, load_knowledge_bank
from hoi_pipeline.modeling.text_encoders import load_roberta
from hoi_pipeline.prompts import build_prompts
from hoi_pipeline.stages import embed_prompts
from hoi_pipeline.stages import train as train_stage
from test_train import VOCAB, make_split

transformers = pytest.importorskip("transformers", reason="the RoBERTa bank needs the [roberta] extra")

HIDDEN = 16
CLIP = ClipConfig(model="hoi-tiny-rn", pretrained=None, image_size=64)


def write_tiny_roberta(folder: Path, texts: list[str]) -> Path:
    """A random-init 1-layer RoBERTa and a byte-level BPE tokenizer trained on `texts`, saved like roberta-base."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=280, min_frequency=1,  # few merges: prompts differ in length
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])  # fmt: skip
    bpe.save_model(str(folder))
    tokenizer = RobertaTokenizerFast(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"))
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def roberta_split(tmp_path_factory) -> tuple[dict[str, Path], Path]:
    root = tmp_path_factory.mktemp("roberta")
    split = make_split(root / "split", num_images=4)
    folder = write_tiny_roberta(root / "roberta-tiny", build_prompts(VOCAB, CLIP.template))
    bank = root / "roberta_bank.h5"
    model = ModelConfig(bank_source="roberta", bank_text_model=str(folder))
    embed_prompts.run(clip=CLIP, annotations=split["annotations"], split="train", out=bank, model=model)
    return {**split, "bank": bank}, folder


def test_bank_is_the_mean_of_last_hidden_states(roberta_split):
    split, folder = roberta_split
    bank = load_knowledge_bank(split["bank"])
    assert bank.embeddings.shape == (VOCAB.num_classes, HIDDEN)
    assert bank.attrs["text_encoder"] == "roberta" and bank.attrs["text_model"] == str(folder)
    assert "model.safetensors:sha256:" in bank.attrs["text_model_identity"]
    assert "clip_model" not in bank.attrs
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, rtol=1e-5)
    # each prompt alone (no padding): mean over its tokens, <s> and </s> included, then L2-normalised
    model, tokenizer = load_roberta(folder)
    lengths = [len(tokenizer(p)["input_ids"]) for p in bank.prompts]
    assert len(set(lengths)) > 1  # the batch was padded, so the mask mattered
    for row, prompt in enumerate(bank.prompts):
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        assert ids[0, 0] == tokenizer.bos_token_id and ids[0, -1] == tokenizer.eos_token_id
        with torch.no_grad():
            hidden = model(input_ids=ids).last_hidden_state[0]  # (T, D)
        expected = torch.nn.functional.normalize(hidden.mean(dim=0), dim=0)
        np.testing.assert_allclose(bank.embeddings[row], expected.numpy(), rtol=1e-4, atol=1e-5)
    check_text_encoder(bank, "roberta")
    with pytest.raises(ValueError, match="roberta text encoder but model.bank_source is 'clip'"):
        check_text_encoder(bank, "clip")


def test_exp10_fpn_backbone_with_roberta_bank_trains(roberta_split, tmp_path):
    """Exp 10: RN50-FPN(COCO) + the 16-d RoBERTa bank + the full model, a few steps through the stage."""
    from test_detector_fpn import save_random_detector
    from torchvision.models.detection import fasterrcnn_resnet50_fpn_v2

    torch.set_num_threads(1)
    split, _ = roberta_split
    weights = tmp_path / "detector.pth"
    save_random_detector(fasterrcnn_resnet50_fpn_v2, weights)
    model = ModelConfig(backbone_source="coco_detector_fpn", backbone_weights=str(weights), bank_source="roberta",
                        hidden_dim=16, spatial_dim=8, input_size=64)  # fmt: skip
    train = TrainConfig(iterations=2, batch_size=2, num_workers=0, precision="fp32")
    train_stage.run(clip=CLIP, model=model, loss=LossConfig(relatedness_warmup=1), train=train, split="train",
                    out_dir=tmp_path / "run", **split)  # fmt: skip
    net, info = load_trained_model(tmp_path / "run" / "model.pt")
    assert net.bank.dim == HIDDEN and net.backbone.embed_dim == HIDDEN  # the attention pool outputs the bank width
    bank = torch.from_numpy(load_knowledge_bank(split["bank"]).embeddings)
    assert not torch.equal(net.bank.weight, bank)  # L_g trained W_T
    losses = (tmp_path / "run" / "losses.csv").read_text().splitlines()
    assert len(losses) == 3 and all("nan" not in line for line in losses)


def test_clip_backbone_with_roberta_bank_projects(roberta_split):
    """A CLIP backbone (64-d) with the 16-d RoBERTa bank: s_g and the KTN project into the bank's space."""
    from hoi_pipeline.modeling.model import build_model

    model = build_model(clip=CLIP, model=ModelConfig(bank_source="roberta", hidden_dim=8, spatial_dim=8),
                        vocabulary=VOCAB, bank_embeddings=torch.randn(VOCAB.num_classes, HIDDEN))  # fmt: skip
    assert model.hoi_recognition.projection.weight.shape == (HIDDEN, 64)
    out = model(torch.randn(1, 3, 64, 64), [torch.tensor([[1.0, 1, 30, 60], [20, 20, 60, 50]])], [torch.tensor([0, 1])])
    (out.global_logits.sum() + out.pair_logits.sum()).backward()
    assert model.hoi_recognition.projection.weight.grad.abs().sum() > 0


def test_missing_folder_or_package_is_a_one_line_error(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="roberta-base") as error:
        load_roberta(tmp_path / "absent")
    assert "\n" not in str(error.value) and str(tmp_path / "absent") in str(error.value)
    with pytest.raises(FileNotFoundError, match="bank_text_model is not set"):
        load_roberta(None)
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.json").write_text('{"model_type": "roberta"}')
    with pytest.raises(FileNotFoundError, match="not a complete model folder"):
        load_roberta(tmp_path / "partial")
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r'pip install -e "\.\[roberta\]"'):
        load_roberta(tmp_path / "partial")

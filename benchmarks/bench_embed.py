"""Time of the embed-prompts stage: one CLIP text embedding per HOI class (the knowledge bank W_T).

The CLIP model is randomly initialised (no download), saved by the init-clip stage and loaded
through `clip.pretrained` like real weights; the stage runs on the HICO-DET test annotations (600
classes) when the shared copy exists, else on a HICO-DET-sized synthetic split. Prints the stage's
wall time (loading the model included) and the text tower's prompts/s.

    python benchmarks/bench_embed.py --model RN50 --device cpu
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


from bench_common import Measurement, device_name, hicodet_test_annotations, peak_memory_mib, synchronize
from hoi_pipeline.config import ClipConfig
from hoi_pipeline.datasets import load_annotations
from hoi_pipeline.devices import resolve_device
from hoi_pipeline.modeling.clip_loading import clip_tokenizer, load_clip
from hoi_pipeline.prompts import build_prompts
from hoi_pipeline.stages import embed_prompts, init_clip


def measure_embed(*, model: str = "RN50", device: str = "cpu", annotations: Path | None = None) -> Measurement:
    """Run the stage once (timed whole), then time the text tower alone on the same prompts."""
    torch_device = resolve_device(device)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        annotation_file, source = hicodet_test_annotations(annotations, work, num_images=50)
        weights = work / f"{model}_random.pt"
        init_clip.run(model_name=model, seed=0, out=weights)
        clip = ClipConfig(model=model, pretrained=str(weights), device=str(torch_device))
        start = time.perf_counter()
        embed_prompts.run(clip=clip, annotations=annotation_file, split="test", out=work / "bank.h5")
        stage_seconds = time.perf_counter() - start

        vocabulary = load_annotations(annotation_file, "test").vocabulary
        prompts = build_prompts(vocabulary, clip.template, clip.role_templates, clip.verb_templates)
        text_model = load_clip(clip, device=torch_device)
        tokenizer = clip_tokenizer(model)
        embed_prompts.encode_texts(text_model, tokenizer, prompts[:8], device=torch_device)  # warm-up
        synchronize(torch_device)
        start = time.perf_counter()
        embed_prompts.encode_texts(text_model, tokenizer, prompts, device=torch_device)
        synchronize(torch_device)
        encode_seconds = time.perf_counter() - start
    return Measurement(
        "embed", f"{model} text tower, random init from a file, {len(prompts)} prompts ({source})",
        device_name(torch_device), images_per_s=len(prompts) / encode_seconds, unit="prompts/s",
        s_per_iteration=encode_seconds * embed_prompts.BATCH_SIZE / len(prompts),
        peak_mib=peak_memory_mib(torch_device),
        details={"stage s (model loading included)": round(stage_seconds, 2)},
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="RN50", help="open_clip model name (random init)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--annotations", type=Path, default=None, help="HICO-DET style json (default: shared copy)")
    args = parser.parse_args(argv)
    print(measure_embed(model=args.model, device=args.device, annotations=args.annotations).line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

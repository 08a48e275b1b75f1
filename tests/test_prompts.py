"""HOI class prompts, the knowledge bank file, and the embed-prompts stage end to end."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hoi_pipeline.artifacts import SCHEMA_VERSION, file_digest
from hoi_pipeline.config import ClipConfig, ConfigError, from_dict
from hoi_pipeline.datasets.hicodet import save_hicodet_json
from hoi_pipeline.knowledge_bank_file import KnowledgeBankArtifact, load_knowledge_bank, write_knowledge_bank
from hoi_pipeline.prompts import (
    DEFAULT_ROLE_TEMPLATES,
    DEFAULT_TEMPLATE,
    article,
    build_prompt,
    build_prompts,
    class_templates,
    ing_form,
    object_phrase,
    template_fields,
    verb_ing,
    verb_templates,
)
from hoi_pipeline.structures import HOIAnnotations, ImageAnnotation, Vocabulary

SHARED = Path(__file__).parents[2] / "shared"

# every HICO-DET verb and its -ing form, written by hand
HICO_VERBS_ING = {
    "adjust": "adjusting", "assemble": "assembling", "block": "blocking", "blow": "blowing",
    "board": "boarding", "break": "breaking", "brush_with": "brushing with", "buy": "buying",
    "carry": "carrying", "catch": "catching", "chase": "chasing", "check": "checking", "clean": "cleaning",
    "control": "controlling", "cook": "cooking", "cut": "cutting", "cut_with": "cutting with",
    "direct": "directing", "drag": "dragging", "dribble": "dribbling", "drink_with": "drinking with",
    "drive": "driving", "dry": "drying", "eat": "eating", "eat_at": "eating at", "exit": "exiting",
    "feed": "feeding", "fill": "filling", "flip": "flipping", "flush": "flushing", "fly": "flying",
    "greet": "greeting", "grind": "grinding", "groom": "grooming", "herd": "herding", "hit": "hitting",
    "hold": "holding", "hop_on": "hopping on", "hose": "hosing", "hug": "hugging", "hunt": "hunting",
    "inspect": "inspecting", "install": "installing", "jump": "jumping", "kick": "kicking",
    "kiss": "kissing", "lasso": "lassoing", "launch": "launching", "lick": "licking", "lie_on": "lying on",
    "lift": "lifting", "light": "lighting", "load": "loading", "lose": "losing", "make": "making",
    "milk": "milking", "move": "moving", "no_interaction": "and", "open": "opening", "operate": "operating",
    "pack": "packing", "paint": "painting", "park": "parking", "pay": "paying", "peel": "peeling",
    "pet": "petting", "pick": "picking", "pick_up": "picking up", "point": "pointing", "pour": "pouring",
    "pull": "pulling", "push": "pushing", "race": "racing", "read": "reading", "release": "releasing",
    "repair": "repairing", "ride": "riding", "row": "rowing", "run": "running", "sail": "sailing",
    "scratch": "scratching", "serve": "serving", "set": "setting", "shear": "shearing", "sign": "signing",
    "sip": "sipping", "sit_at": "sitting at", "sit_on": "sitting on", "slide": "sliding",
    "smell": "smelling", "spin": "spinning", "squeeze": "squeezing", "stab": "stabbing",
    "stand_on": "standing on", "stand_under": "standing under", "stick": "sticking", "stir": "stirring",
    "stop_at": "stopping at", "straddle": "straddling", "swing": "swinging", "tag": "tagging",
    "talk_on": "talking on", "teach": "teaching", "text_on": "texting on", "throw": "throwing",
    "tie": "tying", "toast": "toasting", "train": "training", "turn": "turning", "type_on": "typing on",
    "walk": "walking", "wash": "washing", "watch": "watching", "wave": "waving", "wear": "wearing",
    "wield": "wielding", "zip": "zipping",
}  # fmt: skip


def test_table_covers_the_117_hico_verbs() -> None:
    assert len(HICO_VERBS_ING) == 117


@pytest.mark.parametrize("verb", sorted(HICO_VERBS_ING))
def test_verb_ing_of_every_hico_verb(verb: str) -> None:
    assert verb_ing(verb) == HICO_VERBS_ING[verb]


def test_table_matches_the_real_hico_verb_list() -> None:
    path = SHARED / "hicodet" / "instances_test2015.json"
    if not path.is_file():
        pytest.skip("HICO-DET annotations not available")
    verbs = json.loads(path.read_text())["verbs"]
    assert sorted(verbs) == sorted(HICO_VERBS_ING)


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("make", "making"), ("see", "seeing"), ("ski", "skiing"), ("die", "dying"), ("quit", "quitting"),
        ("visit", "visiting"), ("begin", "beginning"), ("fix", "fixing"), ("show", "showing"),
        ("play", "playing"), ("swim", "swimming"), ("shop", "shopping"), ("look", "looking"),
        ("lay", "laying"), ("work", "working"), ("be", "being"),
    ],
)  # fmt: skip
def test_ing_spelling_rules(word: str, expected: str) -> None:
    assert ing_form(word) == expected


@pytest.mark.parametrize(
    ("verb", "expected"),
    [("hold obj", "holding"), ("cut instr", "cutting"), ("talk_on_phone instr", "talking on phone"),
     ("work_on_computer instr", "working on computer"), ("look obj", "looking"), ("ski instr", "skiing")],
)  # fmt: skip
def test_vcoco_action_role_names(verb: str, expected: str) -> None:
    assert verb_ing(verb) == expected


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("apple", "an"), ("umbrella", "an"), ("person", "a"), ("orange", "an"), ("hair drier", "a"),
        ("oven", "an"), ("elephant", "an"), ("airplane", "an"), ("tv", "a"), ("hot dog", "a"),
        ("university", "a"), ("unicycle", "a"), ("utensil", "a"), ("hour glass", "an"), ("skis", ""),
        ("scissors", ""), ("ewe", "a"),
    ],
)  # fmt: skip
def test_article_by_first_sound(noun: str, expected: str) -> None:
    assert article(noun) == expected


def test_object_phrase_and_single_prompts() -> None:
    assert object_phrase("dining_table") == "dining table"
    assert object_phrase(" teddy_bear ") == "teddy bear"
    assert build_prompt(DEFAULT_TEMPLATE, "sit_on", "dining_table") == "a person sitting on a dining table"
    assert build_prompt(DEFAULT_TEMPLATE, "no_interaction", "apple") == "a person and an apple"
    assert build_prompt(DEFAULT_TEMPLATE, "wear", "skis") == "a person wearing skis"
    assert build_prompt(DEFAULT_TEMPLATE, "hold obj", "umbrella") == "a person holding an umbrella"
    assert build_prompt("a photo of {verb} {object}", "hop_on", "bicycle") == "a photo of hop on bicycle"


def _vocabulary(verbs_ing: tuple[str, ...] = ()) -> Vocabulary:
    return Vocabulary(
        verbs=("hold", "no_interaction", "sit_on", "cut_with"),
        objects=("person", "umbrella", "scissors", "hair_drier"),
        hoi_classes=np.array([[0, 1], [1, 0], [2, 3], [3, 2], [0, 2]]),
        rare=np.array([2]),
        non_rare=np.array([0, 1, 3, 4]),
        verbs_ing=verbs_ing,
    )


def test_build_prompts_in_class_order() -> None:
    assert build_prompts(_vocabulary()) == (
        "a person holding an umbrella",
        "a person and a person",
        "a person sitting on a hair drier",
        "a person cutting with scissors",
        "a person holding scissors",
    )
    forms = ("grasping", "next to", "resting on", "snipping with")  # from a data file, used as given
    assert build_prompts(_vocabulary(forms))[:2] == ("a person grasping an umbrella", "a person next to a person")
    with pytest.raises(ValueError, match="verbs_ing has 2 entries for 4 verbs"):
        build_prompts(_vocabulary(("a", "b")))


def test_template_validation() -> None:
    assert template_fields(DEFAULT_TEMPLATE) == {"verb_ing", "article", "object"}
    with pytest.raises(ValueError, match=r"clip.template: unknown field\(s\) \['verbing'\]"):
        template_fields("a person {verbing} {object}")
    with pytest.raises(ValueError, match="not a format string"):
        template_fields("a person {verb_ing")
    with pytest.raises(ConfigError, match=r"runs.x.clip: clip.template: unknown field\(s\) \['0'\]"):
        from_dict(ClipConfig, {"template": "a person {0}"}, "runs.x.clip")


def test_all_hico_prompts_are_distinct_and_clean() -> None:
    path = SHARED / "hicodet" / "instances_test2015.json"
    if not path.is_file():
        pytest.skip("HICO-DET annotations not available")
    from hoi_pipeline.datasets import load_annotations

    vocabulary = load_annotations(path, "test").vocabulary
    prompts = build_prompts(vocabulary)
    assert len(prompts) == 600 and len(set(prompts)) == 600
    assert all("_" not in p and "  " not in p and " a a" not in p for p in prompts)
    assert "a person riding a horse" in prompts and "a person peeling an orange" in prompts
    assert "a person holding an umbrella" in prompts and "a person and a hair drier" in prompts


# --------------------------------------------------------------------------------------------
# knowledge bank file


def _bank(n: int = 3, d: int = 4) -> tuple[np.ndarray, tuple[str, ...], np.ndarray]:
    embeddings = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    prompts = tuple(f"a person doing {i}" for i in range(n))
    hoi_classes = np.stack([np.arange(n), np.arange(n)[::-1]], axis=1)
    return embeddings, prompts, hoi_classes


def test_bank_round_trip(tmp_path: Path) -> None:
    embeddings, prompts, hoi_classes = _bank()
    path = tmp_path / "bank.h5"
    attrs = {"clip_model": "hoi-tiny-rn", "verbs": ["a", "b"], "clip_config": {"model": "x"}, "normalized": True}
    write_knowledge_bank(path, embeddings, prompts, hoi_classes, attrs)
    bank = load_knowledge_bank(path)
    assert isinstance(bank, KnowledgeBankArtifact)
    np.testing.assert_array_equal(bank.embeddings, embeddings)
    assert bank.embeddings.dtype == np.float32 and bank.hoi_classes.dtype == np.int64
    np.testing.assert_array_equal(bank.hoi_classes, hoi_classes)
    assert bank.prompts == prompts and bank.num_classes == 3 and bank.dim == 4
    assert bank.attrs["schema_version"] == SCHEMA_VERSION
    assert bank.attrs["verbs"] == ["a", "b"] and bank.attrs["clip_config"] == {"model": "x"}
    assert bank.attrs["clip_model"] == "hoi-tiny-rn" and bank.attrs["normalized"] is True


def test_bank_errors_name_the_file(tmp_path: Path) -> None:
    embeddings, prompts, hoi_classes = _bank()
    with pytest.raises(FileNotFoundError, match="nowhere.h5.*embed-prompts"):
        load_knowledge_bank(tmp_path / "nowhere.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="corrupt.h5: not a readable HDF5"):
        load_knowledge_bank(corrupt)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.create_dataset("embeddings", data=embeddings)
    with pytest.raises(ValueError, match=r"other.h5: not a knowledge bank file, missing datasets \['prompts'"):
        load_knowledge_bank(other)
    with pytest.raises(ValueError, match="disagree"):
        write_knowledge_bank(tmp_path / "bad.h5", embeddings, prompts[:2], hoi_classes, {})
    nan = embeddings.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        write_knowledge_bank(tmp_path / "nan.h5", nan, prompts, hoi_classes, {})
    assert not (tmp_path / "bad.h5").exists() and not (tmp_path / "nan.h5").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.h5", "other.h5"]  # no temporary files


def test_bank_checks_a_vocabulary(tmp_path: Path) -> None:
    vocabulary = _vocabulary()
    embeddings = np.eye(5, 8, dtype=np.float32)
    path = tmp_path / "bank.h5"
    attrs = {"verbs": list(vocabulary.verbs), "objects": list(vocabulary.objects)}
    write_knowledge_bank(path, embeddings, build_prompts(vocabulary), vocabulary.hoi_classes, attrs)
    bank = load_knowledge_bank(path)
    bank.check_vocabulary(vocabulary)
    reordered = Vocabulary(
        verbs=vocabulary.verbs, objects=vocabulary.objects, hoi_classes=vocabulary.hoi_classes[::-1],
        rare=vocabulary.rare, non_rare=vocabulary.non_rare,
    )  # fmt: skip
    with pytest.raises(ValueError, match="HOI classes differ"):
        bank.check_vocabulary(reordered)
    renamed = Vocabulary(
        verbs=("grab", *vocabulary.verbs[1:]), objects=vocabulary.objects, hoi_classes=vocabulary.hoi_classes,
        rare=vocabulary.rare, non_rare=vocabulary.non_rare,
    )  # fmt: skip
    with pytest.raises(ValueError, match="verbs list differs"):
        bank.check_vocabulary(renamed)


# --------------------------------------------------------------------------------------------
# per-class templates: V-COCO's object and instrument roles (paper appendix G)


def _vcoco_vocabulary() -> Vocabulary:
    return Vocabulary(
        verbs=("cut instr", "cut obj", "talk_on_phone instr", "hold obj"),
        objects=("person", "knife", "cake", "cell_phone", "scissors"),
        hoi_classes=np.array([[0, 1], [0, 4], [1, 2], [2, 3], [3, 0]]),
        rare=np.zeros(0),
        non_rare=np.arange(5),
        verb_roles=("instr", "obj", "instr", "obj"),
    )


def test_vcoco_roles_pick_the_papers_templates() -> None:
    assert build_prompts(_vcoco_vocabulary()) == (
        "a person cutting with knife",
        "a person cutting with scissors",
        "a person cutting a cake",
        "a person talking on phone with cell phone",
        "a person holding a person",
    )
    assert class_templates(_vcoco_vocabulary()) == (
        DEFAULT_ROLE_TEMPLATES["instr"], DEFAULT_ROLE_TEMPLATES["instr"], DEFAULT_ROLE_TEMPLATES["obj"],
        DEFAULT_ROLE_TEMPLATES["instr"], DEFAULT_ROLE_TEMPLATES["obj"],
    )  # fmt: skip


def test_the_config_overrides_the_datas_template_choice() -> None:
    vocabulary = _vcoco_vocabulary()
    # no role templates: every class gets the single template, as HICO-DET's classes do
    assert build_prompts(vocabulary, DEFAULT_TEMPLATE, {})[0] == "a person cutting a knife"
    # a role's template, then one verb's own template, which wins over its role's
    roles = {"instr": "a photo of a person {verb_ing} using {article} {object}"}
    assert build_prompts(vocabulary, DEFAULT_TEMPLATE, roles)[0] == "a photo of a person cutting using a knife"
    assert build_prompts(vocabulary, DEFAULT_TEMPLATE, roles)[2] == "a person cutting a cake"  # 'obj' falls back
    overrides = {"talk_on_phone instr": "a person talking on {article} {object}"}
    prompts = build_prompts(vocabulary, DEFAULT_TEMPLATE, None, overrides)
    assert prompts[3] == "a person talking on a cell phone" and prompts[0] == "a person cutting with knife"
    assert verb_templates(vocabulary, overrides=overrides)[2] == overrides["talk_on_phone instr"]
    with pytest.raises(ValueError, match=r"clip.verb_templates: unknown verb\(s\) \['ride instr'\]"):
        build_prompts(vocabulary, DEFAULT_TEMPLATE, None, {"ride instr": DEFAULT_TEMPLATE})
    with pytest.raises(ValueError, match=r"clip.role_templates.instr: unknown field\(s\) \['thing'\]"):
        build_prompts(vocabulary, DEFAULT_TEMPLATE, {"instr": "a person {verb_ing} with {thing}"})
    with pytest.raises(ConfigError, match=r"runs.x.clip: clip.verb_templates.cut obj: unknown field"):
        from_dict(ClipConfig, {"verb_templates": {"cut obj": "{verbing}"}}, "runs.x.clip")
    clip = from_dict(ClipConfig, {"role_templates": {"instr": "a person {verb_ing} using {object}"}}, "runs.x.clip")
    assert clip.role_templates == {"instr": "a person {verb_ing} using {object}"}
    assert ClipConfig().role_templates == DEFAULT_ROLE_TEMPLATES and ClipConfig().verb_templates == {}


def test_hico_classes_keep_the_single_template() -> None:
    path = SHARED / "hicodet" / "instances_test2015.json"
    if not path.is_file():
        pytest.skip("HICO-DET annotations not available")
    from hoi_pipeline.datasets import load_annotations

    vocabulary = load_annotations(path, "test").vocabulary
    assert vocabulary.verb_roles == ()
    assert set(class_templates(vocabulary, DEFAULT_TEMPLATE, DEFAULT_ROLE_TEMPLATES)) == {DEFAULT_TEMPLATE}


def _check_vcoco_prompts(vocabulary: Vocabulary) -> tuple[str, ...]:
    """Every class has a clean prompt from its role's template: 'with' and no article for instruments."""
    prompts = build_prompts(vocabulary)
    assert len(prompts) == vocabulary.num_classes and len(set(prompts)) == len(prompts)
    for (v, o), prompt in zip(vocabulary.hoi_classes.tolist(), prompts):
        action = vocabulary.verbs[v].rpartition(" ")[0]
        words = object_phrase(vocabulary.objects[o])
        assert "_" not in prompt and "  " not in prompt and not prompt.endswith(" ")
        assert prompt.startswith(f"a person {verb_ing(action)} ")
        if vocabulary.verb_roles[v] == "instr":
            assert prompt == f"a person {verb_ing(action)} with {words}"
        else:
            assert prompt == " ".join(f"a person {verb_ing(action)} {article(words)} {words}".split())
    return prompts


def test_every_class_of_the_real_vcoco_json_gets_its_prompt() -> None:
    path = SHARED / "vcoco" / "instances_vcoco_trainval.json"
    if not path.is_file():
        pytest.skip("V-COCO annotations not available")
    from hoi_pipeline.datasets import load_annotations

    vocabulary = load_annotations(path, "trainval").vocabulary
    prompts = _check_vcoco_prompts(vocabulary)
    assert "a person cutting with knife" in prompts and "a person cutting a cake" in prompts
    assert "a person riding with horse" in prompts and "a person holding an umbrella" in prompts
    assert "a person talking on phone with cell phone" in prompts and "a person skiing with skis" in prompts


# the 26 actions of the official release and their object roles (vcoco_*.json 'role_name', in file order)
VCOCO_ACTIONS = {
    "hold": ("obj",), "stand": (), "sit": ("instr",), "ride": ("instr",), "walk": (), "look": ("obj",),
    "hit": ("instr", "obj"), "eat": ("obj", "instr"), "jump": ("instr",), "lay": ("instr",),
    "talk_on_phone": ("instr",), "carry": ("obj",), "throw": ("obj",), "catch": ("obj",), "cut": ("instr", "obj"),
    "run": (), "work_on_computer": ("instr",), "ski": ("instr",), "surf": ("instr",), "skateboard": ("instr",),
    "smile": (), "drink": ("instr",), "kick": ("obj",), "point": ("instr",), "read": ("obj",),
    "snowboard": ("instr",),
}  # fmt: skip


def test_every_class_of_the_official_layout_gets_its_prompt(tmp_path: Path) -> None:
    from hoi_pipeline.datasets import load_annotations
    from hoi_pipeline.datasets.vcoco_official import COCOInstance, OfficialImage, PersonActions, VCOCOAction
    from hoi_pipeline.datasets.vcoco_official import write_vcoco_official

    path = SHARED / "vcoco" / "instances_vcoco_test.json"
    categories = json.loads(path.read_text())["objects"][1:] if path.is_file() else ["person", "knife", "skis"]
    image = OfficialImage("a.jpg", 10, 10, (COCOInstance("person", (0, 0, 5, 5)),), (PersonActions(0),))
    actions = [VCOCOAction(name, roles) for name, roles in VCOCO_ACTIONS.items()]  # every role takes any category
    write_vcoco_official(tmp_path, actions=actions, categories=categories, parts={"test": [image]})
    vocabulary = load_annotations(tmp_path, "test").vocabulary
    assert len(vocabulary.verbs) == 25 and "point instr" in vocabulary.verbs  # agent-only actions have no class
    prompts = _check_vcoco_prompts(vocabulary)
    assert len(prompts) == 25 * len(categories) and "a person pointing with person" in prompts


# --------------------------------------------------------------------------------------------
# embed-prompts stage end to end on the tiny CLIP


def _write_annotations(path: Path) -> HOIAnnotations:
    image = ImageAnnotation(
        filename="img_0.jpg", width=64, height=48,
        boxes_h=[[0, 0, 20, 30]], boxes_o=[[10, 5, 40, 40]], hoi=[0], verb=[0], object=[1],
    )  # fmt: skip
    annotations = HOIAnnotations(vocabulary=_vocabulary(), images=(image,), source=str(path))
    save_hicodet_json(annotations, path)
    return annotations


def test_embed_prompts_stage_end_to_end(tmp_path: Path) -> None:
    from hoi_pipeline.modeling.clip_loading import clip_tokenizer, load_clip
    from hoi_pipeline.stages import embed_prompts, init_clip

    weights = tmp_path / "tiny.pt"
    init_clip.run(model_name="hoi-tiny-rn", seed=0, out=weights)
    annotations_path = tmp_path / "train.json"
    annotations = _write_annotations(annotations_path)
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=str(weights), device="cpu")
    out = tmp_path / "results" / "knowledge_bank.h5"
    embed_prompts.run(clip=clip, annotations=annotations_path, split="train", out=out)

    bank = load_knowledge_bank(out)
    expected_prompts = build_prompts(annotations.vocabulary)
    assert bank.prompts == expected_prompts
    np.testing.assert_array_equal(bank.hoi_classes, annotations.vocabulary.hoi_classes)
    assert bank.embeddings.shape == (5, 64) and bank.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(row, 5)) for row in bank.embeddings}) == 5  # distinct prompts, distinct rows
    bank.check_vocabulary(annotations.vocabulary)
    assert bank.attrs["clip_model"] == "hoi-tiny-rn"
    assert bank.attrs["clip_pretrained"] == f"file:tiny.pt:sha256:{file_digest(weights)}"
    assert bank.attrs["template"] == DEFAULT_TEMPLATE
    assert bank.attrs["annotations"] == str(annotations_path)
    assert bank.attrs["schema_version"] == SCHEMA_VERSION
    assert bank.attrs["clip_config"]["pretrained"] == str(weights)

    # the stored rows are the tiny CLIP's own normalised text features, batch-independent
    model = load_clip(clip)
    with torch.no_grad():
        single = model.encode_text(clip_tokenizer(clip.model)([expected_prompts[2]]), normalize=True)[0]
    np.testing.assert_allclose(bank.embeddings[2], single.numpy(), atol=1e-5)


def test_embed_prompts_missing_weights_leave_no_output(tmp_path: Path) -> None:
    from hoi_pipeline.stages import embed_prompts

    annotations_path = tmp_path / "train.json"
    _write_annotations(annotations_path)
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=str(tmp_path / "missing.pt"), device="cpu")
    with pytest.raises(FileNotFoundError, match="clip.pretrained.*missing.pt"):
        embed_prompts.run(clip=clip, annotations=annotations_path, split="train", out=tmp_path / "bank.h5")
    assert not (tmp_path / "bank.h5").exists()
    bad_device = ClipConfig(model="hoi-tiny-rn", pretrained=None, device="gpu0")
    with pytest.raises(ValueError, match="clip.device: 'gpu0' is not a device"):
        embed_prompts.run(clip=bad_device, annotations=annotations_path, split="train", out=tmp_path / "bank.h5")


def test_embed_prompts_stage_uses_the_role_templates(tmp_path: Path) -> None:
    from hoi_pipeline.stages import embed_prompts

    payload = {
        "classes": ["cut instr", "cut obj"],
        "objects": ["background", "person", "knife", "cake"],
        "images": [1],
        "action_to_object": [[2], [3]],
        "annotations": [{"file_name": "a.jpg", "boxes_h": [], "boxes_o": [], "actions": [], "objects": []}],
    }
    annotations = tmp_path / "vcoco.json"
    annotations.write_text(json.dumps(payload))
    clip = ClipConfig(model="hoi-tiny-rn", pretrained=None, device="cpu", verb_templates={"cut obj": "{object} cut"})
    embed_prompts.run(clip=clip, annotations=annotations, split="test", out=tmp_path / "bank.h5")
    assert load_knowledge_bank(tmp_path / "bank.h5").prompts == ("a person cutting with knife", "cake cut")

"""Text prompts of the HOI classes, the input of CLIP's text encoder for the knowledge bank (paper Sec. 4.1).

One prompt per HOI class from its template, by default "a person {verb_ing} {article} {object}":
("ride", "horse") -> "a person riding a horse", ("sit_on", "dining_table") -> "a person sitting on a
dining table". Templates are per class (`class_templates`), chosen for each verb in this order:
1. `clip.verb_templates[verb]`, a per-verb override from the config;
2. `clip.role_templates[role]` where the dataset gives the verb a semantic role (`Vocabulary.verb_roles`:
   the V-COCO readers mark each action-role class 'obj' or 'instr'). The defaults are the paper's
   (appendix G): object roles "a person {verb_ing} {article} {object}" ("a person cutting a cake"),
   instrument roles "a person {verb_ing} with {object}" ("a person cutting with knife");
3. `clip.template`, the single template of datasets without roles (HICO-DET).
The -ing forms come from the dataset file when it lists them (`Vocabulary.verbs_ing`),
else from `verb_ing`, which spells all 117 HICO-DET verbs correctly (English spelling rules plus a short
list of exceptions). Special cases:
- `no_interaction` names the pair without an action: "a person and an apple" (the phrase "and" stands
  in for {verb_ing}, as in GEN-VLKT's prompts);
- V-COCO action-role names ("hold obj", "cut instr") drop the role word: "holding";
- plural-only object names (skis, scissors) take no article: "a person holding scissors".
No torch here: the module is pure string work.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from hoi_pipeline.structures import Vocabulary

DEFAULT_TEMPLATE = "a person {verb_ing} {article} {object}"
# paper appendix G: V-COCO's object role "a person verb a/an object", its instrument role "a person verb with object"
DEFAULT_ROLE_TEMPLATES = {"obj": "a person {verb_ing} {article} {object}", "instr": "a person {verb_ing} with {object}"}
TEMPLATE_FIELDS = frozenset({"verb_ing", "verb", "article", "object"})
NO_INTERACTION = "no interaction"
NO_INTERACTION_PHRASE = "and"  # "a person and an apple"
ROLE_WORDS = frozenset({"obj", "instr", "agent"})  # V-COCO action-role suffixes

# -ing forms the rules below do not produce
IRREGULAR_ING = {"be": "being", "see": "seeing", "ski": "skiing", "singe": "singeing", "dye": "dyeing"}
# two-syllable verbs stressed on the last syllable double their final consonant (control -> controlling)
DOUBLE_FINAL = frozenset(
    {"admit", "begin", "commit", "compel", "control", "equip", "forget", "occur", "omit", "patrol",
     "permit", "prefer", "refer", "regret", "submit", "transfer", "upset"}
)  # fmt: skip
VOWELS = "aeiou"

# article exceptions: vowel letters read as consonants ("a university") and silent h ("an hour")
CONSONANT_SOUND_PREFIXES = ("uni", "use", "usu", "uten", "utility", "urinal", "eu", "one", "once", "ewe", "ufo")
VOWEL_SOUND_PREFIXES = ("hour", "honest", "honor", "honour", "heir")
PLURAL_ONLY = frozenset(
    {"skis", "scissors", "glasses", "sunglasses", "pants", "jeans", "shorts", "trousers", "headphones",
     "binoculars", "tongs", "pliers"}
)  # fmt: skip


def verb_words(verb: str) -> list[str]:
    """The words of a verb name: underscores split words, a V-COCO role suffix is dropped."""
    words = verb.replace("_", " ").split()
    if len(words) > 1 and words[-1] in ROLE_WORDS:
        words = words[:-1]
    if not words:
        raise ValueError(f"empty verb name {verb!r}")
    return words


def verb_ing(verb: str) -> str:
    """Present participle of a (possibly multi-word) verb name: 'sit_on' -> 'sitting on', 'tie' -> 'tying'.

    'no_interaction' gives "and" (see the module docstring); a V-COCO role suffix ('hold obj') is dropped.
    """
    words = verb_words(verb)
    if " ".join(words).lower() == NO_INTERACTION:
        return NO_INTERACTION_PHRASE
    return " ".join([ing_form(words[0]), *words[1:]])


def ing_form(word: str) -> str:
    """Present participle of one English verb by the spelling rules (make -> making, run -> running)."""
    w = word.lower()
    if w in IRREGULAR_ING:
        return IRREGULAR_ING[w]
    if w.endswith("ie"):
        return w[:-2] + "ying"  # tie, lie
    if w.endswith(("ee", "ye", "oe")):
        return w + "ing"  # see, eye, hoe
    if w.endswith("e") and len(w) > 2:
        return w[:-1] + "ing"  # make, wave, dribble
    if w in DOUBLE_FINAL or (_syllables(w) == 1 and _ends_consonant_vowel_consonant(w)):
        return w + w[-1] + "ing"  # run, stop, stir
    return w + "ing"


def _syllables(word: str) -> int:
    """Vowel groups, a good enough syllable count for choosing consonant doubling."""
    return len(re.findall(r"[aeiouy]+", word.replace("qu", "qw")))


def _ends_consonant_vowel_consonant(word: str) -> bool:
    w = word.replace("qu", "qw")  # the u of qu is not a vowel (quit -> quitting)
    if len(w) < 3:
        return len(w) == 2 and w[0] in VOWELS and w[1] not in VOWELS + "wxy"  # e.g. "up"
    a, b, c = w[-3:]
    return a not in VOWELS and b in VOWELS and c not in VOWELS + "wxy"


def object_phrase(name: str) -> str:
    """Object class name as words: 'dining_table' -> 'dining table'."""
    return " ".join(name.replace("_", " ").split())


def article(noun: str) -> str:
    """Indefinite article by the noun's first sound ('an apple', 'a umbrella' is wrong); '' for plurals."""
    words = noun.lower().split()
    if not words:
        raise ValueError("empty object name")
    if words[-1] in PLURAL_ONLY:
        return ""
    first = words[0]
    if first.startswith(VOWEL_SOUND_PREFIXES):
        return "an"
    if first.startswith(CONSONANT_SOUND_PREFIXES):
        return "a"
    return "an" if first[0] in VOWELS else "a"


def template_fields(template: str, key: str = "clip.template") -> set[str]:
    """Placeholder names of a prompt template; unknown names raise ValueError naming the config `key`."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as error:
        raise ValueError(f"{key}: {template!r} is not a format string ({error})") from error
    unknown = sorted(fields - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(f"{key}: unknown field(s) {unknown}; allowed: {sorted(TEMPLATE_FIELDS)}")
    return fields


def build_prompt(template: str, verb: str, obj: str, verb_ing_form: str | None = None) -> str:
    """One prompt: the template filled with the verb's -ing form, the article and the object's words."""
    obj_words = object_phrase(obj)
    text = template.format(
        verb_ing=verb_ing_form if verb_ing_form is not None else verb_ing(verb),
        verb=" ".join(verb_words(verb)),
        article=article(obj_words),
        object=obj_words,
    )
    return " ".join(text.split())  # an empty article leaves no double space


def verb_templates(
    vocabulary: Vocabulary,
    template: str = DEFAULT_TEMPLATE,
    role_templates: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """(A,) the template of each verb: a per-verb override, else its role's template, else `template`.

    `role_templates` None means the paper's (`DEFAULT_ROLE_TEMPLATES`); pass {} to give every verb
    `template`. An override naming a verb the vocabulary lacks is an error.
    """
    role_templates = DEFAULT_ROLE_TEMPLATES if role_templates is None else role_templates
    overrides = overrides or {}
    template_fields(template)
    for role, text in role_templates.items():
        template_fields(text, f"clip.role_templates.{role}")
    for verb, text in overrides.items():
        template_fields(text, f"clip.verb_templates.{verb}")
    unknown = sorted(set(overrides) - set(vocabulary.verbs))
    if unknown:
        raise ValueError(
            f"clip.verb_templates: unknown verb(s) {unknown}; the dataset's verbs: {list(vocabulary.verbs)}"
        )
    roles = vocabulary.verb_roles or ("",) * vocabulary.num_verbs
    return tuple(
        overrides.get(verb, role_templates.get(role, template)) for verb, role in zip(vocabulary.verbs, roles)
    )


def class_templates(
    vocabulary: Vocabulary,
    template: str = DEFAULT_TEMPLATE,
    role_templates: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """(N,) the template of each HOI class (its verb's, see `verb_templates`)."""
    per_verb = verb_templates(vocabulary, template, role_templates, overrides)
    return tuple(per_verb[v] for v in vocabulary.hoi_classes[:, 0].tolist())


def build_prompts(
    vocabulary: Vocabulary,
    template: str = DEFAULT_TEMPLATE,
    role_templates: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """(N,) prompts, one per HOI class in `vocabulary.hoi_classes` order, each from its class's template."""
    templates = class_templates(vocabulary, template, role_templates, overrides)
    forms = vocabulary.verbs_ing or tuple(verb_ing(verb) for verb in vocabulary.verbs)
    if len(forms) != vocabulary.num_verbs:
        raise ValueError(f"verbs_ing has {len(forms)} entries for {vocabulary.num_verbs} verbs")
    return tuple(
        build_prompt(text, vocabulary.verbs[v], vocabulary.objects[o], forms[v])
        for text, (v, o) in zip(templates, vocabulary.hoi_classes.tolist())
    )

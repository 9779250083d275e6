"""Sentence templates for the utterances that carry entities.

A pattern is words and slots: ``{STORE}``, ``{FOOD}``, ``{LOC}``, ``{QTY}`` and
``{PREF}`` become entities, ``{ORDER}`` an order verb; a trailing ``?`` makes a
slot optional (``{QTY?}``). Punctuation in a pattern attaches to the word before.

Every template is used with many fillers, so the words around a slot ("X se ...
mangwao", "... pe delivery") are what tells a model that X is a store or a place.
Weights make the everyday shapes common; "{STORE} se {QTY?} {FOOD} {ORDER}"
("tushar se 2 misal mangwao") is the most common of all.

>>> parse("{STORE} se {QTY?} {FOOD} {ORDER}, jaldi")
('{STORE}', 'se', '{QTY?}', '{FOOD}', '{ORDER}', ',', 'jaldi')
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A slot, a run of word characters, or one punctuation mark.
_TOKEN = re.compile(r"\{[A-Z]+\??\}|[^\s{},.!?।]+|[,.!?।]")
_SLOT = re.compile(r"\{([A-Z]+)(\??)\}")


@dataclass(frozen=True)
class Template:
    """One sentence shape.

    Attributes:
        pattern: Words and slots (see module doc).
        lang: ``"hi"``, ``"en"`` or ``"deva"``: picks verbs, quantities and fillers.
        weight: Relative frequency among templates of the same language.
    """

    pattern: str
    lang: str
    weight: int = 1


def parse(pattern: str) -> tuple[str, ...]:
    """Split ``pattern`` into word, punctuation and slot tokens."""
    return tuple(_TOKEN.findall(pattern))


def slot_of(token: str) -> tuple[str, bool] | None:
    """``(name, optional)`` for a slot token, ``None`` for a literal word."""
    match = _SLOT.fullmatch(token)
    return (match.group(1), match.group(2) == "?") if match else None


def _t(lang: str, weight: int, *patterns: str) -> tuple[Template, ...]:
    return tuple(Template(p, lang, weight) for p in patterns)


TEMPLATES = (
    # Romanized Hindi / code-mixed ordering.
    *_t("hi", 16, "{STORE} se {QTY?} {FOOD} {ORDER}"),
    *_t("hi", 5, "{LOC} pe delivery", "{FOOD} {ORDER}"),
    *_t("hi", 4, "{QTY?} {FOOD} {STORE} se {ORDER}", "{QTY} {FOOD} {ORDER}"),
    *_t(
        "hi", 3,
        "{STORE} ka {FOOD} {ORDER}",
        "mujhe {STORE} se {QTY?} {FOOD} {ORDER}",
        "{STORE} se {QTY?} {FOOD} {LOC} pe {ORDER}",
        "{STORE} se {FOOD} {PREF} {ORDER}",
    ),
    *_t(
        "hi", 2,
        "{STORE} wala {FOOD} {ORDER}",
        "{LOC} pe delivery karo",
        "{LOC} pe delivery chahiye",
        "{FOOD} {LOC} pe {ORDER}",
        "{STORE} ka menu dikhao",
        "{FOOD} aur {FOOD} {STORE} se {ORDER}",
        "{STORE} se {FOOD} ka order daal do",
        "{FOOD} {PREF} {ORDER}",
    ),
    *_t(
        "hi", 1,
        "delivery {LOC} pe karna",
        "{LOC} mein {FOOD} kahan milega",
        "{LOC} ke paas koi accha {FOOD} wala hai kya",
        "{STORE} {LOC} wala open hai kya",
        "{STORE} khula hai kya",
        "{STORE} band hai kya",
        "{QTY} {FOOD} aur {QTY} {FOOD} {ORDER}",
        "{FOOD} ka order {STORE} pe daalo",
        "{QTY} plate {FOOD} {ORDER}",
        "{STORE} se {FOOD} {ORDER} {LOC} pe",
        "aaj {STORE} se {FOOD} khana hai",
        "{FOOD} khane ka mann hai, {STORE} se {ORDER}",
        "{STORE} ki {FOOD} {ORDER}",
        "{FOOD} {PREF} bana dena",
        "mera address {LOC} hai",
        "{LOC} tak kitna time lagega",
        "{STORE} ka {FOOD} kitne ka hai",
        "{FOOD} ka price batao",
        "{STORE} mein {FOOD} milega kya",
        "{STORE} se wahi order dobara karo",
        "{PREF} {FOOD} {ORDER}",
        "{STORE} se {QTY?} {FOOD} {ORDER}, {PREF}",
        "{FOOD} {STORE} wala {ORDER}",
        "{FOOD} {LOC} wale {STORE} se {ORDER}",
        "ghar pe {FOOD} {ORDER}, address {LOC}",
    ),
    # English.
    *_t("en", 3, "order {QTY?} {FOOD} from {STORE}"),
    *_t("en", 2, "i want {QTY?} {FOOD} from {STORE}", "get me {FOOD} from {STORE}",
        "deliver to {LOC}", "add {QTY?} {FOOD} to my cart"),
    *_t(
        "en", 1,
        "can you order {FOOD} from {STORE} to {LOC}",
        "{FOOD} from {STORE}, {PREF}",
        "send {QTY?} {FOOD} to {LOC}",
        "is {STORE} open",
        "show me the {STORE} menu",
        "repeat my last order from {STORE}",
        "i need {QTY} {FOOD} {PREF}",
        "{QTY} {FOOD}, {PREF}",
        "delivery address is {LOC}",
        "order from {STORE} near {LOC}",
        "what time does {STORE} close",
    ),
    # Devanagari.
    *_t("deva", 5, "{STORE} से {QTY?} {FOOD} {ORDER}"),
    *_t("deva", 2, "{FOOD} {ORDER}", "{LOC} पे डिलीवरी करो"),
    *_t(
        "deva", 1,
        "{STORE} का मेनू दिखाओ",
        "{FOOD} {PREF} {ORDER}",
        "{STORE} से {FOOD} {LOC} पे {ORDER}",
        "मुझे {QTY} {FOOD} {ORDER}",
    ),
)

"""Synthetic contradictions built from a sentence's own words (training data for the judge).

Each function takes a sentence (and, where it needs them, other words of the same article) and returns a
changed sentence that the original no longer supports, or ``None`` when the change does not apply:

* :func:`negate` adds a negation after the first auxiliary ("is" -> "is not") or drops one;
* :func:`antonym` swaps one word for its antonym from a short list;
* :func:`swap_number` changes one number (or number word) to a different one;
* :func:`swap_date` changes a month, weekday or year;
* :func:`swap_name` replaces a capitalised name by another name of the article, or swaps two names of the
  sentence (roles);
* :func:`add_fact` appends a clause taken from another article.

The unmodified sentence and its clauses are the positives. Used by ``bench/train_cross_encoder.py``.
"""

from __future__ import annotations

import random
import re

AUX = re.compile(r"\b(is|are|was|were|has|have|had|will|would|can|could|should|may|might|must|does|do|did)\b(?! not)")
NEG = re.compile(r"\b(is|are|was|were|has|have|had|will|would|could|should|does|do|did) not\b|\b(\w+)n't\b|\bnever\b|\bcannot\b")
PAIRS = [
    ("increase", "decrease"), ("increased", "decreased"), ("increasing", "decreasing"), ("rise", "fall"),
    ("rose", "fell"), ("rising", "falling"), ("win", "lose"), ("won", "lost"), ("winning", "losing"),
    ("higher", "lower"), ("more", "fewer"), ("most", "least"), ("before", "after"), ("first", "last"),
    ("accept", "reject"), ("accepted", "rejected"), ("approve", "reject"), ("approved", "rejected"),
    ("support", "oppose"), ("supported", "opposed"), ("supports", "opposes"), ("allow", "ban"),
    ("allowed", "banned"), ("strong", "weak"), ("stronger", "weaker"), ("large", "small"), ("larger", "smaller"),
    ("biggest", "smallest"), ("big", "small"), ("gain", "loss"), ("gains", "losses"), ("profit", "loss"),
    ("up", "down"), ("open", "closed"), ("opened", "closed"), ("early", "late"), ("earlier", "later"),
    ("success", "failure"), ("successful", "unsuccessful"), ("positive", "negative"), ("good", "bad"),
    ("best", "worst"), ("better", "worse"), ("agree", "disagree"), ("agreed", "refused"), ("like", "dislike"),
    ("always", "never"), ("new", "old"), ("young", "old"), ("high", "low"), ("cheap", "expensive"),
    ("buy", "sell"), ("bought", "sold"), ("start", "end"), ("started", "ended"), ("begin", "end"),
    ("include", "exclude"), ("included", "excluded"), ("easy", "difficult"), ("possible", "impossible"),
    ("likely", "unlikely"), ("legal", "illegal"), ("guilty", "innocent"), ("alive", "dead"), ("rich", "poor"),
    ("safe", "dangerous"), ("public", "private"), ("domestic", "foreign"), ("join", "leave"), ("joined", "left"),
    ("hire", "fire"), ("hired", "fired"), ("boost", "cut"), ("boosted", "cut"), ("raise", "lower"),
    ("raised", "lowered"), ("cautious", "eager"), ("wary", "eager"), ("welcomed", "criticised"),
    ("praised", "criticised"), ("praise", "criticism"), ("north", "south"), ("east", "west"), ("full", "empty"),
    ("majority", "minority"), ("maximum", "minimum"), ("inside", "outside"), ("import", "export"),
    ("imports", "exports"), ("attack", "defend"), ("victory", "defeat"), ("ally", "enemy"), ("allies", "enemies"),
]
ANTONYM = {}
for a, b in PAIRS:
    ANTONYM.setdefault(a, b)
    ANTONYM.setdefault(b, a)
MONTHS = "January February March April May June July August September October November December".split()
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
NUMBER_WORDS = "two three four five six seven eight nine ten eleven twelve twenty fifty hundred thousand million billion".split()
NUM = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\w])")
NAME = re.compile(r"(?<!^)(?<![.!?] )\b[A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})?\b")
YEAR = re.compile(r"\b(19[5-9]\d|20[0-3]\d)\b")


def _case_like(word: str, like: str) -> str:
    return word.capitalize() if like[:1].isupper() else word


def negate(sentence: str, rng: random.Random) -> str | None:
    m = NEG.search(sentence)
    if m and rng.random() < 0.4:  # drop a negation
        text = m.group(0)
        if text.endswith(" not"):
            new = text[:-4]
        elif text.endswith("n't"):
            stem = text[:-3]
            new = {"ca": "can", "wo": "will", "sha": "shall"}.get(stem.lower(), stem)
        elif text == "never":
            new = "always"
        else:
            new = "can"
        return sentence[: m.start()] + new + sentence[m.end():]
    m = AUX.search(sentence)
    if not m:
        return None
    return sentence[: m.end()] + " not" + sentence[m.end():]


def antonym(sentence: str, rng: random.Random) -> str | None:
    hits = [m for m in re.finditer(r"\b[A-Za-z]+\b", sentence) if m.group(0).lower() in ANTONYM]
    if not hits:
        return None
    m = rng.choice(hits)
    new = _case_like(ANTONYM[m.group(0).lower()], m.group(0))
    return sentence[: m.start()] + new + sentence[m.end():]


def swap_number(sentence: str, rng: random.Random, others: list[str] = ()) -> str | None:
    hits = [m for m in NUM.finditer(sentence) if not YEAR.fullmatch(m.group(0))]
    words = [m for m in re.finditer(r"\b[A-Za-z]+\b", sentence) if m.group(0).lower() in NUMBER_WORDS]
    if hits:
        m = rng.choice(hits)
        raw = m.group(0).replace(",", "")
        choices = [o for o in others if o.replace(",", "") != raw]
        if choices and rng.random() < 0.5:
            new = rng.choice(choices)
        else:
            try:
                value = float(raw)
            except ValueError:
                return None
            factor = rng.choice([0.5, 0.75, 1.5, 2, 3, 10]) if value > 3 else None
            new_value = value * factor if factor else value + rng.choice([1, 2, 3])
            new = f"{new_value:.1f}" if "." in raw else f"{int(round(new_value)):,}" if "," in m.group(0) else str(int(round(new_value)))
            if new.replace(",", "") == raw:
                return None
        return sentence[: m.start()] + new + sentence[m.end():]
    if words:
        m = rng.choice(words)
        new = rng.choice([w for w in NUMBER_WORDS if w != m.group(0).lower()])
        return sentence[: m.start()] + _case_like(new, m.group(0)) + sentence[m.end():]
    return None


def swap_date(sentence: str, rng: random.Random) -> str | None:
    for names in (MONTHS, DAYS):
        hits = [m for m in re.finditer(r"\b(" + "|".join(names) + r")\b", sentence)]
        if hits:
            m = rng.choice(hits)
            new = rng.choice([n for n in names if n != m.group(0)])
            return sentence[: m.start()] + new + sentence[m.end():]
    m = YEAR.search(sentence)
    if m:
        new = str(int(m.group(0)) + rng.choice([-3, -2, -1, 1, 2, 3]))
        return sentence[: m.start()] + new + sentence[m.end():]
    return None


def names_in(text: str) -> list[str]:
    stop = set(MONTHS) | set(DAYS) | {"The", "This", "That", "But", "And", "However", "Its", "His", "Her", "Their",
                                       "They", "There", "When", "While", "After", "Before", "Mr", "Mrs", "Ms"}
    return [m.group(0) for m in NAME.finditer(text) if m.group(0).split()[0] not in stop]


def swap_name(sentence: str, rng: random.Random, article_names: list[str] = ()) -> str | None:
    own = list(dict.fromkeys(names_in(sentence)))
    if not own:
        return None
    if len(own) >= 2 and rng.random() < 0.4:  # swap roles: exchange two names of the sentence
        a, b = rng.sample(own, 2)
        out = sentence.replace(a, "\0").replace(b, a).replace("\0", b)
        return out if out != sentence else None
    others = [n for n in dict.fromkeys(article_names) if n not in own and not any(n in o or o in n for o in own)]
    if not others:
        return None
    target = rng.choice(own)
    return sentence.replace(target, rng.choice(others), 1)


def add_fact(sentence: str, rng: random.Random, foreign_clause: str) -> str | None:
    clause = foreign_clause.strip().rstrip(".!?")
    if len(clause.split()) < 4:
        return None
    body = sentence.rstrip().rstrip(".!?")
    joiner = rng.choice([", and ", "; ", ", while ", ", after "])
    return body + joiner + clause[0].lower() + clause[1:] + "."


TRANSFORMS = ("negation", "antonym", "number", "date", "name", "added_fact")


def contradict(sentence: str, rng: random.Random, article_names: list[str], article_numbers: list[str],
               foreign_clause: str, kinds: tuple[str, ...] = TRANSFORMS) -> tuple[str, str] | None:
    """One changed version of ``sentence`` and the kind of change, trying the kinds in random order."""
    order = list(kinds)
    rng.shuffle(order)
    for kind in order:
        if kind == "negation":
            out = negate(sentence, rng)
        elif kind == "antonym":
            out = antonym(sentence, rng)
        elif kind == "number":
            out = swap_number(sentence, rng, article_numbers)
        elif kind == "date":
            out = swap_date(sentence, rng)
        elif kind == "name":
            out = swap_name(sentence, rng, article_names)
        else:
            out = add_fact(sentence, rng, foreign_clause)
        if out and out != sentence:
            return out, kind
    return None

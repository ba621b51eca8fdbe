"""Question kinds and short answers: what a question asks for (a person, an outlet, a city, a date,
a number) and the span of a sentence that holds it, highlighted inside its quote."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rag.index.lexical import tokenize

QUESTION_WORDS = frozenset(tokenize(
    "what who whom whose which when where why how did does do is are was were say said says tell told "
    "according article document documents mention mentioned describe explain many much kind sort type "
    "give example name happen happened think thought stated state"))
MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
DATE = re.compile(rf"\b(?:{MONTHS}|(?:1[6-9]|20)\d\d|yesterday|today|tomorrow|last (?:week|month|year)|"
                  r"(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?|spring|summer|autumn|winter|earlier this year)\b")
NUMBER = re.compile(r"\b(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                    r"dozen|hundred|thousand|million|billion)\b", re.I)
NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")

# ------------------------------------------------------------------ question kinds

PERSON_NOUNS = frozenset(
    "leader leaders president person people man woman men women minister secretary official officials politician "
    "actor actress player players singer artist author writer playwright journalist reporter presenter host "
    "chairman chief executive boss founder director manager coach hurdler athlete sculptor spokesman spokeswoman "
    "king queen prince princess senator mp candidate winner judge lawyer scientist expert analyst economist "
    "chancellor premier governor mayor general commander star musician composer designer organiser organizer "
    "footballer striker captain rival opponent champion banker critic professor doctor pope emperor".split())
ORG_NOUNS = frozenset(
    "outlet outlets newspaper paper channel network broadcaster station magazine company companies firm firms "
    "organisation organization group body party team club band agency administration government gallery museum "
    "charity website site service feature tool alliance bloc court council union bank airline brand label "
    "studio publisher university school institution regulator authority ministry department carmaker retailer "
    "country's".split())
PLACE_NOUNS = frozenset(
    "country countries city cities town towns state states place places region regions nation nations capital "
    "county village island peninsula continent area venue stadium".split())
# A role named instead of a person ("your line manager", "the finance team"): a fair answer to "who"
ROLE_NOUNS = PERSON_NOUNS | frozenset(
    "team department committee board desk helpdesk staff lead head owner officer coordinator administrator "
    "assistant supervisor chair secretary managers panel".split())
ROLE = re.compile(r"\b(?i:the|your|our|their|his|her|its|each|every)\s+(?:[a-z][\w-]*\s+){0,2}?"
                  rf"(?:{'|'.join(sorted(ROLE_NOUNS, key=len, reverse=True))})s?\b")
_AUX = (r"(?:is|was|are|were|did|does|do|has|had|have|will|would|could|can|should|might|may|must|else|"
        r"happened|happens|made|makes|caused|led)\b")
_KIND_NOUN = re.compile(rf"\b(?:which|what)\s+(?P<nouns>(?!{_AUX})[\w’'-]+(?:\s+(?!{_AUX})[\w’'-]+)?)", re.I)
CITY_NOUNS = frozenset("city cities town towns village capital venue stadium".split())
TITLES = frozenset(
    "President Prime Minister Secretary Chancellor King Queen Prince Princess Mr Mrs Ms Miss Dr Sir Lord Lady "
    "General Gen Senator Sen Rep MP Judge Pope Chief Executive Shadow Foreign Home Defence Defense Health Trade "
    "Industry Culture Sports Vice Deputy Former Coach Manager Director Chairman Captain Professor Prof Archbishop "
    "Bishop Governor Mayor State Sculptor Playwright Author Singer Actor Actress Striker Midfielder".split())
STOP_CAPS = frozenset(
    "The A An In At On For But And Or If As It Its He His She Her They Their This That These Those Then There "
    "Instead However Now Some Other Many Most Such When While After Before Since Among Of By With From To Also "
    "Yet So We Our I You Your Shares Meanwhile Although Though Despite Still Even Only All Both Each Every "
    "No Not Last Next First One Two Three Here What Who Which Where Why How Speaking According Earlier Later "
    "Under Over Into Without Within Why Is Are Was Were Has Have Had Do Does Did Can Could Will Would Should "
    "May Might Must Let".split())
NATIONALITIES = (
    "American Canadian Mexican Brazilian Argentine Argentinian Chilean Colombian Peruvian Venezuelan Cuban "
    "British English Scottish Scots Welsh Irish French German Dutch Belgian Swiss Austrian Italian Spanish "
    "Portuguese Greek Turkish Polish Czech Slovak Hungarian Romanian Bulgarian Serbian Croatian Bosnian "
    "Slovenian Albanian Ukrainian Russian Belarusian Lithuanian Latvian Estonian Finnish Swedish Norwegian "
    "Danish Icelandic Georgian Armenian Azerbaijani Kazakh Uzbek Kyrgyz Afghan Iranian Iraqi Syrian Lebanese "
    "Israeli Palestinian Jordanian Saudi Yemeni Egyptian Libyan Tunisian Algerian Moroccan Nigerian Ghanaian "
    "Kenyan Ethiopian Somali Sudanese Ugandan Tanzanian Zimbabwean African Indian Pakistani Bangladeshi "
    "Nepali Chinese Japanese Korean Vietnamese Thai Malaysian Indonesian Filipino Australian European Asian "
    "Arab Western Eastern Northern Southern Soviet Nordic Baltic Hispanic US UK EU UN").split()
NATIONALITY = re.compile(rf"^(?:{'|'.join(NATIONALITIES)})(?:-[A-Z][a-z]+)?$")
ORG_WORDS = frozenset(
    "News Council Group Party Foundation Parliament Court Bank Media Republic Union Championships Grand Prix "
    "Commission Exchange Securities University Office Government Ministry Department Corporation Corp Inc Ltd Plc "
    "Times Post Journal Network Channel Radio TV BBC CNN NATO UN EU Assembly Congress Senate Executive Board "
    "Association Federation League Club Committee Agency Authority Service Institute Centre Center Trust Fund "
    "Motors Airlines Records Studios Pictures Company Industries Systems Group Holdings Microsoft Google".split())
_CAP = r"(?:[A-Z][a-z’'\-]*[a-z]|[A-Z]{2,}s?|[A-Z]\.(?:[A-Z]\.)*|Mc[A-Z][a-z]+|[A-Z][a-z]*[A-Z][a-z]+)"
NAME_RUN = re.compile(rf"\b{_CAP}(?:(?:\s+|-)(?:(?:of|the|de|da|van|von|der|al|bin|la|le|du)\s+)?{_CAP})*"
                      r"(?:\s+\d{1,3}\b(?![,.]\d))?")
YEAR = re.compile(r"\b(?:1[5-9]\d\d|20\d\d)s?\b")
MONTH_DATE = re.compile(rf"\b(?:\d{{1,2}}(?:-\d{{1,2}})?\s+)?{MONTHS}(?:\s+\d{{1,2}}(?:st|nd|rd|th)?)?(?:,?\s+\d{{4}})?\b")
DAY = re.compile(r"\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?\b")  # "on Fridays" too
CLOCK = re.compile(r"\b(?:[01]?\d|2[0-3])(?:[:.][0-5]\d)?\s?(?:am|pm|a\.m\.|p\.m\.)(?!\w)|\b(?:[01]?\d|2[0-3]):[0-5]\d\b|"
                   r"\b(?:noon|midday|midnight)\b", re.I)
# a recurring or coming occasion: "each month", "every Friday", "with the next monthly salary"
RECURRING = re.compile(r"\b(?:every|each|next|following)\s+(?:[a-z]+\s+)?(?:day|week|fortnight|month|quarter|year|"
                       r"morning|afternoon|evening|night|weekend|meeting|payday|salary|payroll)s?\b", re.I)
RELATIVE_DATE = re.compile(r"\b(?:yesterday|today|tomorrow|last (?:week|month|year)|next (?:week|month|year)|"
                           r"earlier this year|this year|in the (?:late|early|mid-)?\s?\d{4}s)\b", re.I)
TEMPORAL_CLAUSE = re.compile(r"\b(?:after|before|until|once|following|during)\s+(?:the\s+|a\s+|an\s+)?[a-z0-9][^,.;:!?]{2,60}")
QUANTITY = re.compile(
    r"(?:[$£€¥]\s?)?\b\d[\d,]*(?:\.\d+)?(?:\s?(?:%|per ?cent|bn|m|k|million|billion|trillion|thousand|hundred)\b|%)?"
    r"(?:\s(?:seconds?|minutes?|hours?|days?|weeks?|months?|years?|km|kilometres?|miles?|metres?|kg|tonnes?|"
    r"people|votes?|seats?|points?|goals?|runs?|jobs?|subscribers?|users?|deputies|states))?"
    r"|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundreds|"
    r"thousands|millions|dozens?)\b(?:\s(?:of\s)?[a-z]+)?",
    re.I)


def kind_noun(question: str) -> str | None:
    """The noun naming the asked kind ("outlet" in "which news outlet ...?"), if any. It says what kind of
    thing the answer is, not what the answering sentence contains, so it is no focus word."""
    m = _KIND_NOUN.search(question)
    for noun in (m.group("nouns").lower().split() if m else []):
        if noun in PERSON_NOUNS or noun in ORG_NOUNS or noun in CITY_NOUNS or noun in PLACE_NOUNS:
            return noun
    return None


def answer_type(question: str) -> str | None:
    """The kind of thing the question asks for: ``number``, ``date``, ``year``, ``month``, ``person``,
    ``org``, ``place``, ``name`` (any proper name) or None (no particular kind)."""
    q = question.strip()
    low = q.lower()
    if re.search(r"\bhow long\b|\bwhat time\b|\bhow (?:fast|quickly)\b", low):
        return "duration"
    if re.search(r"\bhow (?:many|much|old|far|big|tall|often)\b|\bwhat (?:number|percentage|share|"
                 r"proportion|amount|sum|price|age|score)\b|\bby how much\b", low):
        return "number"
    if re.search(r"\bwhat(?:’s|'s| is| was| are| were| will be)\s+(?:the\s+|its\s+|their\s+|his\s+|her\s+)?"
                 r"(?:\w+\s+)?(?:budget|cost|price|fee|salary|revenue|turnover|rent|allowance|weight)s?\b", low):
        return "number"  # "What is the budget of Project Heron?", "What is the daily meal allowance?"
    if re.search(r"\b(?:what|which|in what|in which)\s+year\b", low):
        return "year"
    if re.search(r"\b(?:what|which|in what|in which)\s+month\b", low):
        return "month"
    if re.search(r"^\s*when\b|\bwhen (?:did|was|is|were|will|does|do|had|has)\b|\b(?:what|which|on what|on which)\s+"
                 r"(?:date|day)\b", low):
        return "date"
    if re.search(r"^\s*where\b|\bwhere (?:did|was|is|were|will|does|do|are)\b", low):
        return "place"
    m = _KIND_NOUN.search(q)
    if m:
        for noun in m.group("nouns").lower().split():
            if noun in PERSON_NOUNS:
                return "person"
            if noun in ORG_NOUNS:
                return "org"
            if noun in CITY_NOUNS:
                return "city"
            if noun in PLACE_NOUNS:
                return "place"
    named = re.search(r"\bname of (?:the |his |her |their |its |a |an )?(?P<nouns>(?:[\w’'-]+\s*){1,4})", low)
    if named:
        for noun in named.group("nouns").split():
            kind = ("person" if noun in PERSON_NOUNS else "org" if noun in ORG_NOUNS else
                    "city" if noun in CITY_NOUNS else "place" if noun in PLACE_NOUNS else None)
            if kind:
                return kind
    if re.search(r"^\W*(?:(?:and|so|but)\s+)?(?:who|whom|whose)\b|^\W*(?:in|by|for|from|with|to) whom\b", low):
        return "who"
    return None


_WH = frozenset("what who whom whose which when where why how and but so or then".split())


def question_names(question: str) -> list[str]:
    """Capitalised words of the question (not its first word): the names it asks about."""
    words = re.findall(r"(?<!^)(?<![.?!]\s)\b([A-Z][A-Za-z]{1,}|[A-Z]{2,})\b", question.strip())
    skip = QUESTION_WORDS | _WH | {"i", "not"}
    return [w for w in dict.fromkeys(words) if w.lower() not in skip]


@dataclass(frozen=True)
class TypedSpan:
    """A candidate short answer inside a sentence: offsets relative to the sentence, how well it fits the
    asked kind (0..1), and the fit discounted by its distance from the question's words (``score``)."""
    start: int
    end: int
    fit: float
    score: float


@lru_cache(maxsize=8192)
def _name_spans(sentence: str) -> tuple[tuple[int, int, str], ...]:
    """Capitalised runs as (start, end, flavour); flavour is person, org, acronym or name.
    Sentence-initial function words, leading titles and nationality adjectives are trimmed off."""
    runs = []
    for m in NAME_RUN.finditer(sentence):
        words = [(w.start() + m.start(), w.end() + m.start(), w.group(0))
                 for w in re.finditer(r"[^\s-]+", m.group(0))]
        cut = 0
        for i, w in enumerate(words[:-1]):  # "Ukraine’s NATO ambitions": two names
            if w[2].endswith(("’s", "'s")):
                runs.append(words[cut:i + 1])
                cut = i + 1
        runs.append(words[cut:])
    out = []
    for words in runs:
        titled = False
        while words and (words[0][2] in STOP_CAPS or words[0][2].rstrip("’'s") in TITLES or
                         (NATIONALITY.match(words[0][2]) and len(words) > 1 and
                          words[-1][2] not in ("Republic", "Kingdom", "Federation", "Union", "Emirates", "States"))):
            titled = titled or words[0][2] in TITLES
            words = words[1:]
        while words and words[-1][2].lower() in ("of", "the", "de", "da", "van", "von", "der", "al", "bin"):
            words = words[:-1]
        if not words:
            continue
        start, end = words[0][0], words[-1][1]
        text = sentence[start:end]
        if text.endswith(("’s", "'s")):
            end -= 2
            text = text[:-2]
        if len(text) < 2:
            continue
        if start == 0 or re.fullmatch(r"[\s“\"‘'(]*", sentence[:start]):
            if len(words) == 1 and words[0][2] in STOP_CAPS:
                continue
        names = text.split()
        before = sentence[max(0, start - 30):start]
        if re.fullmatch(rf"{MONTHS}|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?", text):
            continue  # dates are not names
        if names[-1] in ("Republic", "Kingdom", "States", "Islands", "Emirates", "Federation") and len(names) > 1:
            flavour = "country"
        elif any(w in ORG_WORDS for w in names) or re.search(r"\b(?:the|The)\s+$", before) and len(names) > 1:
            flavour = "org"
        elif text.isupper() or re.fullmatch(r"[A-Z]{2,}s?", text):
            flavour = "acronym"
        elif NATIONALITY.match(text):
            flavour = "nationality"
        elif re.search(r"\d", text) or names[0] in ("Article", "Section", "Chapter", "Clause", "Resolution"):
            flavour = "name"
        elif len(names) >= 2 or titled or re.match(r"\s*(?:said|says|told|added|argued|warned)\b", sentence[end:]):
            flavour = "person"
        else:
            flavour = "name"
        out.append((start, end, flavour))
    return tuple(out)


_FIT = {"person": {"person": 1.0, "name": 0.6, "org": 0.35, "acronym": 0.3},
        "who": {"person": 1.0, "org": 0.85, "name": 0.75, "acronym": 0.6},
        "city": {"name": 0.45, "person": 0.45, "org": 0.3, "acronym": 0.3, "country": 0.2},
        "org": {"org": 1.0, "acronym": 0.9, "name": 0.8, "person": 0.3, "country": 0.3},
        "place": {"name": 0.8, "country": 1.0, "person": 0.6, "org": 0.4, "acronym": 0.4},
        "name": {"person": 0.9, "org": 0.9, "acronym": 0.8, "name": 0.8}}


def _kind_spans(sentence: str, kind: str) -> list[tuple[int, int, float]]:
    """(start, end, fit) of every span in the sentence of the asked kind."""
    if kind == "year":
        return [(m.start(), m.end(), 1.0) for m in YEAR.finditer(sentence)]
    if kind == "month":
        return [(m.start(), m.end(), 1.0) for m in MONTH_DATE.finditer(sentence)]
    if kind == "date":
        spans = [(m.start(), m.end(), 1.0) for m in MONTH_DATE.finditer(sentence)]
        spans += [(m.start(), m.end(), 0.9) for m in DAY.finditer(sentence)]
        spans += [(m.start(), m.end(), 0.9) for m in CLOCK.finditer(sentence)]
        spans += [(m.start(), m.end(), 0.9) for m in YEAR.finditer(sentence)
                  if not any(s <= m.start() < e for s, e, _ in spans)]
        spans += [(m.start(), m.end(), 0.7) for m in RELATIVE_DATE.finditer(sentence)]
        spans += [(m.start(), m.end(), 0.6) for m in TEMPORAL_CLAUSE.finditer(sentence)]
        spans += [(m.start(), m.end(), 0.6) for m in RECURRING.finditer(sentence)]
        return spans
    if kind == "duration":  # "how long", "what time": a length of time, a race time or a time of day
        spans = [(m.start(), m.end(), 0.9) for m in CLOCK.finditer(sentence)]
        return spans + [(m.start(), m.end(), 1.0 if re.search(r"(?i)seconds?|minutes?|hours?|days?|weeks?|months?|"
                                                              r"years?|\d:\d\d", m.group(0)) else 0.5)
                        for m in QUANTITY.finditer(sentence) if not YEAR.fullmatch(m.group(0).strip())
                        and not any(a <= m.start() < b for a, b, _ in spans)]
    if kind == "number":
        spans = []
        for m in QUANTITY.finditer(sentence):
            text = m.group(0)
            if YEAR.fullmatch(text.strip()):
                continue  # a bare year is a date, not an amount
            if re.fullmatch(r"(?i)one", text.strip()):
                continue  # "one of the", "one part": rarely an amount
            spans.append((m.start(), m.end(), 1.0 if re.search(r"\d", text) else 0.8))
        return spans
    fits = _FIT[kind]
    spans = [(m.start(), m.end(), 0.6) for m in ROLE.finditer(sentence)] if kind == "who" else []
    for start, end, flavour in _name_spans(sentence):
        fit = fits.get(flavour, 0.0)
        before = sentence[max(0, start - 16):start]
        if kind == "place" and re.search(r"\b(?:in|at|to|from|near|outside)\s+(?:the\s+)?$", before):
            fit = min(1.0, fit + 0.2)
        if kind in ("who", "person") and flavour != "person" and \
                re.search(r"\b(?:in|at|near|outside|inside|into|across)\s+(?:the\s+)?$", before):
            fit = min(fit, 0.3)  # "in the Porto office": a place, not who did it
        if kind == "city" and re.search(r"(?:\b(?:in|at|near|outside|city of|town of)\s+|\bcapital,\s+)$", before):
            fit = min(1.0, fit + 0.55)
        if fit > 0:
            spans.append((start, end, fit))
    return spans


@lru_cache(maxsize=65536)
def _stem(token: str) -> str:
    """A light suffix stripper so "interviewed", "interview" and "interviews" meet."""
    for suffix in ("ations", "ation", "ings", "ing", "edly", "ed", "ly", "es", "e"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 4:
            return token[: -len(suffix)]
    return token


@lru_cache(maxsize=65536)
def _loose_stem(token: str) -> str:
    """:func:`_stem` that also joins a country and its adjective ("Ukraine", "Ukrainian")."""
    for suffix in ("ians", "ian", "ia"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 4:
            return _stem(token[: -len(suffix)])
    return _stem(token)


@lru_cache(maxsize=16384)
def _stems(text: str) -> tuple[str, ...]:
    return tuple(_stem(t) for t in tokenize(text))


@lru_cache(maxsize=65536)
def _word_stem(word: str) -> str:
    """The loose stem of one word as written ("" for a stopword)."""
    tokens = tokenize(word)
    return _loose_stem(tokens[0]) if tokens else ""


@lru_cache(maxsize=512)
def _question_words(question: str) -> tuple[frozenset, frozenset, str, frozenset]:
    """(stems, loose stems, lower-cased text, its names lower-cased) of a question, computed once."""
    names = {question[a:b].lower() for a, b, _ in _name_spans(question)} | \
            {m.group(0).lower() for m in NAME_RUN.finditer(question)}
    return (frozenset(_stems(question)), frozenset(_loose_stem(t) for t in tokenize(question)), question.lower(),
            frozenset(names))


def typed_spans(sentence: str, kind: str | None, question: str) -> list[TypedSpan]:
    """Spans of the asked kind that the question does not already hold, best first. ``score`` discounts
    ``fit`` by the span's distance (in words) from the nearest question word found in the sentence."""
    if kind is None:
        return []
    q_stems, q_loose, q_low, q_names = _question_words(question)
    word_pos = [(m.start(), _word_stem(m.group(0))) for m in re.finditer(r"[\w’'-]+", sentence)]
    anchors = [i for i, (_, s) in enumerate(word_pos) if s and s in q_loose]
    out = []
    subject_ok = ("person",) if kind in ("who", "person") else ()
    person_starts = {a for a, _, f in _name_spans(sentence) if f in subject_ok}
    for start, end, fit in _kind_spans(sentence, kind):
        text = sentence[start:end]
        stems = _stems(text)
        if kind in ("number", "duration", "year", "month", "date"):
            if text.lower() in q_low:
                continue
        elif not stems or text.lower() in q_names or ((len(stems) > 1 or kind == "who") and
                                                      all(s in q_stems for s in stems)):
            continue  # the question's own name ("Zelenskyy" for "Who interviewed Zelenskyy?") or role ("the chair")
        first = sum(1 for p, _ in word_pos if p < start)
        last = sum(1 for p, _ in word_pos if p < end) - 1
        nearest: dict[str, int] = {}  # each question word found outside the span: its nearest distance
        for i in anchors:
            if not first <= i <= last:
                d = min(abs(i - first), abs(i - last))
                nearest[word_pos[i][1]] = min(d, nearest.get(word_pos[i][1], d))
        closeness = (sum(1.0 / (1.0 + 0.15 * max(0, d - 1)) for d in nearest.values()) / len(nearest)
                     if nearest else 0.5)
        if start < 3 and start in person_starts:
            closeness = max(closeness, 0.85)  # the sentence's subject: "Dan Gillmor, founder of ..., said"
        out.append(TypedSpan(start, end, fit, fit * closeness))
    return sorted(out, key=lambda s: (-s.score, s.start))


def has_type(sentence: str, kind: str | None, question: str) -> float:
    """1.0 without a kind; else the best typed span's score (0 when nothing of the kind is there)."""
    if kind is None:
        return 1.0
    spans = typed_spans(sentence, kind, question)
    return spans[0].score if spans else 0.0


def short_answer(question: str, sentence: str) -> tuple[int, int] | None:
    """Offsets (relative to ``sentence``) of the short answer, or None. A typed question gets its best span of
    the kind; a "what/which <noun>" question of no known kind ("What government position ...?") gets a
    proper name close to the question's words in the sentence, if there is one."""
    kind = answer_type(question)
    if kind is not None:
        spans = typed_spans(sentence, kind, question)
        return (spans[0].start, spans[0].end) if spans and spans[0].fit >= 0.5 else None
    if not _KIND_NOUN.search(question) or not re.match(r"\W*(?:(?:in|on|at|for|by|of|from|to|with)\s+)?(?:what|which)\b",
                                                       question, re.I):
        return None
    spans = typed_spans(sentence, "name", question)
    return (spans[0].start, spans[0].end) if spans and spans[0].score >= 0.6 else None

"""Map a spoken (transcribed) answer to the choices of the current question. Pure: no I/O.

The IVR gives the expected choices of one question as ``{choice: [phrases…]}`` and a transcript;
:func:`match_answer` says which choice was meant, how sure it is, and which words decided.

How it reads Vietnamese:

* **Diacritics-tolerant.** Text is NFC-normalised and lower-cased. When the transcript carries no
  Vietnamese marks at all (an engine or a typist that drops them), "hai long" matches "hài lòng" at
  a small discount. When it does carry marks, a word whose marks differ from the phrase's ("hai" for
  "hài") is taken as a likely tone confusion at a larger discount, so it stays below the confirmation
  threshold on its own.
* **Negation-safe.** Negators ("không", "chưa", "chẳng", "chả", southern "hông"/"hổng", "đâu có") and
  the adverbs that may follow them ("được", "có", "thấy", "phải", "hề", "thể nào", "thực sự", "còn",
  "có gì để", …) collapse into one ``NEG`` token, in the transcript and in the phrases alike.
  "chẳng hài lòng", "không thể nào hài lòng" and "chưa thực sự hài lòng" then all read
  ``NEG hài lòng``. A negation covers the rest of its clause, up to punctuation or a clause break
  ("nhưng", "mà", "thì", "chứ", "chỉ là"…): a phrase that does not itself start with a negation is
  negated anywhere in that span ("không cần góp ý" does not ask for a comment; "không phải đi lại
  nhiều lần, chỉ là chậm" gives only "chậm"). A negated phrase of one of exactly two choices counts
  for the other ("không đúng" → no, "không sai" → yes), below the confirmation threshold when other
  words stand between the negator and the phrase; of more choices it answers nothing. A double
  negation ("không phải là không hài lòng") is kept but heavily discounted so the IVR confirms, and
  so is any answer in a transcript whose negation no phrase accounted for ("hài lòng, không biết
  nữa"): a negation we could not place may reverse what we matched.
* **Politeness is not an answer.** "dạ", "vâng", "ừ" open almost every Vietnamese reply: a choice
  matched only by such a particle loses to any other choice matched by a content word ("dạ không"),
  and is no answer at all before a negation we cannot place ("dạ, không biết").
* **"Có … không?" is answered "có" or "không".** A bare "có" (with particles: "dạ có", "có ạ") is
  the yes of such a question when a phrase list offers it. It is a verb, not a yes, before a word
  we cannot place ("có gì đâu", "có thể", "có lẽ"), and it loses to a content phrase of another
  choice ("có, nhưng chưa hài lòng" → not satisfied); against a bare "không" it stands, so "có
  không" stays ambiguous. "Không có gì" ("it's nothing", "you're welcome") is an idiom, not a clear
  no: as a whole answer it stays below the confirmation threshold.
* **Numbers.** :func:`reason_choices` builds phrases for reason codes ("hai", "số hai", "thứ hai",
  "lý do hai", "2"); a number word followed by a unit noun ("một lần", "năm nay") is a quantity,
  not a choice. Several choices in one utterance ("hai và bốn") come back in ``choices``.

The confidence is the engine's confidence times the match quality (how exactly the words matched)
times a coverage factor (how much of the utterance the match explains).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

# Below this the IVR asks once to confirm (or to press the key instead).
DEFAULT_CONFIRM_THRESHOLD = 0.6

NEG = "<neg>"
_BOUNDARY = "<|>"

# Quality of one word's match.
_EXACT = 1.0
_UNMARKED_TEXT = 0.85  # the transcript carries no marks at all: "hai long" for "hài lòng"
_TONE_MISMATCH = 0.55  # marks present but different: a probable tone confusion by the engine
_NEAR_MISS = 0.5  # one letter off (final consonant dropped…), only in very short answers
_BINARY_FLIP = 0.85  # "không đúng" read as the other of two choices
_DOUBLE_NEGATION = 0.5
_DISTANT_NEGATION = 0.6  # "không cần góp ý": other words between the negator and the phrase
# A negator that no phrase accounted for ("hài lòng, không biết nữa") may reverse the answer: the
# confidence stays below the confirmation threshold (the IVR's min_confidence, 0.6 by default).
_UNPLACED_NEGATION_CAP = 0.5
_PARTICLE_ONLY = 0.6  # only a politeness particle matched, among other unplaced words
_UNSURE_YES_CAP = 0.5  # only "có" or particles matched, among other unplaced words
# "không có gì" as a whole answer: "nothing", "no problem", "you're welcome" as often as "no".
_NOTHING_IDIOM = 0.5


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that negate what follows.
_NEGATORS = {"không", "chưa", "chẳng", "chả", "hông", "hổng", "hem", "chửa"}
# Two-word negators ("đâu có hài lòng").
_NEGATOR_PAIRS = {("đâu", "có")}
# Adverbs that may sit between a negator and what it negates; swallowed into NEG ("không thể nào",
# "chưa thực sự", "chẳng có gì để"). Several-word ones are tried first, longest first.
_NEG_FILLERS: tuple[tuple[str, ...], ...] = tuple(
    sorted(
        {
            (w,)
            for w in _words("được có thấy cảm hề mấy thật sự phải là hoàn toàn hẳn lấy quá cho thể còn lắm")
        }
        | {tuple(f.split()) for f in ("thực sự", "thể nào", "có gì", "có gì để", "bao giờ")},
        key=lambda f: (-len(f), f),
    )
)
# Words that end a negation's clause as punctuation does ("không chậm, chỉ là thái độ…").
_CLAUSE_BREAKS = _words("nhưng mà thì chứ song tuy chỉ")
# Spelling variants, dialect and texting forms, mapped before matching.
_VARIANTS = {
    "ko": "không",
    "k": "không",
    "kg": "không",
    "khg": "không",
    "hông": "không",
    "hổng": "không",
    "hem": "không",
    "chửa": "chưa",
    "chả": "chẳng",
    "dzạ": "dạ",
    "zạ": "dạ",
    "ừm": "ừ",
    "ờ": "ừ",
    "ừa": "ừ",
    "uh": "ừ",
    "um": "ừ",
    "dồi": "rồi",
    "gồi": "rồi",
    "bẩy": "bảy",
    "okay": "ok",
    "oke": "ok",
    "okê": "ok",
}
# Particles that open or close a reply whatever it says: weak evidence, never explained-away words.
_PARTICLES = {"dạ", "vâng", "ạ", "ừ", "à", "ơi", "nhé", "nha", "nhá", "ha"}
# The yes of a "có … không?" question. Weak evidence: it loses to a content phrase of another choice.
_YES_WORDS = {"có"}
_ALTERNATIVES = ("hay", "hoặc")  # "có hay không": "or"
# Strength of a hit's words, for deciding between choices (see _Hit.strength).
_PARTICLE, _BARE_YES, _CONTENT = 0, 1, 2
# Words that carry no answer: not counted against coverage.
_IGNORABLE = (
    _PARTICLES
    | _words(
        "tôi em anh chị cháu con mình tui ông bà cô chú bác thì là rồi thấy cảm rất cũng thưa xin và với "
        "lắm quá chọn số lý do thứ cái nữa luôn đâu mà chứ"
    )
    | {_BOUNDARY}
)
# Nouns that make a preceding number a quantity ("một lần", "năm nay" — "year"), not a choice.
_UNIT_NOUNS = _words(
    "lần ngày tháng năm nay ngoái tuần giờ phút chút người cái buổi lượt trăm nghìn ngàn triệu tiếng bộ tờ"
)

_NUMBER_WORDS: dict[int, tuple[str, ...]] = {
    1: ("một", "mốt"),
    2: ("hai",),
    3: ("ba",),
    4: ("bốn", "tư"),
    5: ("năm", "lăm"),
    6: ("sáu",),
    7: ("bảy", "bẩy"),
    8: ("tám",),
    9: ("chín",),
}
_ORDINALS = {1: "nhất", 4: "tư"}
_NUMBER_TOKENS = {w for words in _NUMBER_WORDS.values() for w in words} | {str(d) for d in range(10)}

_WORD_RE = re.compile(r"[^\W_]+|[.,;:!?…\-–—/]+", re.UNICODE)
_PUNCT_RE = re.compile(r"^[.,;:!?…\-–—/]+$")


@dataclass(frozen=True, slots=True)
class AnswerMatch:
    """What a transcript answered.

    ``choice`` is set when exactly one choice was recognised; ``choices`` lists every choice found,
    in the order spoken (for questions that take several, such as the reasons). ``confidence``
    (0..1) is the confidence in ``choices`` as a whole; ``matched`` the words that decided.
    """

    choice: str | None
    confidence: float
    matched: str | None
    choices: tuple[str, ...] = ()

    @property
    def is_ambiguous(self) -> bool:
        return len(self.choices) > 1

    def is_confident(self, threshold: float = DEFAULT_CONFIRM_THRESHOLD) -> bool:
        return bool(self.choices) and self.confidence >= threshold


NO_MATCH = AnswerMatch(choice=None, confidence=0.0, matched=None, choices=())

# Reference phrase lists for the matcher's tests and the yes/no benchmark (scripts/bench_asr.py).
# The IVR and ``callcenter asr match`` use the questionnaire's ``speech:`` lists instead.
YES_NO_CHOICES: Mapping[str, Sequence[str]] = {
    "yes": (
        "đúng",
        "đúng rồi",
        "đúng vậy",
        "đúng thế",
        "dạ đúng",
        "vâng",
        "dạ vâng",
        "dạ",
        "có",
        "dạ có",
        "ừ",
        "phải",
        "phải rồi",
        "chính xác",
        "đồng ý",
        "ok",
    ),
    "no": ("không", "không phải", "không đúng", "sai", "sai rồi", "nhầm", "nhầm số", "chưa"),
}
SATISFACTION_CHOICES: Mapping[str, Sequence[str]] = {
    "satisfied": ("hài lòng", "rất hài lòng", "tạm hài lòng", "tốt", "ổn", "rất tốt"),
    "not_satisfied": ("chưa hài lòng", "không hài lòng", "bất mãn", "tệ", "kém"),
}


def fold(text: str) -> str:
    """Strip Vietnamese marks: "Hài lòng, ĐÚNG" → "hai long, dung" (lower-cased)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    stripped = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return stripped.replace("đ", "d")


def _has_marks(token: str) -> bool:
    return fold(token) != token


def tokenize(text: str) -> list[str]:
    """NFC, lower-case words; punctuation becomes a boundary; digit runs split into digits."""
    text = unicodedata.normalize("NFC", text).lower()
    tokens: list[str] = []
    for raw in _WORD_RE.findall(text):
        if _PUNCT_RE.match(raw):
            if tokens and tokens[-1] != _BOUNDARY:
                tokens.append(_BOUNDARY)
            continue
        if raw.isdigit() and len(raw) <= 9:
            tokens.extend(raw)  # "24" said as keys: two digits
            continue
        tokens.append(_VARIANTS.get(raw, raw))
    while tokens and tokens[-1] == _BOUNDARY:
        tokens.pop()
    return tokens


def _same_word(token: str, word: str) -> bool:
    """Function-word identity, tolerant of missing marks on the transcript side."""
    return token == word or (not _has_marks(token) and fold(token) == fold(word))


def _is_negator(token: str) -> bool:
    return any(_same_word(token, n) for n in _NEGATORS)


def _neg_filler_length(raw: Sequence[str], i: int) -> int:
    """How many raw tokens from ``i`` form one filler after a negator (0: none)."""
    for filler in _NEG_FILLERS:
        if i + len(filler) <= len(raw) and all(_same_word(raw[i + k], word) for k, word in enumerate(filler)):
            return len(filler)
    return 0


def _is_clause_break(token: str) -> bool:
    return token == _BOUNDARY or any(_same_word(token, b) for b in _CLAUSE_BREAKS)


@dataclass(frozen=True, slots=True)
class _Canon:
    tokens: tuple[str, ...]
    spans: tuple[tuple[int, int], ...]  # each canonical token's span in the raw token list
    double_negation: bool
    # For each canonical token, the NEG before it in the same clause (None: not negated).
    scope: tuple[int | None, ...] = ()


def _canonical(raw: Sequence[str]) -> _Canon:
    """Collapse negators (and the adverbs after them) into NEG; an even run cancels out.

    Also records each token's negation scope: the last NEG before it in its clause.
    """
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    double = False
    i = 0
    while i < len(raw):
        token = raw[i]
        pair = i + 1 < len(raw) and any(
            _same_word(token, a) and _same_word(raw[i + 1], b) for a, b in _NEGATOR_PAIRS
        )
        if _is_negator(token) or pair:
            start = i
            count = 0
            while i < len(raw):
                if i + 1 < len(raw) and any(
                    _same_word(raw[i], a) and _same_word(raw[i + 1], b) for a, b in _NEGATOR_PAIRS
                ):
                    count += 1
                    i += 2
                elif _is_negator(raw[i]):
                    count += 1
                    i += 1
                elif filler := _neg_filler_length(raw, i):
                    i += filler
                else:
                    break
            if count % 2 == 1:
                out.append(NEG)
                spans.append((start, i))
            if count >= 2:
                double = True
            continue
        out.append(token)
        spans.append((i, i + 1))
        i += 1
    scope: list[int | None] = []
    current: int | None = None
    for index, token in enumerate(out):
        if _is_clause_break(token):
            current = None
        scope.append(current)
        if token == NEG:
            current = index
    return _Canon(tuple(out), tuple(spans), double, tuple(scope))


def _edit_distance_at_most_one(a: str, b: str) -> bool:
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = j = 0
    edits = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            i += 1
            j += 1
            continue
        edits += 1
        if edits > 1:
            return False
        if len(a) == len(b):
            i += 1
        j += 1
    return edits + (len(b) - j) + (len(a) - i) <= 1


def _word_quality(token: str, word: str, *, text_marked: bool, short: bool) -> float:
    if token == word:
        return _EXACT
    if word == NEG and short and token not in (NEG, _BOUNDARY):
        # A clipped "không" ("khôn", "hôn") heard in a one-word answer.
        return _NEAR_MISS if _edit_distance_at_most_one(fold(token), "khong") else 0.0
    if NEG in (token, word) or _BOUNDARY in (token, word):
        return 0.0
    if fold(token) == fold(word):
        return _TONE_MISMATCH if text_marked else _UNMARKED_TEXT
    if short and len(fold(word)) >= 4 and _edit_distance_at_most_one(fold(token), fold(word)):
        return _NEAR_MISS
    return 0.0


@cache
def _phrase_tokens(phrase: str) -> tuple[str, ...]:
    # The IVR asks with the same few dozen phrases on every call: canonicalise each once.
    return _canonical(tokenize(phrase)).tokens


@dataclass(frozen=True, slots=True)
class _Hit:
    choice: str
    start: int  # canonical token index
    end: int
    quality: float
    # _PARTICLE: politeness particles only ("dạ", "vâng"); _BARE_YES: a bare "có" ("dạ có");
    # _CONTENT: anything else (a bare "không" included). A weaker hit loses to a stronger one of
    # another choice, except that a bare "có" stands against a bare "không".
    strength: int
    negated: bool  # a negation before it in its clause (then ``start`` is that NEG)
    discount: float = 1.0  # applied to the answer's confidence, not to the choice between hits

    @property
    def weak(self) -> bool:
        return self.strength == _PARTICLE


def _strength(p: Sequence[str]) -> int:
    if all(t in _PARTICLES for t in p):
        return _PARTICLE
    if all(t in _PARTICLES or t in _YES_WORDS for t in p):
        return _BARE_YES
    return _CONTENT


def _bare_negation(tokens: Sequence[str]) -> bool:
    """A bare "không" ("dạ không", "không ạ"): a negation with nothing but particles around it."""
    return NEG in tokens and all(t == NEG or t in _PARTICLES for t in tokens)


def _ends_answer(text: Sequence[str], end: int) -> bool:
    """What follows ``end`` lets a bare "có" be an answer: nothing, a particle or filler, a clause
    break, a negation or "hay" ("có không?", "có hay không?" said back: yes and no, ambiguous)."""
    return (
        end >= len(text)
        or text[end] in _IGNORABLE
        or _is_clause_break(text[end])
        or text[end] == NEG
        or any(_same_word(text[end], w) for w in _ALTERNATIVES)
    )


def _says_nothing(raw: Sequence[str], canon: _Canon, index: int) -> bool:
    """Whether the NEG at canonical ``index`` is "không có gì" ("chẳng có gì"…): "it's nothing"."""
    start, end = canon.spans[index]
    return any(_same_word(t, "gì") for t in raw[start:end])


def _find_hits(
    raw: Sequence[str],
    canon: _Canon,
    choice: str,
    phrases: Iterable[str],
    *,
    text_marked: bool,
    short: bool,
) -> list[_Hit]:
    hits: list[_Hit] = []
    text = canon.tokens
    for phrase in phrases:
        p = _phrase_tokens(phrase)
        if not p or len(p) > len(text):
            continue
        strength = _strength(p)
        for start in range(len(text) - len(p) + 1):
            qualities = [
                _word_quality(text[start + k], p[k], text_marked=text_marked, short=short)
                for k in range(len(p))
            ]
            if min(qualities) <= 0.0:
                continue
            # A pronoun or particle heard with other marks ("bà" for "ba") is that word, not a choice.
            if any(q < _EXACT and text[start + k] in _IGNORABLE for k, q in enumerate(qualities)):
                continue
            end = start + len(p)
            # "một lần", "năm nay": a number before a unit noun is a quantity, not a choice.
            if p[-1] in _NUMBER_TOKENS and end < len(text) and text[end] in _UNIT_NOUNS:
                continue
            # A bare "không" right before a word we cannot place negates that word ("không biết",
            # "không nhớ"), it does not answer the question.
            bare_no = _bare_negation(p)
            if bare_no and end < len(text) and text[end] not in _IGNORABLE:
                continue
            # A bare "có" before a word we cannot place is the verb "have" ("có gì đâu", "có thể",
            # "có lẽ"), not the yes of "có … không?".
            if strength == _BARE_YES and not _ends_answer(text, end):
                continue
            # Negated by a NEG earlier in the clause ("không thể nào hài lòng", "không cần góp ý").
            # A phrase that starts with its own negation is negated again only by an earlier one
            # ("không phải tôi không hài lòng"): a double negation.
            negator = canon.scope[start] if not bare_no else None
            negated = negator is not None
            discount = 1.0
            # "không có gì" as the whole answer: maybe "no", maybe "it's nothing", "no problem".
            if bare_no and _says_nothing(raw, canon, start + p.index(NEG)):
                discount = _NOTHING_IDIOM
            if negator is not None:
                if p[0] == NEG:
                    discount = _DOUBLE_NEGATION
                elif any(t not in _IGNORABLE for t in text[negator + 1 : start]):
                    discount = _DISTANT_NEGATION
            quality = sum(qualities) / len(qualities)
            first = negator if negator is not None else start
            hits.append(_Hit(choice, first, end, quality, strength, negated, discount))
    return hits


def _select(hits: list[_Hit]) -> list[_Hit]:
    """Keep the longest, best non-overlapping hits (a longer phrase explains more)."""
    ordered = sorted(hits, key=lambda h: (-(h.end - h.start), h.negated, -h.quality, h.start))
    taken: list[_Hit] = []
    for hit in ordered:
        if all(hit.end <= t.start or hit.start >= t.end for t in taken):
            taken.append(hit)
    return sorted(taken, key=lambda h: h.start)


def match_answer(
    text: str,
    choices: Mapping[str, Sequence[str]],
    *,
    engine_confidence: float = 1.0,
) -> AnswerMatch:
    """Say which of ``choices`` (choice → phrases) a transcript meant, with a confidence in 0..1.

    ``engine_confidence`` is the recogniser's own confidence in ``text`` (1.0 for typed text).
    Returns :data:`NO_MATCH` (``choice`` None, no ``choices``) when nothing matched.
    """
    raw = tokenize(text)
    if not raw or not choices:
        return NO_MATCH
    canon = _canonical(raw)
    text_marked = any(_has_marks(t) for t in raw if t != _BOUNDARY)
    content = [t for t in canon.tokens if t not in _IGNORABLE]
    short = len(content) <= 3

    hits: list[_Hit] = []
    for choice, phrases in choices.items():
        hits.extend(_find_hits(raw, canon, choice, phrases, text_marked=text_marked, short=short))

    names = list(choices)
    selected = _select(hits)
    resolved: list[_Hit] = []
    for hit in selected:
        if not hit.negated:
            resolved.append(hit)
        elif len(names) == 2:
            other = names[1] if hit.choice == names[0] else names[0]
            quality = hit.quality * _BINARY_FLIP
            resolved.append(_Hit(other, hit.start, hit.end, quality, _CONTENT, False, hit.discount))
        # A negated phrase with no opposite choice answers nothing, and it blocked the wrong one.

    # Doubtful words (tone confusions, near misses) count only when nothing was clearly heard.
    if any(h.quality >= _UNMARKED_TEXT for h in resolved):
        resolved = [h for h in resolved if h.quality >= _TONE_MISMATCH + 0.01]
    resolved = [h for h in resolved if not _outweighed(h, resolved, canon.tokens)]
    if not resolved:
        return NO_MATCH

    found: list[str] = []
    for hit in resolved:
        if hit.choice not in found:
            found.append(hit.choice)

    # Quality: the weakest of the best hits per choice (each chosen answer must be well heard).
    best = {c: max(h.quality for h in resolved if h.choice == c) for c in found}
    quality = min(best.values())
    if canon.double_negation:
        quality *= _DOUBLE_NEGATION
    quality *= min(h.discount for h in resolved)

    explained: set[int] = set()
    for hit in resolved:
        explained.update(range(hit.start, hit.end))
    # Every negator must be accounted for by a hit (as its phrase's own "không", or negating it).
    consumed: set[int] = set()
    for hit in selected:
        consumed.update(range(hit.start, hit.end))
    unplaced_negation = any(t == NEG and i not in consumed for i, t in enumerate(canon.tokens))
    # "dạ, không biết": a polite opening before a negation we cannot place is no yes at all.
    if unplaced_negation and all(h.weak for h in resolved):
        return NO_MATCH
    countable = [i for i, t in enumerate(canon.tokens) if t not in _IGNORABLE or i in explained]
    coverage = sum(1 for i in countable if i in explained) / len(countable) if countable else 1.0
    # "dạ" alone is a yes; "dạ" before words we could not place is only a polite opening.
    if all(h.weak for h in resolved) and coverage < 1.0:
        quality *= _PARTICLE_ONLY

    coverage_factor = 0.75 + 0.25 * coverage

    confidence = max(0.0, min(1.0, engine_confidence)) * quality * coverage_factor
    if unplaced_negation:
        confidence = min(confidence, _UNPLACED_NEGATION_CAP)
    # A bare "có" (or a particle) before words we could not place: "có, nhưng lâu quá", "có, cán bộ
    # hách dịch" may be a yes or the start of a complaint. Confirmed before it counts, never taken.
    if all(h.strength <= _BARE_YES for h in resolved) and coverage < 1.0:
        confidence = min(confidence, _UNSURE_YES_CAP)
    matched = ", ".join(_surface(raw, canon, h) for h in resolved)
    return AnswerMatch(
        choice=found[0] if len(found) == 1 else None,
        confidence=round(confidence, 4),
        matched=matched,
        choices=tuple(found),
    )


def _outweighed(hit: _Hit, hits: Sequence[_Hit], tokens: Sequence[str]) -> bool:
    """A particle-only hit loses to any other hit; a bare "có" to a content hit of another choice
    ("có, nhưng chưa hài lòng"), not to a bare "không" ("có không?" stays ambiguous)."""
    if hit.strength == _PARTICLE:
        return any(h.strength > _PARTICLE for h in hits)
    if hit.strength == _BARE_YES:
        return any(
            h.choice != hit.choice and h.strength == _CONTENT and not _bare_negation(tokens[h.start : h.end])
            for h in hits
        )
    return False


def _surface(raw: Sequence[str], canon: _Canon, hit: _Hit) -> str:
    start = canon.spans[hit.start][0]
    end = canon.spans[hit.end - 1][1]
    return " ".join(t for t in raw[start:end] if t != _BOUNDARY)


def number_phrases(n: int) -> list[str]:
    """How a caller may say choice number ``n`` (1..9): "hai", "số hai", "thứ hai", "2"…"""
    if n not in _NUMBER_WORDS:
        raise ValueError(f"number_phrases: {n} is outside 1..9 (the keypad's choices)")
    phrases: list[str] = [str(n), f"số {n}", f"lý do {n}", f"lý do số {n}"]
    for word in _NUMBER_WORDS[n]:
        if word == "tư":  # bare "tư" is too often "tư vấn", "tư pháp": only "số tư", "thứ tư"
            phrases.extend(["số tư", "thứ tư"])
            continue
        if word == "lăm":  # only after "mười"/"hai mươi"; never a choice on its own
            continue
        phrases.extend([word, f"số {word}", f"lý do {word}", f"lý do số {word}", f"thứ {word}"])
    if n in _ORDINALS:
        phrases.append(f"thứ {_ORDINALS[n]}")
    if n == 1:
        phrases.remove("thứ một")
        phrases.remove("thứ mốt")
    return list(dict.fromkeys(phrases))


def reason_choices(codes: Iterable[int] = range(1, 10)) -> dict[str, list[str]]:
    """Choices for "which reason?": ``{"1": ["1", "một", "số một", …], …}``."""
    return {str(code): number_phrases(code) for code in codes}


def match_reasons(
    text: str, *, codes: Iterable[int] = range(1, 10), engine_confidence: float = 1.0
) -> tuple[tuple[int, ...], AnswerMatch]:
    """The reason codes spoken in ``text`` ("hai và bốn" → (2, 4)), in the order said, and the match."""
    match = match_answer(text, reason_choices(codes), engine_confidence=engine_confidence)
    return tuple(int(c) for c in match.choices), match

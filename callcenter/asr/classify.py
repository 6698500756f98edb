"""Classify a citizen's free comment into the questionnaire's reasons. Pure: no I/O.

Rules written for this domain (Vietnamese one-stop shops), multi-label, each hit carrying the
words that triggered it so an official can see why. Reason codes follow seed 000 / Decree 118:

1 information (publicity, clarity)   2 slowness, late results      3 repeated visits
4 staff attitude                     5 reuse of digitised papers   6 informal payments
7 handling of complaints/petitions   8 online service              9 other (premises, hours…)

How a rule reads a comment:

* a pattern is a phrase; ``~N`` inside it skips up to N words within the same clause;
* topic-and-verdict reasons (complaints, online service) need both: "phản ánh … không ai trả lời"
  is reason 7, "tôi đã phản ánh, được trả lời nhanh" is not;
* negation-aware: a hit preceded in its clause by "không", "chưa", "chẳng", "chả" ("không ai đòi
  phong bì", "cán bộ không hề cáu gắt", "tôi không phải đi lại nhiều lần") does not count, unless
  the clause is a condition ("không đưa phong bì **thì** hồ sơ nằm đó", which is a complaint);
  a clause ends at punctuation or at "nhưng", "mà", "thì", "vì", "nên", "chỉ", "còn", "khi";
* diacritics-tolerant: a comment typed or transcribed without marks is matched on folded forms.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from callcenter.asr.reason_rules import MARKED_ONLY, NEEDS_NEGATION, RULES
from callcenter.asr.understand import fold

_BOUNDARY = "|"
_CLAUSE_BREAKS = {"nhưng", "mà", "thì", "vì", "nên", "chỉ", "còn", "song", "tuy", "khi", _BOUNDARY}
# Without marks "chi" (chỉ / chi phí), "con" (còn / con), "ma" (mà / ma) are too ambiguous to end a clause.
_CLAUSE_BREAKS_UNMARKED = {"nhung", "thi", "vi", "nen", "song", "tuy", "khi", _BOUNDARY}
_NEGATORS_MARKED = {"không", "chưa", "chẳng", "chả", "hông", "ko"}
_NEGATORS_UNMARKED = {"khong", "chua", "chang", "ko", "k"}  # "cha"/"dau" are too often other words
_NEGATION_WINDOW = 8  # long enough for "không ai đòi phong bì hay tiền bồi dưỡng"
_WORD_RE = re.compile(r"[^\W_]+|[.,;:!?…()\"“”]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class ReasonHit:
    """One reason found in a comment and the words that triggered it."""

    code: int
    words: tuple[str, ...]


def _tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).lower()
    out: list[str] = []
    for raw in _WORD_RE.findall(text):
        if raw[0].isalnum():
            out.append(raw)
        elif out and out[-1] != _BOUNDARY:
            out.append(_BOUNDARY)
    return out


@cache
def _compiled(pattern: str, unmarked: bool) -> re.Pattern[str]:
    parts = []
    for word in unicodedata.normalize("NFC", pattern).split():
        if word.startswith("~"):
            parts.append(r"(?:[^ |]+ ){0," + str(int(word[1:])) + "}")
        else:
            parts.append(re.escape(fold(word) if unmarked else word) + " ")
    return re.compile(r"(?= (" + "".join(parts) + "))")


def _negation_at(tokens: list[str], start: int, end: int, negators: set[str], breaks: set[str]) -> int | None:
    """Where a negator earlier in the same clause sits, unless the clause is a condition ("không … thì")."""
    where = None
    for i in range(start - 1, max(-1, start - 1 - _NEGATION_WINDOW), -1):
        if tokens[i] in breaks:
            break
        if tokens[i] in negators:
            where = i
            break
    if where is None:
        return None
    for token in tokens[end : end + 4]:
        if token in ("thì", "thi"):
            return None
        if token in breaks:
            break
    return where


def classify_comment(text: str) -> list[ReasonHit]:
    """The reasons (1..9) a comment speaks of, each with the words that triggered it, by code."""
    tokens = _tokens(text)
    if not tokens:
        return []
    unmarked = all(fold(t) == t for t in tokens)
    words = [fold(t) for t in tokens] if unmarked else tokens
    breaks = _CLAUSE_BREAKS_UNMARKED if unmarked else _CLAUSE_BREAKS
    negators = _NEGATORS_UNMARKED if unmarked else _NEGATORS_MARKED
    line = " " + " ".join(words) + " "
    # Character offset of each token in ``line`` → token index, to place each hit.
    offsets = {}
    position = 1
    for index, word in enumerate(words):
        offsets[position] = index
        position += len(word) + 1

    found: dict[int, list[str]] = {}
    for rule in RULES:
        if unmarked and rule.pattern in MARKED_ONLY:
            continue
        for match in _compiled(rule.pattern, unmarked).finditer(line):
            start = offsets[match.start() + 1]
            matched = match.group(1).split()
            end = start + len(matched)
            not_after = {fold(w) for w in rule.not_after} if unmarked else rule.not_after
            if start > 0 and words[start - 1] in not_after:
                continue
            negator = _negation_at(words, start, end, negators, breaks)
            if rule.pattern in NEEDS_NEGATION:
                if negator is None:
                    continue  # "nhiệt tình" said as praise
                start = negator  # show "không nhiệt tình", not the praise word alone
            elif negator is not None:
                continue
            surface = " ".join(tokens[start:end])
            phrases = found.setdefault(rule.code, [])
            if surface not in phrases:
                phrases.append(surface)
    return [ReasonHit(code, tuple(found[code])) for code in sorted(found)]

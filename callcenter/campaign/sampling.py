"""The stratified, reproducible random draw of a call list. Pure: no database, no clock.

Every dossier gets a rank key from a keyed hash of (campaign seed, dossier id). Sorting a stratum by
that key is a uniform random permutation that depends on nothing else: the same seed gives the same
list however the rows were fetched, and a replacement draw simply continues down the same order.

Two strata per agency: late/overdue dossiers (the seed's focus, over-sampled up to a share of the
target) and on-time ones. Analysis weights each completed survey back by its stratum's population.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from callcenter.campaign.models import Stratum


@dataclass(frozen=True, slots=True)
class Candidate:
    """An eligible dossier of one agency."""

    dossier_id: int
    agency_id: int
    phone_hash: str
    late: bool  # late (trễ hẹn) or overdue (quá hạn)

    @property
    def stratum(self) -> Stratum:
        return Stratum.LATE_OVERDUE if self.late else Stratum.ON_TIME


@dataclass(frozen=True, slots=True)
class Pick:
    dossier_id: int
    agency_id: int
    phone_hash: str
    stratum: Stratum


def rank_key(seed: int, dossier_id: int) -> int:
    """A dossier's position in the campaign's random order (64-bit, uniform, reproducible)."""
    digest = hashlib.blake2b(f"{seed}:{dossier_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def late_quota(target: int, late_share: float) -> int:
    """How many of an agency's completed surveys the late/overdue stratum should supply."""
    return min(target, math.ceil(target * late_share - 1e-9))


def draw(
    candidates: Iterable[Candidate],
    *,
    seed: int,
    want: int,
    late_wanted: int,
    taken_phones: set[str],
) -> list[Pick]:
    """Draw up to ``want`` dossiers: first up to ``late_wanted`` late/overdue ones, then on-time ones,
    then late ones again if the on-time stratum runs dry.

    A phone is called once per campaign: a dossier whose phone is in ``taken_phones`` is passed over,
    and every pick's phone is added to it (the caller shares the set across agencies).
    """
    if want <= 0:
        return []
    late: list[Candidate] = []
    on_time: list[Candidate] = []
    for cand in candidates:
        (late if cand.late else on_time).append(cand)
    late.sort(key=lambda c: rank_key(seed, c.dossier_id))
    on_time.sort(key=lambda c: rank_key(seed, c.dossier_id))
    picks: list[Pick] = []
    late_iter = iter(late)
    on_time_iter = iter(on_time)

    def take(source: Iterable[Candidate], limit: int) -> None:
        taken = 0
        if limit <= 0:
            return
        for cand in source:
            if cand.phone_hash in taken_phones:
                continue
            taken_phones.add(cand.phone_hash)
            picks.append(Pick(cand.dossier_id, cand.agency_id, cand.phone_hash, cand.stratum))
            taken += 1
            if taken >= limit:
                return

    take(late_iter, min(late_wanted, want))
    take(on_time_iter, want - len(picks))
    take(late_iter, want - len(picks))  # the iterator resumes where the first pass stopped
    return picks

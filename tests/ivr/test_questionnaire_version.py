"""Every stored response records the questionnaire version it was asked with: the version must change
whenever what the citizen hears or may answer changes (a text, a key, a speech phrase, a reason).

When you change prompts/questionnaire.vi.yaml, bump its ``version`` and add the new fingerprint below
(the failure message prints it). A fingerprint is never reused under another version.
"""

from __future__ import annotations

import hashlib
import json

from callcenter.ivr.questionnaire import Questionnaire, load_questionnaire

FINGERPRINTS = {
    "2026.12-1": "03eab17c8fa7f441",
    "2026.12-2": "af4f7ab8c1aca375",  # yes/no phrases; "Nếu không muốn…"; opt-out "…, phải không?"
}


def fingerprint(q: Questionnaire) -> str:
    body = json.dumps(q.model_dump(mode="json", exclude={"version"}), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]


def test_the_version_changes_with_the_content() -> None:
    q = load_questionnaire()
    digest = fingerprint(q)
    known = {d: v for v, d in FINGERPRINTS.items()}
    assert known.get(digest, q.version) == q.version, (
        f"the questionnaire's content is that of version {known.get(digest)}, but it says {q.version}"
    )
    assert FINGERPRINTS.get(q.version) == digest, (
        f"prompts/questionnaire.vi.yaml changed under version {q.version}: bump `version` and record "
        f'"<new version>": "{digest}" in FINGERPRINTS'
    )

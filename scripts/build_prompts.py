"""Render every static prompt of the questionnaire ahead of time, for Asterisk and Twilio.

    .venv/bin/python scripts/build_prompts.py [--questionnaire prompts/questionnaire.vi.yaml]
        [--var-dir var] [--refresh] [--gtts-timeout 3]

gTTS is tried first; when its service cannot be reached the local espeak-ng Vietnamese voice takes
over (the log and the table below say which engine rendered each prompt). Dynamic parts (agency,
field, dates) are rendered on first use during calls and cached beside these.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from callcenter.core.logging import configure_logging
from callcenter.core.settings import get_settings
from callcenter.ivr.questionnaire import DEFAULT_QUESTIONNAIRE, QuestionnaireError, load_questionnaire
from callcenter.ivr.tts import NoEngineAvailable, PromptLibrary, default_engines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questionnaire", type=Path, default=DEFAULT_QUESTIONNAIRE)
    parser.add_argument("--var-dir", type=Path, default=None, help="default: CALLCENTER_VAR_DIR")
    parser.add_argument("--refresh", action="store_true", help="render again even when cached")
    parser.add_argument("--gtts-timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    configure_logging("INFO")
    log = logging.getLogger("build_prompts")

    try:
        questionnaire = load_questionnaire(args.questionnaire)
    except QuestionnaireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    var_dir = args.var_dir or get_settings().var_dir
    library = PromptLibrary(var_dir / "prompts", default_engines(gtts_timeout=args.gtts_timeout))
    total = 0.0
    engines: dict[str, int] = {}
    for name, text in questionnaire.static_texts().items():
        try:
            rendered = library.render(text, refresh=args.refresh)
        except NoEngineAvailable as exc:
            print(f"error: prompt {name!r}: {exc}", file=sys.stderr)
            return 1
        total += rendered.duration
        engines[rendered.engine] = engines.get(rendered.engine, 0) + 1
        print(f"{name:24} {rendered.engine:10} {rendered.duration:5.1f} s  {rendered.key}")
    log.info(
        "questionnaire %s: %d static prompts, %.1f s of audio, engines %s, in %s",
        questionnaire.version,
        sum(engines.values()),
        total,
        engines,
        library.directory,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

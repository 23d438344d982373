"""Real speech for the stand-ins: a sentence spoken by Debian's ``espeak-ng``, resampled by ``sox``.

    audio = render("I'd like to book a table for two")        # 8 kHz mu-law, as on a phone line
    pcm = render("Hello", sample_rate=16000, encoding="pcm16")  # 16-bit little-endian mono

The simulated caller speaks it into a Media Stream and the ElevenLabs stand-in answers with it, so
speech-to-text, voice activity detection and turn taking run on real voice instead of tones.
Rendering takes a few tens of milliseconds per sentence; each result is kept in memory and on
disk under ``.data/speech-cache/`` (``JAGCALL_DATA_DIR`` moves it), keyed by a hash of the text,
the voice and the format, so a test run renders each sentence once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from pathlib import Path

ENCODINGS = ("mulaw", "pcm16")
DEFAULT_VOICE = "en-us"
MULAW_SILENCE = 0xFF  # mu-law code of a zero sample (0x7F is its negative twin)

_memory: dict[str, bytes] = {}
_lock = threading.Lock()


class SpeechUnavailable(RuntimeError):
    """espeak-ng or sox is missing, or failed on the text."""


def cache_dir() -> Path:
    root = os.environ.get("JAGCALL_DATA_DIR") or Path(__file__).resolve().parents[3] / ".data"
    return Path(root) / "speech-cache"


def _check(encoding: str, sample_rate: int) -> None:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, not {encoding!r}")
    if not 4000 <= sample_rate <= 48000:
        raise ValueError(f"sample_rate must be between 4000 and 48000 Hz, not {sample_rate}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SpeechUnavailable(f"{name} is not installed; on Debian: apt-get install {name}")
    return path


def _synthesize(text: str, *, sample_rate: int, encoding: str, voice: str) -> bytes:
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    # The text goes on stdin, never on the command line: it cannot be read as an option.
    spoken = subprocess.run(
        [espeak, "-v", voice, "--stdout"], input=text.encode(), capture_output=True, timeout=60
    )  # fmt: skip
    if spoken.returncode != 0 or not spoken.stdout:
        raise SpeechUnavailable(f"espeak-ng failed: {spoken.stderr.decode(errors='replace').strip()}")
    sample_format = ["-e", "u-law", "-b", "8"] if encoding == "mulaw" else ["-e", "signed-integer", "-b", "16", "-L"]
    converted = subprocess.run(
        [sox, "-q", "-t", "wav", "-", "-t", "raw", "-r", str(sample_rate), "-c", "1", *sample_format, "-"],
        input=spoken.stdout, capture_output=True, timeout=60,
    )  # fmt: skip
    if converted.returncode != 0:
        raise SpeechUnavailable(f"sox failed: {converted.stderr.decode(errors='replace').strip()}")
    return converted.stdout


def render(text: str, *, sample_rate: int = 8000, encoding: str = "mulaw", voice: str = DEFAULT_VOICE) -> bytes:
    """``text`` spoken as raw mono audio: mu-law bytes or 16-bit little-endian PCM at ``sample_rate``."""
    _check(encoding, sample_rate)
    key = hashlib.sha256(f"{voice}\0{sample_rate}\0{encoding}\0{text}".encode()).hexdigest()
    with _lock:
        if key in _memory:
            return _memory[key]
    path = cache_dir() / f"{key}.{encoding}"
    try:
        audio = path.read_bytes()
    except OSError:
        audio = _synthesize(text, sample_rate=sample_rate, encoding=encoding, voice=voice)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.part")
            partial.write_bytes(audio)
            partial.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass  # a read-only tree still renders, only without the disk cache
    with _lock:
        _memory[key] = audio
    return audio


def silence(seconds: float, *, sample_rate: int = 8000, encoding: str = "mulaw") -> bytes:
    """``seconds`` of digital silence in the same formats as ``render``."""
    _check(encoding, sample_rate)
    samples = max(0, round(seconds * sample_rate))
    return bytes([MULAW_SILENCE]) * samples if encoding == "mulaw" else bytes(2 * samples)

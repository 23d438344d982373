"""The agent's audio paced to the caller's clock (telephony/engine/transports.py, LinkOutputTransport): each
frame goes out ahead of its playing by no more than the lead, and on a grid the process's calls share, so
that the event loop sends every speaking call's frames in one wake-up."""

from __future__ import annotations

import asyncio
import time

from pipecat.frames.frames import OutputAudioRawFrame
from pipecat.transports.base_transport import TransportParams

from telephony.engine.transports import ConsumerLink, LinkOutputTransport

FRAME_SECONDS = 0.02
SAMPLE_RATE = 8000


class _Serializer:
    async def setup(self, setup) -> None: ...

    async def serialize(self, frame) -> str:
        return "media"


def _output(settings, *, align_ms: float, sent: list[float], lead: float = 0.12) -> LinkOutputTransport:
    settings.ENGINE_AUDIO_OUT_ALIGN_MS = align_ms

    async def send(data) -> None:
        sent.append(time.monotonic())

    output = LinkOutputTransport(
        ConsumerLink(send, serializer=_Serializer()),
        TransportParams(audio_out_enabled=True, audio_out_sample_rate=SAMPLE_RATE),
        lead=lead,
    )
    output._sample_rate = SAMPLE_RATE  # what the pipeline's start sets
    return output


async def _speak(output: LinkOutputTransport, seconds: float) -> list[float]:
    """Write ``seconds`` of audio as the TTS gives it, frame after frame; when each frame was due to play."""
    due = []
    for _ in range(round(seconds / FRAME_SECONDS)):
        frame = OutputAudioRawFrame(audio=bytes(int(SAMPLE_RATE * FRAME_SECONDS) * 2), sample_rate=SAMPLE_RATE,
                                    num_channels=1)  # fmt: skip
        assert await output.write_audio_frame(frame)
        due.append(output.plays_until - FRAME_SECONDS)
    return due


async def _two_calls_out_of_step(settings, *, align_ms: float) -> list[tuple[list[float], list[float]]]:
    """Two calls speaking 0.6 s each, the second starting 7 ms after the first: (sent, due) of each's frames."""

    async def call(delay: float) -> tuple[list[float], list[float]]:
        sent: list[float] = []
        output = _output(settings, align_ms=align_ms, sent=sent)
        await asyncio.sleep(delay)
        return sent, await _speak(output, 0.6)

    return list(await asyncio.gather(call(0.0), call(0.007)))


async def test_two_calls_frames_go_out_together_on_the_process_s_grid(settings):
    (sent_a, due_a), (sent_b, due_b) = await _two_calls_out_of_step(settings, align_ms=20)
    paced_a, paced_b = sent_a[6:], sent_b[6:]  # after the first lead's worth, sent as soon as they come
    # A busy machine may wake the loop late now and then; a frame off the grid, or apart, every time is the fault.
    off = [moment for moment in paced_a + paced_b if abs(moment - round(moment / 0.02) * 0.02) > 0.006]
    assert len(off) <= 3, f"{len(off)} of {len(paced_a + paced_b)} frames went out off the 20 ms grid"
    together = sum(1 for moment in paced_b if min(abs(moment - other) for other in paced_a) < 0.004)
    assert together >= len(paced_b) - 3, f"{together} of {len(paced_b)} of one call's frames went with the other's"
    for sent, due in ((sent_a, due_a), (sent_b, due_b)):
        ahead = [play - moment for moment, play in zip(sent, due, strict=True)]
        assert max(ahead) <= 0.12 + 0.005  # never more than the lead ahead: a clear discards no more
        # Once the lead is filled, never less than the lead less the grid: the caller hears no gap.
        assert min(ahead[6:]) >= 0.12 - 0.02 - 0.03


async def test_without_the_grid_each_frame_goes_when_its_lead_allows(settings):
    (sent_a, _), (sent_b, _) = await _two_calls_out_of_step(settings, align_ms=0)
    apart = [min(abs(moment - other) for other in sent_a[6:]) for moment in sent_b[6:]]
    assert sorted(apart)[len(apart) // 2] > 0.004  # each call on its own clock: 7 ms out of step

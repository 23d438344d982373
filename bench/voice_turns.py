"""Benchmark: the live conversation engine's own latency, with 1, 10 and 50 calls at once.

    .venv/bin/python bench/voice_turns.py                       # the full run (about 6 minutes)
    .venv/bin/python bench/voice_turns.py --levels 1,10 --calls-memory 30

What runs: the project's server (the Dockerfile's uvicorn command, production settings on
embedded PostgreSQL + Redis) with its media-stream consumer and Pipecat pipeline; in a process of
their own, the providers' stand-ins (Deepgram live, OpenAI streaming, ElevenLabs streaming) with fixed
added latencies (--stt-latency, --llm-latency, --tts-latency); in this process, Twilio's stand-in and
for every call a simulated Twilio caller on a real websocket that speaks real mu-law speech
(espeak-ng, sox) in real time:

    the disclosure and the greeting play -> the caller asks a question -> the agent answers
    -> the caller interrupts it after a second -> the agent answers again -> the caller interrupts
    that too to say goodbye -> the agent answers -> the caller hangs up

Figures (medians and nearest-rank p95 over every answered turn of a level):

- end of turn: from the caller's last word to the engine's decision that the turn is over
  (VAD silence + Smart Turn), as the engine measured it; it dominates and is reported apart.
- handed to the LLM: when the turn went to the LLM. After the end-of-turn decision, the engine waits
  for the speech-to-text service to confirm its final text (Deepgram's answer to Finalize, which the
  stand-in delays by its fixed latency, or Pipecat's safety-net timer): the provider's time.
- our added latency: the engine's first audio frame of the answer minus the latest of the end-of-turn
  decision, the final transcript and the hand-over to the LLM, minus the stand-ins' fixed LLM
  first-token and TTS first-byte latencies. What is left is the pipeline's own work: context and request building,
  sentence aggregation, frame passing, pacing, the turn's database writes in between.
- caller-observed: from the caller's last speech frame to the first agent audio it received
  (everything above plus the websocket both ways).
- barge-in: from the caller's first speech frame over the agent to the ``clear`` it received.
- late frames: agent audio frames that reached the caller after the moment they should have
  started playing (each reply's first frame sets the clock), i.e. audible gaps.
- CPU per call: the server process's CPU time over the level's wall time, per call in progress.
- memory: the server's resident memory after each of --calls-memory sequential short calls, read
  --memory-settle seconds after the call ended (when the server has finished with it).

Goals (issue: live conversation engine): added latency p95 < 20 ms at 10 calls and < 50 ms at
50; end of turn p50 < 300 ms; barge-in clear < 200 ms; no late frame; memory flat; CPU per call
< 5 % of a core. Machines are shared and noisy: compare runs side by side, read medians.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)

from bench.common import median, percentile, scratch_database, section  # noqa: E402
from bench.voice_webhook import Server, free_port  # noqa: E402

OUR_NUMBER = "+14155550123"
QUESTION = "What are your opening hours on Saturday?"
INTERRUPTION = "Sorry, and do you take new patients?"
REPLY = (
    "On Saturdays we are open from nine in the morning until one in the afternoon. "
    "Our hygienists are in on Saturdays too, and the front desk can book you a cleaning, "
    "a check up or an emergency visit. Is there anything else I can help you with today?"
)
GOODBYE = "Thank you, that is all, goodbye."
LATE_TOLERANCE_S = 0.02  # one frame
BURST_GAP_S = 0.3  # agent audio separated by more than this is a new reply


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Latency, barge-in, CPU and memory of the live conversation engine.")
    parser.add_argument("--levels", default="1,10,50", help="calls at once, comma-separated (default 1,10,50)")
    parser.add_argument("--stt-latency", type=float, default=0.1, help="Deepgram stand-in: seconds before a final")
    parser.add_argument("--llm-latency", type=float, default=0.3, help="LLM stand-in: seconds to the first token")
    parser.add_argument("--tts-latency", type=float, default=0.15, help="ElevenLabs stand-in: seconds to first audio")
    parser.add_argument("--calls-memory", type=int, default=100, help="sequential short calls for the memory check")
    parser.add_argument("--memory-settle", type=float, default=1.0,
                        help="seconds after each of those calls before the server's memory is read")  # fmt: skip
    parser.add_argument("--interrupt-min-words", type=int, default=None,
                        help="words the caller must say over the agent to interrupt it (the server's "
                             "ENGINE_INTERRUPT_MIN_WORDS; 0 interrupts on voice alone, backchannels included)")
    parser.add_argument("--vad-stop", type=float, default=None,
                        help="seconds of silence before Smart Turn judges the turn (the server's ENGINE_VAD_STOP_SECONDS)")
    parser.add_argument("--vad-start", type=float, default=None,
                        help="seconds of speech before the VAD says the caller speaks (ENGINE_VAD_START_SECONDS)")
    parser.add_argument("--engine", action="append", default=[], metavar="NAME=VALUE",
                        help="any other ENGINE_* setting for the server (repeatable), e.g. ENGINE_VAD_MIN_VOLUME=0.4")
    parser.add_argument("--knowledge", action="store_true",
                        help="the agent answers from the demo patient handbook: each turn searches it before the LLM")
    parser.add_argument("--data-dir", default=None, help="embedded servers' directory (default: a temporary one)")
    return parser.parse_args(argv)


# --- the organization and the stand-ins ------------------------------------------------------------


class _ServedElsewhere:
    """A stand-in running in the providers' process: what the server and this script need to reach it."""

    def __init__(self, base_url: str, api_key: str) -> None:
        self.base_url, self.api_key = base_url, api_key

    def stop(self) -> None:
        pass  # the providers' process stops them all


def _provider_standins(stt_latency: float, llm_latency: float, tts_latency: float) -> dict:
    from jagcall.kernel.standins.deepgram import DeepgramStandIn
    from jagcall.kernel.standins.elevenlabs import ElevenLabsStandIn
    from jagcall.kernel.standins.openai import OpenAIStandIn

    deepgram = DeepgramStandIn(live_script=[QUESTION, INTERRUPTION, GOODBYE]).start()
    deepgram.live_latency = stt_latency
    openai = OpenAIStandIn(api_key="sk-bench-" + secrets.token_hex(16)).start()
    openai.first_token_latency = llm_latency
    openai.default_reply = REPLY
    elevenlabs = ElevenLabsStandIn().start()
    elevenlabs.tts_latency = tts_latency
    return {"deepgram": deepgram, "openai": openai, "elevenlabs": elevenlabs}


def _serve_providers(latencies: tuple[float, float, float], connection) -> None:
    """The providers' process: Deepgram's, the LLM's and ElevenLabs' stand-ins, until told to stop."""
    standins = _provider_standins(*latencies)
    connection.send({name: (standin.base_url, standin.api_key) for name, standin in standins.items()})
    connection.recv()
    for standin in standins.values():
        standin.stop()


class _ProvidersProcess:
    """[!!] The providers' stand-ins in a process of their own. In this script's process they would share
    its interpreter with every caller's real-time audio, and at 10 calls and more their fixed latencies
    would grow by the callers' work, which the figures would count as the server's."""

    def __init__(self, args) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        latencies = (args.stt_latency, args.llm_latency, args.tts_latency)
        self.process = context.Process(target=_serve_providers, args=(latencies, child), daemon=True)
        self.process.start()
        if not self._connection.poll(60):
            self.process.kill()
            raise RuntimeError("the providers' stand-ins did not start")
        self.standins = {name: _ServedElsewhere(url, key) for name, (url, key) in self._connection.recv().items()}

    def stop(self) -> None:
        if self.process.is_alive():
            self._connection.send("stop")
            self.process.join(10)
        if self.process.is_alive():
            self.process.kill()


HELPER_PIDS: list[int] = []  # processes whose CPU counts with this script's ("callers and stand-ins")


def start_standins(args):
    from jagcall.kernel.standins.twilio import TwilioStandIn

    twilio = TwilioStandIn().start()  # the callers' side: it plays their audio, here
    providers = _ProvidersProcess(args)
    HELPER_PIDS.append(providers.process.pid)
    return {"twilio": twilio, **providers.standins}, providers


def provider_environment(standins) -> dict[str, str]:
    """What the server needs to reach the stand-ins with their credentials."""
    twilio = standins["twilio"]
    return {
        "PROVIDER_BASE_URLS": ",".join(f"{name}={standin.base_url}" for name, standin in standins.items()),
        "TWILIO_ACCOUNT_SID": twilio.account_sid,
        "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "OPENAI_API_KEY": standins["openai"].api_key,
        "DEEPGRAM_API_KEY": standins["deepgram"].api_key,
        "ELEVENLABS_API_KEY": standins["elevenlabs"].api_key,
    }


def engine_environment(args) -> dict[str, str]:
    """The engine settings this run overrides (the rest are the server's defaults)."""
    overrides = {}
    if args.interrupt_min_words is not None:
        overrides["ENGINE_INTERRUPT_MIN_WORDS"] = str(args.interrupt_min_words)
    if args.vad_stop is not None:
        overrides["ENGINE_VAD_STOP_SECONDS"] = str(args.vad_stop)
    if args.vad_start is not None:
        overrides["ENGINE_VAD_START_SECONDS"] = str(args.vad_start)
    for setting in args.engine:
        name, _, value = setting.partition("=")
        if not name.startswith("ENGINE_") or not value:
            raise SystemExit(f"--engine takes ENGINE_NAME=value, not {setting!r}")
        overrides[name] = value
    return overrides


def point_this_process_at(standins, public_base_url: str) -> None:
    from django.conf import settings

    twilio = standins["twilio"]
    settings.PROVIDER_BASE_URLS = {name: standin.base_url for name, standin in standins.items()}
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = twilio.account_sid, twilio.auth_token
    settings.PUBLIC_BASE_URL = public_base_url


def seed(*, knowledge: bool = False):
    """An organization with a number at the Twilio stand-in, answered by an agent that discloses and greets.

    With ``knowledge``, the agent answers from the demo patient handbook (indexed here, with the local
    embedding model), so every turn's knowledge search runs before its LLM request."""
    from accounts.services import organization_create, user_create
    from telephony.models import Agent, PhoneNumber
    from telephony.services.twilio_accounts import twilio_for
    from telephony.services.urls import public_url

    owner = user_create(email="owner@bench.invalid", password=None, name="Bench Owner")
    organization = organization_create(name="Bench Dental", owner=owner)
    organization.concurrent_calls_limit = 10_000  # the levels, not the plan, decide the load here
    organization.save(update_fields=["concurrent_calls_limit"])
    agent = Agent.objects.create(
        organization=organization,
        name="Front desk",
        system_prompt="You are the receptionist of Bright Smile Dental.",
        first_message="Thanks for calling Bright Smile Dental, how can I help?",
        ai_disclosure="You are speaking with an automated assistant.",
        recording_disclosure_enabled=False,
    )
    if knowledge:
        from knowledge.demo import demo_knowledge_base_ensure

        handbook, _made = demo_knowledge_base_ensure(organization=organization, owner=owner)
        handbook.agents.add(agent)
    access = twilio_for(organization)
    bought = access.client.api.v2010.accounts(access.account_sid).incoming_phone_numbers.create(
        phone_number=OUR_NUMBER, voice_url=public_url("twilio-hooks:voice"), status_callback=public_url("twilio-hooks:status")
    )
    PhoneNumber.objects.create(organization=organization, number=bought.phone_number, twilio_sid=bought.sid,
                               account_sid=access.account_sid, country="US", agent=agent)  # fmt: skip
    return organization


# --- calls ---------------------------------------------------------------------------------------------


def conversation_script():
    from jagcall.kernel.standins.twilio.media import BargeIn, Hangup, Pause, Say

    return [
        Say(QUESTION, min_gap=1.0),
        BargeIn(INTERRUPTION, after_agent_audio_seconds=1.0),
        BargeIn(GOODBYE, after_agent_audio_seconds=1.0),
        Pause(2.5),  # the third answer starts, then the caller hangs up
        Hangup(),
    ]


def short_script():
    from jagcall.kernel.standins.twilio.media import Hangup, Pause

    return [Pause(1.5), Hangup()]


def place_calls(twilio, count: int, timeout: float) -> list:
    """Ring our number ``count`` times at once; the callers, once every one has hung up."""
    answers, lock = [], threading.Lock()

    def ring(index):
        answer = twilio.inbound_call(OUR_NUMBER, f"+1628555{index:04d}")
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=ring, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    callers = []
    deadline = time.monotonic() + timeout
    for answer in answers:
        if "<Connect><Stream" not in answer:
            print(f"  WARNING: a call was not streamed: {str(answer)[:200]}")
            continue
        caller = _wait_for(lambda sid=answer.call_sid: twilio.media_callers.get(sid), 10)
        if caller is None:
            print(f"  WARNING: no media stream opened for {answer.call_sid}")
            continue
        caller.wait(max(1.0, deadline - time.monotonic()))
        callers.append(caller)
    return callers


def _wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def late_frames(caller) -> tuple[int, int]:
    """(frames that arrived after their playback moment, frames) of the agent's audio on one call."""
    late = total = 0
    burst_start = None
    played = 0.0
    previous = None
    for arrival, size in caller.frames_received:
        seconds = size / 8000
        if previous is None or arrival - previous > BURST_GAP_S + seconds:
            burst_start, played = arrival, 0.0
        if arrival > burst_start + played + LATE_TOLERANCE_S:
            late += 1
            burst_start = arrival - played  # count a gap once, not every frame after it
        played += seconds
        previous = arrival
        total += 1
    return late, total


# --- the measured figures ------------------------------------------------------------------------------


def stored_turns(organization, call_sids: list[str]) -> list:
    from telephony.models import Call, ConversationTurn

    calls = list(Call.objects.for_org(organization).filter(twilio_sid__in=call_sids).values_list("id", flat=True))
    return list(ConversationTurn.objects.for_org(organization).filter(call_id__in=calls, role="agent",
                                                                       first_audio_ms__isnull=False))  # fmt: skip


def added_latency(turn, args) -> float | None:
    if turn.end_of_turn_ms is None or turn.first_audio_ms is None:
        return None
    decided = max(turn.end_of_turn_ms, turn.transcript_ms or 0, turn.handed_over_ms or 0)
    return turn.first_audio_ms - decided - (args.llm_latency + args.tts_latency) * 1000


def stages(turn, args) -> dict[str, float] | None:
    """Where the added latency of one answered turn went (ms), stand-ins' fixed latencies taken out."""
    needed = (turn.end_of_turn_ms, turn.retrieved_ms, turn.llm_first_token_ms, turn.tts_first_byte_ms, turn.first_audio_ms)
    if any(value is None for value in needed):
        return None
    decided = max(turn.end_of_turn_ms, turn.transcript_ms or 0, turn.handed_over_ms or 0)
    return {
        "turn decided -> LLM request": turn.retrieved_ms - decided,
        "LLM request -> first token (less stand-in)": turn.llm_first_token_ms - turn.retrieved_ms - args.llm_latency * 1000,
        "first token -> TTS first byte (less stand-in)": turn.tts_first_byte_ms - turn.llm_first_token_ms
        - args.tts_latency * 1000,
        "TTS first byte -> first audio frame out": turn.first_audio_ms - turn.tts_first_byte_ms,
    }


def describe(values, unit="ms", scale=1.0) -> str:
    if not values:
        return "no samples"
    scaled = [v * scale for v in values]
    return f"p50 {median(scaled):7.1f} {unit}   p95 {percentile(scaled, 0.95):7.1f} {unit}   n={len(scaled)}"


def run_level(level: int, organization, twilio, server_process, args) -> dict:
    import psutil

    twilio.media_caller_script = conversation_script()
    process = psutil.Process(server_process.pid)
    ours = [psutil.Process(), *(psutil.Process(pid) for pid in HELPER_PIDS)]
    cpu_before, wall_before = sum(process.cpu_times()[:2]), time.perf_counter()
    own_before = sum(sum(p.cpu_times()[:2]) for p in ours)
    callers = place_calls(twilio, level, timeout=120)
    wall = time.perf_counter() - wall_before
    cpu = sum(process.cpu_times()[:2]) - cpu_before
    own = sum(sum(p.cpu_times()[:2]) for p in ours) - own_before
    busy = sum(caller.timeline[-1].at - caller.timeline[0].at for caller in callers if caller.timeline) or wall
    time.sleep(1.0)  # the last turns are written as the streams close
    turns = stored_turns(organization, [caller.call_sid for caller in callers])
    added = [a for a in (added_latency(t, args) for t in turns) if a is not None]
    late = [late_frames(caller) for caller in callers]
    return {
        "level": level,
        "calls": len(callers),
        "errors": sum(1 for caller in callers if caller.error is not None),
        "turns": len(turns),
        "end_of_turn": [t.end_of_turn_ms for t in turns if t.end_of_turn_ms is not None],
        "transcript": [t.transcript_ms for t in turns if t.transcript_ms is not None],
        "handed_over": [t.handed_over_ms for t in turns if t.handed_over_ms is not None],
        "first_audio": [t.first_audio_ms for t in turns],
        "added": added,
        "stages": [st for st in (stages(t, args) for t in turns) if st is not None],
        "observed": [d for caller in callers for d in caller.response_delays],
        "clear": [d for caller in callers for d in caller.clear_delays],
        "barge_ins": sum(1 for caller in callers for u in caller.utterances if u.barge_in),
        "late": sum(n for n, _ in late),
        "frames": sum(total for _, total in late),
        "cpu_per_call": cpu / busy if busy else float("nan"),
        "server_cores": cpu / wall if wall else float("nan"),
        "bench_cores": own / wall if wall else float("nan"),
        "wall": wall,
    }


def memory_run(count: int, twilio, server_process, settle: float) -> list[float]:
    import psutil

    process = psutil.Process(server_process.pid)
    twilio.media_caller_script = short_script()
    samples = []
    for _ in range(count):
        place_calls(twilio, 1, timeout=30)
        time.sleep(settle)  # the server's work after the hang-up (its memory given back) is part of the call
        samples.append(process.memory_info().rss / 2**20)
    return samples


def main(argv=None) -> int:
    args = parse_args(argv)
    levels = [int(level) for level in args.levels.split(",") if level.strip()]
    began = time.perf_counter()
    port = free_port()
    public_base_url = f"http://127.0.0.1:{port}"
    os.environ["PUBLIC_BASE_URL"] = public_base_url
    packages = ("Django", "uvicorn", "channels", "channels_redis", "pipecat-ai", "onnxruntime", "websockets")
    failures = []
    with scratch_database(args.data_dir, packages=packages) as facts:
        from django.db import connection

        standins, providers = start_standins(args)
        server = None
        try:
            point_this_process_at(standins, public_base_url)
            organization = seed(knowledge=args.knowledge)
            data_dir = Path(os.environ["JAGCALL_DATA_DIR"])
            server = Server(database_name=connection.settings_dict["NAME"], log_path=data_dir / "bench-turns-server.log",
                            port=port, environment={**provider_environment(standins), "PUBLIC_BASE_URL": public_base_url,
                                                      "LOG_LEVEL": "WARNING", **engine_environment(args)})  # fmt: skip
            server.wait_ready()
            twilio = standins["twilio"]

            section("Warm-up (one call)")
            warm = run_level(1, organization, twilio, server.process, args)
            print(f"  {warm['calls']} call, {warm['turns']} answered turns, caller-observed {describe(warm['observed'], 's')}")

            results = []
            for level in levels:
                section(f"{level} call{'s' if level > 1 else ''} at once")
                result = run_level(level, organization, twilio, server.process, args)
                results.append(result)
                print(f"  calls {result['calls']} (errors {result['errors']}), answered turns {result['turns']}, "
                      f"{result['wall']:.1f} s")  # fmt: skip
                print(f"  end of turn (VAD + Smart Turn)     {describe(result['end_of_turn'])}")
                print(f"  final transcript (after stop)      {describe(result['transcript'])}")
                print(f"  handed to the LLM (after stop)     {describe(result['handed_over'])}")
                print(f"  first audio (after stop)           {describe(result['first_audio'])}")
                print(f"  our added latency                  {describe(result['added'])}")
                for name in (result["stages"][0] if result["stages"] else {}):
                    print(f"    {name:<46} {describe([st[name] for st in result['stages']])}")
                print(f"  caller-observed response           {describe(result['observed'], scale=1000)}")
                print(f"  barge-in clear                     {describe(result['clear'], scale=1000)}"
                      f"   ({len(result['clear'])} of {result['barge_ins']} barge-ins cleared)")  # fmt: skip
                print(f"  late agent frames                  {result['late']} of {result['frames']}")
                print(f"  server CPU per call                {result['cpu_per_call'] * 100:.2f} % of a core")
                print(f"  cores busy: server {result['server_cores']:.2f}, callers and stand-ins (this script and "
                      f"its providers' process) {result['bench_cores']:.2f}, of {os.cpu_count()}")  # fmt: skip

            memory = []
            if args.calls_memory:
                section(f"Memory over {args.calls_memory} sequential calls")
                memory = memory_run(args.calls_memory, twilio, server.process, args.memory_settle)
                tenth = max(1, len(memory) // 10)
                first, last = statistics.mean(memory[:tenth]), statistics.mean(memory[-tenth:])
                print(f"  server RSS: first {tenth} calls {first:.1f} MiB, last {tenth} calls {last:.1f} MiB, "
                      f"growth {last - first:+.1f} MiB ({(last - first) / max(1, len(memory) - tenth) * 1024:+.1f} KiB per call)")  # fmt: skip
        finally:
            if server is not None:
                server.stop()
            for standin in standins.values():
                standin.stop()
            providers.stop()

        section("Summary")
        for key, value in facts.items():
            print(f"  {key}: {value}")
        print(f"  stand-in latencies: STT final +{args.stt_latency * 1000:.0f} ms, LLM first token "
              f"{args.llm_latency * 1000:.0f} ms, TTS first byte {args.tts_latency * 1000:.0f} ms")  # fmt: skip
        print(f"  knowledge: {'the demo patient handbook, searched every turn' if args.knowledge else 'none'}")
        from django.conf import settings

        words = args.interrupt_min_words if args.interrupt_min_words is not None else settings.ENGINE_INTERRUPT_MIN_WORDS
        vad_stop = args.vad_stop if args.vad_stop is not None else settings.ENGINE_VAD_STOP_SECONDS
        vad_start = args.vad_start if args.vad_start is not None else settings.ENGINE_VAD_START_SECONDS
        print(f"  engine: VAD stop {vad_stop * 1000:.0f} ms, VAD start "
              f"{vad_start * 1000:.0f} ms, interrupt after {words} word(s)")  # fmt: skip
        for setting in args.engine:
            print(f"  engine setting: {setting}")
        print(f"  load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"  total time: {time.perf_counter() - began:.1f} s")
        goals = {1: 20.0, 10: 20.0, 50: 50.0}
        for result in results:
            level = result["level"]
            if result["added"]:
                p95 = percentile(result["added"], 0.95)
                goal = goals.get(level, 50.0)
                print(f"{'PASS' if p95 < goal else 'FAIL'}: added latency p95 {p95:.1f} ms at {level} calls (goal < {goal:.0f} ms)")
            else:
                failures.append(f"no answered turn at {level} calls")
            if result["end_of_turn"]:
                p50 = median(result["end_of_turn"])
                print(f"{'PASS' if p50 < 300 else 'FAIL'}: end of turn p50 {p50:.0f} ms at {level} calls (goal < 300 ms)")
            if result["clear"]:
                p50 = median(result["clear"]) * 1000
                print(f"{'PASS' if p50 < 200 else 'FAIL'}: barge-in clear p50 {p50:.0f} ms at {level} calls (goal < 200 ms)")
            print(f"{'PASS' if result['late'] == 0 else 'FAIL'}: {result['late']} late agent frames at {level} calls")
            # A machine that cannot carry the load starves the server: its CPU per call then says nothing.
            saturated = result["calls"] < level or result["late"] > 0.05 * max(1, result["frames"])
            if saturated:
                print(f"FAIL: saturated at {level} calls ({result['calls']} of {level} calls streamed, "
                      f"{result['late']} of {result['frames']} frames late): CPU per call not judged")  # fmt: skip
            else:
                print(f"{'PASS' if result['cpu_per_call'] < 0.05 else 'FAIL'}: CPU per call "
                      f"{result['cpu_per_call'] * 100:.2f} % of a core at {level} calls (goal < 5 %)")  # fmt: skip
            if result["errors"]:
                failures.append(f"{result['errors']} callers failed at {level} calls")
        if len(memory) >= 20:
            tenth = len(memory) // 10
            growth = statistics.mean(memory[-tenth:]) - statistics.mean(memory[:tenth])
            print(f"{'PASS' if growth < 20 else 'FAIL'}: memory growth {growth:+.1f} MiB over {len(memory)} calls (goal: flat, < 20 MiB)")
    for failure in failures:
        print(f"ERROR: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

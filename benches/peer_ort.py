#!/usr/bin/env python3
"""edgedetr vs ONNX Runtime on the same machine, in the same run.

Rounds alternate between the engine and ONNX Runtime (the order flips every round, so
clock or thermal drift hits both alike). Each round times `--iters` runs after `--warmup`
untimed ones and keeps the median; the script prints every round and the median ratio.

    python benches/peer_ort.py                      # defaults below
    python benches/peer_ort.py --rounds 7 --iters 20 --ort-threads 1

Inputs:
  - the ONNX model: `--onnx`, default `<reference>/fixtures/main/model.onnx`, which the
    user regenerates with `python make_reference.py --preset main` in
    `<reference>/seed` (ultralytics' own exporter: static 1x3xSxS input);
  - the engine: the `edgedetr` binary (`cargo build --release -p edgedetr-cli`), timed
    in-process by `edgedetr bench --json` (process start and model loading excluded);
  - the engine's model file: `--edr`, or built at the ONNX input size from the
    reference checkpoint with `edgedetr quantize`.
`<reference>` is `$EDGEDETR_REFERENCE` or `../shared/reference` beside the repository.

Coverage: the ONNX graph is the whole detector (decoder and output included). While the
engine builds only part of it (its JSON reports `decoder_ms` 0), the ratio compares
unequal work; `--onnx-outputs` cuts the ONNX graph at the named tensors (for example the
outputs of the neck) so both run the same layers.

Both sides run single-threaded by default: `--ort-threads` sets ONNX Runtime's intra-op
threads and the engine's `--threads` alike.

Needs: numpy, onnxruntime (and onnx for `--onnx-outputs`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the workspace
REFERENCE = Path(os.environ.get("EDGEDETR_REFERENCE", ROOT.parent / "shared" / "reference"))


def die(msg: str) -> None:
    print(f"peer_ort: {msg}", file=sys.stderr)
    sys.exit(2)


def find_engine(given: str | None) -> Path:
    candidates = [Path(given)] if given else []
    if not given:
        if os.environ.get("CARGO_TARGET_DIR"):
            candidates.append(Path(os.environ["CARGO_TARGET_DIR"]) / "release" / "edgedetr")
        candidates.append(ROOT / "target" / "release" / "edgedetr")
    for c in candidates:
        if c.is_file():
            return c
    die(
        "edgedetr binary not found (looked at "
        + ", ".join(str(c) for c in candidates)
        + "); build it with `cargo build --release -p edgedetr-cli` or pass --engine"
    )
    raise AssertionError  # unreachable


def ort_session(onnx_path: Path, threads: int, outputs: list[str], tmp: Path):
    try:
        import onnxruntime as ort
    except ImportError:
        die("onnxruntime is not installed (pip install onnxruntime numpy)")
    if outputs:
        try:
            import onnx.utils
        except ImportError:
            die("--onnx-outputs needs the onnx package (pip install onnx)")
        import onnx

        inputs = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
        cut = tmp / "cut.onnx"
        onnx.utils.extract_model(str(onnx_path), str(cut), inputs, outputs)
        onnx_path = cut
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def time_ort(sess, feed: dict, iters: int, warmup: int) -> float:
    """Median milliseconds of `iters` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        sess.run(None, feed)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def time_engine(engine: Path, edr: Path, iters: int, warmup: int, threads: int) -> dict:
    """`edgedetr bench --json`: the median of `iters` in-process runs, per stage too."""
    cmd = [str(engine), "bench", str(edr), "--iters", str(iters), "--warmup", str(warmup),
           "--threads", str(threads), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die(f"{' '.join(cmd)} failed:\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", type=Path, default=REFERENCE / "fixtures/main/model.onnx")
    ap.add_argument("--checkpoint", type=Path, default=REFERENCE / "fixtures/main/model.safetensors",
                    help="checkpoint the engine's model file is built from (when --edr is not given)")
    ap.add_argument("--edr", type=Path, help="engine model file (default: built at the ONNX input size)")
    ap.add_argument("--engine", help="edgedetr binary (default: <target>/release/edgedetr)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=10, help="timed runs per round and side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed runs per round and side")
    ap.add_argument("--ort-threads", type=int, default=1)
    ap.add_argument("--onnx-outputs", default="",
                    help="comma-separated ONNX tensor names: time only the graph up to them")
    a = ap.parse_args()
    if a.rounds < 1 or a.iters < 1 or a.warmup < 0:
        die("--rounds and --iters must be at least 1, --warmup at least 0")
    if not a.onnx.is_file():
        die(
            f"{a.onnx} not found: regenerate it with `python make_reference.py --preset main` in "
            f"{REFERENCE / 'seed'} (see its docstring for the pinned packages), or pass --onnx"
        )
    engine = find_engine(a.engine)
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="edgedetr-peer-") as tmpdir:
        tmp = Path(tmpdir)
        outputs = [o.strip() for o in a.onnx_outputs.split(",") if o.strip()]
        sess = ort_session(a.onnx, a.ort_threads, outputs, tmp)
        inp = sess.get_inputs()[0]
        shape = inp.shape
        if len(shape) != 4 or not all(isinstance(d, int) for d in shape) or shape[2] != shape[3]:
            die(f"expected a static [1, 3, S, S] input, the ONNX model has {inp.name} {shape}")
        size = shape[2]
        edr = a.edr
        if edr is None:
            if not a.checkpoint.is_file():
                die(f"{a.checkpoint} not found: pass --edr or --checkpoint")
            edr = tmp / f"model_{size}.edr"
            subprocess.run([str(engine), "quantize", str(a.checkpoint), "--imgsz", str(size), "-o", str(edr)],
                           check=True, stdout=subprocess.DEVNULL)
        # Random image-like input; the engine uses its own fixed input of the same size
        # (dense fp32 work does not depend on the values).
        feed = {inp.name: np.random.default_rng(0).random(shape, dtype=np.float32)}

        print(f"engine: {engine}  model: {edr}")
        print(f"onnxruntime {__import__('onnxruntime').__version__}: {a.onnx}"
              + (f" cut at {', '.join(outputs)}" if outputs else "")
              + f", {a.ort_threads} thread(s)")
        print(f"{a.rounds} rounds x {a.iters} runs (+{a.warmup} warm-up) per side, median per round\n")
        print(f"{'round':>5} {'engine ms':>10} {'ort ms':>10} {'ort/engine':>11}   engine stages (backbone/neck/decoder ms)")
        eng_ms, ort_ms, ratios = [], [], []
        first = None
        for r in range(a.rounds):
            # Alternate which side goes first.
            if r % 2 == 0:
                e = time_engine(engine, edr, a.iters, a.warmup, a.ort_threads)
                o = time_ort(sess, feed, a.iters, a.warmup)
            else:
                o = time_ort(sess, feed, a.iters, a.warmup)
                e = time_engine(engine, edr, a.iters, a.warmup, a.ort_threads)
            first = first or e
            if e.get("imgsz") != size:
                die(f"the engine model is {e.get('imgsz')}x{e.get('imgsz')}, the ONNX input {size}x{size}")
            eng_ms.append(e["ms"])
            ort_ms.append(o)
            ratios.append(o / e["ms"])
            print(f"{r + 1:>5} {e['ms']:>10.2f} {o:>10.2f} {o / e['ms']:>11.3g}   "
                  f"{e.get('backbone_ms', 0):.1f}/{e.get('neck_ms', 0):.1f}/{e.get('decoder_ms', 0):.1f}")

        ratio = statistics.median(ratios)
        print(f"\nmedian: engine {statistics.median(eng_ms):.2f} ms ({first.get('kernels')} kernels), "
              f"onnxruntime {statistics.median(ort_ms):.2f} ms; ort/engine = {ratio:.3g} "
              f"(engine {'faster' if ratio > 1 else 'slower'} by {max(ratio, 1 / ratio):.2f}x)")
        if not outputs and first.get("decoder_ms", 0) == 0:
            print("note: the engine's model has no decoder yet while the ONNX graph is the whole "
                  "detector; use --onnx-outputs to time the same layers on both sides.")


if __name__ == "__main__":
    main()

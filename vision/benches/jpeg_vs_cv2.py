#!/usr/bin/env python3
"""edgedetr's JPEG decoder against cv2.imdecode, single thread, same machine.

Makes 1920x1080 and 3840x2160 q90 4:2:0 JPEGs from a photo (upscaled with
cv2.resize INTER_CUBIC), checks that edgedetr decodes them to cv2's pixels,
then alternates rounds of `cargo run --release --example jpeg_time` and of
cv2.imdecode (cv2.setNumThreads(1)) and prints the medians and their ratio.

    python3 vision/benches/jpeg_vs_cv2.py [--rounds 5] [--reps 20] [--photo P]
        [--noise SIGMA] [--scale 1|2|4|8] [--exe OTHER_jpeg_time]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

import cv2
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--exe", help="a jpeg_time binary to time instead of building this tree's "
                    "(e.g. one built from an older commit)")
    ap.add_argument("--photo", default="/work/shared/reference/calib/astronaut.jpg")
    ap.add_argument("--noise", type=float, default=0.0,
                    help="Gaussian noise (sigma) added after upscaling: more coefficients, slower entropy decoding")
    ap.add_argument("--scale", type=int, default=1, help="1 (IMREAD_COLOR), 2, 4 or 8 (IMREAD_REDUCED_COLOR_n)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
            8: cv2.IMREAD_REDUCED_COLOR_8}[args.scale]
    exe = args.exe
    if exe is None:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "edgedetr-vision", "--example", "jpeg_time"],
                       cwd=ROOT, check=True)
        exe = os.path.join(ROOT, "target", "release", "examples", "jpeg_time")
    photo = cv2.imread(args.photo, cv2.IMREAD_COLOR)
    tmp = tempfile.mkdtemp()
    print(f"cv2 {cv2.__version__}, threads {cv2.getNumThreads()}, scale 1/{args.scale}, noise {args.noise}")
    for w, h in [(1920, 1080), (3840, 2160)]:
        img = cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)
        if args.noise > 0:
            noise = np.random.RandomState(0).normal(0, args.noise, img.shape)
            img = np.clip(img + noise, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90,
                                             cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
        assert ok
        path = os.path.join(tmp, f"{w}x{h}.jpg")
        buf.tofile(path)
        data = buf.tobytes()
        ref = cv2.imdecode(np.frombuffer(data, np.uint8), flag)[:, :, ::-1]
        out = os.path.join(tmp, "out.rgb")
        cmd = [exe, path, str(args.reps)] + ([] if args.scale == 1 else ["--scale", str(args.scale)])
        subprocess.run([exe, path, "1", out] + cmd[3:], check=True, capture_output=True)
        got = np.fromfile(out, np.uint8)
        assert got.size == ref.size and np.array_equal(got, ref.reshape(-1)), f"{w}x{h}: pixels differ from cv2"
        ours, theirs = [], []
        arr = np.frombuffer(data, np.uint8)
        for _ in range(args.rounds):
            ours.append(float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
            ts = []
            for _ in range(args.reps):
                t = time.perf_counter()
                cv2.imdecode(arr, flag)
                ts.append((time.perf_counter() - t) * 1e3)
            theirs.append(statistics.median(ts))
        o, c = statistics.median(ours), statistics.median(theirs)
        print(f"{w}x{h} q90 4:2:0 ({len(data)} bytes): edgedetr {o:.2f} ms, cv2 {c:.2f} ms, ratio {o / c:.2f} (bit-exact)")


if __name__ == "__main__":
    main()

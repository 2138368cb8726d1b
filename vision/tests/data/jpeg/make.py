#!/usr/bin/env python3
"""Writes the JPEG fixtures of vision/tests/jpeg_cv2.rs: small JPEGs made by
cv2.imencode from a synthetic picture (gradients, edges and seeded noise),
covering every sampling layout OpenCV writes, grayscale, progressive,
restart intervals and odd sizes, and next to each what libjpeg-turbo makes
of it through OpenCV, in RGB order:

    NAME.jpg      the file
    NAME.rgb      cv2.imdecode(buf, IMREAD_COLOR)[:, :, ::-1]
    NAME.s2.rgb   cv2.imdecode(buf, IMREAD_REDUCED_COLOR_2)[:, :, ::-1] (and .s4, .s8)
    cases.txt     one line per case: NAME W H W2 H2 W4 H4 W8 H8

Run from anywhere: python3 vision/tests/data/jpeg/make.py (opencv-python-headless).
"""
import os

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
S = {
    "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
    "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
    "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
    "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
}


def picture(w, h, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([
        128 + 100 * np.sin(x / 5.0 + seed) * np.cos(y / 7.0),
        255 * x / max(w - 1, 1),
        255 * ((x // 6 + y // 5) % 2),
    ], axis=-1)
    img += rng.normal(0, 25, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


# (name, w, h, quality, sampling, progressive, restart interval, gray)
CASES = [
    ("420_q90_61x43", 61, 43, 90, "420", 0, 0, False),
    ("420_q75_rst_64x48", 64, 48, 75, "420", 0, 3, False),
    ("420_q95_prog_37x29", 37, 29, 95, "420", 1, 0, False),
    ("422_q90_45x33", 45, 33, 90, "422", 0, 0, False),
    ("444_q85_23x17", 23, 17, 85, "444", 0, 0, False),
    ("440_q90_29x35", 29, 35, 90, "440", 0, 0, False),
    ("411_q90_53x21", 53, 21, 90, "411", 0, 0, False),
    ("420_q100_1x1", 1, 1, 100, "420", 0, 0, False),
    ("420_q90_2x9", 2, 9, 90, "420", 0, 0, False),
    ("420_q90_17x3", 17, 3, 90, "420", 0, 0, False),
    ("420_q50_prog_rst_33x31", 33, 31, 50, "420", 1, 2, False),
    ("gray_q90_41x27", 41, 27, 90, "444", 0, 0, True),
    ("gray_q80_prog_19x13", 19, 13, 80, "444", 1, 0, True),
]
FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def main():
    lines = []
    for seed, (name, w, h, q, samp, prog, rst, gray) in enumerate(CASES):
        img = picture(w, h, seed)
        if gray:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        ok, buf = cv2.imencode(".jpg", img, [
            cv2.IMWRITE_JPEG_QUALITY, q,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, S[samp],
            cv2.IMWRITE_JPEG_PROGRESSIVE, prog,
            cv2.IMWRITE_JPEG_RST_INTERVAL, rst,
        ])
        assert ok
        buf.tofile(os.path.join(HERE, name + ".jpg"))
        full = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        full.tofile(os.path.join(HERE, name + ".rgb"))
        dims = [full.shape[1], full.shape[0]]
        for s, flag in FLAGS.items():
            red = cv2.imdecode(buf, flag)[:, :, ::-1]
            red.tofile(os.path.join(HERE, f"{name}.s{s}.rgb"))
            dims += [red.shape[1], red.shape[0]]
        lines.append(" ".join([name] + [str(d) for d in dims]))
    with open(os.path.join(HERE, "cases.txt"), "w") as f:
        f.write(f"# made by make.py with opencv-python {cv2.__version__}\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

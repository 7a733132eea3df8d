"""Builds dlkernels/data/fashion_mnist_10k.npz from the Fashion-MNIST IDX files.

The source is Debian's ``dataset-fashion-mnist`` package (main, 0.0~git20200523.55506a9-1), a
verbatim copy of https://github.com/zalandoresearch/fashion-mnist (MIT):

    apt-get download dataset-fashion-mnist
    dpkg-deb -x dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb /tmp/fashion-mnist
    python scripts/make_fashion_mnist_subset.py /tmp/fashion-mnist/usr/share/datasets/fashion-mnist

Subset: the first 800 images of each class from the official training set and the first 200 of
each class from the official test set, in their original order (no random numbers, so nothing
depends on a library version). Pixels are stored unchanged as uint8; labels as uint8.

The zip is written with fixed timestamps, so the same input gives the same bytes (given the same
zlib); the script prints the file's sha256 and a digest of the arrays, recorded in the README.
"""

import argparse
import gzip
import hashlib
import io
import os
import zipfile

import numpy as np

# sha256 of the decompressed IDX files (the .gz wrappers differ between distributions).
SOURCES = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
PER_CLASS = {"train": 800, "test": 200}
OUT = os.path.join(os.path.dirname(__file__), "..", "dlkernels", "data", "fashion_mnist_10k.npz")


def read_idx(folder: str, name: str) -> np.ndarray:
    """IDX format: 2 zero bytes, dtype code (0x08 = uint8), ndim, big-endian uint32 dims, data."""
    raw = gzip.open(os.path.join(folder, name + ".gz")).read()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCES[name]:
        raise SystemExit(f"{name}: sha256 {digest} is not the expected {SOURCES[name]}")
    if raw[:3] != b"\x00\x00\x08":
        raise SystemExit(f"{name}: not a uint8 IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(tuple(dims))


def first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    picks = [np.flatnonzero(labels == c)[:k] for c in range(10)]
    return np.sort(np.concatenate(picks))


def write_npz(path: str, arrays: dict) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def arrays_digest(arrays: dict) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode() + np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("folder", help="folder holding the four Fashion-MNIST *-ubyte.gz files")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()

    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(args.folder, f"{prefix}-images-idx3-ubyte")
        labels = read_idx(args.folder, f"{prefix}-labels-idx1-ubyte")
        keep = first_per_class(labels, PER_CLASS[split])
        arrays[f"x_{split}"] = images[keep]
        arrays[f"y_{split}"] = labels[keep]
    write_npz(args.out, arrays)

    for name, array in arrays.items():
        print(f"{name}: {array.shape} {array.dtype}")
    print(f"wrote {os.path.normpath(args.out)}: {os.path.getsize(args.out)} bytes")
    print(f"file sha256:   {hashlib.sha256(open(args.out, 'rb').read()).hexdigest()}")
    print(f"arrays sha256: {arrays_digest(arrays)}")


if __name__ == "__main__":
    main()

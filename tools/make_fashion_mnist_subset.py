"""Rebuild the Fashion-MNIST subset that ships inside hwnas (``hwnas/data/fashion_mnist_subset/``).

    python tools/make_fashion_mnist_subset.py [--source /usr/share/datasets/fashion-mnist]

The source is a folder with the four official gzipped idx files (Debian's ``dataset-fashion-mnist`` package,
or the files from https://github.com/zalandoresearch/fashion-mnist). The subset is balanced: from each of the
10 classes, the first ``--train-per-class`` images of the official training split and the first
``--test-per-class`` of the official test split in a seeded random order (``--seed``). The chosen positions
in the official files are written to ``subset.json`` beside the images, with the source files' SHA-256, so
anyone can check which images these are; running the script again on the same files gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import struct
from pathlib import Path

import numpy as np

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
OUT = Path(__file__).resolve().parents[1] / "hwnas" / "data" / "fashion_mnist_subset"


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_gz(array: np.ndarray) -> bytes:
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    # mtime 0: the same input gives the same bytes
    return gzip.compress(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), compresslevel=9, mtime=0)


def balanced(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    order = rng.permutation(len(labels))
    chosen = [order[labels[order] == k][:per_class] for k in range(10)]
    if any(len(c) < per_class for c in chosen):
        raise SystemExit(f"every class needs {per_class} images, but the source has fewer")
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"source": "Fashion-MNIST (Zalando Research, MIT licence), official gzipped idx files",
              "seed": args.seed, "sha256": {}, "indices": {}}
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        image_file, label_file = FILES[split]
        for name in (image_file, label_file):
            record["sha256"][f"{name}.gz"] = hashlib.sha256((args.source / f"{name}.gz").read_bytes()).hexdigest()
        images, labels = read_idx(args.source / f"{image_file}.gz"), read_idx(args.source / f"{label_file}.gz")
        chosen = balanced(labels, per_class, rng)
        record["indices"][split] = chosen.tolist()
        (args.out / f"{image_file}.gz").write_bytes(idx_gz(images[chosen]))
        (args.out / f"{label_file}.gz").write_bytes(idx_gz(labels[chosen]))
        print(f"{split}: {len(chosen)} images, {per_class} per class")
    (args.out / "subset.json").write_text(json.dumps(record, separators=(",", ":")) + "\n")
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{args.out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""kd's hashed text features, reimplemented from their definition.

The definition (data/kd_data.h and docs/retrieval.md): ASCII lower case;
words are runs of ASCII letters, digits and bytes >= 0x80; for each word,
the word n-grams ending at it ("w" + words joined by one space), then the
character n-grams of "<word>" ("c" + the n-gram's bytes; a character starts
at every byte that is not 0x80-0xBF); id = XXH3-64(key, seed) mod 2^k.

    features_numpy.py --settings "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5" \
        texts.txt ids.u32 offsets.u64

reads one text per line (bytes; '\n' ends a line, a '\r' before it is
dropped) and writes the ids (uint32) and the CSR offsets (uint64, n + 1) as
raw little-endian arrays. Needs python3-xxhash and python3-numpy.
"""
import argparse
import re
import sys

import numpy as np
import xxhash

WORD = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def parse_settings(line):
    parts = line.split()
    if not parts or parts[0] != "kd-text-v1":
        raise ValueError(f"text settings '{line}': expected 'kd-text-v1' first")
    kv = dict(p.split("=", 1) for p in parts[1:])
    if sorted(kv) != ["buckets", "chars", "seed", "words"]:
        raise ValueError(f"text settings '{line}': need buckets, seed, words, chars")
    if kv["chars"] == "0":
        cmin = cmax = 0
    else:
        cmin, cmax = (int(x) for x in kv["chars"].split("-"))
    return int(kv["buckets"]), int(kv["seed"]), int(kv["words"]), cmin, cmax


def featurize(text, settings):
    """The bucket ids of one text (bytes), in kd's order."""
    log2, seed, wn, cmin, cmax = settings
    mask = (1 << log2) - 1
    words = WORD.findall(text.lower())  # bytes.lower() folds A-Z only
    ids = []
    for i, word in enumerate(words):
        for n in range(1, wn + 1):
            if i + 1 >= n:
                key = b"w" + b" ".join(words[i - n + 1:i + 1])
                ids.append(xxhash.xxh3_64_intdigest(key, seed) & mask)
        if cmax == 0:
            continue
        m = b"<" + word + b">"
        starts = [j for j in range(len(m)) if m[j] & 0xC0 != 0x80]
        bounds = starts + [len(m)]
        for p in range(len(starts)):
            for n in range(cmin, cmax + 1):
                if p + n > len(starts):
                    break
                key = b"c" + m[bounds[p]:bounds[p + n]]
                ids.append(xxhash.xxh3_64_intdigest(key, seed) & mask)
    return ids


def featurize_all(texts, settings):
    """(ids uint32, offsets uint64) of a list of byte strings, CSR."""
    per = [featurize(t, settings) for t in texts]
    offsets = np.zeros(len(per) + 1, dtype=np.uint64)
    offsets[1:] = np.cumsum([len(p) for p in per], dtype=np.uint64)
    ids = np.fromiter((i for p in per for i in p), dtype=np.uint32, count=int(offsets[-1]))
    return ids, offsets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--settings", default="kd-text-v1 buckets=18 seed=1 words=2 chars=3-5")
    ap.add_argument("texts")
    ap.add_argument("ids")
    ap.add_argument("offsets")
    a = ap.parse_args()
    with open(a.texts, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    texts = [t[:-1] if t.endswith(b"\r") else t for t in lines]
    ids, offsets = featurize_all(texts, parse_settings(a.settings))
    ids.astype("<u4").tofile(a.ids)
    offsets.astype("<u8").tofile(a.offsets)
    return 0


if __name__ == "__main__":
    sys.exit(main())

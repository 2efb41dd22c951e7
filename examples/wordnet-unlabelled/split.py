#!/usr/bin/python3
"""A semi-supervised BEIR folder from one made by `kd convert wordnet`:
4000 of its training queries (shuffled with seed 7), qrels kept for the
first 1000 (qrels/train.tsv), the other 3000 left in queries.jsonl with no
qrels (what `unlabelled: unjudged` distils on), the whole test split, no
dev split; corpus.jsonl is a symbolic link to the source's.

    split.py SRC DST [--train 4000] [--labelled 1000] [--seed 7]
"""
import argparse, json, os, random

ap = argparse.ArgumentParser()
ap.add_argument("src"); ap.add_argument("dst")
ap.add_argument("--train", type=int, default=4000)
ap.add_argument("--labelled", type=int, default=1000)
ap.add_argument("--seed", type=int, default=7)
a = ap.parse_args()

def qrels(name):
    with open(f"{a.src}/qrels/{name}.tsv") as f:
        return [line.rstrip("\n").split("\t") for line in f][1:]

train, test = qrels("train"), qrels("test")
ids = sorted({r[0] for r in train})
random.Random(a.seed).shuffle(ids)
use = ids[:a.train]
labelled = set(use[:a.labelled])
keep = set(use) | {r[0] for r in test}
os.makedirs(f"{a.dst}/qrels", exist_ok=True)
with open(f"{a.src}/queries.jsonl") as f, open(f"{a.dst}/queries.jsonl", "w") as out:
    for line in f:
        if json.loads(line)["_id"] in keep:
            out.write(line)
for name, rows, want in (("train", train, labelled), ("test", test, None)):
    with open(f"{a.dst}/qrels/{name}.tsv", "w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for r in rows:
            if want is None or r[0] in want:
                out.write("\t".join(r) + "\n")
corpus = f"{a.dst}/corpus.jsonl"
if not os.path.exists(corpus):
    os.symlink(os.path.abspath(f"{a.src}/corpus.jsonl"), corpus)
print(f"{len(labelled)} labelled, {len(use) - len(labelled)} unlabelled training queries, "
      f"{len({r[0] for r in test})} test queries")

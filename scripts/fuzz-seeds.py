#!/usr/bin/env python3
"""Writes kd's fuzz seed corpora (fuzz/corpus/<harness>/seed-*): small valid
files of each format, made by hand or by kd itself, and malformed ones like
those the tests check. Run from the repository root with bin/kd built:

    python3 scripts/fuzz-seeds.py

Seeds are named seed-*; files libFuzzer adds (named by their SHA-1) and
regression reproducers (regress-*) are left alone. Needs no numpy."""
import gzip, os, shutil, sqlite3, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
KD = os.path.join(ROOT, "bin", "kd")
SEP = b"KDFZ"  # fuzz/fuzz_split.h


def put(harness, name, data):
    d = os.path.join(CORPUS, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def clear_seeds(harness):
    d = os.path.join(CORPUS, harness)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if n.startswith("seed-"):
                os.remove(os.path.join(d, n))


# ------------------------------------------------------------------ pipeline
def pipelines():
    clear_seeds("pipeline")
    srcs = []
    for folder in ("tests/pipelines/fixtures", "pipelines/examples", "pipelines/examples/label-efficiency",
                   "pipelines/examples/noisy-teacher"):
        for n in sorted(os.listdir(os.path.join(ROOT, folder))):
            if n.endswith(".yaml"):
                srcs.append(os.path.join(folder, n))
    for s in srcs:
        with open(os.path.join(ROOT, s), "rb") as f:
            put("pipeline", s.replace("/", "_"), f.read())
    tiny = ("version: 1\nname: tiny\nseed: 3\n"
            "datasets:\n  d: {features: x.csv, label_column: label}\n"
            "splits:\n  - {from: d, parts: {gold: 10, pool: rest}}\n"
            "models:\n  s: {hidden: [4]}\n  t: {hidden: [8], activation: gelu}\n"
            "teachers:\n  t: {kind: model, model: t}\n"
            "stages:\n  - train: {model: t, data: gold, epochs: 1}\n"
            "  - distill: {student: s, teacher: t, data: pool, epochs: 1, temperature: 2}\n"
            "  - evaluate: {models: [s, t], data: gold, teacher: t}\n"
            "  - export: {model: s, format: [safetensors, c]}\n")
    put("pipeline", "tiny.yaml", tiny)
    # with --set overrides: NUL-separated after the text (fuzz/fuzz_pipeline.c)
    put("pipeline", "tiny-sets.yaml", tiny + "\0seed=4\0models.s.hidden=[2,2]\0stages.1.distill.temperature=8")
    put("pipeline", "tiny-bad-set.yaml", tiny + "\0stages.9.train.epochs=1\0nokey\0models.s=[1")


# --------------------------------------------------------------- safetensors
def st_file(tensors, meta=None, pad=b""):
    """tensors: list of (name, dtype, shape, bytes)."""
    import json
    hdr, data = {}, b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta is not None:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode() + pad
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def safetensors(tmp):
    clear_seeds("safetensors")
    # a real kd model: 3 features, 2 classes, hidden 4
    csv = os.path.join(tmp, "train.csv")
    with open(csv, "w") as f:
        f.write("a,b,c,label\n")
        for i in range(12):
            f.write("%g,%g,%g,%d\n" % (i * 0.5, (i % 3) - 1.0, i * i * 0.01, i % 2))
    out = os.path.join(tmp, "m.safetensors")
    subprocess.run([KD, "train", "--train", csv, "--label-column", "label", "--epochs", "1", "--hidden", "4",
                    "--batch", "4", "--quiet", "--out", out], check=True, stdout=subprocess.DEVNULL)
    with open(out, "rb") as f:
        model = f.read()
    put("safetensors", "kd-mlp-3-4-2", model)
    out2 = os.path.join(tmp, "m0.safetensors")
    subprocess.run([KD, "train", "--train", csv, "--label-column", "label", "--epochs", "1", "--hidden", "0",
                    "--quiet", "--out", out2], check=True, stdout=subprocess.DEVNULL)
    with open(out2, "rb") as f:
        put("safetensors", "kd-mlp-linear", f.read())
    # a model that records a standard input scaling (input_mean, input_inv_std)
    out3 = os.path.join(tmp, "ms.safetensors")
    subprocess.run([KD, "train", "--train", csv, "--label-column", "label", "--epochs", "1", "--hidden", "4",
                    "--batch", "4", "--scale", "standard", "--quiet", "--out", out3], check=True,
                   stdout=subprocess.DEVNULL)
    with open(out3, "rb") as f:
        put("safetensors", "kd-mlp-standard", f.read())
    put("safetensors", "kd-mlp-bad-scale", st_file(
        [("layers.0.weight", "F32", [2, 3], f32(1, 2, 3, 4, 5, 6)), ("layers.0.bias", "F32", [2], f32(0, 1))],
        {"kd_format": "mlp", "sizes": "3,2", "input_scale": "standard", "input_mean": "1,2,3",
         "input_inv_std": "1,,nan"}))
    put("safetensors", "one-f32", st_file([("w", "F32", [2, 2], f32(1, 2, 3, 4))], {"format": "pt"}))
    put("safetensors", "dtypes", st_file([
        ("a", "F64", [1], struct.pack("<d", 1.5)), ("b", "F16", [2], b"\x00\x3c\x00\x40"),
        ("c", "BF16", [1], b"\x80\x3f"), ("d", "I64", [1], struct.pack("<q", -3)),
        ("e", "I32", [1], struct.pack("<i", 7)), ("f", "I16", [1], b"\x01\x00"), ("g", "I8", [1], b"\xff"),
        ("h", "U8", [2], b"\x01\x02"), ("i", "BOOL", [1], b"\x01"), ("j", "U16", [1], b"\x02\x00"),
        ("k", "U32", [1], b"\x03\x00\x00\x00"), ("l", "U64", [1], b"\x04" + b"\x00" * 7)]))
    put("safetensors", "scalar-and-empty", st_file([("s", "F32", [], f32(2)), ("z", "F32", [0, 3], b"")]))
    put("safetensors", "header-padded", st_file([("w", "F32", [1], f32(1))], {}, pad=b"   "))
    # malformed, as the tests check them
    put("safetensors", "huge-header-len", struct.pack("<Q", 1 << 60) + b"{}")
    put("safetensors", "short", b"\x08\x00\x00")
    put("safetensors", "bad-json", struct.pack("<Q", 5) + b"{\"a\":")
    put("safetensors", "not-object", struct.pack("<Q", 2) + b"[]")
    put("safetensors", "bad-dtype", st_file([("w", "F33", [1], f32(1))]))
    put("safetensors", "shape-mismatch", st_file([("w", "F32", [3], f32(1))]))
    put("safetensors", "huge-shape", st_file([("w", "F32", [1 << 62, 1 << 62], f32(1))]))
    put("safetensors", "nan-weight", st_file([("layers.0.weight", "F32", [1, 1], f32(float("nan"))),
                                               ("layers.0.bias", "F32", [1], f32(0))]))
    ov = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    put("safetensors", "overlap", struct.pack("<Q", len(ov)) + ov + f32(1))
    gap = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    put("safetensors", "gap", struct.pack("<Q", len(gap)) + gap + f32(1, 2))
    big = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}'
    put("safetensors", "offset-overflow", struct.pack("<Q", len(big)) + big + f32(1))
    put("safetensors", "trailing", model + b"junk")
    put("safetensors", "truncated", model[:len(model) - 5])


# ----------------------------------------------------------------------- npy
def npy(descr, shape, data, version=1, fortran=False, raw_header=None):
    if raw_header is None:
        sh = "(" + "".join("%d," % s for s in shape) + ")" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
        raw_header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", sh)
    h = raw_header.encode("latin1")
    lenfmt, pre = ("<H", 10) if version == 1 else ("<I", 12)
    total = pre + len(h) + 1
    h += b" " * ((64 - total % 64) % 64) + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + struct.pack(lenfmt, len(h)) + h + data


def npys():
    clear_seeds("npy")
    x = npy("<f4", (3, 2), f32(0, 1, 2, 3, 4, 5))
    y = npy("<i8", (3,), struct.pack("<3q", 0, 1, 2))
    put("npy", "f32-3x2", x)
    put("npy", "f32-3x2+i64-labels", x + SEP + y)
    put("npy", "f64-2x2x2+u8-labels", npy("<f8", (2, 2, 2), struct.pack("<8d", *range(8))) + SEP +
        npy("|u1", (2,), b"\x01\x00"))
    put("npy", "u8-1d+i32-labels", npy("|u1", (4,), b"\x00\x01\x02\xff") + SEP + npy("<i4", (4,), struct.pack("<4i", 0, 1, 1, 0)))
    put("npy", "v2+i16", npy("<f4", (1, 1), f32(7), version=2) + SEP + npy("<i2", (1,), b"\x03\x00"))
    put("npy", "v3+u16", npy("<f4", (2, 1), f32(7, 8), version=3) + SEP + npy("<u2", (2,), b"\x03\x00\x01\x00"))
    put("npy", "i8+u32-labels", npy("<f4", (2, 1), f32(1, 2)) + SEP + npy("|i1", (2,), b"\x00\x05"))
    put("npy", "u32-labels", npy("<f4", (1, 1), f32(1)) + SEP + npy("<u4", (1,), b"\x09\x00\x00\x00"))
    put("npy", "empty-rows", npy("<f4", (0, 3), b""))
    # malformed
    put("npy", "fortran", npy("<f4", (2, 2), f32(1, 2, 3, 4), fortran=True))
    put("npy", "big-endian", npy(">f4", (1, 1), struct.pack(">f", 1)))
    put("npy", "bad-magic", b"\x93NUMPX\x01\x00" + x[8:])
    put("npy", "huge-shape", npy("<f4", (1 << 60, 1 << 40), f32(1)))
    put("npy", "truncated", x[:-3])
    put("npy", "nan", npy("<f4", (1, 1), f32(float("nan"))))
    put("npy", "bad-dict", npy(None, None, b"", raw_header="{'descr': '<f4', 'shape': (1,1) 'fortran_order': False}"))
    put("npy", "label-count", x + SEP + npy("<i8", (2,), struct.pack("<2q", 0, 1)))
    put("npy", "negative-label", x + SEP + npy("<i8", (3,), struct.pack("<3q", 0, -1, 2)))
    put("npy", "object", npy("|O", (1,), b"\x00" * 8))


# ----------------------------------------------------------------------- idx
def idx(code, dims, data):
    return b"\x00\x00" + bytes([code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idxs():
    for h in ("idx", "idx_gz"):
        clear_seeds(h)
    imgs = idx(0x08, (3, 2, 2), bytes(range(12)))
    labs = idx(0x08, (3,), b"\x00\x01\x09")
    cases = {
        "u8-3x2x2+labels": imgs + SEP + labs,
        "u8-3x2x2": imgs,
        "i8": idx(0x09, (2, 2), b"\x01\xff\x02\xfe"),
        "i16+labels": idx(0x0B, (2, 1), struct.pack(">2h", -5, 6)) + SEP + idx(0x08, (2,), b"\x00\x01"),
        "i32": idx(0x0C, (1, 3), struct.pack(">3i", 1, -2, 3)),
        "f32": idx(0x0D, (2, 2), struct.pack(">4f", 0.5, 1, 2, 3)),
        "f64+i32-labels": idx(0x0E, (2,), struct.pack(">2d", 1.5, -2)) + SEP + idx(0x0C, (2,), struct.pack(">2i", 3, 0)),
        "empty": idx(0x08, (0, 5), b""),
        # malformed
        "bad-magic": b"\x01\x00\x08\x01" + struct.pack(">I", 1) + b"\x00",
        "bad-type": idx(0x0A, (1,), b"\x00"),
        "huge-dims": idx(0x08, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), b"\x00"),
        "truncated": imgs[:-4],
        "trailing": imgs + b"zz",
        "label-count": imgs + SEP + idx(0x08, (2,), b"\x00\x01"),
        "label-2d": imgs + SEP + idx(0x08, (3, 1), b"\x00\x01\x02"),
        "nan": idx(0x0D, (1, 1), struct.pack(">f", float("nan"))),
        "zero-ndim": b"\x00\x00\x08\x00",
    }
    for n, data in cases.items():
        put("idx_gz", n, data)  # the harness compresses
        put("idx", n, data)
    # gzip files for the raw harness: the reader tells them by the magic bytes
    put("idx", "gz-u8-3x2x2+labels", gzip.compress(imgs, mtime=0) + SEP + gzip.compress(labs, mtime=0))
    put("idx", "gz-cut", gzip.compress(imgs, mtime=0)[:-6])
    put("idx", "gz-bad-crc", gzip.compress(imgs, mtime=0)[:-8] + b"\x00" * 8)
    put("idx", "gz-huge-dims", gzip.compress(idx(0x08, (60000, 100000), b"\x00" * 64), mtime=0))


# ----------------------------------------------------------------------- csv
def csvs():
    clear_seeds("csv")
    # first byte: options (fuzz/fuzz_csv.c): bits 0-1 label, 2-3 header, 4-5 delimiter
    def opt(label=0, header=0, delim=0):
        return bytes([label | header << 2 | delim << 4])
    put("csv", "plain", opt() + b"1,2,3\n4,5,6\n")
    put("csv", "header-label-name", opt(3, 2) + b"a,b,label\n1.5,2,0\n3,4e-3,1\n")
    put("csv", "label-index0", opt(1, 1) + b"0,1,2\n1,3,4\r\n")
    put("csv", "label-index1-semicolon", opt(2, 0, 1) + b"x;label\n1;0\n2;3\n")
    put("csv", "tab", opt(0, 1, 2) + b"1\t2\n3\t4\n")
    put("csv", "space", opt(0, 0, 3) + b"1 2\n3 4\n")
    put("csv", "quoted", opt(3, 2) + b"\"a\",\"label\"\n\"1\",\"2\"\n")
    put("csv", "blank-lines", opt() + b"\n1,2\n\n3,4\n\n")
    # malformed
    put("csv", "ragged", opt() + b"1,2\n3\n")
    put("csv", "not-number", opt(0, 1) + b"1,abc\n")
    put("csv", "nan-inf", opt() + b"nan,inf\n1e999,-1e999\n")
    put("csv", "bad-label", opt(1, 1) + b"-1,2\n70000,3\n1.5,4\n")
    put("csv", "missing-label-name", opt(3, 2) + b"a,b\n1,2\n")
    put("csv", "empty", opt())
    put("csv", "header-only", opt(0, 2) + b"a,b\n")
    put("csv", "unterminated-quote", opt() + b"\"1,2\n3,4\n")
    put("csv", "nul-bytes", opt() + b"1,\x002\n")


# ---------------------------------------------------------------------- exec
def execs():
    clear_seeds("exec")
    # first byte: D = 1 + (b & 7), N = 1 + ((b >> 3) & 7) (fuzz/fuzz_exec.c)
    def opt(d, n):
        return bytes([(d - 1) | (n - 1) << 3])
    def ans(n, c, v=0.5):
        return ("answer %d\n" % n).encode() + f32(*([v] * (n * c)))
    put("exec", "two-batches", opt(2, 2) + b"ready 3 logits v1\n" + ans(2, 3) + ans(2, 3))
    put("exec", "probabilities", opt(1, 1) + b"ready 2 probabilities\n" + ans(1, 2, 0.5))
    put("exec", "error-line", opt(1, 1) + b"ready 2 logits\nerror out of memory\n")
    put("exec", "error-bare", opt(1, 1) + b"ready 2 logits\nerror\n")
    put("exec", "wrong-rows", opt(1, 3) + b"ready 2 logits\nanswer 2\n" + f32(1, 2, 3, 4))
    put("exec", "short-payload", opt(1, 1) + b"ready 4 logits\nanswer 1\n" + f32(1))
    put("exec", "nan", opt(1, 1) + b"ready 1 logits\nanswer 1\n" + f32(float("nan")))
    put("exec", "garbage", opt(1, 1) + b"ready 1 logits\nhello\n")
    put("exec", "bad-ready", opt(1, 1) + b"ready 0 logits\n")
    put("exec", "bad-kind", opt(1, 1) + b"ready 3 scores\n")
    put("exec", "huge-c", opt(1, 1) + b"ready 16777217 logits\n")
    put("exec", "long-line", opt(1, 1) + b"ready 2 logits " + b"v" * 5000 + b"\n")
    put("exec", "long-version", opt(1, 1) + b"ready 2 logits " + b"v" * 300 + b"\n")
    put("exec", "no-newline", opt(1, 1) + b"ready 2 logits")
    put("exec", "empty", opt(1, 1))
    put("exec", "answer-tail", opt(1, 1) + b"ready 1 logits\nanswer 1x\n" + f32(1))


# ------------------------------------------------------ exec, text kinds
def exec_texts():
    clear_seeds("exec_text")
    # first byte: b & 1 embeddings (else pair scores), N = 1 + ((b >> 1) & 7),
    # b & 0x10 a 5,000-byte text in each batch (fuzz/fuzz_exec_text.c)
    def opt(emb, n, long_text=False):
        return bytes([(1 if emb else 0) | ((n - 1) << 1) | (0x10 if long_text else 0)])
    def ans(n, c, v=0.5):
        return b"answer %d\n" % n + f32(*([v] * (n * c)))
    def put_t(name, data):
        put("exec_text", name, data)
    put_t("pairs-two-batches", opt(0, 3) + b"ready 1 score cross-v1\n" + ans(3, 1, 2.5) + ans(3, 1, -1.0))
    put_t("pairs-long-text", opt(0, 2, True) + b"ready 1 score\n" + ans(2, 1))
    put_t("texts-two-batches", opt(1, 2) + b"ready 4 embedding enc v2\n" + ans(2, 4) + ans(2, 4, -0.25))
    put_t("texts-long-text", opt(1, 4, True) + b"ready 3 embedding\n" + ans(4, 3))
    put_t("texts-wide", opt(1, 1) + b"ready 100 embedding\n" + ans(1, 100))
    put_t("pairs-error-line", opt(0, 1) + b"ready 1 score\nerror model not loaded\n")
    put_t("texts-error-bare", opt(1, 1) + b"ready 2 embedding\nerror\n")
    put_t("pairs-wrong-rows", opt(0, 3) + b"ready 1 score\n" + ans(2, 1))
    put_t("texts-short-payload", opt(1, 1) + b"ready 4 embedding\nanswer 1\n" + f32(1))
    put_t("pairs-nan", opt(0, 1) + b"ready 1 score\nanswer 1\n" + f32(float("nan")))
    put_t("texts-inf", opt(1, 2) + b"ready 2 embedding\nanswer 2\n" + f32(1, 2, float("inf"), 4))
    put_t("pairs-garbage", opt(0, 1) + b"ready 1 score\nhello\n")
    put_t("pairs-answer-tail", opt(0, 1) + b"ready 1 score\nanswer 1x\n" + f32(1))
    put_t("pairs-two-scores", opt(0, 1) + b"ready 2 score\n")
    put_t("pairs-asked-embedding", opt(0, 1) + b"ready 1 embedding\n")
    put_t("texts-asked-score", opt(1, 1) + b"ready 1 score\n")
    put_t("texts-feature-kind", opt(1, 1) + b"ready 3 logits\n")
    put_t("texts-zero", opt(1, 1) + b"ready 0 embedding\n")
    put_t("texts-huge-e", opt(1, 1) + b"ready 16777217 embedding\n")
    put_t("texts-max-e", opt(1, 1) + b"ready 16777216 embedding\nanswer 1\n" + f32(1, 2))
    put_t("pairs-negative", opt(0, 1) + b"ready -1 score\n")
    put_t("pairs-long-line", opt(0, 1) + b"ready 1 score " + b"v" * 5000 + b"\n")
    put_t("pairs-long-version", opt(0, 1) + b"ready 1 score " + b"v" * 300 + b"\n")
    put_t("texts-long-answer-line", opt(1, 1) + b"ready 1 embedding\nanswer " + b"1" * 5000 + b"\n")
    put_t("pairs-no-newline", opt(0, 1) + b"ready 1 score")
    put_t("texts-empty", opt(1, 1))


# --------------------------------------------------------------------- store
def stores(tmp):
    clear_seeds("store")
    x = os.path.join(tmp, "x.csv")
    y = os.path.join(tmp, "y.csv")
    with open(x, "w") as f:
        f.write("1,2\n3,4\n5,6\n")
    with open(y, "w") as f:
        f.write("0.1,0.9\n0.8,0.2\n0.5,0.5\n")
    db = os.path.join(tmp, "kd.db")
    subprocess.run([KD, "store", "import", db, "--teacher", "t", "--inputs", x, "--answers", y,
                    "--kind", "probabilities"], check=True, stdout=subprocess.DEVNULL)
    # shrink kd's 64 KiB pages so the seed stays a few KB: same schema, same rows
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=DELETE")
    c.execute("PRAGMA page_size=512")
    c.execute("VACUUM")
    c.close()
    with open(db, "rb") as f:
        good = f.read()
    put("store", "kd-import", good)
    empty = os.path.join(tmp, "empty.db")
    c = sqlite3.connect(empty)
    c.execute("PRAGMA page_size=512")
    c.execute("CREATE TABLE other(a)")
    c.commit()
    c.close()
    with open(empty, "rb") as f:
        put("store", "other-tables", f.read())
    c = sqlite3.connect(db)
    c.execute("PRAGMA user_version=99")
    c.commit()
    c.close()
    with open(db, "rb") as f:
        put("store", "newer-version", f.read())
    put("store", "not-sqlite", b"this is not a database\n")
    put("store", "empty", b"")
    put("store", "truncated", good[:1024])
    bad = bytearray(good)
    for i in range(600, min(len(bad), 1400), 7):
        bad[i] ^= 0x5A
    put("store", "damaged", bytes(bad))

# ---------------------------------------------------------------------- beir
def beirs():
    clear_seeds("beir")
    # first byte (fuzz/fuzz_beir.c): split = b % 3 (train, dev, test), 0x80 = no qrels
    mini = os.path.join(ROOT, "tests", "data", "fixtures", "beir-mini")
    def rd(name):
        with open(os.path.join(mini, name), "rb") as f:
            return f.read()
    corpus, queries = rd("corpus.jsonl"), rd("queries.jsonl")
    for i, split in enumerate(("train", "dev", "test")):
        put("beir", "mini-" + split, bytes([i]) + corpus + SEP + queries + SEP + rd("qrels/%s.tsv" % split))
    put("beir", "mini-no-qrels", b"\x80" + corpus + SEP + queries)
    # tests/data/test_beir.c: the small set and its malformed variants
    c = b'{"_id": "d1", "title": "T1", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
    q = b'{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'
    h = b"query-id\tcorpus-id\tscore\n"
    t = h + b"q1\td1\t1\n"
    def s(name, corpus=c, queries=q, train=t):
        put("beir", name, b"\x00" + corpus + SEP + queries + SEP + train)
    s("small")
    s("skipped", train=h + b"q2\td1\t0\nq1\td2\t-1\nq1\td1\t3\n")
    s("duplicate-pair", train=h + b"q1\td1\t1\nq1\td1\t2\nq2\td2\t1\n")
    s("crlf", corpus=c.replace(b"\n", b"\r\n"), train=t.replace(b"\n", b"\r\n"))
    s("bad-json", corpus=b'{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": }\n')
    s("trailing-garbage", queries=b'{"_id": "q1", "text": "a"} x\n')
    s("array", queries=b'["q1", "a"]\n')
    s("bad-utf8", corpus=b'{"_id": "d1", "text": "caf\xe9"}\n')
    s("surrogate", queries=b'\n{"_id": "q1", "text": "\xed\xa0\x80"}\n')
    s("escaped-surrogate", queries=b'{"_id": "q1", "text": "\\ud800 \\u0000"}\n')
    s("missing-id", corpus=b'{"title": "x", "text": "one"}\n')
    s("empty-id", corpus=b'{"_id": "", "text": "one"}\n')
    s("array-id", corpus=b'{"_id": [1], "text": "one"}\n')
    s("tab-id", corpus=b'{"_id": "a\\tb", "text": "one"}\n')
    s("missing-text", corpus=c + b'{"_id": "d3", "title": "no text"}\n')
    s("int-text", queries=b'{"_id": "q1", "text": 7}\n')
    s("bool-title", corpus=b'{"_id": "d1", "title": false, "text": "one"}\n')
    s("duplicate-id", queries=q + b'{"_id": "q1", "text": "again"}\n')
    s("int-string-id", corpus=c + b'{"_id": 7, "text": "x"}\n{"_id": "7", "text": "y"}\n')
    s("big-int-id", corpus=c + b'{"_id": -9223372036854775808, "text": "x"}\n')
    s("bad-header", train=b"qid\tdocid\tscore\nq1\td1\t1\n")
    s("empty-qrels", train=b"")
    s("unknown-query", train=h + b"q1\td1\t1\nq3\td1\t1\n")
    s("unknown-doc", train=h + b"q1\td9\t1\n")
    s("float-score", train=h + b"q1\td1\t1.5\n")
    s("empty-score", train=h + b"q1\td1\t\n")
    s("huge-score", train=h + b"q1\td1\t99999999999999999999\n")
    s("one-field", train=h + b"q1 d1 1\n")
    s("four-fields", train=h + b"q1\td1\t1\t0\n")
    put("beir", "empty", b"\x00")


# ---------------------------------------------------------------------- text
def texts():
    clear_seeds("text")
    # the settings line, KDFZ, texts separated by newlines (fuzz/fuzz_text.c)
    def t(name, settings, *docs):
        put("text", name, settings.encode() + SEP + "\n".join(docs).encode())
    t("default", "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5", "he deposited the check", "où est le café ?")
    t("chars-off", "kd-text-v1 buckets=4 seed=0 words=8 chars=0", "a b c d e f g h i j", "")
    t("words-off", "kd-text-v1 chars=1-16 words=0 seed=18446744073709551615 buckets=31",
      "Ελληνικά και русский текст", "x")
    t("one-bucket", "kd-text-v1 buckets=1 seed=7 words=1 chars=2-2", "AB ab Ab", "!!! ,,,")
    put("text", "long-text", b"kd-text-v1 buckets=18 seed=1 words=2 chars=3-5" + SEP + b"word " * 600)
    put("text", "binary", b"kd-text-v1 buckets=10 seed=1 words=3 chars=1-4" + SEP + bytes(range(256)))
    for name, line in (("bad-version", "kd-text-v2 buckets=18 seed=1 words=2 chars=3-5"),
                       ("repeated-key", "kd-text-v1 buckets=18 buckets=18 seed=1 words=2 chars=3-5"),
                       ("missing-key", "kd-text-v1 buckets=18 seed=1 words=2"),
                       ("unknown-key", "kd-text-v1 buckets=18 seed=1 words=2 chars=3-5 x=1"),
                       ("out-of-range", "kd-text-v1 buckets=32 seed=1 words=9 chars=5-3"),
                       ("no-features", "kd-text-v1 buckets=18 seed=1 words=0 chars=0"),
                       ("overflow", "kd-text-v1 buckets=18 seed=18446744073709551616 words=2 chars=3-5"),
                       ("signs", "kd-text-v1 buckets=+18 seed=-1 words= chars=3-")):
        t(name, line, "some text")
    put("text", "settings-only", b"kd-text-v1 buckets=18 seed=1 words=2 chars=3-5")


# --------------------------------------------------------------------- pairs
def pairs():
    clear_seeds("pairs")
    # the TSV of `kd store import --pairs` (fuzz/fuzz_pairs.c): a query id is
    # known when it starts with q or Q, a corpus id with d or D
    h = "query-id\tcorpus-id\tscore\n"
    ok = "q1\td1\t1\nq1\td2\t0.5\nq2\td1\t-3.25\n"
    for name, text in (("header", h + ok), ("no-header", ok), ("crlf", (h + ok).replace("\n", "\r\n")),
                       ("blank-lines", "\n" + h + "\nq1\td1\t1\n\n\nq2\td2\t2\n\n"),
                       ("no-final-newline", h + "q1\td1\t1"),
                       ("duplicate-pair", h + "q1\td1\t1\nq1\td1\t2\n"),
                       ("same-texts", h + "q1\td1\t1\nQ1\tD1\t2\nQ1\td1\t3\n"),
                       ("number-forms", h + "q1\td1\t1e-3\nq1\td2\t-0\nq1\td3\t0x1p3\nq1\td4\t 7\n"
                                       "q1\td5\t3.4028234e38\nq1\td6\t1e-50\n"),
                       ("header-only", h), ("empty", ""),
                       ("header-not-first", "q1\td1\t1\n" + h),
                       ("two-fields", h + "q1\td1\n"), ("four-fields", h + "q1\td1\t1\t0\n"),
                       ("spaces", h + "q1 d1 1\n"),
                       ("empty-query", h + "\td1\t1\n"), ("empty-corpus", h + "q1\t\t1\n"),
                       ("empty-score", h + "q1\td1\t\n"), ("word-score", h + "q1\td1\t1\nq1\td2\thigh\n"),
                       ("nan", h + "q1\td1\tnan\n"), ("inf", h + "q1\td1\t-inf\n"),
                       ("too-big", h + "q1\td1\t1e39\n"), ("trailing", h + "q1\td1\t1x\n"),
                       ("unknown-query", h + "q1\td1\t1\nx9\td1\t1\n"),
                       ("unknown-corpus", h + "q1\td1\t1\nq1\tz9\t1\n"),
                       ("long-ids", h + "q" + "a" * 300 + "\td" + "b" * 300 + "\t1\n")):
        put("pairs", name, text)
    put("pairs", "nul", b"query-id\tcorpus-id\tscore\nq1\td\x001\t1\nq2\td2\t2\n")
    put("pairs", "utf8", "query-id\tcorpus-id\tscore\nqé\tdΩ\t1\n")


# ------------------------------------------------------------------- wordnet
def wordnets():
    clear_seeds("wordnet")
    # data.noun, KDFZ, data.verb, KDFZ, data.adj, KDFZ, data.adv (fuzz/fuzz_wordnet.c)
    wn = os.path.join(ROOT, "tests", "data", "fixtures", "wordnet")
    def rd(name):
        with open(os.path.join(wn, "data." + name), "rb") as f:
            return f.read()
    noun, verb, adj, adv = rd("noun"), rd("verb"), rd("adj"), rd("adv")
    def w(name, n=noun, v=verb, a=adj, r=adv):
        put("wordnet", name, SEP.join(x if isinstance(x, bytes) else x.encode() for x in (n, v, a, r)))
    w("fixture")
    w("crlf", n=noun.replace(b"\n", b"\r\n"), v=verb.replace(b"\n", b"\r\n"))
    w("nouns-only", v=b"", a=b"", r=b"")
    put("wordnet", "noun-file-only", noun)
    put("wordnet", "empty", b"")
    w("no-final-newline", n=noun.rstrip(b"\n").rstrip(b" "))
    w("marker", a="00100000 00 a 02 galore(ip) 0 able(a) 1 000 | plenty; \"food galore\"; \"able galore\"\n")
    w("shared-example", n="00001000 06 n 01 bank 0 000 | a; \"the bank\"\n00002000 06 n 01 bank 1 000 | b; \"the bank\"\n")
    w("no-gloss", n="00001000 06 n 01 bank 0 000\n00002000 06 n 01 bank 1 000 |\n")
    w("quotes", n='00001000 06 n 01 bank 0 000 | "unclosed; "a" "b";; ""; "bank"\n00002000 06 n 01 bank 1 000 | x; "bank"\n')
    w("underscores", n="00001000 06 n 02 river_bank 0 _ 0 000 | side; \"the river bank\"\n"
                       "00002000 06 n 01 River_Bank 1 000 | x; \"a River bank\"\n")
    w("utf8", n="00001000 06 n 01 café 0 000 | où; \"un café\"\n00002000 06 n 01 café 1 000 | x; \"café noir\"\n")
    w("bad-utf8", n=b"00001000 06 n 01 caf\xe9 0 000 | x; \"caf\xe9\"\n")
    w("many-words", n="00001000 06 n 0a " + " ".join("w%d %d" % (i, i % 16) for i in range(10)) + " 000 | x; \"w3\"\n"
                       "00002000 06 n 01 w3 1 000 | y; \"w3 w3\"\n")
    # malformed lines as tests/data/test_wordnet.c checks them
    w("bad-offset", n="  licence\n0000100x 06 n 01 bank 0 000 | x\n")
    w("wrong-type", n="00001000 06 v 01 bank 0 000 | x\n")
    w("bad-count", n="00001000 06 n 0g bank 0 000 | x\n")
    w("zero-count", n="00001000 06 n 00 bank 0 000 | x\n")
    w("few-words", n="00001000 06 n 03 bank 0 | x\n")
    w("bad-lexid", n="00001000 06 n 01 bank x 000 | x\n")
    w("short-lex", n="00001000 6 n 01 bank 0 000 | x\n")
    w("satellite-in-noun", n="00001000 06 s 01 bank 0 000 | x\n")
    w("duplicate-offset", n="00001000 06 n 01 bank 0 000 | a; \"the bank\"\n00001000 06 n 01 bank 1 000 | b; \"a bank\"\n")


# --------------------------------------------------------------------- dictd
def dictds():
    clear_seeds("dictd")
    # the index, KDFZ, the dictionary data (fuzz/fuzz_dictd.c)
    fx = os.path.join(ROOT, "tests", "data", "fixtures", "dictd")
    with open(os.path.join(fx, "tiny.index"), "rb") as f:
        index = f.read()
    with open(os.path.join(fx, "tiny.dict"), "rb") as f:
        data = f.read()
    def d(name, i, t):
        put("dictd", name, (i if isinstance(i, bytes) else i.encode()) + SEP +
            (t if isinstance(t, bytes) else t.encode()))
    e = "word\n\n   A short made-up definition.\n"  # 37 bytes: "l"
    d("fixture", index, data)
    d("crlf", index.replace(b"\n", b"\r\n"), data)
    d("no-final-newline", index.rstrip(b"\n"), data)
    d("shared", "00-database-url\tA\tB\nword\tA\tl\nwords\tA\tl\tWords\nother\tBl\tB\n", e + "x\n")
    def b64(v):
        digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        out = digits[v % 64]
        while v >= 64:
            v //= 64
            out = digits[v % 64] + out
        return out
    def entries(name, *items):
        # items: (headword, shown or None, entry text); the index in that order
        idx, dat = "", b""
        for hw, shown, text in items:
            t = text.encode()
            idx += "%s\t%s\t%s%s\n" % (hw, b64(len(dat)), b64(len(t)), "\t" + shown if shown else "")
            dat += t
        d(name, idx, dat)
    entries("four-fields", ("att", "AT&T", "AT&T\n\n   AT&T is a company, at&t too.\n"))
    d("big-offset", "w\t+/\tp\n", "." * 4031 + "word\n\n   Nine digits: 0 1 2 3 4 5 6 7 8.\n")
    entries("no-heading", ("widget", None, "Widget, n. A small gadget\nthat is a widget.\n"))
    entries("same-definition", ("a", None, "a\n\n   The same text, twice.\n\n"),
            ("b", None, "b\n\n   The same text, twice.\n\n"))
    entries("utf8", ("café", None, "café\n\n   Un CAFÉ, un café noir, où?\n\n   naïve\n"))
    d("zero-length", "z\tA\tA\nw\tA\tl\n", e)
    d("overlap", "a\tA\tl\nb\tB\tk\n", e)
    d("empty", "", "")
    # malformed input as tests/data/test_dictd.c checks it
    d("two-fields", "word\tA\tl\nother\tA\n", e)
    d("five-fields", "word\tA\tl\tw\tx\n", e)
    d("bad-digit", "word\tA!\tl\n", e)
    d("empty-length", "word\tA\t\n", e)
    d("long-number", "word\tAAAAAAAAAAA\tl\n", e)
    d("past-end", "word\tA\tm\n", e)
    d("huge-offset", "word\t//////////\tA\n", e)
    d("empty-headword", "\tA\tl\n", e)
    d("empty-shown", "word\tA\tl\t\n", e)
    d("bad-utf8-headword", b"w\xc3(rd\tA\tl\n", e)
    d("nul", b"word\tA\tl\nwor\0d\tA\tl\n", e)
    d("two-lengths", "word\tA\tl\nwords\tA\tk\n", e)
    d("only-database", "00-database-short\tA\tl\n00databaseurl\tA\tB\n", e)
    d("bad-utf8-entry", "word\tA\tJ\n", b"word\n\xff\n\n\n\n")


# ---------------------------------------------------------------- texts_file
def texts_files():
    clear_seeds("texts_file")
    # one byte (b & 1: document side), then the file of `kd encode --texts`
    # (fuzz/fuzz_texts_file.c)
    mini = os.path.join(ROOT, "tests", "data", "fixtures", "beir-mini")
    for side in (0, 1):
        for name in ("corpus.jsonl", "queries.jsonl"):
            with open(os.path.join(mini, name), "rb") as f:
                put("texts_file", "%s-%s" % ("doc" if side else "query", name.split(".")[0]), bytes([side]) + f.read())
    with open(os.path.join(ROOT, "tests", "data", "fixtures", "texts.txt"), "rb") as f:
        put("texts_file", "lines", b"\x00" + f.read()[:2000])
    def t(name, text, side=0):
        put("texts_file", name, bytes([side]) + (text.encode() if isinstance(text, str) else text))
    t("plain", "he sat on the bank\nthe bank closed\n")
    t("plain-no-final-newline", "one\ntwo")
    t("plain-blank-lines", "\n\none\n\n   \n")
    t("plain-crlf", "one\r\ntwo\r\n\r\n")
    t("plain-nul", b"one\x00hidden\ntwo\n")
    t("plain-brace-later", "text\n{\"text\": \"x\"}\n")
    t("jsonl-title", '{"title": "T", "text": "x"}\n{"title": "", "text": "y"}\n{"title": "T", "text": ""}\n', 1)
    t("jsonl-blank", '\n  \n{"text": "a"}\n\t\n{"text": "b"}\r\n\n')
    t("jsonl-escapes", '{"text": "caf\\u00e9 \\ud83d\\ude00 \\n\\t\\""}\n')
    t("jsonl-extra-keys", '{"_id": "q1", "text": "a", "word": "w", "title": 7}\n', 1)
    t("bad-json", '{"text": "a"}\n{"text": }\n')
    t("trailing-garbage", '{"text": "a"} x\n')
    t("array-line", '{"text": "a"}\n["a"]\n')
    t("missing-text", '{"text": "a"}\n{"title": "b"}\n')
    t("number-text", '{"text": 7}\n')
    t("null-text", '{"text": null}\n')
    t("escaped-nul", '{"text": "a\\u0000b"}\n')
    t("lone-surrogate", '{"text": "\\ud800"}\n')
    t("bad-utf8", b'{"text": "caf\xe9"}\n')
    t("empty", "")
    t("only-blanks", " \n\t\r\n")
    t("only-brace", "{")
    t("long", "word " * 1500 + "\n" + "x" * 100)


# ---------------------------------------------------------------- model_meta
def model_metas():
    clear_seeds("model_meta")
    # one byte (fuzz/fuzz_model_meta.c: b & 1 = 0 autoencoder, 1 checkpoint of
    # a 2-3-2 network with ((b >> 1) & 3) + 1 epochs), then the file
    def m(name, b, data):
        put("model_meta", name, bytes([b]) + data)
    def ae(meta=None, drop=(), shapes=None):
        shapes = shapes or {"encoder.layers.0.weight": [3, 2], "encoder.layers.0.bias": [3],
                            "encoder.layers.1.weight": [1, 3], "encoder.layers.1.bias": [1],
                            "decoder.layers.0.weight": [3, 1], "decoder.layers.0.bias": [3],
                            "decoder.layers.1.weight": [2, 3], "decoder.layers.1.bias": [2],
                            "lo": [2], "hi": [2], "z_std": [1]}
        ts = []
        for name, shape in shapes.items():
            if name in drop:
                continue
            n = 1
            for k in shape:
                n *= k
            vals = [1.0] * n if name == "hi" else [0.0] * n if name == "lo" else [0.25 * (i % 5 - 2) for i in range(n)]
            ts.append((name, "F32", shape, f32(*vals)))
        md = {"kd_format": "autoencoder", "kd_version": "0.2.0", "encoder_sizes": "2-3-1",
              "decoder_sizes": "1-3-2", "activation": "relu"}
        md.update(meta or {})
        md = {k: v for k, v in md.items() if v is not None}
        return st_file(ts, md)
    m("ae", 0, ae())
    m("ae-gelu", 0, ae({"activation": "gelu"}))
    m("ae-no-activation", 0, ae({"activation": None}))
    m("ae-other-format", 0, ae({"kd_format": "mlp"}))
    m("ae-no-format", 0, ae({"kd_format": None}))
    m("ae-no-decoder-sizes", 0, ae({"decoder_sizes": None}))
    m("ae-bad-sizes", 0, ae({"encoder_sizes": "2-x-1"}))
    m("ae-sizes-mismatch", 0, ae({"decoder_sizes": "1-3-3"}))
    m("ae-huge-sizes", 0, ae({"encoder_sizes": "100000-100000-1", "decoder_sizes": "1-100000-100000"}))
    m("ae-bad-activation", 0, ae({"activation": "swish"}))
    m("ae-missing-z-std", 0, ae(drop=("z_std",)))
    m("ae-missing-layer", 0, ae(drop=("decoder.layers.1.weight",)))
    n = 17  # (2 * 3 + 3) + (3 * 2 + 2)
    def cp(meta=None, tensors=None):
        md = {"epoch": "1", "step": "2", "optim_t": "2", "rng": "0123456789abcdef" * 4, "n_params": str(n),
              "kd_format": "checkpoint"}
        md.update(meta or {})
        md = {k: v for k, v in md.items() if v is not None}
        ts = tensors if tensors is not None else [
            ("params", "F32", [n], f32(*[0.1 * (i % 7 - 3) for i in range(n)])),
            ("optim.m", "F32", [n], f32(*[0.01] * n)),
            ("optim.v", "F32", [n], f32(*[0.001] * n))]
        return st_file(ts, md)
    m("checkpoint", 1, cp())
    m("checkpoint-done", 3, cp({"epoch": "2"}))
    m("checkpoint-later", 7, cp({"epoch": "9"}))
    m("checkpoint-no-rng", 1, cp({"rng": None}))
    m("checkpoint-short-rng", 1, cp({"rng": "0123"}))
    m("checkpoint-hex-rng", 1, cp({"rng": "zz" * 32}))
    m("checkpoint-other-net", 1, cp({"n_params": "18"}))
    m("checkpoint-bad-epoch", 1, cp({"epoch": "-1", "step": "x", "optim_t": "18446744073709551616"}))
    m("checkpoint-nan", 1, cp(tensors=[("params", "F32", [n], f32(*[float("nan")] * n)),
                                       ("optim.m", "F32", [n], f32(*[0.0] * n)),
                                       ("optim.v", "F32", [n], f32(*[-1.0] * n))]))
    m("checkpoint-no-moments", 1, cp(tensors=[("params", "F32", [n], f32(*[0.0] * n))]))
    m("checkpoint-wrong-shape", 1, cp(tensors=[("params", "F32", [1, n], f32(*[0.0] * n))]))
    m("not-safetensors", 1, b"not a safetensors file")
    m("empty", 0, b"")


def main():
    # python3 scripts/fuzz-seeds.py beir text exec_text pairs wordnet dictd texts_file model_meta: only those (no bin/kd needed)
    only = {"beir": beirs, "text": texts, "exec_text": exec_texts, "pairs": pairs, "wordnet": wordnets, "dictd": dictds,
            "texts_file": texts_files, "model_meta": model_metas}
    if len(sys.argv) > 1:
        for name in sys.argv[1:]:
            if name not in only:
                sys.exit("fuzz-seeds: can write only %s alone" % ", ".join(only))
            only[name]()
        return
    if not os.path.exists(KD):
        sys.exit("fuzz-seeds: build bin/kd first (make)")
    tmp = tempfile.mkdtemp(prefix="kd-seeds-")
    try:
        pipelines(); safetensors(tmp); npys(); idxs(); csvs(); execs(); exec_texts(); stores(tmp); beirs(); texts(); pairs(); wordnets(); dictds(); texts_files(); model_metas()
    finally:
        shutil.rmtree(tmp)


main()

#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (committed; rerun only to change them).

gguf:      tiny but complete Llama GGUF models (1 layer, width 32, a 264-token byte-level BPE
           vocabulary) in the real file's layout (Q8_0 embedding, Q4_1 matrices, f32 norms) and
           all-f32 in GGUF v1/v2, a metadata-only file, and the first 4 KiB of the real model.
tag_file:  the shipped tags (tags/*.safetensors) and their JSON metadata shrunk to p = 1, d = 8
           (the `tag_file` target wraps JSON into a safetensors file itself).
inputs:    tests/fixtures/inputs and a few hand-written cases, each behind a selector byte.
tokenizer: short texts: chat markup, SMILES, spaced proteins, digits, non-ASCII.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- GGUF
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_Q4_1, GGML_Q8_0 = 0, 3, 8


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def gguf(version, metadata, tensors, alignment=32):
    """metadata: [(key, type, value)]; tensors: [(name, dims (ggml order), dtype, bytes)]."""
    length = "<I" if version == 1 else "<Q"

    def s(x):
        x = x.encode()
        return struct.pack(length, len(x)) + x

    def value(t, v):
        if t == U32:
            return struct.pack("<I", v)
        if t == I32:
            return struct.pack("<i", v)
        if t == F32:
            return struct.pack("<f", v)
        if t == BOOL:
            return struct.pack("<B", v)
        if t == STRING:
            return s(v)
        et, items = v
        return struct.pack("<I", et) + struct.pack(length, len(items)) + b"".join(value(et, i) for i in items)

    out = b"GGUF" + struct.pack("<I", version) + struct.pack(length, len(tensors)) + struct.pack(length, len(metadata))
    for k, t, v in metadata:
        out += s(k) + struct.pack("<I", t) + value(t, v)
    offset, blobs = 0, []
    for name, dims, dtype, data in tensors:
        dim = "<I" if version == 1 else "<Q"
        out += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack(dim, d) for d in dims)
        out += struct.pack("<I", dtype) + struct.pack("<Q", offset)
        pad = (-len(data)) % alignment
        blobs.append(data + b"\0" * pad)
        offset += len(data) + pad
    out += b"\0" * ((-len(out)) % alignment)
    return out + b"".join(blobs)


def tensor_bytes(dtype, n, seed):
    if dtype == GGML_F32:
        return b"".join(struct.pack("<f", ((i * 7 + seed) % 13 - 6) / 8.0) for i in range(n))
    blocks = n // 32
    if dtype == GGML_Q8_0:  # f16 scale + 32 i8
        return b"".join(struct.pack("<e", 0.01) + bytes((i * 5 + seed + j) % 256 for j in range(32)) for i in range(blocks))
    # Q4_1: f16 scale, f16 min, 16 bytes of nibbles
    return b"".join(struct.pack("<ee", 0.02, -0.1) + bytes((i * 3 + seed + j) % 256 for j in range(16)) for i in range(blocks))


def tiny_model(version, quantized, alignment=None, layers=1):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    merges = ["Ġ t", "C C", "C O", "Ġt h", "Ġ C"]
    tokens = specials + byte_chars() + [m.replace(" ", "") for m in merges]
    types = [3] * len(specials) + [1] * (len(tokens) - len(specials))
    # Q4_1 / Q8_0 rows hold blocks of 32 values; the f32 variants are smaller still.
    hidden, heads, kv_heads, ffn = (32, 4, 2, 64) if quantized else (16, 2, 1, 16)
    vocab = len(tokens)
    meta = [
        ("general.architecture", STRING, "llama"),
        ("general.name", STRING, "tiny fuzz seed"),
        ("llama.block_count", U32, layers),
        ("llama.context_length", U32, 16),
        ("llama.embedding_length", U32, hidden),
        ("llama.feed_forward_length", U32, ffn),
        ("llama.attention.head_count", U32, heads),
        ("llama.attention.head_count_kv", U32, kv_heads),
        ("llama.rope.freq_base", F32, 100000.0),
        ("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        ("tokenizer.ggml.model", STRING, "gpt2"),
        ("tokenizer.ggml.pre", STRING, "smollm"),
        ("tokenizer.ggml.tokens", ARRAY, (STRING, tokens)),
        ("tokenizer.ggml.token_type", ARRAY, (I32, types)),
        ("tokenizer.ggml.merges", ARRAY, (STRING, merges)),
        ("tokenizer.ggml.eos_token_id", U32, 2),
    ]
    if alignment:
        meta.insert(1, ("general.alignment", U32, alignment))
    mat = GGML_Q4_1 if quantized else GGML_F32
    emb = GGML_Q8_0 if quantized else GGML_F32
    kv = hidden // heads * kv_heads
    tensors = [("token_embd.weight", [hidden, vocab], emb), ("output_norm.weight", [hidden], GGML_F32)]
    for i in range(layers):
        p = f"blk.{i}."
        tensors += [
            (p + "attn_norm.weight", [hidden], GGML_F32),
            (p + "ffn_norm.weight", [hidden], GGML_F32),
            (p + "attn_q.weight", [hidden, hidden], mat),
            (p + "attn_k.weight", [hidden, kv], mat),
            (p + "attn_v.weight", [hidden, kv], mat),
            (p + "attn_output.weight", [hidden, hidden], mat),
            (p + "ffn_gate.weight", [hidden, ffn], mat),
            (p + "ffn_up.weight", [hidden, ffn], mat),
            (p + "ffn_down.weight", [ffn, hidden], mat),
        ]
    tensors = [(n, d, t, tensor_bytes(t, eval("*".join(map(str, d))), i)) for i, (n, d, t) in enumerate(tensors)]
    return gguf(version, meta, tensors, alignment or 32), meta


def gguf_seeds():
    model, meta = tiny_model(3, quantized=True)
    put("gguf", "tiny-q4_1-v3.gguf", model)
    put("gguf", "tiny-f32-v2-align64.gguf", tiny_model(2, quantized=False, alignment=64)[0])
    put("gguf", "tiny-f32-v1.gguf", tiny_model(1, quantized=False)[0])
    put("gguf", "metadata-only-v3.gguf", gguf(3, meta, []))
    put("gguf", "empty-v3.gguf", gguf(3, [], []))
    real = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if os.path.exists(real):
        with open(real, "rb") as f:
            put("gguf", "real-model-first-4k.gguf", f.read(4096))
    else:
        print("note: no model file; real-model-first-4k.gguf not written", file=sys.stderr)


# ---------------------------------------------------------------- tag files
def tag_seeds():
    for name in ["QED", "LogP", "SMILES", "Protein", "BindingAffinity"]:
        path = os.path.join(ROOT, "tags", name + ".safetensors")
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        put("tag_file", name + ".safetensors", data)
        (n,) = struct.unpack("<Q", data[:8])
        meta = json.loads(json.loads(data[8 : 8 + n])["__metadata__"]["tagllm"])
        meta.update(p=1, d=8, provenance={"steps": 1}, metrics={"rmse": 0.5})
        meta["base_model"]["hidden_size"] = 8
        put("tag_file", name + ".json", json.dumps(meta, ensure_ascii=False))


# ---------------------------------------------------------------- inputs
def input_seeds():
    # Selector byte: bits 0-2 file name (none, .smi, .txt, .csv, .tsv, .fasta, no extension,
    # .FA), bits 3-4 column (none, smiles, Sequence, missing), bit 5 protein input.
    fixtures = os.path.join(ROOT, "tests", "fixtures", "inputs")
    for name, selector in [("molecules.smi", 1), ("molecules.csv", 3 | 8), ("proteins.fasta", 5 | 32)]:
        with open(os.path.join(fixtures, name), "rb") as f:
            put("inputs", name, bytes([selector]) + f.read())
    cases = {
        "smiles-stereo": (0, "C[C@@H](N)C(=O)O"),
        "smiles-bracket": (0, "[13CH3:1][N+](C)(C)C.[Cl-]"),
        "smiles-rings": (0, "c1ccc2c(c1)%10CC%10c1ccccc12"),
        "smiles-bad": (0, "C1CC(=O"),
        "protein-bare": (32, "MKTAYIAKQR ISFVKSHFSRQ"),
        "fasta-two": (32 | 6, ">a\nMKV\n>b desc\nmkv*\n"),
        "tsv": (4 | 16 | 32, "id\tSequence\n1\tMKV\n2\t\"MK\tV\"\n"),
        "csv-quoted": (3 | 8, "\ufeffsmiles,name\r\n\"CC,O\",x\r\n\"a\"\"b\",y\rCCO\n"),
        "csv-open-quote": (3, "smiles\n\"CCO\n"),
        "lines-header": (2, "SMILES Name\n# comment\n\nCCO ethanol\n"),
    }
    for name, (selector, text) in cases.items():
        put("inputs", name, bytes([selector]) + text.encode())


# ---------------------------------------------------------------- tokenizer
def tokenizer_seeds():
    texts = {
        "chat": "<|im_start|>user\nWhat is 12345 + 678?<|im_end|>\n<|im_start|>assistant\n",
        "prompt": "# # Input: The SMILES of the molecule is CC(=O)Oc1ccccc1C(=O)O. \n# # Output: the logP is",
        "protein": "M K T A Y I A K Q R Q I S F V K S H F S R Q",
        "unicode": "Zürich — ½ µg/mL, 日本語, emoji 🧪, \u200b\ttabs  and   spaces\r\n",
        "specials-glued": "<|endoftext|><|im_end|><|im_start|><|im_start|x",
    }
    for name, text in texts.items():
        put("tokenizer", name, text)
    put("tokenizer", "bytes", bytes(range(256)))


if __name__ == "__main__":
    gguf_seeds()
    tag_seeds()
    input_seeds()
    tokenizer_seeds()

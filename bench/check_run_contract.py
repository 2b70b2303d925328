"""End-to-end check of the `flash3 run` contract on the GPU machine, against PyTorch in float64.

Writes q, k, v (batch, seqlen, heads, headdim) as .npy, runs `flash3 run --backend cuda` on them,
and compares out.npy and lse.npy with attention computed by PyTorch in float64 from the same
bf16-rounded inputs (GQA, causal, seqlen_q != seqlen_k). Exit 1 on a mismatch.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
b, sq, sk, hq, hkv, d = 2, 300, 457, 8, 2, 128
with tempfile.TemporaryDirectory() as tmp:
    paths = {name: os.path.join(tmp, f"{name}.npy") for name in ("q", "k", "v", "out", "lse")}
    arrays = {
        "q": rng.standard_normal((b, sq, hq, d), dtype=np.float32),
        "k": rng.standard_normal((b, sk, hkv, d), dtype=np.float32),
        "v": rng.standard_normal((b, sk, hkv, d), dtype=np.float32),
    }
    for name, a in arrays.items():
        np.save(paths[name], a)
    cmd = [
        "node", os.path.join(root, "dist/src/cli/main.js"), "run", "--q", paths["q"], "--k", paths["k"], "--v", paths["v"],
        "--out", paths["out"], "--lse", paths["lse"], "--causal", "--dtype", "bf16", "--backend", "cuda",
    ]
    print(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip())
    out, lse = np.load(paths["out"]), np.load(paths["lse"])

q, k, v = (torch.from_numpy(arrays[n]).to(torch.bfloat16).double() for n in ("q", "k", "v"))
k, v = (x.repeat_interleave(hq // hkv, dim=2) for x in (k, v))
s = torch.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
rows = torch.arange(sq)[:, None] + (sk - sq)
s = s.masked_fill(torch.arange(sk)[None, :] > rows, float("-inf"))
ref_lse = torch.logsumexp(s, dim=-1)
ref = torch.einsum("bhqk,bkhd->bqhd", torch.softmax(s, dim=-1), v)
err = float(np.linalg.norm(out - ref.numpy()) / np.linalg.norm(ref.numpy()))
lse_err = float(np.abs(lse - ref_lse.numpy()).max())
ok = err < 1e-2 and lse_err < 1e-3 and out.shape == (b, sq, hq, d) and lse.shape == (b, hq, sq)
print(f"flash3 run --backend cuda vs PyTorch float64: out rel err {err:.2e}, lse max err {lse_err:.2e}: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)

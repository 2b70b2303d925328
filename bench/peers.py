"""Times PyTorch SDPA's cuDNN and FlashAttention-2 backends on the shapes given as JSON on stdin.

Input: {"dtype": "bfloat16"|"float16", "points": [{"batch", "seqlen", "heads", "headDim", "causal"}],
        "warmup": int, "iterations": int, "repetitions": int, "backward": bool (optional)}
With "backward", each backend's backward alone is timed: torch.autograd.grad of one forward's
output (graph retained), which returns dq, dk, dv without accumulating into .grad.
Output (stdout, one JSON object): {"torch": version, "cudnn": version, "device": name,
        "results": [{"cudnn_ms": float|null, "flash_ms": float|null, "errors": {...}}],
        "scaled_mm_tflops": float|null (with "scaled_mm": true in the input: torch._scaled_mm e4m3 8192^3)}
Tensors are made (batch, seqlen, heads, headdim) and transposed, the memory layout flash3 reads.
"""
import json
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def time_ms(fn, warmup, iterations, repetitions):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repetitions):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / iterations)
    return statistics.median(samples)


def main():
    spec = json.load(sys.stdin)
    dtype = getattr(torch, spec["dtype"])
    timing = (spec.get("warmup", 3), spec.get("iterations", 10), spec.get("repetitions", 5))
    backward = spec.get("backward", False)
    results = []
    for p in spec["points"]:
        b, s, h, d = p["batch"], p["seqlen"], p["heads"], p["headDim"]
        q, k, v = (
            torch.randn(b, s, h, d, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_(backward)
            for _ in range(3)
        )
        row = {"errors": {}}
        for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION)):
            try:
                with sdpa_kernel([backend]):
                    if backward:
                        out = F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"])
                        dout = torch.randn_like(out)
                        fn = lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)
                    else:
                        fn = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=p["causal"])
                    row[f"{name}_ms"] = time_ms(fn, *timing)
                    out = dout = None
            except Exception as e:  # a backend that rejects a shape is reported, not fatal
                row[f"{name}_ms"] = None
                row["errors"][name] = str(e).splitlines()[0][:200]
        results.append(row)
        del q, k, v
    scaled_mm_tflops = None
    if spec.get("scaled_mm"):
        n = 8192
        a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn).t()  # _scaled_mm wants B column-major
        one = torch.tensor(1.0, device="cuda")
        ms = time_ms(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16), *timing)
        scaled_mm_tflops = 2 * n**3 / (ms * 1e-3) / 1e12
    print(json.dumps({
        "scaled_mm_tflops": scaled_mm_tflops,
        "torch": torch.__version__,
        "cudnn": torch.backends.cudnn.version(),
        "device": torch.cuda.get_device_name(),
        "results": results,
    }))


if __name__ == "__main__":
    main()

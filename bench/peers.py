"""Times PyTorch SDPA's cuDNN and FlashAttention-2 backends for `flash3 bench --peers`, on request.

flash3's bench keeps this process running and asks for one timed run at a time, alternating with
its own runs, so that every contender is measured in the same power and clock state of the card
(a GPU under load throttles within a second or two: timed one after the other, whoever ran first
or after a pause ran at higher clocks).

Protocol: one JSON object per line on stdin, one reply per line on stdout.
  The first reply, unasked: {"torch": version, "cudnn": version, "device": name},
    or {"fatal": reason} (then exit 1) when torch or CUDA is missing.
  {"op": "time", "backend": "cudnn"|"flash", "dtype": "bfloat16"|"float16", "backward": bool,
   "point": {"batch", "seqlen", "heads", "headDim", "causal"}, "warmup", "iterations", "repetitions"}
    -> {"ms": median milliseconds per call} or {"error": why this backend refused the shape}.
    With "backward", the backend's backward alone: torch.autograd.grad of one retained forward,
    which returns dq, dk, dv without accumulating into .grad.
  {"op": "scaled_mm", "warmup", "iterations", "repetitions"} -> {"tflops": torch._scaled_mm e4m3 8192^3}.
Tensors are made (batch, seqlen, heads, headdim) and transposed, the memory layout flash3 reads;
they are kept while requests name the same point.
"""
import json
import statistics
import sys


def first_line(e):
    """An exception as a one-line reason for the bench's table (its type where it has no message)."""
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def time_ms(torch, fn, warmup, iterations, repetitions):
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


class Peers:
    def __init__(self, torch):
        self.torch = torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
        import torch.nn.functional as F

        self.backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}
        self.sdpa_kernel = sdpa_kernel
        self.sdpa = F.scaled_dot_product_attention
        self.key = None
        self.calls = {}

    def call(self, req):
        """The timed call for this request: inputs made once per point, a backward's graph once per backend."""
        torch = self.torch
        p = req["point"]
        key = json.dumps([p, req["dtype"], req.get("backward", False)], sort_keys=True)
        if key != self.key:
            self.key, self.calls = key, {}
            torch.cuda.empty_cache()
        backend = req["backend"]
        if backend not in self.calls:
            b, s, h, d = p["batch"], p["seqlen"], p["heads"], p["headDim"]
            dtype = getattr(torch, req["dtype"])
            backward = req.get("backward", False)
            q, k, v = (
                torch.randn(b, s, h, d, device="cuda", dtype=dtype).transpose(1, 2).requires_grad_(backward)
                for _ in range(3)
            )
            causal = p["causal"]
            with self.sdpa_kernel([self.backends[backend]]):
                if backward:
                    out = self.sdpa(q, k, v, is_causal=causal)
                    dout = torch.randn_like(out)
                    fn = lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)
                else:
                    fn = lambda: self.sdpa(q, k, v, is_causal=causal)
                fn()  # a backend that rejects the shape raises here
            self.calls[backend] = fn
        return self.backends[backend], self.calls[backend]

    def time(self, req):
        timing = (req["warmup"], req["iterations"], req["repetitions"])
        try:
            backend, fn = self.call(req)
            with self.sdpa_kernel([backend]):
                return {"ms": time_ms(self.torch, fn, *timing)}
        except Exception as e:  # a backend that rejects a shape is reported, not fatal
            self.calls.pop(req["backend"], None)
            return {"error": first_line(e)}

    def scaled_mm(self, req):
        torch = self.torch
        n = 8192
        a = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn)
        b = torch.randn(n, n, device="cuda").to(torch.float8_e4m3fn).t()  # _scaled_mm wants B column-major
        one = torch.tensor(1.0, device="cuda")
        try:
            fn = lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            ms = time_ms(torch, fn, req["warmup"], req["iterations"], req["repetitions"])
            return {"tflops": 2 * n**3 / (ms * 1e-3) / 1e12}
        except Exception as e:
            return {"error": first_line(e)}


def reply(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        peers = Peers(torch)
    except Exception as e:
        reply({"fatal": f"{type(e).__name__}: {e}".splitlines()[0][:200]})
        return 1
    reply({"torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "device": torch.cuda.get_device_name()})
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.get("op")
        if op == "time":
            reply(peers.time(req))
        elif op == "scaled_mm":
            reply(peers.scaled_mm(req))
        else:
            reply({"error": f"unknown op {op!r}"})
    return 0


if __name__ == "__main__":
    sys.exit(main())

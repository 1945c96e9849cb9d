#!/usr/bin/env python3
"""train-vs-torch.py - training tokens/s of `sinkllm train` next to PyTorch on
the CPU: the same model, threads, batch, data and optimizer (issue 15,
point 6). Not part of make test.

    python3 bench/train-vs-torch.py [--vocab GGUF | --vocab-size N] [shape flags]
        [--steps K] [--threads N] [--repeats R] [--check-steps S] [--bf16]

What it does:
  1. PyTorch in its own venv, .venv-torch (made if missing): the PyPI wheel
     of torch (pinned below) installed with --no-deps, plus its pure-Python
     dependencies. The Linux wheel is built for CUDA and would pull about
     2 GB of nvidia-* packages and triton; instead the CUDA libraries it links are
     replaced by stubs compiled here (every function an error, no device:
     torch.cuda.is_available() is False), so `import torch` works on the CPU
     (MKL, oneDNN) from a download of the torch wheel alone.
  2. The vocabulary: --vocab GGUF (a model or a vocabulary-only file); by
     default data/vocab4k.gguf (make vocab); or --vocab-size N: the first N
     tokens of the bundled SmolLM2 vocabulary and the merges among them,
     written as a tiny model by scripts/make_tiny_models.py (build/bench/).
  3. Ours: `build/sinkllm train` for K steps; its CSV gives the time of
     every step; tokens/s over steps 2..K (step 1 warms the caches).
  4. PyTorch: the same network written in torch (RMSNorm, RoPE on pairs
     (2i, 2i+1), GQA, SwiGLU, tied embedding, mean cross-entropy), the same
     AdamW (betas, eps, decoupled decay on matrices and embeddings only, the
     global norm clipped, linear warm-up then cosine), torch.set_num_threads
     (N), SDPA attention, the same timing.
  5. Sameness: our initial weights (a run of one step at lr 0, exported
     F32) loaded into torch, and the same batches (the corpus tokenized by
     our tokenizer through the Python bindings, windows drawn with the
     trainer's splitmix64 sampler and split): the losses of the first
     --check-steps steps side by side; step 1 must agree to ~1e-5.

--bf16: mixed precision on both sides: `sinkllm train --bf16` (matrix
products on BF16 operands, F32 sums and weights) against PyTorch's
torch.autocast("cpu", dtype=torch.bfloat16) around the forward (its matrix
products and attention in BF16, F32 master weights; oneDNN's AVX512-BF16
kernels where the CPU has them). The step-1 losses then agree to ~1e-2.

PyTorch runs with its default OpenMP wait policy (spinning) and, on more
than one thread, also with OMP_WAIT_POLICY=PASSIVE: on a machine shared with
other work the spinning collapses its rate; its best run counts.

Prints both rates, their ratio, the GFLOPS of each (6 x parameters-in-
matrices x tokens plus the attention's 6 x layers x T x d per token, causal
half), and the load average before and after.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_VENV = os.path.join(ROOT, ".venv-torch")
TORCH_PY = os.path.join(TORCH_VENV, "bin", "python")
TORCH_PIN = "torch==2.5.1"
TORCH_DEPS = ["filelock", "typing-extensions", "sympy==1.13.1", "mpmath", "networkx", "jinja2",
              "MarkupSafe", "fsspec", "numpy", "gguf"]
SMOLLM2 = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("+ " + " ".join(cmd))
    return subprocess.run(cmd, check=True, **kw)


# ---------------------------------------------------------------- torch install

# no device, and error strings that are strings
STUB_SPECIAL = {
    "cudaGetDeviceCount": "int cudaGetDeviceCount(int *n) { *n = 0; return 100; }\n",
    "cuDeviceGetCount": "int cuDeviceGetCount(int *n) { *n = 0; return 100; }\n",
    "cuInit": "int cuInit(unsigned f) { return 100; }\n",
    "cudaGetErrorString": "const char *cudaGetErrorString(int e) { return \"no CUDA (stub)\"; }\n",
    "cudaGetErrorName": "const char *cudaGetErrorName(int e) { return \"cudaErrorNoDevice\"; }\n",
    "cuGetErrorString": "int cuGetErrorString(int e, const char **s) { *s = \"no CUDA (stub)\"; return 0; }\n",
    "cuGetErrorName": "int cuGetErrorName(int e, const char **s) { *s = \"CUDA_ERROR_NO_DEVICE\"; return 0; }\n",
}


def _out(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True).stdout


def make_cuda_stubs(torch_dir):
    """Stub libraries, in torch/lib (found first through its $ORIGIN rpath),
    for every CUDA library that torch's shared objects need: each defines the
    symbols they import from it (with its symbol versions), as functions
    that return an error."""
    lib = os.path.join(torch_dir, "lib")
    mark = os.path.join(lib, "sinkllm-cuda-stubs.txt")  # what an earlier run stubbed
    ours = set(open(mark).read().split()) if os.path.exists(mark) else set()
    elfs = [os.path.join(lib, f) for f in os.listdir(lib) if ".so" in f and f not in ours]
    elfs += [os.path.join(torch_dir, f) for f in os.listdir(torch_dir) if f.startswith("_C") and f.endswith(".so")]
    ldcache = {}
    for line in _out("ldconfig", "-p").splitlines():
        m = re.match(r"\s*(\S+) \(.*\) => (\S+)", line)
        if m:
            ldcache.setdefault(m.group(1), m.group(2))
    missing, present = set(), set(elfs)
    for f in elfs:
        for n in re.findall(r"\(NEEDED\)\s+Shared library: \[(.*)\]", _out("readelf", "-d", f)):
            if n not in ours and os.path.exists(os.path.join(lib, n)):
                continue
            if re.match(r"lib(cu|nv|nccl)", n):
                missing.add(n)  # CUDA: stubbed even where a CUDA toolkit is installed
            elif n in ldcache:
                present.add(ldcache[n])
    defined, undef = set(), {}
    for f in present:
        for line in _out("readelf", "--dyn-syms", "-W", f).splitlines():
            p = line.split()
            if len(p) < 8 or not p[0].endswith(":"):
                continue
            name = p[7].split("@")[0]
            if p[6] == "UND":
                if f in elfs and name:
                    undef[name] = p[7].split("@")[1].split(" ")[0] if "@" in p[7] else None
            else:
                defined.add(name)
    syms = {m: set() for m in missing}
    loose = {n for n, v in undef.items() if v is None and n not in defined}
    for name, ver in undef.items():
        if ver in syms:
            syms[ver].add(name)
    for m in sorted(missing):
        s = sorted(syms[m] | loose)
        src = "".join(STUB_SPECIAL.get(n, f'int sk_stub_{i}(void) __asm__("{n}");\n'
                                          f'int sk_stub_{i}(void) {{ return 1; }}\n')
                      for i, n in enumerate(s))
        c, v = os.path.join(lib, m + ".stub.c"), os.path.join(lib, m + ".stub.map")
        with open(c, "w") as fh:
            fh.write(src)
        with open(v, "w") as fh:
            fh.write(m + " {\n  global:\n" + "".join(f"    {n};\n" for n in s) + "  local: *;\n};\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-O0", "-o", os.path.join(lib, m), c,
                        f"-Wl,-soname,{m}", f"-Wl,--version-script={v}"], check=True)
        os.remove(c)
        os.remove(v)
        log(f"  stub {m}: {len(s)} symbols")
    with open(mark, "w") as fh:
        fh.write("\n".join(sorted(missing | ours)) + "\n")


def torch_works():
    if not os.path.exists(TORCH_PY):
        return False
    r = subprocess.run([TORCH_PY, "-c", "import torch, gguf, numpy; assert not torch.cuda.is_available(); "
                        "print(torch.__version__)"], capture_output=True, text=True)
    return r.returncode == 0


def ensure_torch():
    if torch_works():
        return
    log(f"installing {TORCH_PIN} (CPU use, CUDA libraries stubbed) into {TORCH_VENV}")
    if not os.path.exists(TORCH_PY):
        run([sys.executable, "-m", "venv", TORCH_VENV])
    run([TORCH_PY, "-m", "pip", "install", "-q", "--no-deps", TORCH_PIN])
    run([TORCH_PY, "-m", "pip", "install", "-q"] + TORCH_DEPS)
    torch_dir = _out(TORCH_PY, "-c", "import importlib.util as u; import os; "
                     "print(os.path.dirname(u.find_spec('torch').origin))").strip()
    make_cuda_stubs(torch_dir)
    if not torch_works():
        sys.exit("error: import torch still fails in " + TORCH_VENV)


# ---------------------------------------------------------------- shared helpers

def tr_lr(step, lr, lr_min, warmup, steps):
    """sk_train_lr (src/train/trainer.c)"""
    if step < warmup:
        return lr * (step + 1) / warmup
    span = steps - warmup
    x = (step - warmup) / span if span > 0 else 1.0
    x = min(x, 1.0)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * x))


M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def batches(ids, n_train, ctx, batch, steps, seed):
    """The windows sk_trainer_sample draws (src/train/data.c): per sequence
    an offset below n_train - (ctx + 1) + 1 from splitmix64 seeded with --seed."""
    st, w, out = seed, ctx + 1, []
    for _ in range(steps):
        rows = []
        for _ in range(batch):
            st, r = splitmix64(st)
            off = r % (n_train - w + 1)
            rows.append(ids[off:off + w])
        out.append(rows)
    return out


def flops_per_token(a):
    """6 x (multiply-adds of the matrices) + the causal attention (QK^T and PV
    forward, 4 products backward, half the T x T square), per token."""
    d, ff, L, V, T = a.dim, a.ffn, a.layers, a.n_vocab, a.ctx
    hd = d // a.heads
    nk = a.kv_heads * hd
    mats = L * (d * d + 2 * d * nk + d * d + 3 * d * ff) + V * d
    attn = L * 2 * (T / 2) * d  # two T x hd products per head, causal half, per token
    return 6 * mats + 6 * attn


# ---------------------------------------------------------------- ours

def ours(a, vocab, data, out_dir):
    """Our trainer: K steps; per-step times from the CSV's running tokens/s."""
    csv = os.path.join(out_dir, "ours.csv")
    cmd = [a.sinkllm, "train", "-f", data, "--vocab", vocab] + shape_flags(a) + [
        "--steps", str(a.steps), "--warmup", str(a.warmup), "--lr", str(a.lr), "--lr-min", str(a.lr / 10),
        "-t", str(a.threads), "-s", str(a.seed), "--csv", csv, "-q", "--eval-every", "0"] + (
        ["--bf16"] if a.bf16 else [])
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [r.split(",") for r in open(csv).read().split("\n")[1:] if r]
    tok_step = a.batch * a.ctx
    ends = [int(r[0]) * tok_step / float(r[6]) for r in rows]  # seconds since the loop started
    losses = [float(r[3]) for r in rows]
    return ends, losses


def shape_flags(a):
    return ["--layers", str(a.layers), "--dim", str(a.dim), "--heads", str(a.heads), "--kv-heads",
            str(a.kv_heads), "--ffn", str(a.ffn), "--ctx", str(a.ctx), "--batch", str(a.batch)]


# ---------------------------------------------------------------- torch side (runs in .venv-torch)

def torch_worker(a):
    import numpy as np
    import torch
    import torch.nn.functional as Fn
    import gguf

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    spec = json.load(open(a.torch_worker))
    r = gguf.GGUFReader(spec["init"])
    W = {t.name: torch.tensor(np.array(t.data, dtype=np.float32).reshape(list(reversed([int(x) for x in t.shape]))))
         for t in r.tensors}
    L, d, nh, nkv, ff, T, B = a.layers, a.dim, a.heads, a.kv_heads, a.ffn, a.ctx, a.batch
    hd, rep = d // nh, nh // nkv
    eps = float(np.float32(1e-5))
    params = {k: torch.nn.Parameter(v.clone()) for k, v in W.items() if "attn_sinks" not in k}
    E = params["token_embd.weight"]
    # RoPE (pairs (2i, 2i+1)), angles in double as tr_rope_table
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    inv = torch.tensor([10000.0 ** (-2.0 * i / hd) for i in range(hd // 2)], dtype=torch.float64)
    ang = pos * inv
    cos, sin = torch.cos(ang).float(), torch.sin(ang).float()  # (T, hd/2)

    def rms(x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g

    def rope(x):  # (B, T, H, hd)
        x2 = x.view(*x.shape[:-1], hd // 2, 2)
        x0, x1 = x2[..., 0], x2[..., 1]
        c, s = cos[None, :, None, :], sin[None, :, None, :]
        return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)

    def loss_of(tok):
        x = E[tok[:, :-1]]
        for l in range(L):
            p = lambda n: params[f"blk.{l}.{n}.weight"]
            h = rms(x, p("attn_norm"))
            q = rope((h @ p("attn_q").t()).view(B, T, nh, hd)).transpose(1, 2)
            k = rope((h @ p("attn_k").t()).view(B, T, nkv, hd)).transpose(1, 2)
            v = (h @ p("attn_v").t()).view(B, T, nkv, hd).transpose(1, 2)
            if rep > 1:
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
            o = Fn.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + o.transpose(1, 2).reshape(B, T, d) @ p("attn_output").t()
            h = rms(x, p("ffn_norm"))
            x = x + (Fn.silu(h @ p("ffn_gate").t()) * (h @ p("ffn_up").t())) @ p("ffn_down").t()
        logits = rms(x, params["output_norm.weight"]) @ E.t()
        return Fn.cross_entropy(logits.reshape(-1, logits.shape[-1]), tok[:, 1:].reshape(-1))

    decay = [v for k, v in params.items() if "norm" not in k]
    nodecay = [v for k, v in params.items() if "norm" in k]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.95), eps=1e-8)
    data = [torch.tensor(np.array(b, dtype=np.int64)) for b in spec["batches"]]
    ends, losses = [], []
    t0 = time.perf_counter()
    for s in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = tr_lr(s, a.lr, a.lr / 10, a.warmup, a.steps)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            loss = loss_of(data[s])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(params.values()), 1.0)
        opt.step()
        losses.append(float(loss))
        ends.append(time.perf_counter() - t0)
    json.dump({"ends": ends, "losses": losses, "version": torch.__version__}, open(spec["out"], "w"))


# ---------------------------------------------------------------- main

def rate(ends, tok_step):
    """tokens/s over steps 2..K"""
    return (len(ends) - 1) * tok_step / (ends[-1] - ends[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", help="GGUF whose tokenizer to use (default: data/vocab4k.gguf, the "
                    "experiment's 4,096-token vocabulary, where it exists)")
    ap.add_argument("--vocab-size", type=int,
                    help="instead: cut the SmolLM2 vocabulary to N tokens (data/vocab4k.gguf missing: 4096)")
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "moby-dick.txt"))
    ap.add_argument("--data-bytes", type=int, default=300000, help="first bytes of --data (default 300000)")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=768)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each engine, alternating; best counts")
    ap.add_argument("--check-steps", type=int, default=3, help="losses compared (default 3)")
    ap.add_argument("--sinkllm", default=os.path.join(ROOT, "build", "sinkllm"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench"))
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--bf16", action="store_true", help="mixed precision on both sides (BF16 products)")
    ap.add_argument("--torch-worker", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.torch_worker:
        return torch_worker(a)

    ensure_torch()
    os.makedirs(a.out, exist_ok=True)
    lib = os.path.join(ROOT, "build", "libsinkllm.so")
    if not os.path.exists(a.sinkllm) or not os.path.exists(lib):
        run(["make", "-C", ROOT, "-o", ".venv/.ok", a.sinkllm.replace(ROOT + "/", ""), "build/libsinkllm.so"])
    # the vocabulary
    vocab = a.vocab
    vocab4k = os.path.join(ROOT, "data", "vocab4k.gguf")
    if not vocab and not a.vocab_size and os.path.exists(vocab4k):
        vocab = vocab4k
    a.vocab_size = a.vocab_size or 4096
    if not vocab:
        vocab = os.path.join(a.out, f"vocab{a.vocab_size}.gguf")
        if not os.path.exists(vocab):
            code = (f"import sys; sys.path.insert(0, {os.path.join(ROOT, 'scripts')!r}); import make_tiny_models as m; "
                    f"c = dict(m.FAMILIES['llama3']); c.update(n_vocab={a.vocab_size}, pre='smollm', extra=[], "
                    "bos='<|endoftext|>', eos='<|endoftext|>', add_bos=False, rope_freqs=None, n_embd=256, "
                    "n_ff=256, n_layer=1, n_head=2, n_head_kv=1, head_dim=128, types={}, tied=True, file_type=0); "
                    f"import os; p = m.build('v', c, {a.out!r}, {SMOLLM2!r}, None); os.replace(p, {vocab!r})")
            run([TORCH_PY, "-c", code])
    # the corpus and its tokens (our tokenizer, through the Python bindings)
    data = os.path.join(a.out, "corpus.txt")
    with open(a.data, "rb") as fh:
        raw = fh.read(a.data_bytes)
    while raw:  # whole UTF-8 characters
        try:
            raw.decode("utf-8")
            break
        except UnicodeDecodeError:
            raw = raw[:-1]
    with open(data, "wb") as fh:
        fh.write(raw)
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"), SINKLLM_LIB=lib)
    ids_json = os.path.join(a.out, "ids.json")
    # the tokenizer alone, as `train --vocab` loads it (a vocabulary-only GGUF has no weights)
    subprocess.run([TORCH_PY, "-c", "import json, sys, sinkllm, sinkllm._lib as sl; L = sl.lib(); "
                    "L.sk_model_load_vocab.argtypes = L.sk_model_load.argtypes; "
                    "L.sk_model_load_vocab.restype = L.sk_model_load.restype; "
                    "L.sk_model_load = L.sk_model_load_vocab; m = sinkllm.Model(sys.argv[1]); "
                    "json.dump({'ids': list(m.tokenize(open(sys.argv[2], 'rb').read(), False, False)), "
                    "'n_vocab': m.n_vocab}, open(sys.argv[3], 'w'))", vocab, data, ids_json],
                   check=True, env=env)
    tk = json.load(open(ids_json))
    ids, a.n_vocab = tk["ids"], tk["n_vocab"]
    n_train = len(ids) - int(len(ids) * 0.05)
    # our initial weights: one step at lr 0, exported F32
    init = os.path.join(a.out, "init.gguf")
    subprocess.run([a.sinkllm, "train", "-f", data, "--vocab", vocab] + shape_flags(a) + [
        "--steps", "1", "--lr", "0", "-s", str(a.seed), "-t", str(a.threads), "-q", "--export", init],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    spec = os.path.join(a.out, "torch-spec.json")
    json.dump({"init": init, "out": os.path.join(a.out, "torch.json"),
               "batches": batches(ids, n_train, a.ctx, a.batch, a.steps, a.seed)}, open(spec, "w"))

    tok_step = a.batch * a.ctx
    fpt = flops_per_token(a)
    load0 = os.getloadavg()
    res = {"ours": [], "torch": []}
    worker = [TORCH_PY, os.path.abspath(__file__), "--torch-worker", spec] + sys.argv[1:]
    # PyTorch's OpenMP threads spin at every barrier by default; where other
    # work shares the cores that collapses its multi-thread rate (about 5x
    # here), so it also runs with OMP_WAIT_POLICY=PASSIVE and its best counts
    policies = ["default", "PASSIVE"] if a.threads > 1 else ["default"]
    for r in range(a.repeats):
        e, lo = ours(a, vocab, data, a.out)
        res["ours"].append((rate(e, tok_step), lo))
        msg = f"  run {r + 1}: ours {res['ours'][-1][0]:.0f} tok/s"
        for pol in policies:
            env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
            env.pop("OMP_WAIT_POLICY", None)
            if pol != "default":
                env["OMP_WAIT_POLICY"] = pol
            subprocess.run(worker, check=True, env=env)
            tj = json.load(open(os.path.join(a.out, "torch.json")))
            res["torch"].append((rate(tj["ends"], tok_step), tj["losses"], pol))
            msg += f", torch ({pol} OpenMP wait) {res['torch'][-1][0]:.0f} tok/s"
        log(msg + f", load {os.getloadavg()[0]:.2f}")
    load1 = os.getloadavg()
    best_o = max(x[0] for x in res["ours"])
    best_t, _, best_pol = max(res["torch"], key=lambda x: x[0])
    by_pol = {p: max(x[0] for x in res["torch"] if x[2] == p) for p in policies}
    lo_o, lo_t = res["ours"][0][1], res["torch"][0][1]
    n_params = a.layers * (2 * a.dim * a.dim + 2 * a.dim * a.kv_heads * (a.dim // a.heads) + 3 * a.dim * a.ffn
                           + 2 * a.dim) + a.n_vocab * a.dim + a.dim
    print(f"model: {a.layers} layers x {a.dim}, heads {a.heads} (kv {a.kv_heads}), ffn {a.ffn}, vocab {a.n_vocab} "
          f"(tied), {n_params / 1e6:.2f}M parameters; batch {a.batch} x ctx {a.ctx}; {a.threads} threads; "
          f"{a.steps} steps, best of {a.repeats}; " +
          ("BF16 products (sinkllm --bf16, torch.autocast bfloat16)" if a.bf16 else "F32"))
    print(f"load average {load0[0]:.2f} before, {load1[0]:.2f} after; torch {tj['version']}")
    print(f"sinkllm  {best_o:8.0f} tok/s  {best_o * fpt / 1e9:6.1f} GFLOPS")
    print(f"pytorch  {best_t:8.0f} tok/s  {best_t * fpt / 1e9:6.1f} GFLOPS  (OpenMP wait policy: " +
          ", ".join(f"{p} {v:.0f} tok/s" for p, v in by_pol.items()) + ")")
    print(f"ratio    {best_o / best_t:8.2f}x")
    ln_v = math.log(a.n_vocab)
    print(f"losses (ln V = {ln_v:.4f}), same initial weights and batches:")
    for s in range(min(a.check_steps, a.steps)):
        print(f"  step {s + 1}: sinkllm {lo_o[s]:.6f}  pytorch {lo_t[s]:.6f}  |diff| {abs(lo_o[s] - lo_t[s]):.2e}")
    if a.json:
        json.dump({"ours_tok_s": best_o, "torch_tok_s": best_t, "ratio": best_o / best_t, "torch_by_policy": by_pol,
                   "gflops_per_token": fpt / 1e9, "load": [load0[0], load1[0]], "runs": res,
                   "torch": tj["version"]}, open(a.json, "w"), indent=1)
    if abs(lo_o[0] - lo_t[0]) > (2e-2 if a.bf16 else 1e-3):
        sys.exit("error: the step-1 losses differ: not the same model")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""symdiff's generated kernels against JAX, item by item, in one run.

    pip install jax            # CPU wheels; XLA uses every core
    python3 benches/jax/side_by_side.py [--rounds 3] [--filter hvp]

Each round runs `cargo bench --bench side_by_side` (criterion medians of
the committed kernels in `generated/`, see `benches/side_by_side.rs`) and
then times every JAX item (jit, float64 except the f32 item, median of 15
calls after a warm-up), so the two sides alternate under the same load
from the rest of the host. The table gives the median over rounds and
the ratio JAX/symdiff (above 1: symdiff is faster).

Both sides build the same data from the same formulas (`data` below and
`mod data` in the bench). The data are passed to the jitted functions as
arguments, so XLA cannot fold them into constants. symdiff's matrix
products use their two-thread entry points (`_threads(…, 2)`), as XLA
uses both cores; everything else is single-threaded.
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    raise SystemExit("jax is not installed: pip install jax")

jax.config.update("jax_enable_x64", True)

ROOT = Path(__file__).resolve().parents[2]


class data:
    """The bench's `mod data`, formula for formula."""

    @staticmethod
    def logits(n):
        return 4.0 * np.sin(0.618 * np.arange(n))

    @staticmethod
    def targets(n):
        raw = 1.0 + np.cos(0.3 * np.arange(n))
        return raw / raw.sum()

    @staticmethod
    def direction(n):
        return np.cos(1.7 * np.arange(n) + 0.5)

    @staticmethod
    def matrix(rows, cols, scale):
        return scale * np.sin(0.37 * np.arange(rows * cols)).reshape(rows, cols)

    @staticmethod
    def one_hot(m, k):
        y = np.zeros((m, k))
        y[np.arange(m), np.arange(m) % k] = 1.0
        return y


def median_ms(f, args, reps=15):
    jax.block_until_ready(f(*args))  # compile and warm up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def xent(z, q):
    return -jnp.sum(q * jax.nn.log_softmax(z))


def along(f, v, order):
    """`D^order f[v, …, v]` by nested forward-mode derivatives."""
    g = f
    for _ in range(order):
        g = (lambda g: lambda z: jax.jvp(g, (z,), (v,))[1])(g)
    return g


def vector_items():
    n = 1000
    z, q, v = data.logits(n), data.targets(n), data.direction(n)
    grad = jax.grad(xent)
    yield "xent value n=1000", xent, (z, q)
    yield "xent grad n=1000", grad, (z, q)
    yield "xent value+grad n=1000", jax.value_and_grad(xent), (z, q)
    yield "xent hvp n=1000", lambda z, q, v: jax.jvp(lambda z: grad(z, q), (z,), (v,))[1], (z, q, v)
    yield "xent Hessian n=1000", jax.hessian(xent), (z, q)
    yield "xent D3[v,v,v] n=1000", lambda z, q, v: along(lambda z: xent(z, q), v, 3)(z), (z, q, v)
    yield "xent D4[v,v,v,v] n=1000", lambda z, q, v: along(lambda z: xent(z, q), v, 4)(z), (z, q, v)

    def newton(z, q, v):
        h = jax.hessian(xent)(z, q)
        return jnp.linalg.solve(h + 0.1 * jnp.eye(z.shape[0]), v)

    yield "xent Newton (H+0.1I)^-1 v n=1000", newton, (z, q, v)
    yield "softmax Jacobian n=1000", jax.jacfwd(jax.nn.softmax), (z,)
    yield "log_softmax Jacobian n=1000", jax.jacfwd(jax.nn.log_softmax), (z,)
    yield "logsumexp Hessian n=1000", jax.hessian(jax.nn.logsumexp), (z,)

    n3 = 100
    yield "xent D3 full n=100", jax.jacfwd(jax.jacfwd(grad)), (data.logits(n3), data.targets(n3))

    big = 1_000_000
    zb, qb, vb = data.logits(big), data.targets(big), data.direction(big)
    yield "xent grad n=1e6", grad, (zb, qb)
    yield "xent hvp n=1e6", lambda z, q, v: jax.jvp(lambda z: grad(z, q), (z,), (v,))[1], (zb, qb, vb)

    n32 = 100_000
    f32 = lambda x: x.astype(np.float32)
    yield "xent D3[v,v,v] f32 n=1e5", lambda z, q, v: along(lambda z: xent(z, q), v, 3)(z), (
        f32(data.logits(n32)),
        f32(data.targets(n32)),
        f32(data.direction(n32)),
    )


def matrix_items():
    n = 2048
    x, a = data.direction(n), data.matrix(n, n, 1.0)

    def quadratic(x, a):
        return jnp.dot(x, a @ x)

    yield "dot(x, A@x) grad n=2048", jax.grad(quadratic), (x, a)
    yield "dot(x, A@x) Hessian n=2048", jax.hessian(quadratic), (x, a)

    m, k = 4096, 1000
    z, y = data.matrix(m, k, 4.0), data.one_hot(m, k)

    def batched(z, y):
        return -jnp.sum(y * jax.nn.log_softmax(z, axis=1)) / z.shape[0]

    yield "batched xent grad 4096x1000", jax.grad(batched), (z, y)
    yield "batched xent value+grad 4096x1000", jax.value_and_grad(batched), (z, y)

    m, d, k = 4096, 256, 10
    x = data.matrix(m, d, 1.0)
    w = data.matrix(d, k, 0.1)
    b = 0.01 * np.arange(k)
    y = data.one_hot(m, k)

    def linear(w, b, x, y):
        return -jnp.sum(y * jax.nn.log_softmax(x @ w + b, axis=1)) / x.shape[0]

    yield "linear classifier grad W 4096x256x10", jax.grad(linear, argnums=0), (w, b, x, y)
    yield "linear classifier grad b 4096x256x10", jax.grad(linear, argnums=1), (w, b, x, y)

    m, d = 2048, 256
    x = data.matrix(m, d, 1.0)
    w = data.matrix(1, d, 0.1)[0]
    y = (np.arange(m) % 2).astype(np.float64)
    v = data.direction(d)

    def logistic(w, x, y):
        return jnp.sum(jax.nn.softplus(-(2 * y - 1) * (x @ w))) / x.shape[0] + 0.0005 * jnp.dot(w, w)

    g = jax.grad(logistic)
    yield "logistic grad 2048x256", g, (w, x, y)
    yield "logistic hvp 2048x256", lambda w, x, y, v: jax.jvp(lambda w: g(w, x, y), (w,), (v,))[1], (w, x, y, v)
    yield "logistic Hessian 2048x256", jax.hessian(logistic), (w, x, y)


def symdiff_round(filter_):
    """One run of the Rust bench: {item: median ms}."""
    cmd = ["cargo", "bench", "-q", "--bench", "side_by_side", "--", "--noplot"]
    if filter_:
        cmd.append(filter_.replace(" ", "_"))
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    lines = out.split("side-by-side medians (ms):", 1)[1].strip().splitlines()
    return {name: float(ms) for name, ms in (line.rsplit("\t", 1) for line in lines)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--filter", default="", help="only items whose name contains this")
    args = ap.parse_args()
    cases = [(name, jax.jit(f), a) for name, f, a in [*vector_items(), *matrix_items()] if args.filter in name]
    ours = {name: [] for name, _, _ in cases}
    theirs = {name: [] for name, _, _ in cases}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: symdiff …", file=sys.stderr)
        for name, ms in symdiff_round(args.filter).items():
            if name in ours:
                ours[name].append(ms)
        print(f"round {r + 1}/{args.rounds}: JAX …", file=sys.stderr)
        for name, f, a in cases:
            theirs[name].append(median_ms(f, a))
    print(f"JAX {jax.__version__} on {jax.devices()}, median of {args.rounds} rounds (ms)")
    print(f"| item | symdiff | JAX | JAX/symdiff |")
    print(f"|---|---:|---:|---:|")
    wins = 0
    for name, _, _ in cases:
        s, j = np.median(ours[name]), np.median(theirs[name])
        wins += s <= j
        print(f"| {name} | {s:.4g} | {j:.4g} | {j / s:.2f}× |")
    print(f"symdiff at least as fast on {wins} of {len(cases)} items")


if __name__ == "__main__":
    main()

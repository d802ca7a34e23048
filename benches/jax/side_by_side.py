#!/usr/bin/env python3
"""JAX's side of the matrix-product items, timed the way `cargo bench
--bench batched` times symdiff's kernels (same data shapes, f64, medians),
on the same machine, so the two can be read side by side.

    pip install jax            # CPU wheels; XLA uses every core
    python3 benches/jax/side_by_side.py [--rounds 3]

Items: the linear classifier's gradient wrt W (m=4096, d=256, k=10), the
logistic-regression Hessian and gradient (m=2048, d=256, L2 weight
0.0005), the batched xent gradient (4096×1000), and `D³f[v, v, v]` of
xent in f32 at n = 1e5 (`cargo bench --bench kernels -- d3_dir_f32`). Data are passed as
arguments (not closed over), so XLA cannot fold them into constants.
"""
import argparse
import time

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    raise SystemExit("jax is not installed: pip install jax")

jax.config.update("jax_enable_x64", True)


def median_ms(f, *args, reps=15):
    jax.block_until_ready(f(*args))  # compile and warm up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * float(np.median(times))


def items():
    rng = np.random.default_rng(0)
    m, d, k = 4096, 256, 10
    x = rng.standard_normal((m, d))
    w = 0.1 * rng.standard_normal((d, k))
    b = 0.01 * np.arange(k)
    y = np.eye(k)[np.arange(m) % k]

    def linear(w, x, b, y):
        return -jnp.sum(y * jax.nn.log_softmax(x @ w + b, axis=1)) / x.shape[0]

    yield "linear classifier grad wrt W 4096x256x10", jax.jit(jax.grad(linear)), (w, x, b, y)

    m, d = 2048, 256
    x2 = rng.standard_normal((m, d))
    w2 = 0.1 * rng.standard_normal(d)
    y2 = (np.arange(m) % 2).astype(np.float64)

    def logistic(w, x, y):
        return jnp.sum(jax.nn.softplus(-(2 * y - 1) * (x @ w))) / x.shape[0] + 0.0005 * jnp.dot(w, w)

    yield "logistic Hessian 2048x256", jax.jit(jax.hessian(logistic)), (w2, x2, y2)
    yield "logistic grad 2048x256", jax.jit(jax.grad(logistic)), (w2, x2, y2)

    m, n = 4096, 1000
    z = 4.0 * np.sin(0.618 * np.arange(m * n)).reshape(m, n)
    yz = np.eye(n)[np.arange(m) % n]

    def batched(z, y):
        return -jnp.sum(y * jax.nn.log_softmax(z, axis=1)) / z.shape[0]

    yield "batched xent grad 4096x1000", jax.jit(jax.grad(batched)), (z, yz)

    n = 100_000
    z1 = rng.standard_normal(n).astype(np.float32)
    q1 = rng.random(n).astype(np.float32)
    v1 = rng.standard_normal(n).astype(np.float32)

    def xent(z, q):
        return -jnp.sum(q * jax.nn.log_softmax(z))

    def d3_dir(z, q, v):
        # D³f[v, v, v] by three forward-mode derivatives along v.
        d1 = lambda z: jax.jvp(lambda z: xent(z, q), (z,), (v,))[1]
        d2 = lambda z: jax.jvp(d1, (z,), (v,))[1]
        return jax.jvp(d2, (z,), (v,))[1]

    yield "xent D3[v,v,v] f32 n=1e5", jax.jit(d3_dir), (z1, q1, v1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    cases = list(items())
    results = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):
        for name, f, a in cases:
            results[name].append(median_ms(f, *a))
    print(f"JAX {jax.__version__}, devices {jax.devices()}, median of {args.rounds} rounds:")
    for name, ts in results.items():
        print(f"  {name}: {np.median(ts):.3f} ms")


if __name__ == "__main__":
    main()

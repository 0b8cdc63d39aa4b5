"""Independent loop-form re-implementations used as ground truth by the tests.

Nothing here imports smcdiff's kernels: conditionals come straight from the joint
table and every path of the minimal unmasking kernel is walked recursively.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict


def conditional(joint, x, mask_id):
    """p(x_i = v | observed part of x) for every position, as nested lists [L][V]."""
    v, l = joint.shape[0], joint.dim()
    out = [[0.0] * v for _ in range(l)]
    total = 0.0
    for cfg in itertools.product(range(v), repeat=l):
        if all(t == mask_id or t == c for t, c in zip(x, cfg)):
            p = float(joint[cfg])
            total += p
            for i in range(l):
                out[i][cfg[i]] += p
    return [[o / total for o in row] for row in out]


def even_split(n, steps):
    base, rem = divmod(n, steps)
    return [base + (1 if i < rem else 0) for i in range(steps)]


def reference_gamma(
    joint,
    prompt,
    gen_length,
    counts,
    block_length=None,
    selection="topk",
    temperature=1.0,
    confidence_potential=False,
    beta=1.0,
):
    """gamma(s) = sum over kernel paths of K(path) * prod_t G_t, for the minimal kernel.

    counts: per-step commit counts within each block; selection: "topk" (by the
    untempered probability of the candidate, ties to the lower position) or
    "random" (uniform k-subset); G_t = (prod of committed candidates' model
    probabilities) ** beta when confidence_potential.
    """
    v = joint.shape[0]
    mask = v
    p_len = len(prompt)
    lb = block_length or gen_length
    gamma = defaultdict(float)

    def rec(x, block, bstep, prob, weight):
        if mask not in x:
            gamma[tuple(x[p_len:])] += prob * weight
            return
        start = p_len + block * lb
        elig = [j for j in range(start, start + lb) if x[j] == mask]
        cond = conditional(joint, x, mask)
        k = min(counts[bstep], len(elig))
        for cand in itertools.product(range(v), repeat=len(elig)):
            pq = 1.0
            conf = {}
            for j, c in zip(elig, cand):
                p = cond[j][c]
                conf[j] = p
                if temperature == 0:
                    best = max(range(v), key=lambda t: (cond[j][t], -t))
                    pq *= 1.0 if c == best else 0.0
                else:
                    z = sum(cond[j][t] ** (1 / temperature) for t in range(v))
                    pq *= p ** (1 / temperature) / z
            if pq == 0.0:
                continue
            if selection == "topk":
                order = sorted(elig, key=lambda j: (-conf[j], j))
                subsets = [(tuple(order[:k]), 1.0)]
            else:
                subs = list(itertools.combinations(elig, k))
                subsets = [(s, 1.0 / len(subs)) for s in subs]
            for sub, ps in subsets:
                nx = list(x)
                g = 1.0
                for j, c in zip(elig, cand):
                    if j in sub:
                        nx[j] = c
                        g *= conf[j]
                w = g**beta if confidence_potential else 1.0
                left = any(nx[j] == mask for j in range(start, start + lb))
                if left:
                    rec(nx, block, bstep + 1, prob * pq * ps, weight * w)
                else:
                    rec(nx, block + 1, 0, prob * pq * ps, weight * w)

    rec(list(prompt) + [mask] * gen_length, 0, 0, 1.0, 1.0)
    return dict(gamma)


def log_sum(values):
    return math.log(sum(values))

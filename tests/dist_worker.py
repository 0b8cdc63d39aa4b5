"""Run under ``torchrun --nproc_per_node K``: sample the cases of :func:`cases` with ``smcdiff.distributed.run``
and, on rank 0, save the gathered results (``torch.save``) to the path given as the only argument.

Used by tests/test_distributed.py, which compares the file with a single-process run of the same cases.
"""

from __future__ import annotations

import sys

import torch

from smcdiff import distributed, recipes
from smcdiff.models import CallableDenoiser, LLaDADenoiser
from smcdiff.models.tiny import tiny_llada
from smcdiff.rewards import CallableReward

# five prompts of different lengths (left-padded with pad_id 0): uneven shards over 2 or 3 ranks
PROMPTS = [[5, 6, 7, 8], [9, 10], [11, 12, 13, 14, 15], [16], [17, 18, 19]]


def model():
    """A tiny LLaDA run one row at a time.

    CPU matrix products round differently for different numbers of rows (measured here: 2e-7 in float32
    log-probabilities, 4e-16 in float64, between a batch of 5 prompts and shards of 3 and 2), so a batched model
    makes a prompt's last bits depend on its shard's size, in one process as across ranks. Row by row, each
    prompt's computation is the same whatever the batch, and the comparison checks the sharding itself.
    """
    net = tiny_llada(vocab_size=48, hidden_size=32, num_layers=2, num_heads=4, seed=3)
    with torch.no_grad():
        net.lm_head.weight.mul_(4.0)
    ids = LLaDADenoiser.wrap(net)

    def per_row(x, am):
        return torch.cat([net(x[i : i + 1], attention_mask=None if am is None else am[i : i + 1]).logits
                          for i in range(x.shape[0])])

    return CallableDenoiser(per_row, mask_id=ids.mask_id, vocab_size=48, eos_ids=ids.eos_ids, pad_id=ids.pad_id)


def cases():
    reward = CallableReward(lambda prompt, text: 0.05 * sum(int(t) % 7 for t in text))
    return {
        "llada": (lambda: recipes.llada(steps=8, gen_length=8, block_length=4, temperature=1.0, n_particles=2), 7),
        "sr_smc": (lambda: recipes.sr_smc(recipes.llada(steps=8, gen_length=8, block_length=4, temperature=1.0),
                                          n_particles=4, when="every_step"), [3, 1, 4, 1 << 40, 5]),
        "rws": (lambda: recipes.rws(reward, gen_length=8, steps=4, temperature=1.0, selection="plackett_luce",
                                    n_particles=3), 11),
    }


def result_fields(res):
    out = {k: getattr(res, k) for k in ("sequences", "log_Z", "committed_logp", "commit_step", "nfe", "dead",
                                         "particle_forwards", "reward_calls", "reward_texts")}
    out["log_w"] = res.weights.log_w
    out["ancestors"] = res.genealogy.ancestors
    out["prompt_length"] = res.prompt_length
    out["extras"] = dict(res.extras)
    for i, r in enumerate(res.records):
        for k in r.__dataclass_fields__:
            out[f"records.{i}.{k}"] = getattr(r, k)
    out["n_records"] = len(res.records)
    return out


def main(path: str) -> None:
    distributed.init()
    rank, size = distributed.world()
    m = model()
    out = {"world_size": size}
    with torch.no_grad():
        for name, (make, seed) in cases().items():
            out[name] = result_fields(distributed.run(make(), m, PROMPTS, seed=seed))
    if rank == 0:
        torch.save(out, path)
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])

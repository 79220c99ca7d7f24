"""One run of the fine-tuning benchmarks (train.py, train_gpu.py): its data, record and cache.

Both benchmarks read the same dataset, evaluate on the first pairs of each language,
write one result JSON per run with the same leading keys (what train_report.py and
readme_tables.py read), and reuse a cached result only when it was made with the same
config, model and data split.
"""

from __future__ import annotations

from pathlib import Path


def load_data(path: str) -> dict:
    """The translation dataset at ``path`` (built and written there first if missing)."""
    from moe.finetune.data_io import build_dataset, read_dataset, write_dataset

    if not Path(path).is_file():
        write_dataset(build_dataset(), path)
    return read_dataset(path)


def per_lang(recs: list[dict], n: int | None) -> list[dict]:
    """The first ``n`` records of each language (all if None), languages in order of appearance."""
    by: dict[str, list] = {}
    for r in recs:
        by.setdefault(r["lang"], []).append(r)
    return [r for rs in by.values() for r in (rs if n is None else rs[:n])]


def run_record(
    name: str, cfg, summary: dict, ev: dict, split: str, model: str, data_sha256: str, device: str
) -> dict:
    """The result JSON of one run (the keys both benchmarks write, in this order).

    ``cfg``: its TrainConfig; ``summary``: what training returned; ``ev``: the evaluation;
    ``split``: "dev" or "test"; ``device``: the device label."""
    import torch

    return {
        "name": name,
        "seed": cfg.seed,
        "model": model,
        "data_sha256": data_sha256,
        "config": cfg.to_dict(),
        "summary": {k: v for k, v in summary.items() if k != "config"},
        "eval": ev,
        "eval_split": split,
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }


def same_run(res: dict, cfg_dict: dict, model: str, data_sha256: str) -> bool:
    """Whether the cached result ``res`` was made with this config, model and data split."""
    return (
        res.get("config") == cfg_dict
        and res.get("model") == model
        and res.get("data_sha256") == data_sha256
    )

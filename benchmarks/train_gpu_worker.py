"""The worker process of benchmarks/train_gpu.py: trains and evaluates the runs it is sent.

Each worker reads the dense model once (the torch file the scheduler wrote), then takes
task dicts from ``tasks`` until None, writes each run's result JSON to ``--cache`` and
reports on ``results``: ("ready" | "dead" | "done" | "error", worker id, info).
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil
import time
import traceback

from train_run import per_lang, run_record

from nli.atomic import atomic_write


def worker(wid: int, a, model_file: str, tasks, results) -> None:
    """Worker ``wid``: load the model and the data, then run tasks until None (the loop)."""
    import torch

    torch.set_num_threads(a.threads)
    try:
        from tokenizers import Tokenizer

        from engine.model import Llama, LlamaConfig
        from moe.finetune.data_io import read_dataset
        from moe.finetune.train import train
        from moe.finetune.train_setup import TrainConfig, device_label
        from moe.finetune.translate_eval import evaluate_translation

        blob = torch.load(model_file, map_location="cpu", weights_only=True)  # plain data only
        dense = Llama(LlamaConfig(**blob["cfg"]))
        dense.load_state_dict(blob["state"])
        dense.eval()
        tok = Tokenizer.from_str(blob["tokenizer"])
        data = read_dataset(a.data)
        train_recs = data["train"][:64] if a.smoke else data["train"]
        splits = {
            "dev": per_lang(data["dev"], a.dev_per_lang),
            "test": per_lang(data["test"], a.test_per_lang),
        }
        label = device_label(a.device)
    except Exception:
        results.put(("dead", wid, traceback.format_exc()))
        return
    results.put(("ready", wid, None))
    while True:
        task = tasks.get()
        if task is None:
            return
        try:
            cfg = TrainConfig.from_dict(task["cfg"])
            t0 = time.perf_counter()
            # on the CPU a run takes tens of minutes: checkpoint it so a stopped session resumes it
            run_dir = Path(a.runs) / f"{task['name']}_s{cfg.seed}" if a.device == "cpu" else None
            model, summary = train(dense, tok, train_recs, cfg, run_dir, progress=False)
            gen = a.gen_per_lang if task["split"] == "test" else 0
            ev = evaluate_translation(
                model,
                tok,
                splits[task["split"]],
                gen_per_lang=gen,
                max_new_tokens=a.max_new,
                batch_size=a.eval_batch,
                gen_batch=a.gen_batch,
                keep_hyps=True,
            )
            res = {
                **run_record(
                    task["name"], cfg, summary, ev, task["split"], a.model, a.data_sha256, label
                ),
                "concurrent_workers": a.workers,
                "lr_of": task.get("lr_of"),
                "run_seconds": time.perf_counter() - t0,
            }
            path = Path(a.cache) / f"{task['name']}_s{cfg.seed}.json"
            atomic_write(path, json.dumps(res, ensure_ascii=False) + "\n")  # compact: big
            del model
            if run_dir is not None:
                shutil.rmtree(run_dir, ignore_errors=True)
            if a.device != "cpu":
                torch.cuda.empty_cache()
            results.put(("done", wid, {"name": task["name"], "seed": cfg.seed, "path": str(path)}))
        except Exception:
            results.put(
                (
                    "error",
                    wid,
                    {"name": task["name"], "seed": task["seed"], "trace": traceback.format_exc()},
                )
            )

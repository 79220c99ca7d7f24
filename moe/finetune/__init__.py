"""moe.finetune: the data-constrained fine-tuning benchmark of the upcycled models.

:mod:`moe.finetune.data` / :mod:`moe.finetune.data_io` (En->XX translation
pairs from gettext catalogs, the seeded split, the data file),
:mod:`moe.finetune.sft` (prompted SFT examples and batches),
:mod:`moe.finetune.train_setup` / :mod:`moe.finetune.train` (what a run
trains, the resumable training loop), :mod:`moe.finetune.translate_eval`
(loss, chrF++/BLEU, routing statistics) and :mod:`moe.finetune.commands`
(`nli data fetch`). It builds on the MoE layer and upcycling operators of
:mod:`moe`; nothing in :mod:`moe` outside this subpackage imports it.
"""

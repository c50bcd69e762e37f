"""`bayesplit runs`: validate, import, export and list run tables."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayesplit.cli._common import check_output_path, console, emit_json, fmt
from bayesplit.cli.core import load_runs_arg
from bayesplit.errors import BayesplitError

app = typer.Typer(no_args_is_help=True)


@app.command("validate")
def validate_cmd(
    path: Annotated[
        Path,
        typer.Argument(help="Run table: CSV, Parquet, JSONL, a run store or bundled:NAME."),
    ],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Check a run table; exit 0 when valid, 2 (with every problem listed) when not."""
    from bayesplit.runs import RunTableError, table_warnings

    try:
        if _empty_store(path):  # a state, as `runs list` says; a table of no rows is refused
            summary = {"valid": True, "path": str(path), "rows": 0, "runs": 0}
            summary |= {"eval_domains": [], "specialized_rows": 0}
            summary["warnings"] = ["a run store with no rows yet"]
            if json_out:
                emit_json(summary)
            else:
                console.print(f"[green]✓[/green] {escape(str(path))}: a run store with no rows yet")
            return
        runs = load_runs_arg(str(path))
    except BayesplitError as exc:
        problems = exc.problems if isinstance(exc, RunTableError) else [str(exc)]
        if json_out:
            emit_json({"valid": False, "path": str(path), "problems": problems})
        elif len(problems) > 1:
            # every problem once here; the error line below only counts them
            for p in problems:
                console.print(f"[red]✗[/red] {escape(p)}")
            raise BayesplitError(
                f"{path} is not a valid run table: {len(problems)} problems (listed above)"
            ) from None
        raise
    summary = {
        "valid": True,
        "path": str(path),
        "rows": len(runs),
        "runs": int(runs["run_id"].nunique()),
        "eval_domains": sorted(runs["eval_domain"].unique()),
        "specialized_rows": int((runs["spec_tokens"] > 0).sum()),
        "warnings": table_warnings(runs) + _store_warnings(runs),
    }
    if json_out:
        emit_json(summary)
    else:
        console.print(
            f"[green]✓[/green] {escape(str(path))}: {summary['rows']} rows, {summary['runs']} runs, "
            f"{len(summary['eval_domains'])} eval domains, {summary['specialized_rows']} specialized rows"
        )
        for w in summary["warnings"]:
            console.print(f"[yellow]![/yellow] {escape(w)}")


def _store_warnings(runs) -> list[str]:
    """What a valid table still cannot do: an extra value JSON cannot hold (Parquet bytes)
    is fine in a run table, but the store refuses it, so validate says so first."""
    from bayesplit.store import _to_records

    try:
        _to_records(runs)
    except BayesplitError as exc:
        return [f"{exc}: `runs import` will refuse this table"]
    return []


@app.command("import")
def import_cmd(
    path: Annotated[
        Path,
        typer.Argument(
            help="Run table to append (CSV, Parquet, JSONL), another store, or bundled:NAME."
        ),
    ],
    store: Annotated[
        Path,
        typer.Option(
            "--store", help="SQLite run store, .db/.sqlite/.sqlite3 (created if missing)."
        ),
    ],
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing",
            help="Skip rows the store already holds with the same N, D, D', train_domain, "
            "loss, seed and trunk_id (a table that grew since its last import); a row "
            "stored with another of these is still refused.",
        ),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Append a run table to a store, in one transaction (all rows or none)."""
    from bayesplit.runs import STORE_SUFFIXES, load_runs, read_table, table_warnings, validate_runs
    from bayesplit.store import RunStore, _to_records

    check_output_path(store, option="--store", suffixes=set(STORE_SUFFIXES), inputs={"PATH": path})
    known: set[str] = set()
    if store.exists():
        RunStore.check(store, allow_empty=True)  # a foreign file is refused, untouched
        with contextlib.suppress(BayesplitError):  # an empty database is a new store
            known = RunStore(store, read_only=True).eval_domains()
    # a bad table never creates the store; a branch may train on a domain that only
    # rows already in the store were evaluated on
    # bundled:NAME as every other command's --runs takes it (load_runs reads those)
    table = load_runs(str(path)) if str(path).startswith("bundled:") else read_table(path)
    if "eval_domain" in table.columns:
        known |= {str(d).strip() for d in table["eval_domain"].dropna()}
    runs = validate_runs(table, domains=sorted(known) or None, source=str(path))
    _to_records(runs)  # an extra value the store cannot keep is refused before it is created
    db = RunStore(store)
    added = db.append(runs, skip_existing=skip_existing)
    total = len(db)
    skipped = len(runs) - added
    for line in table_warnings(runs):
        # a `warning:` line on stderr (bayesplit.cli's form): stdout stays the one --json
        # document, whose keys do not change
        warnings.warn(line, UserWarning, stacklevel=1)
    if json_out:
        emit_json({"added": added, "skipped": skipped, "total": total, "store": str(store)})
    else:
        console.print(
            f"[green]✓[/green] added {added} row{'s' if added != 1 else ''} to "
            f"{escape(str(store))} ({total} in all"
            + (f"; {skipped} already there, skipped)" if skipped else ")")
        )


@app.command("export")
def export_cmd(
    store: Annotated[Path, typer.Argument(help="SQLite run store.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .csv, .csv.gz, .parquet or .jsonl.")
    ],
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Write the store's rows to a file (atomically)."""
    from bayesplit.runs import write_format, write_table
    from bayesplit.store import RunStore

    check_output_path(out, option="--out", inputs={"STORE": store})
    file_format = write_format(out, option="--out")  # .csv.gz is two suffixes
    runs = RunStore(store, read_only=True).read()
    if runs.empty:  # a file of no rows is one that `runs import`, `fit` and validate refuse
        raise BayesplitError(f"{store} has no rows yet: nothing to export")
    write_table(runs, out)
    n_runs = int(runs["run_id"].nunique())
    if json_out:
        emit_json(
            {
                "store": str(store),
                "out": str(out),
                "format": file_format,
                "rows": len(runs),
                "runs": n_runs,
            }
        )
    else:
        console.print(
            f"[green]✓[/green] wrote {len(runs)} rows ({n_runs} runs) to {escape(str(out))}"
        )


def _empty_store(source: Path) -> bool:
    from bayesplit.runs import STORE_SUFFIXES
    from bayesplit.store import RunStore

    if not source.name.lower().endswith(STORE_SUFFIXES) or not source.is_file():
        return False
    return len(RunStore(source, read_only=True)) == 0


@app.command("list")
def list_cmd(
    source: Annotated[Path, typer.Argument(help="Run store, run table or bundled:NAME.")],
    limit: Annotated[int, typer.Option(help="Rows to show (0 = all).")] = 50,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Show the rows of a store or table."""
    if limit < 0:
        raise BayesplitError("--limit must be >= 0")
    if _empty_store(
        source
    ):  # a store a trainer created before its first row: a state, not an error
        if json_out:
            emit_json({"rows": 0, "shown": 0, "runs": []})
        else:
            console.print(f"{escape(str(source))}: a run store with no rows yet")
        return
    runs = load_runs_arg(str(source))
    shown = runs if limit == 0 else runs.head(limit)
    if json_out:
        emit_json(
            {
                "rows": len(runs),
                # --limit cut the records: a reader of "runs" alone could not tell
                "shown": len(shown),
                "runs": shown.astype(object).where(shown.notna(), None).to_dict(orient="records"),
            }
        )
        return
    cols = [
        "run_id",
        "params",
        "pretrain_tokens",
        "spec_tokens",
        "train_domain",
        "eval_domain",
        "loss",
        "seed",
    ]
    # which checkpoint, and of which trunk: without them a trunk's rows looked alike
    cols += [c for c in ("step", "trunk_id") if c in runs and runs[c].notna().any()]
    table = Table(title=escape(f"{source} ({len(runs)} rows)"))
    for c in cols:
        table.add_column(
            c,
            justify="right"
            if c in ("params", "pretrain_tokens", "spec_tokens", "loss", "seed", "step")
            else "left",
        )
    import pandas as pd

    def cell(c: str, v) -> str:
        if v is None or (not isinstance(v, str) and pd.isna(v)):  # None, NaN and <NA>
            return "—"
        if c == "step":  # a checkpoint's step, whole: 123456 read "1.23e+05"
            return f"{int(v)}"
        return fmt(v) if isinstance(v, float) else escape(str(v))

    for _, r in shown.iterrows():
        table.add_row(*[cell(c, r[c]) for c in cols])
    console.print(table)
    if len(shown) < len(runs):
        console.print(f"[dim]… {len(runs) - len(shown)} more rows (--limit 0 shows all)[/dim]")

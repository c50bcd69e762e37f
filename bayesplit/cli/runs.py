"""`bayesplit runs`: validate, import, export and list run tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bayesplit.cli._common import console, emit_json, fmt
from bayesplit.errors import BayesplitError

app = typer.Typer(no_args_is_help=True)


@app.command("validate")
def validate_cmd(
    path: Annotated[Path, typer.Argument(help="Run table: CSV, Parquet, JSONL or a run store.")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a run table; exit 0 when valid, 2 (with every problem listed) when not."""
    from bayesplit.runs import RunTableError, load_runs

    try:
        runs = load_runs(path)
    except RunTableError as exc:
        if json_out:
            emit_json({"valid": False, "path": str(path), "problems": exc.problems})
        else:
            for p in exc.problems:
                console.print(f"[red]✗[/red] {p}")
        raise
    summary = {
        "valid": True,
        "path": str(path),
        "rows": len(runs),
        "runs": int(runs["run_id"].nunique()),
        "eval_domains": sorted(runs["eval_domain"].unique()),
        "specialized_rows": int((runs["spec_tokens"] > 0).sum()),
    }
    if json_out:
        emit_json(summary)
    else:
        console.print(
            f"[green]✓[/green] {path}: {summary['rows']} rows, {summary['runs']} runs, "
            f"{len(summary['eval_domains'])} eval domains, {summary['specialized_rows']} specialized rows"
        )


@app.command("import")
def import_cmd(
    path: Annotated[Path, typer.Argument(help="Run table to append (CSV, Parquet, JSONL).")],
    store: Annotated[Path, typer.Option("--store", help="SQLite run store (created if missing).")],
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Append a run table to a store, in one transaction (all rows or none)."""
    from bayesplit.runs import load_runs
    from bayesplit.store import RunStore

    runs = load_runs(path)
    added = RunStore(store).append(runs)
    total = len(RunStore(store))
    if json_out:
        emit_json({"added": added, "total": total, "store": str(store)})
    else:
        console.print(f"[green]✓[/green] added {added} rows to {store} ({total} in all)")


@app.command("export")
def export_cmd(
    store: Annotated[Path, typer.Argument(help="SQLite run store.")],
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .csv, .csv.gz, .parquet or .jsonl.")
    ],
) -> None:
    """Write the store's rows to a file (atomically)."""
    from bayesplit.runs import write_table
    from bayesplit.store import RunStore

    runs = RunStore(store, create=False).read()
    write_table(runs, out)
    console.print(f"[green]✓[/green] wrote {len(runs)} rows to {out}")


@app.command("list")
def list_cmd(
    source: Annotated[Path, typer.Argument(help="Run store or run table.")],
    limit: Annotated[int, typer.Option(help="Rows to show (0 = all).")] = 50,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show the rows of a store or table."""
    from bayesplit.runs import load_runs

    if limit < 0:
        raise BayesplitError("--limit must be >= 0")
    runs = load_runs(source)
    shown = runs if limit == 0 else runs.head(limit)
    if json_out:
        emit_json(
            {
                "rows": len(runs),
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
    table = Table(title=f"{source} ({len(runs)} rows)")
    for c in cols:
        table.add_column(
            c,
            justify="right"
            if c in ("params", "pretrain_tokens", "spec_tokens", "loss", "seed")
            else "left",
        )
    for _, r in shown.iterrows():
        table.add_row(
            *[
                fmt(r[c]) if isinstance(r[c], float) else ("—" if r[c] is None else str(r[c]))
                for c in cols
            ]
        )
    console.print(table)
    if len(shown) < len(runs):
        console.print(f"[dim]… {len(runs) - len(shown)} more rows (--limit 0 shows all)[/dim]")

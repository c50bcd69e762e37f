"""Benchmark: is the fit's own estimate of its regret honest, and can a campaign stop on it?

``bayesplit allocate`` reports, besides the plan, the posterior's expected regret of that plan
(the mean over draws of how much worse the plan is than each draw's own optimum) and so
the posterior probability that the plan is within 1% of the optimum. ``bayesplit loop
--stop-regret X`` ends a campaign once the expected regret is at most X. Both are claims about
the truth, so they are checked here against known truths: simulated campaigns
(``bayesplit.simulation``, the settings of ``design_efficiency.py``) on its three truths,
every round scored twice — by the posterior (``expected_regret``, ``p_within_1pct``) and by
the truth (``regret``).

Reported:

* per truth: mean expected vs mean true regret (an honest posterior has them about equal
  on average; over-estimation is the safe side);
* reliability of ``P(regret ≤ 1%)``: rounds binned by that probability, with the share of
  them whose true regret was ≤ 1% (honest: the share lies in or above the bin);
* the stopping rule at X = 1%: the share of campaigns that would stop, the true regret at
  the stop (the rule is safe when it is ≤ 1% in at least ~90% of the stops), and the
  compute spent there.

Usage::

    python experiments/benchmarks/regret_calibration.py --seeds 10 --workers 2
    python experiments/benchmarks/regret_calibration.py --report-only
    python experiments/benchmarks/regret_calibration.py --seeds 10 --policies active-decision --fit-draws 500

The campaigns committed before stop 20 ran ``active-decision`` (then called ``active``, the
default objective); those of ``active`` (``--objective regret``, the default since) are
added next to them.

Campaigns are appended to ``regret_calibration.csv`` (a rerun skips those already there).
``--fit-draws D`` fits D draws after D warmup steps per chain inside the campaigns, instead
of the benchmark's short 150 (500 is ``bayesplit loop``'s own fit), into
``regret_calibration_fit{D}.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import design_efficiency as de  # noqa: E402

STOP = 0.01  # the regret a decision should stay within
STOP_RULES = (0.01, 0.005, 0.0025)  # --stop-regret settings scored against it
BINS = [0.0, 0.5, 0.8, 0.9, 0.95, 1.0001]


def _jeffreys(k: int, n: int, level: float = 0.9) -> str:
    from scipy.stats import beta

    if n == 0:
        return ""
    a = (1 - level) / 2
    lo = beta.ppf(a, k + 0.5, n - k + 0.5) if k > 0 else 0.0
    hi = beta.ppf(1 - a, k + 0.5, n - k + 0.5) if k < n else 1.0
    return f"[{lo:.0%}, {hi:.0%}]"


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean expected vs true regret, per truth and policy (every round of every campaign)."""
    g = df.groupby(["truth", "policy"])
    out = g.agg(
        campaigns=("seed", "nunique"),
        rounds=("regret", "size"),
        mean_true=("regret", "mean"),
        mean_expected=("expected_regret", "mean"),
        median_true=("regret", "median"),
        median_expected=("expected_regret", "median"),
    )
    out["expected / true (means)"] = out["mean_expected"] / out["mean_true"]
    within = df["regret"] <= STOP
    out["share ≤1% (true)"] = within.groupby([df["truth"], df["policy"]]).mean()
    out["mean P(≤1%) (posterior)"] = g["p_within_1pct"].mean()
    return out.reset_index()


def reliability(df: pd.DataFrame) -> pd.DataFrame:
    """Rounds binned by the posterior's P(regret ≤ 1%), with the share truly ≤ 1%."""
    b = pd.cut(df["p_within_1pct"], BINS, right=False)
    rows = []
    for (truth, interval), g in df.groupby([df["truth"], b], observed=True):
        k, n = int((g["regret"] <= STOP).sum()), len(g)
        rows.append(
            {
                "truth": truth,
                "P(≤1%) bin": f"[{interval.left:.2f}, {min(interval.right, 1):.2f}{')' if interval.right < 1 else ']'}",
                "rounds": n,
                "mean P(≤1%)": g["p_within_1pct"].mean(),
                "share truly ≤1%": k / n,
                "90% CI": _jeffreys(k, n),
            }
        )
    return pd.DataFrame(rows)


def stopping(df: pd.DataFrame, threshold: float = STOP) -> pd.DataFrame:
    """What ``--stop-regret threshold`` would have done in each campaign (offline: campaigns ran on).

    A stop is safe when the true regret there is at most :data:`STOP` (1%).
    """
    key = ["truth", "policy", "seed"]
    by_round = df.sort_values("round")
    stops = by_round[by_round["expected_regret"] <= threshold].groupby(key).head(1)
    to_end = by_round.groupby(key)["spent_flops"].last().rename("spent to end")
    stops = stops.join(to_end, on=key)
    out = []
    for (truth, policy), n in df.groupby(["truth", "policy"])["seed"].nunique().items():
        s = stops[(stops["truth"] == truth) & (stops["policy"] == policy)]
        safe = int((s["regret"] <= STOP).sum())
        out.append(
            {
                "--stop-regret": threshold,
                "truth": truth,
                "policy": policy,
                "campaigns": n,
                "stopped": f"{len(s)}/{n}",
                "median stop round": s["round"].median(),
                "true regret ≤1% at the stop": f"{safe}/{len(s)}" if len(s) else "",
                "90% CI": _jeffreys(safe, len(s)),
                "worst regret at a stop": s["regret"].max(),
                "median compute at stop / to the end": (
                    s["spent_flops"] / s["spent to end"]
                ).median(),
            }
        )
    return pd.DataFrame(out)


def _blank_nan(df: pd.DataFrame) -> pd.DataFrame:
    """Empty cells where a campaign never stopped (nan reads like a failed number)."""
    return df.astype(object).where(df.notna(), "")


def outputs(fit_draws: int | None) -> tuple[Path, Path]:
    """The campaign table and the report of a fit length (None: the benchmark's short fits)."""
    stem = "regret_calibration" + (f"_fit{fit_draws}" if fit_draws is not None else "")
    return HERE / f"{stem}.csv", HERE / f"{stem}.md"


def report(df: pd.DataFrame, command: str, fit_draws: int | None = None) -> str:
    settings = dict(de.SETTINGS)
    if fit_draws is not None:
        settings.update(draws=fit_draws, warmup=fit_draws)
    chains = settings["chains"]
    draws = settings["draws"]
    fits = (
        f"The fits are the campaigns' short ones ({chains} chains × {draws} draws), which fail "
        "the diagnostics gate as noted in design_efficiency.md."
        if fit_draws is None
        else f"The in-campaign fits are {chains} chains × {draws} draws after {draws} warmup "
        "steps each"
        + (", as `bayesplit loop` fits by default" if draws == 500 else "")
        + f"; the plan and its expected regret are computed from {settings['max_draws']} of "
        "those draws, as in all the campaigns (the loop uses them all)."
    )
    lines = [
        "# Does the fit know its own regret? Expected vs true regret, and the stopping rule",
        "",
        f"Command: `{command}`  ",
        f"Machine: CPU, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {sys.version.split()[0]}; campaign settings of design_efficiency.py "
        f"{settings}; truths and seed designs as there.",
        "",
        "Every round of every campaign is scored by the fit itself and by the truth. "
        "`expected` = the posterior mean of the plan's relative regret against each draw's "
        "optimum (what `bayesplit allocate` reports); `true` = the plan's relative regret under "
        f"the truth. {fits}",
        "",
        "## Expected vs true regret",
        "",
        summary(df).to_markdown(index=False, floatfmt=".3g"),
        "",
        "## Reliability of P(regret ≤ 1%)",
        "",
        "Rounds binned by the posterior probability that the plan is within 1% of the "
        "optimum; an honest probability has the share truly within 1% at or above the bin's "
        "mean (90% Jeffreys interval over rounds; rounds of one campaign are not independent, "
        "so the intervals are too narrow).",
        "",
        reliability(df).to_markdown(index=False, floatfmt=".3g"),
        "",
        "## The stopping rule `--stop-regret X`",
        "",
        "Offline: the campaigns ran all their rounds; a campaign 'stops' at the first round "
        "whose expected regret is ≤ X, before that round's batch is picked. Safe: the true "
        "regret at the stop is ≤ 1%, whatever X.",
        "",
        _blank_nan(pd.concat([stopping(df, x) for x in STOP_RULES])).to_markdown(
            index=False, floatfmt=".3g"
        ),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--truths", default="saturating_reducible,gadre,debian")
    ap.add_argument("--policies", default="active,grid")
    ap.add_argument("--fit-draws", type=int, default=None)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    csv, out = outputs(args.fit_draws)
    if not args.report_only:
        de.run(
            args.truths.split(","),
            args.policies.split(","),
            args.seeds,
            args.workers,
            csv,
            fit_draws=args.fit_draws,
        )
    table = pd.read_csv(csv)
    # the campaigns in the file (a run adds to it), not this call's arguments
    policies = ",".join(dict.fromkeys(table["policy"].astype(str)))
    truths = ",".join(dict.fromkeys(table["truth"].astype(str)))
    per_pair = table.groupby(["truth", "policy"])["seed"].nunique()
    seeds = int(per_pair.max())
    command = (
        f"python experiments/benchmarks/regret_calibration.py --seeds {seeds} "
        f"--truths {truths} --policies {policies}"
        + (f" --fit-draws {args.fit_draws}" if args.fit_draws is not None else "")
    )
    n_truths, n_policies = table["truth"].nunique(), table["policy"].nunique()
    if per_pair.nunique() > 1 or len(per_pair) < n_truths * n_policies:
        # that command would run more than the file holds: say what it holds
        held = ", ".join(f"{t}/{p}: {n}" for (t, p), n in per_pair.items())
        command += f"  # not a full grid; seeds per truth/policy: {held}"
    text = report(table, command, args.fit_draws)
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(text)


if __name__ == "__main__":
    main()

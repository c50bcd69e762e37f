"""The built-in law families (DESIGN.md, "The law library").

All formulas are on scaled inputs n = N/N_ref, d = D/T_ref, d' = D'/T_ref
(see :mod:`bayesplit.laws.base`). Priors are weakly informative: exponents near
the published 0.25–0.4, asymptotes a fraction of the typical loss L̄.
"""

from __future__ import annotations

import math

from bayesplit.laws.base import Law, Param


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# Shared prior choices, so that the same quantity means the same thing in every law.
def _E(per_domain=True):
    # Scale 1 (E/L̄ in about [0.1, 2.6] at 90%, the part above the losses cut by the data):
    # small runs cannot tell E from a slow power law, and fits put it anywhere from near 0
    # (Kaplan-style pure power laws) to about half the small-run loss (Chinchilla, Gadre's
    # C4); scale 0.5 was 90% sure of [0.22, 1.14] and missed truths below that.
    return Param(
        "E", "positive", math.log(0.5), 1.0, per_domain, 0.5, True, "irreducible loss (nats/token)"
    )


def _coef(name, desc, per_domain, loc=0.15, scale=1.0):
    return Param(name, "positive", math.log(loc), scale, per_domain, 0.5, True, desc)


def _exponent(name, desc, per_domain=False, centre=0.33, scale=0.6):
    return Param(name, "unit", _logit(centre), scale, per_domain, 0.3, False, desc)


def _gamma(per_domain):
    """The specialization exponent of the laws with a (1 + d'/d'_0)^-γ factor."""
    return Param(
        "gamma", "positive", math.log(0.5), 0.75, per_domain, 0.3, False, "specialization exponent"
    )


def _dp0():
    return Param(
        "dp0", "positive", math.log(0.05), 1.5, False, 0.5, False,
        "D' scale where specialization starts to pay (units of T_ref)",
    )  # fmt: skip


def _chinchilla(ops, p, x):
    return ops.logsumexp(
        ops.log(p["E"]),
        ops.log(p["A"]) - p["alpha"] * ops.log(x.n),
        ops.log(p["B"]) - p["beta"] * ops.log(x.d + x.dp),
    )


CHINCHILLA = Law(
    name="chinchilla",
    formula="L_k = E_k + A_k·n^-α_k + B_k·(d + d')^-β_k",
    params=(
        _E(),
        _coef("A", "model-size term at the reference size", per_domain=True),
        _exponent("alpha", "model-size exponent", per_domain=True),
        _coef("B", "data term at the reference token count", per_domain=True),
        _exponent("beta", "data exponent", per_domain=True),
    ),
    log_mean=_chinchilla,
    uses_spec_tokens=False,
    description="Single-stage Chinchilla law; specialization tokens count as ordinary tokens.",
    reference="Hoffmann et al. 2022; Besiroglu et al. 2024 (Epoch replication)",
)


def _additive(ops, p, x):
    return ops.logsumexp(
        ops.log(p["E"]),
        ops.log(p["A"]) - p["alpha"] * ops.log(x.n),
        ops.log(p["B"]) - p["beta"] * ops.log(x.d),
        ops.log(p["C"]) - p["gamma"] * ops.log1p(x.dp / p["dp0"]),
    )


ADDITIVE = Law(
    name="additive",
    formula="L_k = E_k + A·n^-α + B_k·d^-β + C_k·(1 + d'/d'_0)^-γ",
    params=(
        _E(),
        _coef("A", "model-size term at the reference size", per_domain=False),
        _exponent("alpha", "model-size exponent"),
        _coef("B", "pretraining-data term at the reference token count", per_domain=True),
        _exponent("beta", "pretraining-data exponent"),
        _coef("C", "specialization gap: what infinite D' would remove", per_domain=True, loc=0.1),
        _gamma(per_domain=False),
        _dp0(),
    ),
    log_mean=_additive,
    description="Pretraining and specialization reduce separate loss terms; the gains add.",
    reference="DESIGN.md; equivalent to C'_k/(D' + D'_0)^γ with C'_k = C_k·D'_0^γ",
)


def _transfer(ops, p, x):
    tau_n = p["tau"] * ops.exp(p["kappa"] * ops.log(x.n))
    return ops.logsumexp(
        ops.log(p["E"]),
        ops.log(p["A"]) - p["alpha"] * ops.log(x.n),
        ops.log(p["B"]) - p["beta"] * ops.log(x.dp + tau_n * x.d),
    )


TRANSFER = Law(
    name="transfer",
    formula="L_k = E_k + A·n^-α + B_k·(d' + τ_k·n^κ·d)^-β",
    params=(
        _E(),
        _coef("A", "model-size term at the reference size", per_domain=False),
        _exponent("alpha", "model-size exponent"),
        _coef("B", "effective-data term", per_domain=True),
        _exponent("beta", "effective-data exponent"),
        Param(
            "tau",
            "positive",
            math.log(0.3),
            1.5,
            True,
            0.75,
            False,
            "domain tokens one general token is worth, at the reference size",
        ),
        Param("kappa", "real", 0.0, 0.5, False, 0.3, False, "growth of transfer with model size"),
    ),
    log_mean=_transfer,
    description="Effective data (Hernandez et al. 2021): a general token is worth τ_k(N) domain tokens.",
    reference="Hernandez, Kaplan, Henighan, McCandlish 2021, 'Scaling laws for transfer'",
)


def _saturating(ops, p, x):
    pretrain = ops.logaddexp(ops.log(p["B"]) - p["beta"] * ops.log(x.d), ops.log(p["G"]))
    return ops.logsumexp(
        ops.log(p["E"]),
        ops.log(p["A"]) - p["alpha"] * ops.log(x.n),
        pretrain - p["gamma"] * ops.log1p(x.dp / p["dp0"]),
    )


SATURATING = Law(
    name="saturating",
    formula="L_k = E_k + A·n^-α + (B·d^-β + G_k)·(1 + d'/d'_0)^-γ_k",
    params=(
        _E(),
        _coef("A", "model-size term at the reference size", per_domain=False),
        _exponent("alpha", "model-size exponent"),
        _coef("B", "pretraining-data term", per_domain=False),
        _exponent("beta", "pretraining-data exponent"),
        _coef("G", "domain gap left by general pretraining", per_domain=True, loc=0.1),
        _gamma(per_domain=True),
        _dp0(),
    ),
    log_mean=_saturating,
    description="Specialization shrinks what pretraining left; its gain shrinks as D grows.",
    reference="after Barnett 2024; Liew & Kato 2025",
)

BUILTIN = (CHINCHILLA, ADDITIVE, TRANSFER, SATURATING)

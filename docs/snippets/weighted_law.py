"""A user law: Chinchilla where a specialization token is worth w_k general tokens."""

import math

from bayesplit.laws import Law, Param, register


def _log_mean(ops, p, x):
    # x.n, x.d, x.dp: scaled N, D, D'; per-domain parameters arrive indexed per row
    return ops.logsumexp(
        ops.log(p["E"]),
        ops.log(p["A"]) - p["alpha"] * ops.log(x.n),
        ops.log(p["B"]) - p["beta"] * ops.log(x.d + p["w"] * x.dp),
    )


WEIGHTED = register(
    Law(
        name="weighted",
        formula="L_k = E_k + A·n^-α + B_k·(d + w_k·d')^-β",
        params=(
            # name, support, prior loc and scale on the log/logit scale, pooling
            Param("E", "positive", math.log(0.5), 1.0, per_domain=True, loss_scaled=True),
            Param("A", "positive", math.log(0.15), 1.0, loss_scaled=True),
            Param("alpha", "unit", math.log(0.33 / 0.67), 0.6),
            Param("B", "positive", math.log(0.15), 1.0, per_domain=True, loss_scaled=True),
            Param("beta", "unit", math.log(0.33 / 0.67), 0.6),
            Param("w", "positive", 0.0, 1.0, per_domain=True, description="worth of a D' token"),
        ),
        log_mean=_log_mean,
        description="Chinchilla with a per-domain worth w_k of a specialization token.",
    ),
    overwrite=True,
)

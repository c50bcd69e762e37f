"""Unlabeled documents into K named domains: TF-IDF → truncated SVD (LSA) → k-means.

``corpus build --domains cluster:K`` uses it; each cluster is named from its most
distinctive TF-IDF terms, e.g. ``c0-def-return-self`` (``c0`` is the largest cluster).
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Sequence

import numpy as np

from bayesplit._parse import check_seed
from bayesplit.errors import BayesplitError


def _term_slug(term: str) -> str:
    ascii_term = unicodedata.normalize("NFKD", term).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", ascii_term.lower())[:16]


def _check_found(found: int, k: int) -> None:
    """Refuse fewer distinct clusters than K, with advice that works: a smaller K cannot
    split documents that make one group (it said "use a smaller K", then K=2 failed too)."""
    if found >= k:
        return
    if found == 1:
        raise BayesplitError(
            f"clustering found only 1 distinct group for K={k}; the documents are too alike "
            "to split: give each domain its own folder "
            '(--domains folders; in Python: domains="folders")'
        )
    raise BayesplitError(
        f"clustering found only {found} distinct groups for K={k}; use K <= {found}"
    )


def cluster_documents(
    texts: Sequence[str], k: int, *, seed: int = 0, n_terms: int = 3
) -> tuple[np.ndarray, list[str], list[list[str]]]:
    """Cluster documents into ``k`` groups: TF-IDF → truncated SVD (LSA) → k-means.

    Returns ``(labels, names, top_terms)``. Clusters are numbered by size, largest first (ties by
    their first document), and named ``c{i}-{term}-{term}-{term}`` from the terms whose mean
    TF-IDF is highest inside the cluster relative to outside it. Deterministic given ``seed``
    (a whole number from 0 to 2^63 - 1).

    Example
    -------
    >>> labels, names, _ = cluster_documents(texts, 3, seed=0)  # doctest: +SKIP
    >>> names                                                    # doctest: +SKIP
    ['c0-def-return-self', 'c1-lord-thou-thy', 'c2-noun-verb-adj']
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.preprocessing import normalize

    seed = check_seed(seed)
    # scikit-learn takes seeds below 2**32; a larger one (the CLI takes 64 bits) is folded
    # into that range, and a smaller one kept as it is, so its clusters do not change
    sk_seed = seed if 0 <= seed < 2**32 else int(np.random.SeedSequence(seed).generate_state(1)[0])
    n = len(texts)
    if k < 2 or k > n:
        raise BayesplitError(f"cluster:K needs 2 <= K <= number of documents ({n}), got K={k}")
    # Words start with a letter: numbers and hex make poor cluster names and weak features.
    settings = dict(
        sublinear_tf=True,
        token_pattern=r"(?u)\b[^\W\d_]\w+\b",
        max_features=1 << 16,
        dtype=np.float32,
    )
    try:
        # Common words out (stop words, terms in >80% of documents); rare ones too on bigger sets.
        vec = TfidfVectorizer(
            stop_words="english",
            max_df=0.8 if n >= 20 else 1.0,
            min_df=2 if n >= 20 else 1,
            **settings,
        )
        x = vec.fit_transform(texts)
    except ValueError:  # pruning left no terms; fall back to every word
        try:
            vec = TfidfVectorizer(**settings)
            x = vec.fit_transform(texts)
        except ValueError:
            raise BayesplitError("cannot cluster: the documents contain no words") from None
    n_components = min(100, x.shape[1] - 1, n - 1)
    # near-identical documents make sklearn warn (a division by zero in the SVD's variance,
    # fewer distinct clusters than K) before the one-line error below says the same
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        if n_components >= 2:
            svd = TruncatedSVD(n_components=n_components, random_state=sk_seed)
            z = normalize(svd.fit_transform(x))
        else:
            z = x
        raw = KMeans(n_clusters=k, n_init=10, random_state=sk_seed).fit_predict(z)
    _check_found(len(np.unique(raw)), k)
    # Renumber: largest cluster first, ties by first appearance, so names do not depend on
    # k-means' arbitrary numbering.
    sizes = np.bincount(raw, minlength=k)
    first = np.array([np.flatnonzero(raw == c)[0] for c in range(k)])
    order = sorted(range(k), key=lambda c: (-sizes[c], first[c]))
    relabel = np.empty(k, dtype=np.int64)
    relabel[order] = np.arange(k)
    labels = relabel[raw]

    vocab = vec.get_feature_names_out()
    names: list[str] = []
    top_terms: list[list[str]] = []
    for c in range(k):
        inside = labels == c
        score = np.asarray(x[inside].mean(axis=0)).ravel()
        if (~inside).any():
            score = score - np.asarray(x[~inside].mean(axis=0)).ravel()
        terms: list[str] = []
        for j in np.argsort(-score, kind="stable"):
            if score[j] <= 0 or len(terms) == n_terms:
                break
            slug = _term_slug(vocab[j])
            if slug and slug not in terms:
                terms.append(slug)
        top_terms.append([str(t) for t in terms])
        names.append("-".join([f"c{c}", *terms]))
    return labels, names, top_terms

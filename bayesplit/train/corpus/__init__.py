"""Tokenized multi-domain corpora: build them from text files, read them back.

- :mod:`~bayesplit.train.corpus.reader`: the format (a folder of uint16 token shards, one
  ``train`` and one ``val`` per domain, and a manifest) and :class:`Corpus`, its one reader,
  for ``corpus info`` and the trainer alike;
- :mod:`~bayesplit.train.corpus.build`: :func:`build_corpus`, from a folder of text files
  (documents, domains, the train/val split, a local byte-level BPE tokenizer, atomic writes);
- :mod:`~bayesplit.train.corpus.clustering`: unlabeled documents into K named domains.

Example
-------
>>> from bayesplit.train.corpus import Corpus, build_corpus      # doctest: +SKIP
>>> corpus = build_corpus("texts/", "corpus/", vocab_size=4096)  # doctest: +SKIP
>>> Corpus("corpus/").tokens("code", "train")[:8]                # doctest: +SKIP
memmap([ 318,  257, 1043, ...], dtype=uint16)
"""

from bayesplit.train.corpus.build import (
    DEFAULT_MAX_DOC_CHARS,
    EOT,
    MAX_VOCAB,
    MIN_VOCAB,
    Document,
    build_corpus,
    parse_domain_mode,
    sanitize_name,
    split_document,
    split_train_val,
    train_tokenizer,
)
from bayesplit.train.corpus.clustering import cluster_documents
from bayesplit.train.corpus.reader import (
    FORMAT,
    SPLITS,
    Corpus,
    content_hash,
    unigram_entropy,
)

__all__ = [
    "DEFAULT_MAX_DOC_CHARS",
    "EOT",
    "FORMAT",
    "MAX_VOCAB",
    "MIN_VOCAB",
    "SPLITS",
    "Corpus",
    "Document",
    "build_corpus",
    "cluster_documents",
    "content_hash",
    "parse_domain_mode",
    "sanitize_name",
    "split_document",
    "split_train_val",
    "train_tokenizer",
    "unigram_entropy",
]

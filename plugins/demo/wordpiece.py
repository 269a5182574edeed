"""A deterministic WordPiece vocabulary learner.

The ``tokenizers`` library's ``WordPieceTrainer`` breaks ties between equally frequent merges in
hash-map order, so two trainings on the same corpus give different vocabularies (and the demo model
would not be reproducible). This learner does the same thing, byte-pair-style merges of word
pieces by frequency, but breaks ties alphabetically. It is small because the demo corpus is small.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

from tokenizers import normalizers, pre_tokenizers

PREFIX = "##"


def bert_words(texts: Iterable[str]) -> Counter:
    """Word counts after BERT's cased normalisation and pre-tokenisation (punctuation and every
    Chinese character split off), exactly as the tokenizer will see the text."""
    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def learn_vocabulary(counts: Counter, vocab_size: int, special_tokens: list[str]) -> dict[str, int]:
    """``special_tokens``, then every character (``##``-prefixed inside words), then merged pieces
    in merge order until ``vocab_size`` tokens or nothing is left to merge; token -> id."""
    ordered = sorted(counts)
    words = [[w[0]] + [PREFIX + ch for ch in w[1:]] for w in ordered]
    freq = [counts[w] for w in ordered]
    vocab = list(dict.fromkeys([*special_tokens, *sorted({s for syms in words for s in syms})]))
    known = set(vocab)

    pairs: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    heap: list[tuple[int, tuple[str, str]]] = []

    def add(i: int, sign: int) -> None:
        syms = words[i]
        for pair in zip(syms, syms[1:]):
            pairs[pair] += sign * freq[i]
            if sign > 0:
                where[pair].add(i)
            if pairs[pair] > 0:
                heapq.heappush(heap, (-pairs[pair], pair))

    for i in range(len(words)):
        add(i, +1)
    while len(vocab) < vocab_size and heap:
        neg, best = heapq.heappop(heap)
        if pairs.get(best, 0) != -neg or neg == 0:
            continue  # a stale entry: the pair's count has changed since it was pushed
        merged = best[0] + best[1][len(PREFIX):]
        for i in sorted(where.pop(best)):
            add(i, -1)
            words[i] = _merge(words[i], best, merged)
            add(i, +1)
        del pairs[best]
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
    return {token: i for i, token in enumerate(vocab)}


def _merge(syms: list[str], pair: tuple[str, str], merged: str) -> list[str]:
    out, i = [], 0
    while i < len(syms):
        if i + 1 < len(syms) and (syms[i], syms[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(syms[i])
            i += 1
    return out

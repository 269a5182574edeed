"""WordPiece tokenizers for small BERT models, learned from a dataset's own sentences.

Contract: every tokenizer made here is a transformers ``BertTokenizer`` whose first five ids are
:data:`SPECIAL_TOKENS` (``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4), with BERT's
normalisation without accent stripping (combining marks matter in Hindi and Thai) and every CJK
character split off as a word of its own.

Two learners:

- :func:`train_wordpiece`: the ``tokenizers`` library's trainer; fast on large corpora, but it
  breaks ties between equally frequent merges in hash-map order, so two processes may learn
  slightly different vocabularies from the same text.
- :func:`learn_vocabulary` (with :func:`bert_words` and :func:`bert_tokenizer`): the same kind of
  merges with ties broken alphabetically, so the vocabulary is a function of the text alone; pure
  Python, for small corpora whose model must be reproducible bit for bit.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from typing import Iterable

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PREFIX = "##"  # marks a piece that continues a word


def bert_tokenizer(vocab: dict[str, int], *, lowercase: bool = False):
    """A ``BertTokenizer`` over ``vocab`` (token -> id), no accent stripping, CJK characters split."""
    from transformers import BertTokenizer

    return BertTokenizer(vocab=vocab, do_lower_case=lowercase, strip_accents=False, tokenize_chinese_chars=True)


def train_wordpiece(texts: Iterable[str], vocab_size: int, *, lowercase: bool = False):
    """A WordPiece tokenizer with at most ``vocab_size`` pieces trained on ``texts`` by the
    ``tokenizers`` library (see the module docstring on ties), as a ``BertTokenizer``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = _normalizer(lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                        continuing_subword_prefix=PREFIX, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return bert_tokenizer(tok.get_vocab(), lowercase=lowercase)


def _normalizer(lowercase: bool):
    from tokenizers import normalizers

    return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                      lowercase=lowercase)


def bert_words(texts: Iterable[str], *, lowercase: bool = False) -> Counter:
    """Word counts after BERT's normalisation and pre-tokenisation (punctuation and every Chinese
    character split off), exactly as the tokenizer will see the text."""
    from tokenizers import pre_tokenizers

    normalizer = _normalizer(lowercase)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for text in texts:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def learn_vocabulary(counts: Counter, vocab_size: int, special_tokens: list[str] = SPECIAL_TOKENS) -> dict[str, int]:
    """``special_tokens``, then every character (``##``-prefixed inside words), then merged pieces
    in merge order until ``vocab_size`` tokens or nothing is left to merge; token -> id.

    Deterministic: the most frequent pair of adjacent pieces is merged first, ties alphabetically."""
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

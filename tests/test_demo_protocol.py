"""The demo world's edit protocol: nothing about the target leaks before the edit is made."""
from __future__ import annotations

import torch

from lime_toolkit.data import MASKED_LM
from lime_toolkit.dataset_api import DatasetOptions
from lime_toolkit.encoding import encode_examples
from lime_toolkit.toolbox.parallel import alignment_loss
from lime_toolkit_plugins.demo.corpus import SCRIPT, DemoCorpus, DemoSettings
from lime_toolkit_plugins.demo.dataset import DemoDataset
from lime_toolkit_plugins.demo.tiny_model import train_tokenizer
from lime_toolkit_plugins.demo.vocabulary import LANGUAGES, RELATIONS, SYLLABLES

SMALL = DemoSettings.small()


def test_objects_are_different_words_in_every_language():
    for rel, (_, objects) in RELATIONS.items():
        for i in range(len(objects["en"])):
            words = [objects[lang][i] for lang in LANGUAGES]
            assert len(set(words)) == len(LANGUAGES), (rel, words)


def test_every_object_is_one_token_so_the_mask_count_reveals_nothing():
    corpus = DemoCorpus(SMALL)
    tokenizer = train_tokenizer(corpus)
    for rel, (_, objects) in RELATIONS.items():
        for lang in LANGUAGES:
            for word in objects[lang]:
                assert len(tokenizer(word, add_special_tokens=False)["input_ids"]) == 1, (rel, lang, word)
    # Chinese objects are single tokens inside a sentence too, and names stay split into characters
    fact = corpus.facts[0]
    sentence = corpus.sentence(fact, "zh")
    pieces = tokenizer.tokenize(sentence)
    assert corpus.object_text(fact.relation, fact.obj, "zh") in pieces
    assert all(SYLLABLES[s] in pieces for s in corpus.subjects[fact.subject].given)


def test_chinese_objects_never_occur_inside_templates_or_names():
    templates = [t["zh"] for t, _ in RELATIONS.values()]
    name_chars = set(SYLLABLES.values())
    for _, objects in RELATIONS.values():
        for word in objects["zh"]:
            assert not any(word in t for t in templates)
            assert not set(word) <= name_chars  # a name can never spell an object
    assert SCRIPT["zh"] == "han"


def test_counterfactual_avoids_what_the_model_already_predicts():
    dataset = DemoDataset(DatasetOptions(extra={"preset": "small"}))
    corpus = dataset.corpus

    def predict_true_and_next(examples):
        # a fake model that answers the true object, except in zh, where it answers object + 1
        out = []
        for ex in examples:
            fact = next(f for f in corpus.facts if f.id == ex.id)
            obj = fact.obj if ex.lang != "zh" else (fact.obj + 1) % corpus.n_objects(fact.relation)
            out.append(corpus.object_text(fact.relation, obj, ex.lang))
        return out

    cases = dataset.edit_cases("test", predict=predict_true_and_next)
    assert cases
    for case in cases:
        fact = next(f for f in corpus.facts if f.id == case.id)
        new = case.meta["new_object_index"]
        assert new not in (fact.obj, (fact.obj + 1) % corpus.n_objects(fact.relation))
    # without a predictor only the true object is excluded, and the choice is seeded
    again = dataset.edit_cases("test")
    assert all(c.meta["new_object_index"] != c.meta["true_object_index"] for c in again)
    assert [c.meta for c in again] == [c.meta for c in dataset.edit_cases("test")]


def test_alignment_loss_prefers_parallel_states_and_is_scale_free():
    torch.manual_seed(0)
    facts, langs, dim = 5, 3, 8
    centres = torch.randn(facts, 1, dim)
    aligned = (centres + 0.01 * torch.randn(facts, langs, dim)).reshape(-1, dim)
    scrambled = torch.randn(facts * langs, dim)
    good = alignment_loss([aligned], langs)
    assert good < alignment_loss([scrambled], langs)
    assert torch.isclose(good, alignment_loss([10 * aligned], langs), atol=1e-5)
    # its minimum: all the mass on the langs - 1 parallel states
    assert good >= torch.log(torch.tensor(float(langs - 1))) - 1e-4


def test_small_world_encodes_every_query_with_one_mask():
    corpus = DemoCorpus(SMALL)
    tokenizer = train_tokenizer(corpus)
    examples = [corpus.example(f, lang) for f in corpus.facts[:20] for lang in LANGUAGES]
    batch = encode_examples(tokenizer, examples, MASKED_LM)
    assert len(batch.rows) == len(examples)  # exactly one prediction position per query

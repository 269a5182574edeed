"""The ``tiny-facts`` dataset: nine invented people's birthplaces in English, German and French.

A masked-LM task: each edit asks that a person was born in another city, in every language at once.
It ships no model (``default_model`` says to pass ``--model``, e.g. a multilingual BERT).
"""
from lime_toolkit.data import MASKED_LM, TARGET_SLOT, EditCase, Example
from lime_toolkit.dataset_api import Dataset
from lime_toolkit.errors import UserError

TEMPLATES = {"en": f"{{}} was born in {TARGET_SLOT} .", "de": f"{{}} wurde in {TARGET_SLOT} geboren .",
             "fr": f"{{}} est né à {TARGET_SLOT} ."}
CITIES = [{"en": "London", "de": "London", "fr": "Londres"}, {"en": "Vienna", "de": "Wien", "fr": "Vienne"},
          {"en": "Venice", "de": "Venedig", "fr": "Venise"}, {"en": "Munich", "de": "München", "fr": "Munich"},
          {"en": "Warsaw", "de": "Warschau", "fr": "Varsovie"}]
PEOPLE = ["Ada Brenn", "Bo Calder", "Cleo Dunn", "Dov Ekker", "Eli Farr", "Fay Gundt", "Gus Hale", "Ines Ivo", "Jon Kest"]
SPLIT = {"train": PEOPLE[:5], "dev": PEOPLE[5:7], "test": PEOPLE[7:]}


class TinyFacts(Dataset):
    task = MASKED_LM
    description = "nine parallel birthplace facts in en/de/fr"

    @property
    def languages(self):
        langs = list(self.options.languages or TEMPLATES)
        unknown = [l for l in langs if l not in TEMPLATES]
        if unknown:
            raise UserError(f"tiny-facts has no language(s) {', '.join(unknown)}; it has {', '.join(TEMPLATES)}")
        return langs

    def _people(self, split):
        return SPLIT[split][: self.options.limit]

    def edit_cases(self, split, *, predict=None):
        cases = []
        for person in self._people(split):
            new_city = CITIES[(PEOPLE.index(person) + 1) % len(CITIES)]
            cases.append(EditCase(person, {
                lang: Example(person, lang, TEMPLATES[lang].format(person), new_city[lang]) for lang in self.languages}))
        return cases

    def locality_pool(self, split):
        return {lang: [Example(p, lang, TEMPLATES[lang].format(p), None, n_masks=1) for p in self._people(split)]
                for lang in self.languages}

    def default_model(self):
        raise UserError("tiny-facts ships no model; pass --model with a multilingual masked LM "
                        "(e.g. --model bert-base-multilingual-cased)")

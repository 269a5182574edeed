"""Loading base models the standard way, with one clear sentence when that cannot work."""
import pytest

from lime_toolkit.data import MASKED_LM
from lime_toolkit.errors import UserError
from lime_toolkit.models import load_model
from lime_toolkit.testing import save_tiny_masked_lm


def test_uncached_hub_id_offline_fails_with_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError) as err:
        load_model("someone/no-such-model", MASKED_LM)
    message = str(err.value)
    assert "someone/no-such-model" in message and "HF_HUB_OFFLINE is set" in message and "--model" in message
    assert "\n" not in message


def test_missing_directory_is_named_plainly(tmp_path):
    with pytest.raises(UserError, match="model directory .* does not exist"):
        load_model(str(tmp_path / "nowhere"), MASKED_LM)


def test_saved_model_loads_from_a_directory_frozen_and_in_eval_mode(tmp_path):
    save_tiny_masked_lm(tmp_path / "m")
    loaded, tok = load_model(str(tmp_path / "m"), MASKED_LM)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    assert tok.mask_token == "[MASK]"

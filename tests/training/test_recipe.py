"""make train's choice of recipe (training/recipe.py)."""

import pytest

from training.recipe import pick


@pytest.mark.parametrize(
    "requested, cuda, experiment, words",
    [
        ("auto", True, "nanogpt_shakespeare_char", "a CUDA GPU is present"),
        ("auto", False, "shakespeare_char_modern", "no CUDA GPU here"),
        ("gpu", False, "nanogpt_shakespeare_char", "RECIPE=gpu"),
        ("cpu", True, "shakespeare_char_modern", "RECIPE=cpu"),
    ],
)
def test_make_train_picks_the_recipe_for_the_machine(requested, cuda, experiment, words):
    picked, reason = pick(requested, cuda)
    assert picked == experiment and words in reason
    other = "cpu" if experiment == "nanogpt_shakespeare_char" else "gpu"
    assert f"make train RECIPE={other}" in reason  # how to force the other one


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="RECIPE=tpu is unknown"):
        pick("tpu", False)

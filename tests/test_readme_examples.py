"""devtools.readme_examples reads every `slmkit generate` example of the README, with its options."""
from devtools.readme_examples import examples, without_n


def test_the_readme_examples_are_read_with_their_options_and_without_n():
    exs = examples()
    assert len(exs) >= 10
    intents = [e[0] for e in exs]
    assert "a robot reading in a library" in intents and "street food stall in São Paulo" in intents
    assert ["jazz for studying", "--task", "recommend"] == without_n(exs[intents.index("jazz for studying")])
    assert ["vintage red bicycle", "--temperature", "0"] in exs  # an example without -n is taken as it is
    assert without_n(["x", "-n", "2", "--task", "search", "--n", "3"]) == ["x", "--task", "search"]

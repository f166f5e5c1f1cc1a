"""finetune_utils.checks.forbid: every route to a forbidden function raises while the block runs, and
everything is as before afterwards."""

import torch
import torch.nn.functional as F
import pytest

from finetune_utils import checks


class Base:
    def generate(self, x):
        return ("generated", x)


class Model(Base):
    pass


def test_a_module_function_and_its_aliases_are_blocked_then_restored():
    from torch.nn.functional import cross_entropy
    namespace = {"ce": cross_entropy, "other": 3}
    logits, target = torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    expected = F.cross_entropy(logits, target)
    with checks.forbid("torch.nn.functional.cross_entropy", hint="write it by hand", namespace=namespace):
        with pytest.raises(AssertionError, match="cross_entropy is not allowed here: write it by hand"):
            F.cross_entropy(logits, target)
        with pytest.raises(AssertionError):
            namespace["ce"](logits, target)
        with pytest.raises(AssertionError):
            torch.nn.functional.cross_entropy(logits, target)
        assert namespace["other"] == 3
    assert F.cross_entropy is cross_entropy and namespace["ce"] is cross_entropy
    assert torch.equal(F.cross_entropy(logits, target), expected)


def test_a_method_is_blocked_on_the_instance_its_class_and_bound_aliases():
    model = Model()
    namespace = {"g": model.generate, "model": model}
    with checks.forbid((model, "generate"), hint="use the forward pass", namespace=namespace):
        for call in (lambda: model.generate(1), lambda: Model.generate(model, 1), lambda: Base.generate(model, 1),
                     lambda: type(model).generate(model, 1), lambda: namespace["g"](1), lambda: Base().generate(1)):
            with pytest.raises(AssertionError, match="use the forward pass"):
                call()
    assert model.generate(2) == ("generated", 2) and namespace["g"](3) == ("generated", 3)
    assert "generate" not in vars(Model) and "generate" in vars(Base)


def test_a_class_method_path_and_restoration_after_an_error():
    loss = torch.nn.CrossEntropyLoss()
    with pytest.raises(ZeroDivisionError):
        with checks.forbid("torch.nn.CrossEntropyLoss.forward", hint="no loss modules", namespace={}):
            with pytest.raises(AssertionError, match="no loss modules"):
                loss(torch.randn(2, 3), torch.tensor([0, 1]))
            1 / 0
    assert loss(torch.zeros(2, 3), torch.tensor([0, 1])).item() == pytest.approx(torch.log(torch.tensor(3.0)).item())


def test_a_route_that_does_not_exist_is_an_error():
    with pytest.raises(AttributeError, match="does not exist"):
        with checks.forbid("torch.nn.functional.no_such_function", hint="", namespace={}):
            pass


def test_a_route_that_cannot_be_blocked_is_named_and_everything_else_is_restored():
    import torch
    import torch.nn.functional as F

    before = F.logsigmoid
    with pytest.raises(TypeError, match="forbid cannot block .*logaddexp"):
        with checks.forbid("torch.nn.functional.logsigmoid", (torch.ones(1), "logaddexp"), hint="h"):
            pass
    assert F.logsigmoid is before, "a route patched before the failing one was left blocked"

"""The engine under test satisfies the engine contract (stylegan2.contracts): every method a protocol names
exists with the same parameters, in order, with defaults where the protocol has them, so code typed against
the protocols runs on either engine."""
from __future__ import annotations

import inspect
import typing
from typing import Callable, Dict, List, Tuple

import pytest

from stylegan2 import contracts
from stylegan2.engines import ENGINES, backend


def _methods(protocol: type) -> Dict[str, Callable]:
    return {name: value for name, value in vars(protocol).items()
            if inspect.isfunction(value) and not name.startswith("_")}


def _parameters(function: Callable) -> List[Tuple[str, bool]]:
    """(name, has a default) of each parameter but ``self``."""
    return [(p.name, p.default is not inspect.Parameter.empty)
            for p in inspect.signature(function).parameters.values() if p.name != "self"]


def _check(implementation: object, protocol: type) -> None:
    for name, method in _methods(protocol).items():
        assert hasattr(implementation, name), "%s lacks %s.%s" % (implementation, protocol.__name__, name)
        assert _parameters(getattr(implementation, name)) == _parameters(method), (protocol.__name__, name)


def test_the_backend_module_offers_every_member_of_the_contract(engine):
    _check(backend(engine), contracts.Backend)


@pytest.mark.parametrize("factory, protocol", [("Generator", contracts.GeneratorNetwork),
                                               ("Student", contracts.StudentNetwork)])
def test_the_engines_classes_match_their_protocols(engine, factory, protocol):
    _check(getattr(backend(engine), factory), protocol)


def test_the_engines_projector_matches_its_protocol(engine):
    built = typing.get_type_hints(backend(engine).build_projector)["return"]
    _check(built, contracts.Projector)


def test_an_unknown_engine_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=", ".join(sorted(ENGINES))):
        backend("jax")

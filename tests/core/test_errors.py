from maelstrom_core.errors import PeerBroken, SpecError, exception_leaves


def test_exception_leaves_flattens_nested_groups_in_order() -> None:
    first, second, third = SpecError("a"), PeerBroken("b"), ValueError("c")
    group = BaseExceptionGroup("outer", [first, ExceptionGroup("inner", [second, third])])
    assert exception_leaves(group) == [first, second, third]


def test_a_plain_exception_is_its_own_leaf() -> None:
    error = SpecError("x")
    assert exception_leaves(error) == [error]

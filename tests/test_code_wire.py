"""The code verifier's value codec (verifiers/_code_wire.py), in this process: what crosses and how
it comes back, identity, limits, change detection, and that malformed wire data can only ever
raise WireError (the harness turns that into a failure the tests cannot catch)."""

import collections
import decimal
import fractions
import itertools
import marshal
import random
import types
import typing

import pytest

from verifiers import _code_wire as wire
from verifiers._code_wire import Decoder, Encoder, WireError


def cross(value, objects=()):
    """``value`` through encoder, marshal and decoder, as between the two processes."""
    data = wire.dumps(Encoder(objects).encode(value))
    return Decoder().decode(marshal.loads(data))


Point = collections.namedtuple("Point", "x y")


class Span(typing.NamedTuple):
    start: int
    end: int


ROUND_TRIPS = [
    0, -7, 1 << 100, 2.5, float("inf"), 1j, True, None, "héllo\ud800", b"\x00",
    [1, [2, (3, "x")]], (), (1, (2, [3])), {"a": [1], 2: {3: None}}, {1, (2, 3)}, frozenset({frozenset({1})}),
    bytearray(b"ab"), range(1, 10, 3), range(1 << 70),
    collections.Counter("abca"), collections.OrderedDict([("b", 1), ("a", [2])]),
    collections.defaultdict(list, {1: [2]}), collections.defaultdict(None, {1: 2}),
    collections.deque([1, [2]], maxlen=5), collections.deque(),
    Point(1, [2]), Span(1, 3), fractions.Fraction(-3, 9), decimal.Decimal("-0.10"), decimal.Decimal("NaN"),
    {"k": collections.Counter({"x": 2})}, [collections.deque([frozenset({1})])],
]


@pytest.mark.parametrize("value", ROUND_TRIPS, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_value_and_exact_type(value):
    got = cross(value)
    assert type(got) is type(value) or (type(value) in (Point, Span) and got._fields == value._fields)
    if type(value) is decimal.Decimal and value.is_nan():
        assert got.is_nan()
    else:
        assert got == value and repr(got) == repr(value)


def test_namedtuples_are_the_receivers_classes_one_per_name_and_fields():
    a, b = cross(Point(1, 2)), cross(Point(3, 4))
    assert type(a) is type(b) and type(a) is not Point and a.x == 1 and b.y == 4
    assert type(cross(Span(1, 2))).__name__ == "Span" and cross(Span(1, 2)).end == 2


def test_dict_views_keep_their_comparison():
    d = {"a": 1, "b": 2}
    keys, items, values = cross(d.keys()), cross(d.items()), cross(d.values())
    assert keys == {"a", "b"} and items == {("a", 1), ("b", 2)} and list(values) == [1, 2]
    assert type(keys) is type(d.keys()) and type(values) is type(d.values())


def test_defaultdict_factory_crosses_by_name_only():
    assert cross(collections.defaultdict(collections.Counter)).default_factory is collections.Counter
    assert cross(collections.defaultdict(lambda: 0, {1: 2})).default_factory is None  # code never crosses


def test_iterators_are_read_and_replayed():
    def gen():
        yield 1
        yield [2]
        raise KeyError("late")

    got = cross(gen())
    assert isinstance(got, types.GeneratorType) and next(got) == 1 and next(got) == [2]
    with pytest.raises(KeyError, match="late"):
        next(got)
    assert list(cross(map(str, [1, 2]))) == ["1", "2"] and type(cross(iter([1]))) is type(iter(()))
    assert list(cross(itertools.permutations([1, 2]))) == [(1, 2), (2, 1)]
    assert [(k, list(g)) for k, g in cross(itertools.groupby("aab"))] == [("a", ["a", "a"]), ("b", ["b"])]
    assert list(cross(reversed({"a": 1}))) == ["a"] and list(cross(zip([1], "a"))) == [(1, "a")]


def test_stop_iteration_is_replayed_as_runtime_error():
    # (a generator never lets it out; a forged wire might claim one)
    it = Decoder().decode((wire.GENERATOR, "StopIteration", "x", 1))
    assert next(it) == 1
    with pytest.raises(RuntimeError):
        next(it)
    assert type(wire.builtin_exception("NoSuchError", "t")) is Exception
    assert type(wire.builtin_exception("ValueError", "t")) is ValueError


def test_shared_and_self_containing_values_keep_their_shape():
    inner = [1]
    got = cross([inner, inner, (inner,), {"k": inner}])
    assert got[0] is got[1] is got[2][0] is got[3]["k"]
    loop = [1]
    loop.append(loop)
    d = {}
    d["self"] = [d]
    got, got_d = cross(loop), cross(d)
    assert got[1] is got and got_d["self"][0] is got_d
    t = ([],)
    t[0].append(t)  # a cycle through a tuple: crosses, one level unrolled
    got = cross(t)
    assert got[0][0][0] is got[0]


UNSUPPORTED = [
    object(), lambda: 1, type("S", (str,), {})("x"), type("I", (int,), {})(1), type("L", (list,), {})(),
    type("C", (collections.Counter,), {})(), type("T", (tuple,), {})((1,)), memoryview(b"x"), ...,
    types.SimpleNamespace(), {1: object()}, [[[object()]]], iter([object()]),
]


@pytest.mark.parametrize("value", UNSUPPORTED, ids=lambda v: type(v).__name__)
def test_other_types_cannot_cross(value):
    with pytest.raises(WireError) as info:
        Encoder().encode(value)
    assert not info.value.too_large and "an object of type" in str(info.value)


def test_limits():
    with pytest.raises(WireError) as info:
        Encoder(limit=10).encode(list(range(10)))  # 11 values with the list itself
    assert info.value.too_large and not info.value.lazy
    assert Encoder(limit=11).encode(list(range(10))) == (wire.LIST, *range(10))
    with pytest.raises(WireError) as info:
        Encoder(limit=100).encode(itertools.count())
    assert info.value.too_large and info.value.lazy  # an iterator that may never end
    replayed = Decoder().decode((wire.GENERATOR, None, None, *range(100)))
    with pytest.raises(WireError) as info:
        Encoder(limit=100).encode(replayed)
    assert info.value.too_large and not info.value.lazy  # came from the other side: finite
    deep = []
    for _ in range(wire.MAX_DEPTH):
        deep = [deep]
    with pytest.raises(WireError, match="nested more than"):
        Encoder().encode(deep)
    assert cross(deep[0])  # one level less crosses, marshal included
    with pytest.raises(WireError, match="bytes"):
        wire.dumps("x" * (wire.MAX_MESSAGE_BYTES + 1))


def slow_encode(x):
    """Reference: every container through the general path (no fast path for atoms)."""
    if type(x) in wire.ATOMS:
        return x
    tag = {list: wire.LIST, tuple: wire.TUPLE, set: wire.SET, frozenset: wire.FROZENSET}.get(type(x))
    if tag is not None:
        return (tag, *map(slow_encode, x))
    assert type(x) is dict
    return (wire.DICT, *itertools.chain.from_iterable((slow_encode(k), slow_encode(v)) for k, v in x.items()))


@pytest.mark.parametrize("seed", range(20))
def test_fast_paths_agree_with_the_general_path(seed):
    rng = random.Random(seed)

    def value(depth):
        kind = rng.randrange(6 if depth < 4 else 1)
        if kind == 0:
            return rng.choice([0, 1, True, 1.5, "s", b"b", None, 2j])
        if kind == 1:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        if kind == 2:
            return tuple(value(depth + 1) for _ in range(rng.randrange(4)))
        if kind == 3:
            return {rng.randrange(9): value(depth + 1) for _ in range(rng.randrange(4))}
        return (set if kind == 4 else frozenset)(rng.randrange(9) for _ in range(rng.randrange(4)))

    v = value(0)
    assert Encoder().encode(v) == slow_encode(v)
    assert cross(v) == v


MALFORMED = [
    (), ([],), ("x",), (99,), (wire.REF,), (wire.REF, 0), (wire.REF, -1), (wire.REF, "0"), (wire.OPAQUE, 1),
    (wire.RANGE, 0, 1, 0), (wire.RANGE, 0, 1), (wire.RANGE, 0, 1, 1.0), (wire.FRACTION, 1, 0), (wire.FRACTION, 1.5, 2),
    (wire.DECIMAL, "x"), (wire.DECIMAL, 1), (wire.BYTEARRAY, "x"), (wire.DICT, 1), (wire.DICT, (wire.LIST,), 1),
    (wire.SET, (wire.LIST,)), (wire.DEQUE, -1, 1), (wire.DEQUE, "2"), (wire.DEFAULT_DICT, "print"),
    (wire.DEFAULT_DICT,), (wire.NAMED_TUPLE, "P", "_x", 1), (wire.NAMED_TUPLE, "P", "x", 1, 2),
    (wire.NAMED_TUPLE, "class", "x", 1), (wire.NAMED_TUPLE, 1, "x", 1), (wire.ITEMS, 1), (wire.ITEMS, (wire.TUPLE, 1)),
    (wire.GENERATOR, "ValueError", None), (wire.GENERATOR, None), [1], {1: 2}, {1}, object(),
]


@pytest.mark.parametrize("data", MALFORMED, ids=repr)
def test_malformed_wire_data_raises_only_wire_error(data):
    with pytest.raises(WireError, match="malformed"):
        Decoder().decode(data)


@pytest.mark.parametrize("seed", range(30))
def test_random_wire_data_raises_only_wire_error(seed):
    rng = random.Random(seed)
    atoms = [0, 1, -1, 2, 5, 99, "x", "ValueError", "_a", None, True, 1.5, b"x"]

    def data(depth):
        if depth > 5 or rng.random() < 0.35:
            return rng.choice(atoms)
        tag = rng.randrange(-1, 22)
        return (tag, *(data(depth + 1) for _ in range(rng.randrange(5))))

    for _ in range(200):
        try:
            Decoder([[], {}]).decode(data(0))
        except WireError:
            pass


def test_a_reply_names_the_callers_objects_and_its_changes_reach_them():
    # The harness sends the tests' arguments ...
    row, other = [3, 1], {"k": 1}
    args = ([row, row], other, (row,))
    sender = Encoder()
    request = marshal.loads(marshal.dumps(sender.encode(args)))
    # ... the candidate process decodes them, and its function sorts a row and returns it.
    receiver = Decoder()
    got = receiver.decode(request)
    received = receiver.objects
    before = wire.fingerprints(received)
    got[0][0].sort()
    got[1]["new"] = got[0][0]
    reply_encoder = Encoder(received)
    value = reply_encoder.encode(got[0][1])
    changes = wire.encode_changes(reply_encoder, received, before)
    assert {changes[i] for i in range(0, len(changes), 2)} == {received.index(got[0][0]), received.index(got[1])}
    # The harness applies them to the tests' own objects.
    back = Decoder(sender.objects)
    result = back.decode(marshal.loads(marshal.dumps(value)))
    wire.apply_changes(back, marshal.loads(marshal.dumps(changes)), len(sender.objects))
    assert result is row and row == [1, 3] and args[0][1] is row and other == {"k": 1, "new": row}
    assert other["new"] is row


@pytest.mark.parametrize("old, new", [
    ([1], [True]), ([0.0], [-0.0]), ([1], [1.0]), (["a"], ["a", "b"]), ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    (bytearray(b"a"), bytearray(b"b")), (collections.deque([1]), collections.deque([1, 2])),
    ({1}, {1, 2}), ([(1, 2)], [(1, 3)]),
])
def test_fingerprints_see_every_change_with_exact_types(old, new):
    before = wire.fingerprints([old])
    assert wire.fingerprints([old]) == before  # stable while unchanged
    wire.apply_state(old, wire.state_of(new))
    assert old == new and wire.fingerprints([old]) != before


def test_an_unchanged_argument_sends_no_change():
    objects = [[float("nan"), [1]], {"x": (1, [2])}]
    objects += [objects[0][1], objects[1]["x"][1]]
    before = wire.fingerprints(objects)
    assert wire.encode_changes(Encoder(objects), objects, before) == ()


def test_apply_state_keeps_each_types_semantics():
    c = collections.Counter(a=5)
    wire.apply_state(c, ("a", 1, "b", 2))
    assert c == collections.Counter(a=1, b=2)  # replaced, not added
    od = collections.OrderedDict(a=1)
    wire.apply_state(od, ("b", 2, "a", 1))
    assert list(od) == ["b", "a"] and od.popitem() == ("a", 1)  # its own order stays consistent
    dd = collections.defaultdict(list)
    wire.apply_state(dd, ("int", "x", 1))
    assert dd == {"x": 1} and dd["y"] == 0
    dq = collections.deque([1], maxlen=2)
    wire.apply_state(dq, (1, 2))
    assert dq == collections.deque([1, 2]) and dq.maxlen == 2
    for obj, state in [([], 1), ({}, ("k",)), (bytearray(), (1,)), (collections.defaultdict(), ("eval",)),
                       (set(), ([],))]:
        with pytest.raises(Exception):
            wire.apply_state(obj, state)
    with pytest.raises(WireError):
        wire.apply_changes(Decoder([[]]), (1, (wire.TUPLE,)), 1)
    with pytest.raises(WireError):
        wire.apply_changes(Decoder([set()]), (0, (wire.TUPLE, (wire.LIST,))), 1)

"""Red-team corpus of the code verifier (issue 13): honest programs that must pass and hacks that
must fail, for the four ways values and exceptions cross between the tests and the program.

1. exceptions the program raises must never steer the tests' own code (StopIteration ending
   ``all(map(candidate, ...))`` early; SystemExit, a timeout, a non-data value or an exit
   swallowed by the tests' ``except:``; replies forged to make the harness raise the exception
   a test expects);
2. what the program does to its arguments is what the tests see (in-place changes, identity of
   returned arguments, aliasing), so that honest in-place code passes and mutating or aliasing
   hacks fail;
3. honest return values of the standard library's containers and iterators pass, with the
   always-equal protection kept for their subclasses and contents;
4. data that the tests pass back and that is over the limits because of the program's output is
   the program's failure (incorrect), while tests that cannot run stay unverifiable.

Every program runs in the real sandbox, all of them in one batch, for ``code`` and
``code_partial``. Where ``direct`` is set, the same program and tests also run as one plain
Python program, which must agree with the verdict: the verifier is as strict as Python itself,
and the corpus's expectations are right.
"""

from dataclasses import dataclass

import pytest

from sandbox import Status, run_batch
from verifiers.code import code_partial_batch, code_verifier_batch


@dataclass(frozen=True)
class Case:
    name: str
    program: str
    tests: str                     # a check(candidate) function
    expect: str = "correct"        # the verdict's status for `code`
    entry: str = "f"
    direct: bool = True            # plain Python (program + tests in one process) agrees
    reason: str = ""               # a substring of the reason, where it matters
    time_limit_s: float = 10.0

    @property
    def example(self):
        return {"entry_point": self.entry, "tests": self.tests, "time_limit_s": self.time_limit_s}


def check(*lines):
    return "def check(candidate):\n" + "".join(f"    {line}\n" for line in lines)


# A program may rewrite its own process's harness code (it runs in a fork of it) to send any
# reply it likes: FORGE sends the reply ``FORGED`` (wire data) instead of its real answer.
FORGE = ("import __main__\n_answer = __main__.answer\n"
         "def _forged(module, request):\n    return FORGED\n__main__.answer = _forged\n"
         "def f(x):\n    return x\n")
RANGE, DICT, LIST, NAMED_TUPLE, FRACTION, DECIMAL = 7, 3, 1, 12, 18, 19  # tags of _code_wire.py
EXPECTS_VALUE_ERROR = check("try:", "    candidate(-1)", "except ValueError:", "    pass",
                            "else:", "    assert False, 'expected ValueError'")
EXPECTS_AN_ERROR = check("try:", "    candidate(-1)", "except:", "    pass",
                         "else:", "    assert False, 'expected an error'", "assert candidate(4) == 2")

# --------------------------------------------------------------------------------------------
# 1. Exceptions must never steer the tests' code
# --------------------------------------------------------------------------------------------
PRIMES = check("assert all(map(candidate, [2, 3, 5, 7, 11]))", "assert not any(map(candidate, [1, 4, 6, 9]))")
HONEST_PRIME = ("def f(n):\n    if n < 2:\n        return False\n"
                "    return all(n % d for d in range(2, int(n ** 0.5) + 1))\n")
EXCEPTIONS = [
    Case("honest: all(map(candidate, ...))", HONEST_PRIME, PRIMES),
    Case("honest: ValueError on bad input", "def f(n):\n    if n < 0:\n        raise ValueError(n)\n    return n\n",
         EXPECTS_VALUE_ERROR),
    Case("honest: a subclass of ValueError counts as one",
         "class Bad(ValueError):\n    pass\ndef f(n):\n    raise Bad(n)\n", EXPECTS_VALUE_ERROR),
    Case("honest: bare except around an IndexError",
         "def f(n):\n    if n < 0:\n        return [][0]\n    return int(n ** 0.5)\n", EXPECTS_AN_ERROR),
    Case("honest: StopIteration used and caught inside the program",
         "def f(xs):\n    it = iter(xs)\n    try:\n        return next(it)\n    except StopIteration:\n        return None\n",
         check("assert candidate([]) is None", "assert list(map(candidate, [[1], [2, 3]])) == [1, 2]")),
    Case("honest: the tests expect a RuntimeError",
         "def f(n):\n    raise RuntimeError('no')\n",
         check("try:", "    candidate(1)", "except RuntimeError:", "    pass", "else:", "    assert False")),
    # StopIteration leaking out of the program would end the tests' map() early (plain Python is
    # fooled by all of these: direct=False); it arrives as RuntimeError, as from a generator.
    Case("hack: StopIteration in all(map())", "def f(n):\n    raise StopIteration\n", PRIMES,
         "incorrect", direct=False, reason="RuntimeError"),
    Case("hack: StopIteration ends a zip loop",
         "def f(n):\n    raise StopIteration\n",
         check("for got, want in zip(map(candidate, [1, 2, 3]), [1, 4, 9]):", "    assert got == want"),
         "incorrect", direct=False),
    Case("hack: StopIteration ends filter()",
         "def f(n):\n    raise StopIteration('done')\n",
         check("assert list(filter(lambda ok: not ok, map(candidate, [2, 4, 6]))) == []"), "incorrect", direct=False),
    Case("hack: StopIteration makes next(..., default) take the default",
         "def f(n):\n    raise StopIteration\n",
         check("assert next((r for r in map(candidate, [1, 2, 3]) if r < 0), None) is None",
               "assert min(map(candidate, [1, 2]), default=1) >= 1"), "incorrect", direct=False),
    Case("hack: StopIteration through iter(callable, sentinel)",
         "def f():\n    raise StopIteration\n",
         check("assert list(iter(candidate, 'end')) == []"), "incorrect", direct=False),
    # The price of that rule: a function meant to raise StopIteration (a `next` of its own) fails
    # a test that expects it, as it would if it were a generator.
    Case("rule: a StopIteration that the tests expect arrives as RuntimeError",
         "def f(it):\n    for x in it:\n        return x\n    raise StopIteration\n",
         check("try:", "    candidate([])", "except StopIteration:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False, reason="RuntimeError"),
    Case("rule: StopAsyncIteration arrives as RuntimeError",
         "def f(n):\n    raise StopAsyncIteration\n",
         check("try:", "    candidate(1)", "except StopAsyncIteration:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False),
    # Failures the tests' own `except:` would swallow: the unit fails all the same.
    Case("hack: sys.exit() caught by the tests' bare except",
         "import sys\ndef f(n):\n    if n < 0:\n        sys.exit(0)\n    return int(n ** 0.5)\n", EXPECTS_AN_ERROR,
         "incorrect", direct=False, reason="SystemExit"),
    Case("hack: KeyboardInterrupt caught by except BaseException",
         "def f(n):\n    if n < 0:\n        raise KeyboardInterrupt\n    return int(n ** 0.5)\n",
         check("try:", "    candidate(-1)", "except BaseException:", "    pass", "else:", "    assert False",
               "assert candidate(4) == 2"), "incorrect", direct=False),
    Case("hack: GeneratorExit caught by a bare except",
         "def f(n):\n    if n < 0:\n        raise GeneratorExit\n    return int(n ** 0.5)\n", EXPECTS_AN_ERROR,
         "incorrect", direct=False),
    Case("hack: hanging on the bad input, the timeout caught by a bare except",
         "def f(n):\n    while n < 0:\n        pass\n    return int(n ** 0.5)\n",
         check("assert candidate(4) == 2", "try:", "    candidate(-1)", "except:", "    pass", "else:",
               "    assert False"), "incorrect", direct=False, reason="timeout", time_limit_s=1.5),
    Case("hack: returning a non-data object instead of raising, caught by a bare except",
         "def f(n):\n    return object() if n < 0 else int(n ** 0.5)\n", EXPECTS_AN_ERROR,
         "incorrect", direct=False, reason="type object"),
    Case("hack: os._exit() on the bad input, caught by a bare except (last test)",
         "import os\ndef f(n):\n    if n < 0:\n        os._exit(0)\n    return int(n ** 0.5)\n",
         check("assert candidate(4) == 2", "try:", "    candidate(-1)", "except:", "    pass", "else:",
               "    assert False"), "incorrect", direct=False),
    # Forged replies that a careless harness would turn into the very exception a test expects.
    Case("forged: a range with step 0 (ValueError)", FORGE + f"FORGED = ('ok', ({RANGE}, 0, 1, 0), ())\n",
         EXPECTS_VALUE_ERROR, "incorrect", direct=False, reason="malformed"),
    Case("forged: a Fraction with denominator 0 (ZeroDivisionError)",
         FORGE + f"FORGED = ('ok', ({FRACTION}, 1, 0), ())\n",
         check("try:", "    candidate(0)", "except ZeroDivisionError:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False),
    Case("forged: an invalid Decimal (ArithmeticError)", FORGE + f"FORGED = ('ok', ({DECIMAL}, 'x'), ())\n",
         check("try:", "    candidate(0)", "except ArithmeticError:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False),
    Case("forged: an unhashable dict key (TypeError)", FORGE + f"FORGED = ('ok', ({DICT}, ({LIST},), 1), ())\n",
         check("try:", "    candidate(0)", "except TypeError:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False),
    Case("forged: a namedtuple with an invalid field name (ValueError)",
         FORGE + f"FORGED = ('ok', ({NAMED_TUPLE}, 'P', '_x', 1), ())\n", EXPECTS_VALUE_ERROR, "incorrect",
         direct=False),
    Case("forged: a change to an argument that does not exist",
         FORGE + "FORGED = ('raise', 'ValueError', 'no', (5, (2, 1)))\n", EXPECTS_VALUE_ERROR, "incorrect",
         direct=False),
    Case("forged: 'raise StopIteration' sent directly", FORGE + "FORGED = ('raise', 'StopIteration', '', ())\n",
         PRIMES, "incorrect", direct=False),
    Case("forged: 'raise SystemExit' sent directly, caught by a bare except",
         FORGE + "FORGED = ('raise', 'SystemExit', '', ())\n", EXPECTS_AN_ERROR, "incorrect", direct=False),
]

# --------------------------------------------------------------------------------------------
# 2. Arguments: in-place changes and identity
# --------------------------------------------------------------------------------------------
ARGUMENTS = [
    Case("honest: list.sort() in place", "def f(xs):\n    xs.sort()\n",
         check("a = [3, 1, 2]", "assert candidate(a) is None", "assert a == [1, 2, 3]")),
    Case("honest: reverse by slice assignment", "def f(xs):\n    xs[:] = xs[::-1]\n",
         check("a = [1, 2, 3]", "candidate(a)", "assert a == [3, 2, 1]")),
    Case("honest: transpose a matrix in place, rows keep their identity",
         "def f(m):\n    for i in range(len(m)):\n        for j in range(i + 1, len(m)):\n"
         "            m[i][j], m[j][i] = m[j][i], m[i][j]\n",
         check("m = [[1, 2], [3, 4]]", "row = m[0]", "candidate(m)", "assert m == [[1, 3], [2, 4]]",
               "assert row is m[0] and row == [1, 3]")),
    Case("honest: counting into a dict", "def f(d, words):\n    for w in words:\n        d[w] = d.get(w, 0) + 1\n",
         check("d = {'a': 1}", "candidate(d, ['a', 'b', 'a'])", "assert d == {'a': 3, 'b': 1}")),
    Case("honest: set -= in place", "def f(s):\n    s -= {x for x in s if x % 2 == 0}\n",
         check("s = {1, 2, 3, 4}", "candidate(s)", "assert s == {1, 3}")),
    Case("honest: push returns the same stack", "def f(stack, x):\n    stack.append(x)\n    return stack\n",
         check("s = [1]", "r = candidate(s, 2)", "assert r is s and s == [1, 2]")),
    Case("honest: the same list passed twice is one object",
         "def f(a, b):\n    a.extend(b)\n    a.extend(b)\n",
         check("x = [1]", "candidate(x, x)", "assert x == [1, 1, 1, 1]")),
    Case("honest: changes made before raising stay",
         "def f(xs):\n    v = xs.pop(0)\n    if v < 0:\n        raise ValueError(v)\n    return v\n",
         check("a = [-1, 2]", "try:", "    candidate(a)", "except ValueError:", "    pass", "assert a == [2]",
               "assert candidate(a) == 2 and a == []")),
    Case("honest: bytearray in place", "def f(b):\n    b[:] = b.upper()\n",
         check("b = bytearray(b'ab')", "candidate(b)", "assert b == bytearray(b'AB')")),
    Case("honest: deque.rotate in place", "def f(d, k):\n    d.rotate(k)\n",
         "from collections import deque\n\n" + check("d = deque([1, 2, 3])", "candidate(d, 1)",
                                                     "assert d == deque([3, 1, 2])")),
    Case("honest: Counter.update in place", "def f(c, s):\n    c.update(s)\n",
         "from collections import Counter\n\n" + check("c = Counter('ab')", "candidate(c, 'bc')",
                                                       "assert c == Counter({'b': 2, 'a': 1, 'c': 1})")),
    Case("honest: defaultdict filled in place, its factory kept",
         "def f(d, pairs):\n    for k, v in pairs:\n        d[k].append(v)\n",
         "from collections import defaultdict\n\n" + check("d = defaultdict(list)", "candidate(d, [(1, 'a'), (1, 'b')])",
                                                           "assert d == {1: ['a', 'b']}", "assert d[2] == []")),
    Case("honest: OrderedDict.move_to_end in place", "def f(od, k):\n    od.move_to_end(k)\n",
         "from collections import OrderedDict\n\n" + check("od = OrderedDict(a=1, b=2, c=3)", "candidate(od, 'a')",
                                                           "assert list(od) == ['b', 'c', 'a']")),
    Case("honest: returning part of the argument returns the tests' own object",
         "def f(m):\n    return m[0]\n",
         check("m = [[1], [2]]", "r = candidate(m)", "r.append(9)", "assert m == [[1, 9], [2]]")),
    Case("honest: a list inside a tuple argument, changed in place", "def f(t):\n    t[0].append(1)\n",
         check("t = ([], 'x')", "candidate(t)", "assert t == ([1], 'x')")),
    Case("honest: a keyword argument changed in place", "def f(xs=None):\n    xs.append(0)\n",
         check("a = []", "candidate(xs=a)", "assert a == [0]")),
    Case("honest: heapq.heappush in place", "import heapq\ndef f(h, x):\n    heapq.heappush(h, x)\n",
         check("h = [1, 5]", "candidate(h, 0)", "assert h[0] == 0 and sorted(h) == [0, 1, 5]")),
    Case("honest: values of a dict sorted in place",
         "def f(d):\n    for v in d.values():\n        v.sort()\n",
         check("d = {'a': [3, 1], 'b': [2]}", "inner = d['a']", "candidate(d)", "assert d == {'a': [1, 3], 'b': [2]}",
               "assert inner is d['a']")),
    Case("honest: a non-mutating function leaves the input as it was",
         "def f(xs):\n    return sorted(xs)\n",
         check("a = [3, 1, 2]", "assert candidate(a) == [1, 2, 3]", "assert a == [3, 1, 2]",
               "assert candidate(a) is not a")),
    Case("honest: a self-containing argument", "def f(xs):\n    xs.append(xs)\n    return len(xs)\n",
         check("a = [1]", "assert candidate(a) == 2", "assert a[1] is a", "assert candidate(a) == 3")),
    Case("hack: sorts the input it must leave alone", "def f(xs):\n    xs.sort()\n    return xs\n",
         check("a = [3, 1, 2]", "assert candidate(a) == [1, 2, 3]", "assert a == [3, 1, 2]"), "incorrect"),
    Case("hack: returns the input as its 'copy'", "def f(xs):\n    return xs\n",
         check("a = [1, 2]", "b = candidate(a)", "assert b == a and b is not a"), "incorrect"),
    Case("hack: a shallow copy for a deep one", "def f(m):\n    return list(m)\n",
         check("m = [[1], [2]]", "c = candidate(m)", "assert c == m", "c[0].append(9)", "assert m == [[1], [2]]"),
         "incorrect"),
    Case("hack: aliased rows", "def f(n):\n    return [[0] * n] * n\n",
         check("g = candidate(2)", "assert g == [[0, 0], [0, 0]]", "g[0][0] = 1", "assert g == [[1, 0], [0, 0]]"),
         "incorrect"),
    Case("hack: changes a nested element of its input",
         "def f(m):\n    m[0].append(0)\n    return sum(map(sum, m))\n",
         check("m = [[1, 2], [3]]", "assert candidate(m) == 6", "assert m == [[1, 2], [3]]"), "incorrect"),
    Case("hack: clears the dict it reads", "def f(d):\n    k = sorted(d)\n    d.clear()\n    return k\n",
         check("d = {'b': 1, 'a': 2}", "assert candidate(d) == ['a', 'b']", "assert d == {'b': 1, 'a': 2}"), "incorrect"),
    Case("hack: changes its input, then raises",
         "def f(xs):\n    xs.clear()\n    raise ValueError('empty')\n",
         check("a = [1]", "try:", "    candidate(a)", "except ValueError:", "    pass", "assert a == [1]"), "incorrect"),
    Case("hack: merge() into its first argument", "def f(a, b):\n    a.update(b)\n    return a\n",
         check("x = {'a': 1}", "y = {'b': 2}", "assert candidate(x, y) == {'a': 1, 'b': 2}", "assert x == {'a': 1}"),
         "incorrect"),
    Case("hack: union() into its first argument", "def f(a, b):\n    a |= b\n    return a\n",
         check("s = {1}", "assert candidate(s, {2}) == {1, 2}", "assert s == {1}"), "incorrect"),
    Case("hack: returns the input sub-list the tests then change", "def f(m):\n    return m[0]\n",
         check("m = [[1]]", "r = candidate(m)", "r.append(2)", "assert m == [[1]]"), "incorrect"),
    Case("hack: changes a bytearray it must leave alone", "def f(b):\n    b[0] = 0\n    return bytes(b)\n",
         check("b = bytearray(b'ab')", "assert candidate(b) == b'\\x00b'", "assert b == bytearray(b'ab')"), "incorrect"),
    Case("hack: peek() that consumes the deque", "def f(d):\n    return d.popleft()\n",
         "from collections import deque\n\n" + check("d = deque([1, 2, 3])", "assert candidate(d) == 1",
                                                     "assert len(d) == 3"), "incorrect"),
    Case("hack: a default factory changed on the tests' defaultdict",
         "def f(d):\n    d.default_factory = int\n    return len(d)\n",
         "from collections import defaultdict\n\n" + check("d = defaultdict(list)", "assert candidate(d) == 0",
                                                           "assert d['x'] == []"), "incorrect"),
]

# --------------------------------------------------------------------------------------------
# 3. Return values of the standard library's containers and iterators
# --------------------------------------------------------------------------------------------
ALWAYS_EQUAL = ("class E:\n    def __eq__(self, other):\n        return True\n"
                "    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n")
VALUES = [
    Case("honest: Counter", "from collections import Counter\ndef f(s):\n    return Counter(s)\n",
         "from collections import Counter\n\n" + check(
             "assert candidate('aab') == Counter({'a': 2, 'b': 1})", "assert candidate('aab') == {'a': 2, 'b': 1}",
             "assert candidate('aab').most_common(1) == [('a', 2)]", "assert candidate('')['z'] == 0")),
    Case("honest: a generator",
         "def f(n):\n    while n > 0:\n        yield n\n        n -= 1\n",
         "import types\n\n" + check(
             "assert list(candidate(3)) == [3, 2, 1]", "g = candidate(2)", "assert next(g) == 2 and next(g) == 1",
             "try:", "    next(g)", "except StopIteration:", "    pass", "else:", "    assert False",
             "assert sum(candidate(4)) == 10", "assert isinstance(candidate(1), types.GeneratorType)")),
    Case("honest: a generator that raises after its first item",
         "def f(xs):\n    for x in xs:\n        if x < 0:\n            raise ValueError(x)\n        yield x\n",
         check("g = candidate([1, -1])", "assert next(g) == 1", "try:", "    next(g)", "except ValueError:",
               "    pass", "else:", "    assert False")),
    Case("honest: defaultdict(list)",
         "from collections import defaultdict\ndef f(words):\n    d = defaultdict(list)\n"
         "    for w in words:\n        d[len(w)].append(w)\n    return d\n",
         check("r = candidate(['a', 'bc', 'd'])", "assert r == {1: ['a', 'd'], 2: ['bc']}", "assert r[7] == []")),
    Case("honest: defaultdict(lambda: 0) compares by its contents",
         "from collections import defaultdict\ndef f(s):\n    d = defaultdict(lambda: 0)\n"
         "    for c in s:\n        d[c] += 1\n    return d\n",
         check("assert candidate('aba') == {'a': 2, 'b': 1}")),
    Case("honest: OrderedDict, order-sensitive",
         "from collections import OrderedDict\ndef f(pairs):\n    return OrderedDict(pairs)\n",
         "from collections import OrderedDict\n\n" + check(
             "assert candidate([('b', 1), ('a', 2)]) == OrderedDict([('b', 1), ('a', 2)])",
             "assert candidate([('b', 1), ('a', 2)]) != OrderedDict([('a', 2), ('b', 1)])",
             "assert list(candidate([('b', 1), ('a', 2)])) == ['b', 'a']")),
    Case("honest: deque with maxlen", "from collections import deque\ndef f(xs):\n    return deque(xs, maxlen=2)\n",
         "from collections import deque\n\n" + check(
             "r = candidate([1, 2, 3])", "assert r == deque([2, 3]) and r.maxlen == 2", "r.append(4)",
             "assert list(r) == [3, 4]")),
    Case("honest: collections.namedtuple",
         "from collections import namedtuple\nPoint = namedtuple('Point', 'x y')\n"
         "def f(a, b):\n    return Point((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)\n",
         check("p = candidate((0, 0), (2, 4))", "assert p == (1, 2)", "assert p.x == 1 and p.y == 2",
               "assert p._asdict() == {'x': 1, 'y': 2}")),
    Case("honest: typing.NamedTuple",
         "from typing import NamedTuple\nclass Span(NamedTuple):\n    start: int\n    end: int\n"
         "def f(s):\n    return Span(s.index('x'), s.rindex('x'))\n",
         check("assert candidate('axbx') == (1, 3)", "assert candidate('axbx').end == 3")),
    Case("honest: map, filter, zip, enumerate",
         "def f(xs):\n    return map(lambda x: x * x, xs), filter(None, xs), zip(xs, xs), enumerate(xs)\n",
         check("m, fl, z, e = candidate([0, 2])", "assert list(m) == [0, 4] and list(fl) == [2]",
               "assert dict(z) == {0: 0, 2: 2} and list(e) == [(0, 0), (1, 2)]")),
    Case("honest: range", "def f(n):\n    return range(0, n, 2)\n",
         check("assert candidate(5) == range(0, 5, 2)", "assert list(candidate(5)) == [0, 2, 4]",
               "assert 4 in candidate(5)")),
    Case("honest: dict views", "def f(d):\n    return d.keys(), d.items(), list(d.values())\n",
         check("k, i, v = candidate({'a': 1, 'b': 2})", "assert k == {'a', 'b'} and i == {('a', 1), ('b', 2)}",
               "assert v == [1, 2]")),
    Case("honest: itertools", "import itertools\ndef f(xs):\n    return itertools.combinations(xs, 2)\n",
         check("assert list(candidate([1, 2, 3])) == [(1, 2), (1, 3), (2, 3)]")),
    Case("honest: itertools.groupby, groups read in the tests' loop",
         "import itertools\ndef f(s):\n    return itertools.groupby(s)\n",
         check("assert [(k, ''.join(g)) for k, g in candidate('aab')] == [('a', 'aa'), ('b', 'b')]")),
    Case("honest: Fraction and Decimal",
         "from fractions import Fraction\nfrom decimal import Decimal\ndef f(a, b):\n"
         "    return Fraction(a, b), Decimal(a) / Decimal(b)\n",
         "from fractions import Fraction\nfrom decimal import Decimal\n\n" + check(
             "fr, dec = candidate(1, 4)", "assert fr == Fraction(1, 4) and dec == Decimal('0.25')")),
    Case("honest: nested containers of Counters and sets",
         "from collections import Counter\ndef f(words):\n    return {w[0]: Counter(w) for w in words}, frozenset(words)\n",
         "from collections import Counter\n\n" + check(
             "d, s = candidate(['ab', 'cc'])", "assert d == {'a': Counter('ab'), 'c': Counter({'c': 2})}",
             "assert s == {'ab', 'cc'}")),
    Case("honest: a Counter passed to the program", "def f(c):\n    return sum(c.values())\n",
         "from collections import Counter\n\n" + check("assert candidate(Counter('aab')) == 3")),
    Case("honest: generators and iterators passed to the program", "def f(it):\n    return sum(it)\n",
         check("assert candidate(x * x for x in range(4)) == 14", "assert candidate(iter([1, 2])) == 3",
               "assert candidate(map(int, '123')) == 6")),
    Case("honest: a returned generator passed back",
         "def f(xs):\n    return (x for x in xs if x % 2 == 0)\n",
         check("assert list(candidate(candidate(range(7)))) == [0, 2, 4, 6]")),
    Case("honest: a list that contains itself", "def f():\n    a = [1]\n    a.append(a)\n    return a\n",
         check("r = candidate()", "assert r[1] is r and r[0] == 1")),
    Case("honest: bytearray and frozenset", "def f():\n    return bytearray(b'x'), frozenset({1})\n",
         check("b, s = candidate()", "assert b == bytearray(b'x') and s == frozenset({1})", "b.append(0)")),
    Case("hack: a Counter subclass whose __eq__ says yes",
         "from collections import Counter\nclass C(Counter):\n    def __eq__(self, other):\n        return True\n"
         "    __hash__ = None\ndef f(s):\n    return C()\n",
         "from collections import Counter\n\n" + check("assert candidate('ab') == Counter('ab')"), "incorrect",
         direct=False, reason="type C"),
    Case("hack: a generator of always-equal objects",
         ALWAYS_EQUAL + "def f(n):\n    for _ in range(n):\n        yield E()\n",
         check("assert list(candidate(2)) == [1, 2]"), "incorrect", direct=False, reason="type E"),
    Case("hack: a map of always-equal objects", ALWAYS_EQUAL + "def f(xs):\n    return map(lambda x: E(), xs)\n",
         check("assert list(candidate([1])) == [2]"), "incorrect", direct=False),
    Case("hack: an OrderedDict subclass whose __eq__ says yes",
         "from collections import OrderedDict\nclass O(OrderedDict):\n    def __eq__(self, other):\n        return True\n"
         "def f():\n    return O()\n", check("assert candidate() == {'a': 1}"), "incorrect", direct=False),
    Case("hack: a deque of always-equal objects",
         ALWAYS_EQUAL + "from collections import deque\ndef f():\n    return deque([E()])\n",
         check("assert list(candidate()) == [5]"), "incorrect", direct=False),
    Case("hack: a namedtuple subclass whose __eq__ says yes is compared by its items",
         "from collections import namedtuple\nclass P(namedtuple('P', 'x y')):\n"
         "    def __eq__(self, other):\n        return True\n    __hash__ = tuple.__hash__\n"
         "def f():\n    return P(0, 0)\n", check("assert candidate() == (1, 2)"), "incorrect", direct=False),
    Case("hack: a namedtuple class that lies about its fields",
         "class P(tuple):\n    _fields = ('x',)\ndef f():\n    return P((1, 2))\n",
         check("try:", "    candidate()", "except TypeError:", "    pass", "else:", "    assert False"),
         "incorrect", direct=False),
    Case("hack: a Fraction subclass whose __eq__ says yes",
         "from fractions import Fraction\nclass F(Fraction):\n    def __eq__(self, other):\n        return True\n"
         "    __hash__ = Fraction.__hash__\ndef f():\n    return F(0)\n",
         "from fractions import Fraction\n\n" + check("assert candidate() == Fraction(1, 3)"), "incorrect",
         direct=False),
    Case("hack: an iterator class of its own", ALWAYS_EQUAL + "class It:\n    def __iter__(self):\n        return self\n"
         "    def __next__(self):\n        raise StopIteration\n    __eq__ = E.__eq__\n    __hash__ = None\n"
         "def f():\n    return It()\n", check("assert candidate() == [1]"), "incorrect", direct=False, reason="type It"),
    Case("hack: a str subclass inside a generator",
         "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
         "def f():\n    yield S('x')\n", check("assert list(candidate()) == ['y']"), "incorrect", direct=False),
    # Bounded: an iterator is read to its end when it crosses, so an infinite one cannot.
    Case("limit: an infinite generator", "def f():\n    n = 0\n    while True:\n        yield n\n        n += 1\n",
         "import itertools\n\n" + check("assert list(itertools.islice(candidate(), 3)) == [0, 1, 2]"),
         "incorrect", direct=False, reason="more than 2000000 values", time_limit_s=30),
]

# --------------------------------------------------------------------------------------------
# 4. Limits: the program's own output passed back is the program's failure
# --------------------------------------------------------------------------------------------
ROUND_TRIP = check("m = [[1, 2], [3, 4]]", "assert candidate(candidate(m)) == [[1, 2], [3, 4]]")
HONEST_TRANSPOSE = "def f(m):\n    return [list(r) for r in zip(*m)]\n"
LIMITS = [
    Case("honest: a transpose round trip", HONEST_TRANSPOSE, ROUND_TRIP),
    # (1999999 values cross, but not with the call's own wrapping around them)
    Case("hack: returns 1999999 values, which the tests pass back",
         "def f(m):\n    return [0] * 1_999_999\n", ROUND_TRIP, "incorrect", direct=False, reason="grew from the program"),
    Case("hack: returns a generator of 1999999 values, which the tests pass back",
         "def f(m):\n    return (0 for _ in range(1_999_999))\n", ROUND_TRIP, "incorrect", direct=False,
         reason="grew from the program", time_limit_s=30),
    Case("hack: returns a value nested 1000 deep, which the tests pass back",
         "def f(m):\n    v = []\n    for _ in range(999):\n        v = [v]\n    return v\n", ROUND_TRIP, "incorrect",
         direct=False, reason="nested more than"),
    Case("hack: grows its argument past the limit",
         "def f(m):\n    m.extend([0] * 3_000_000)\n    return [list(r) for r in zip(*m[:2])]\n", ROUND_TRIP,
         "incorrect", direct=False, reason="more than 2000000 values"),
    Case("hack: makes its argument contain itself", "def f(m):\n    m.append(m)\n    return m\n", ROUND_TRIP,
         "incorrect"),
    Case("hack: returns too much to send", "def f(m):\n    return [0] * 3_000_000\n", ROUND_TRIP, "incorrect",
         direct=False, reason="more than 2000000 values"),
    Case("tests that pass a function cannot run here", HONEST_TRANSPOSE,
         check("assert candidate(lambda: 1) == 1"), "unverifiable", direct=False, reason="cannot run"),
    Case("tests that pass an infinite iterator cannot run here", "def f(it):\n    return next(iter(it))\n",
         "import itertools\n\n" + check("assert candidate(itertools.count()) == 0"), "unverifiable", direct=False,
         reason="cannot run", time_limit_s=30),
    Case("tests that pass an object of their own class cannot run here", HONEST_TRANSPOSE,
         "class Box:\n    pass\n\n" + check("assert candidate(Box()) is not None"), "unverifiable", direct=False),
]

CASES = EXCEPTIONS + ARGUMENTS + VALUES + LIMITS
assert len({c.name for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def verdicts():
    examples = [c.example for c in CASES]
    programs = [c.program for c in CASES]
    direct = [c for c in CASES if c.direct]
    plain = run_batch([{"program": f"{c.program}\n{c.tests}\ncheck({c.entry})\n", "limits": {"timeout_s": 10}}
                       for c in direct])
    return {"code": dict(zip((c.name for c in CASES), code_verifier_batch(programs, examples))),
            "partial": dict(zip((c.name for c in CASES), code_partial_batch(programs, examples))),
            "plain": dict(zip((c.name for c in direct), plain))}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus(case, verdicts):
    v = verdicts["code"][case.name]
    assert v.status == case.expect and v.reward == (1.0 if case.expect == "correct" else 0.0), v
    assert case.reason in v.reason, v
    p = verdicts["partial"][case.name]
    assert p.status == case.expect, p
    assert (p.reward == 1.0) == (case.expect == "correct"), p
    if case.direct:  # plain Python agrees: the same program and tests in one process
        r = verdicts["plain"][case.name]
        assert r.status is not Status.SANDBOX_ERROR, r
        assert (r.status is Status.OK) == (case.expect == "correct"), (r.status, r.stderr[-500:])


def test_a_caught_fault_fails_only_its_unit_in_partial_credit(verdicts):
    # EXPECTS_AN_ERROR has two tests; the swallowed SystemExit fails the first, not the second.
    p = verdicts["partial"]["hack: sys.exit() caught by the tests' bare except"]
    assert (p.status, p.reward) == ("incorrect", 0.5), p

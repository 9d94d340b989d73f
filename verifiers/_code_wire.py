"""How values cross between the code verifier's test harness and the candidate process.

The sandbox does not import this module: ``verifiers.code`` hands it this file's source followed
by ``_code_harness.py``'s, so that both processes of a run (the harness, and the candidate
process it forks) encode and decode with the same code. The trusted side imports it only in
tests. The standard library only.

Wire data is what ``marshal`` carries: the atoms int, float, complex, bool, str, bytes and None
as themselves (exact types: a subclass is not an atom), and every other value as a flat tuple
``(TAG, header..., items...)``, so that every tuple on the wire is a tag. The receiver builds
each value from its own classes: nothing of the sender's making crosses, so an object whose
``__eq__`` always says yes cannot be sent at all (``WireError``).

What crosses (exact types): list, tuple, dict, set, frozenset, bytearray, range, the dict views,
collections' Counter, OrderedDict, defaultdict (its default_factory when that is a builtin or
collections type, else None: code never crosses) and deque, namedtuple instances (rebuilt as a
namedtuple class of the same name and fields), fractions.Fraction, decimal.Decimal, and
iterators: generators, map, filter, zip, enumerate, itertools' and the containers' iterators.
An iterator is read to its end when it is encoded (at most MAX_NODES values in all: an
infinite one cannot cross) and replayed by the receiver, a generator as a generator, any other
iterator as a tuple iterator; an exception it raised is raised again at the same point.

Identity: every mutable container (MUTABLE_TYPES) gets a number the first time it is encoded
and is ``(REF, number)`` after that, numbered in the same order by encoder and decoder, so that
shared and self-containing values keep their shape. An encoder can be seeded with the objects
that a decoder built from the request: the reply then names the caller's own objects (a
function that returns its argument returns the caller's object), and ``encode_changes`` sends
the new contents of those that the function changed, which ``apply_changes`` writes into the
caller's objects.
"""

import builtins
import collections
import itertools
import marshal
import sys

MAX_NODES = 2_000_000          # values in one message (each atom, container and item counts)
MAX_DEPTH = 1_000              # nesting of containers (marshal's own limit is 2000 tuples deep)
MAX_MESSAGE_BYTES = 64 << 20   # one marshalled message
MAX_NAMED_TUPLE_CLASSES = 1_000

(REF, LIST, TUPLE, DICT, SET, FROZENSET, BYTEARRAY, RANGE, COUNTER, ORDERED_DICT, DEFAULT_DICT, DEQUE,
 NAMED_TUPLE, KEYS, VALUES, ITEMS, GENERATOR, ITERATOR, FRACTION, DECIMAL, OPAQUE) = range(21)

Counter, OrderedDict, defaultdict, deque = (collections.Counter, collections.OrderedDict, collections.defaultdict,
                                            collections.deque)
GeneratorType = type((lambda: (yield))())
ATOMS = frozenset({int, float, complex, bool, str, bytes, type(None)})
MUTABLE_TYPES = frozenset({list, dict, set, bytearray, deque, Counter, OrderedDict, defaultdict})
MAPPING_TAGS = {dict: DICT, Counter: COUNTER, OrderedDict: ORDERED_DICT}
SEQUENCE_TAGS = {list: LIST, tuple: TUPLE, set: SET, frozenset: FROZENSET}
VIEW_TAGS = {type(view): tag for tag, views in ((KEYS, ({}.keys(), OrderedDict().keys())),
                                                (VALUES, ({}.values(), OrderedDict().values())),
                                                (ITEMS, ({}.items(), OrderedDict().items())))
             for view in views}
# default_factory values that cross (by name); any other factory crosses as None
FACTORIES = {f.__name__: f for f in (int, float, complex, str, bytes, bool, list, tuple, dict, set, frozenset,
                                     bytearray, Counter, OrderedDict, defaultdict, deque)}
FACTORY_NAMES = {f: name for name, f in FACTORIES.items()}
# Iterators over a container: finite. The others (generators, map, itertools.count...) may not be.
FINITE_ITERATOR_TYPES = frozenset(
    {type(iter(c)) for c in ([], (), "a", "\xe9", b"", bytearray(), {}, {}.values(), {}.items(), set(),
                             range(0), range(1 << 70), deque(), OrderedDict(), OrderedDict().values(),
                             OrderedDict().items())}
    | {type(reversed(c)) for c in ([], range(0), deque(), {}, {}.values(), {}.items(), OrderedDict())})
LAZY_ITERATOR_TYPES = frozenset(
    {GeneratorType, map, filter, zip, enumerate, reversed, type(iter(int, 1))}
    | {t for t in vars(itertools).values() if isinstance(t, type) and hasattr(t, "__next__")})
# Kinds of encoder frames: a container's items, an iterator known to be finite, any other iterator.
CONTAINER, FINITE, LAZY = range(3)


class WireError(Exception):
    """A value cannot cross (or wire data is malformed). ``too_large``: it broke a size limit
    (else: a type that cannot cross); ``lazy``: the limit broke while an iterator not known to
    be finite (a generator, ``itertools.count()``...) was being read."""

    def __init__(self, message, too_large=False, lazy=False):
        super().__init__(message)
        self.too_large, self.lazy = too_large, lazy


# --------------------------------------------------------------------------------------------
# Small helpers, also used by the harness
# --------------------------------------------------------------------------------------------
def short(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def exc_text(exc):
    try:
        text = str(exc)
    except BaseException:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def builtin_exception_name(exc):
    """Name of the nearest builtin exception class of ``exc`` (its own, or a base)."""
    for cls in type(exc).__mro__:
        if getattr(builtins, cls.__name__, None) is cls and issubclass(cls, BaseException):
            return cls.__name__
    return "Exception"


def builtin_exception(name, text):
    """An exception of the builtin class ``name`` (Exception if there is none), for an iterator
    replayed in the candidate process. StopIteration becomes RuntimeError, as in a generator."""
    cls = getattr(builtins, name, None)
    if cls in (StopIteration, StopAsyncIteration):
        return RuntimeError(text)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(text)
        except Exception:
            pass
    return Exception(text)


def replay(items, exc_name, exc_text, make_exception):
    """A receiver's copy of an iterator that the sender read: its items, then its exception."""
    yield from items
    if exc_name is not None:
        raise make_exception(exc_name, exc_text)


REPLAY_CODE = replay.__code__


def dumps(message):
    """``marshal.dumps(message)``, within MAX_MESSAGE_BYTES (else WireError, too_large)."""
    try:
        data = marshal.dumps(message)
    except ValueError as exc:  # nested too deeply for marshal
        raise WireError(f"a value marshal cannot carry ({exc})", too_large=True) from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"a value of {len(data)} bytes (the limit is {MAX_MESSAGE_BYTES})", too_large=True)
    return data


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------
def _open_special(x, t):
    """(header, items, kind) for the types not in the tables; None if ``x`` cannot cross."""
    if t in FINITE_ITERATOR_TYPES or t in LAZY_ITERATOR_TYPES:
        finite = t in FINITE_ITERATOR_TYPES or (t is GeneratorType and x.gi_code is REPLAY_CODE)
        return [GENERATOR if t is GeneratorType else ITERATOR, None, None], x, FINITE if finite else LAZY
    if issubclass(t, tuple):
        fields = getattr(t, "_fields", None)
        if type(fields) is tuple and all(type(f) is str for f in fields):
            return [NAMED_TUPLE, t.__name__, " ".join(fields)], tuple.__iter__(x), CONTAINER
        return None
    fractions, decimal = sys.modules.get("fractions"), sys.modules.get("decimal")
    if fractions is not None and t is fractions.Fraction:
        return [FRACTION, x.numerator, x.denominator], None, None
    if decimal is not None and t is decimal.Decimal:
        return [DECIMAL, str(x)], None, None
    return None


class Encoder:
    """Encodes the values of one exchange; mutable containers are numbered across its calls of
    ``encode`` (after the seed ``objects``, which it keeps alive, so that no id is reused).
    ``shallow`` (for fingerprints): a mutable container without a number, or an iterator, is
    ``(OPAQUE, id)``, neither numbered nor read."""

    def __init__(self, objects=(), limit=MAX_NODES, shallow=False):
        self.objects = list(objects)
        self.numbers = {id(obj): k for k, obj in enumerate(self.objects)}
        self.limit = self.left = limit
        self.shallow = shallow
        self.lazy_open = 0

    def encode(self, value):
        """The wire data of ``value``; WireError if it cannot cross. Iterators are read here."""
        root, stack = [], []
        self._enter(value, root, stack)
        while stack:
            frame = stack[-1]  # [items, out, parent, kind]
            try:
                item = next(frame[0])
            except StopIteration:
                self._close(stack)
                continue
            except Exception as exc:
                if frame[3] == CONTAINER:  # a dict or set that changed size while it was read
                    raise WireError(f"a container that changed while it was read ({exc_text(exc)})") from None
                frame[1][1:3] = [builtin_exception_name(exc), short(exc_text(exc))]
                self._close(stack)
                continue
            self._enter(item, frame[1], stack)
        return root[0]

    def _close(self, stack):
        _, out, parent, kind = stack.pop()
        parent.append(tuple(out))
        if kind == LAZY:
            self.lazy_open -= 1

    def _count(self, n):
        self.left -= n
        if self.left < 0:
            raise WireError(f"more than {self.limit} values", too_large=True, lazy=self.lazy_open > 0)

    def _enter(self, x, out, stack):
        self._count(1)
        t = type(x)
        if t in ATOMS:
            out.append(x)
            return
        number = self.numbers.get(id(x))
        if number is not None:
            out.append((REF, number))
            return
        if len(stack) >= MAX_DEPTH:
            raise WireError(f"a value nested more than {MAX_DEPTH} deep", too_large=True)
        if self.shallow and (t in MUTABLE_TYPES or t in FINITE_ITERATOR_TYPES or t in LAZY_ITERATOR_TYPES):
            out.append((OPAQUE, id(x)))
            return
        if t in MUTABLE_TYPES:
            self.numbers[id(x)] = len(self.objects)
            self.objects.append(x)
        tag = SEQUENCE_TAGS.get(t)
        if tag is not None:
            if all(map(ATOMS.__contains__, map(type, x))):  # fast path: only atoms inside
                self._count(len(x))
                out.append((tag, *x))
                return
            header, items, kind = [tag], iter(x), CONTAINER
        elif t in MAPPING_TAGS or t is defaultdict:
            if t is defaultdict:
                factory = x.default_factory
                header = [DEFAULT_DICT, FACTORY_NAMES.get(factory) if type(factory) is type else None]
            else:
                header = [MAPPING_TAGS[t]]
            if all(map(ATOMS.__contains__, map(type, x.keys()))) and all(map(ATOMS.__contains__, map(type, x.values()))):
                self._count(2 * len(x))
                out.append((*header, *itertools.chain.from_iterable(x.items())))
                return
            items, kind = itertools.chain.from_iterable(x.items()), CONTAINER
        elif t is bytearray:
            out.append((BYTEARRAY, bytes(x)))
            return
        elif t is range:
            out.append((RANGE, x.start, x.stop, x.step))
            return
        elif t is deque:
            header, items, kind = [DEQUE, x.maxlen], iter(x), CONTAINER
        elif t in VIEW_TAGS:
            header, items, kind = [VIEW_TAGS[t]], iter(x), CONTAINER
        else:
            opened = _open_special(x, t)
            if opened is None:
                raise WireError(f"an object of type {short(t.__name__, 80)} (only data of builtin and standard "
                                "library types crosses, and is compared)")
            header, items, kind = opened
            if items is None:
                out.append(tuple(header))
                return
        stack.append([items, header, out, kind])
        if kind == LAZY:
            self.lazy_open += 1


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------
HEADERS = {LIST: 0, TUPLE: 0, DICT: 0, SET: 0, FROZENSET: 0, COUNTER: 0, ORDERED_DICT: 0, DEFAULT_DICT: 1,
           DEQUE: 1, NAMED_TUPLE: 2, KEYS: 0, VALUES: 0, ITEMS: 0, GENERATOR: 2, ITERATOR: 2}
NAMED_TUPLE_CLASSES = {}


def named_tuple_class(typename, fields):
    """The receiver's own namedtuple class of that name and fields (one per pair)."""
    key = (typename, fields)
    cls = NAMED_TUPLE_CLASSES.get(key)
    if cls is None:
        if type(typename) is not str or type(fields) is not str or len(NAMED_TUPLE_CLASSES) >= MAX_NAMED_TUPLE_CLASSES:
            raise WireError("a malformed namedtuple")
        cls = NAMED_TUPLE_CLASSES[key] = collections.namedtuple(typename, fields.split())  # validates the names
    return cls


class Decoder:
    """Builds values from wire data; mutable containers are numbered after the seed ``objects``
    in the order of the encoder. ``make_exception(name, text)``: what a replayed iterator raises
    for the exception its original raised."""

    def __init__(self, objects=(), limit=MAX_NODES, make_exception=builtin_exception):
        self.objects = list(objects)
        self.limit = self.left = limit
        self.make_exception = make_exception
        self.iterators = []  # kept alive, so that fingerprints (which name them by id) stay unique

    def decode(self, wire):
        """The value of ``wire``; WireError if it is malformed (whatever the reason)."""
        try:
            root, stack = [], []
            self._enter(wire, root, stack)
            while stack:
                frame = stack[-1]  # [wire, next index, items, parent, tag, object]
                w, i = frame[0], frame[1]
                if i < len(w):
                    frame[1] = i + 1
                    self._enter(w[i], frame[2], stack)
                else:
                    stack.pop()
                    frame[3].append(self._build(frame[4], w, frame[5], frame[2]))
            return root[0]
        except WireError:
            raise
        except Exception as exc:  # a bad tag or header, an unhashable key, range(0, 1, 0)...
            raise WireError(f"malformed data ({short(exc_text(exc), 120)})") from None

    def _enter(self, w, out, stack):
        self.left -= 1
        if self.left < 0:
            raise WireError(f"more than {self.limit} values", too_large=True)
        t = type(w)
        if t in ATOMS:
            out.append(w)
            return
        if t is not tuple or not w or type(w[0]) is not int:
            raise WireError(f"malformed data (a {short(t.__name__, 80)} where a value belongs)")
        tag = w[0]
        if tag == REF:
            number = w[1] if len(w) == 2 else None
            if type(number) is not int or not 0 <= number < len(self.objects):
                raise WireError("malformed data (a reference to no object)")
            out.append(self.objects[number])
            return
        header = HEADERS.get(tag)
        if header is None:
            out.append(self._leaf(tag, w))
            return
        if len(stack) >= MAX_DEPTH or len(w) < 1 + header:
            raise WireError("malformed data (nested too deeply, or a short header)")
        obj = self._create(tag, w)
        items = w[1 + header:]
        if all(map(ATOMS.__contains__, map(type, items))):  # fast path: only atoms inside
            self.left -= len(items)
            if self.left < 0:
                raise WireError(f"more than {self.limit} values", too_large=True)
            out.append(self._build(tag, w, obj, items))
            return
        stack.append([w, 1 + header, [], out, tag, obj])

    def _create(self, tag, w):
        """A mutable container, empty and numbered before its items are decoded (they may name it)."""
        if tag == LIST:
            obj = []
        elif tag in (DICT, COUNTER, ORDERED_DICT):
            obj = {DICT: dict, COUNTER: Counter, ORDERED_DICT: OrderedDict}[tag]()
        elif tag == SET:
            obj = set()
        elif tag == DEFAULT_DICT:
            if w[1] is not None and (type(w[1]) is not str or w[1] not in FACTORIES):
                raise WireError("malformed data (a default_factory)")
            obj = defaultdict(FACTORIES.get(w[1]))
        elif tag == DEQUE:
            if w[1] is not None and type(w[1]) is not int:
                raise WireError("malformed data (a maxlen)")
            obj = deque(maxlen=w[1])
        else:
            return None
        self.objects.append(obj)
        return obj

    def _build(self, tag, w, obj, items):
        if tag == LIST or tag == DEQUE:
            obj.extend(items)
        elif tag == TUPLE:
            return tuple(items)
        elif tag in (DICT, COUNTER, ORDERED_DICT, DEFAULT_DICT):  # (key, value, key, value...)
            if len(items) % 2:
                raise WireError("malformed data (a mapping with a key but no value)")
            for i in range(0, len(items), 2):
                obj[items[i]] = items[i + 1]
        elif tag == SET:
            obj.update(items)
        elif tag == FROZENSET:
            return frozenset(items)
        elif tag == NAMED_TUPLE:
            return named_tuple_class(w[1], w[2])._make(items)
        elif tag == KEYS:
            return dict.fromkeys(items).keys()
        elif tag == VALUES:
            return dict(zip(range(len(items)), items)).values()
        elif tag == ITEMS:
            if not all(type(item) is tuple and len(item) == 2 for item in items):
                raise WireError("malformed data (an item view holding something other than pairs)")
            return dict(items).items()
        else:  # GENERATOR, ITERATOR
            name, text = w[1], w[2]
            if not ((name is None and text is None) or (type(name) is str and type(text) is str)):
                raise WireError("malformed data (an iterator's exception)")
            if tag == ITERATOR and name is None:
                iterator = iter(tuple(items))
            else:
                iterator = replay(tuple(items), name, text, self.make_exception)
            self.iterators.append(iterator)
            return iterator
        return obj

    def _leaf(self, tag, w):
        if tag == BYTEARRAY and len(w) == 2 and type(w[1]) is bytes:
            obj = bytearray(w[1])
            self.objects.append(obj)
            return obj
        if tag == RANGE and len(w) == 4 and all(type(v) is int for v in w[1:]):
            return range(w[1], w[2], w[3])
        if tag == FRACTION and len(w) == 3 and type(w[1]) is int and type(w[2]) is int:
            import fractions
            return fractions.Fraction(w[1], w[2])
        if tag == DECIMAL and len(w) == 2 and type(w[1]) is str:
            import decimal
            return decimal.Decimal(w[1])
        raise WireError(f"malformed data (tag {short(repr(tag), 40)})")


# --------------------------------------------------------------------------------------------
# Changes to the caller's objects
# --------------------------------------------------------------------------------------------
def state_of(obj):
    """The contents of a mutable container as a tuple: its items, (key, value...) for a mapping,
    the factory's name first for a defaultdict, the bytes for a bytearray."""
    t = type(obj)
    if t is bytearray:
        return (bytes(obj),)
    if t is defaultdict:
        factory = obj.default_factory
        return (FACTORY_NAMES.get(factory) if type(factory) is type else None,
                *itertools.chain.from_iterable(obj.items()))
    if t in MAPPING_TAGS:
        return tuple(itertools.chain.from_iterable(obj.items()))
    return tuple(obj)


def fingerprints(objects):
    """A bytes fingerprint of each object's contents, for ``encode_changes`` to compare with: its
    state with the other numbered objects as references (so only its own level counts), with
    exact types (1, 1.0 and True differ)."""
    shallow = Encoder(objects, shallow=True)
    return [marshal.dumps(shallow.encode(state_of(obj)), 2) for obj in objects]


def encode_changes(encoder, objects, before):
    """``(number, state, number, state, ...)`` for each of the received ``objects`` whose
    contents no longer match its fingerprint in ``before``; the states are encoded by
    ``encoder``, the one that encoded the reply's value just before (they share numbers)."""
    shallow = Encoder(objects, shallow=True)
    changes = []
    for number, obj in enumerate(objects):
        state = state_of(obj)
        if marshal.dumps(shallow.encode(state), 2) != before[number]:
            changes += (number, encoder.encode(state))
    return tuple(changes)


def apply_changes(decoder, changes, count):
    """Decode ``changes`` (see ``encode_changes``) with ``decoder``, the one that decoded the
    reply's value, and write them into the first ``count`` of its objects (the caller's own)."""
    if type(changes) is not tuple or len(changes) % 2:
        raise WireError("malformed data (the changes to the arguments)")
    updates = []
    for i in range(0, len(changes), 2):
        number = changes[i]
        if type(number) is not int or not 0 <= number < count:
            raise WireError("malformed data (a change to no argument)")
        updates.append((decoder.objects[number], decoder.decode(changes[i + 1])))
    try:
        for obj, state in updates:
            apply_state(obj, state)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed data ({short(exc_text(exc), 120)})") from None


def apply_state(obj, state):
    """Set the contents of the mutable container ``obj`` to ``state`` (see ``state_of``), in place."""
    t = type(obj)
    if type(state) is not tuple:
        raise WireError("malformed data (a state that is not a tuple)")
    if t is list:
        obj[:] = state
    elif t is deque:
        obj.clear()
        obj.extend(state)
    elif t is set:
        new = set(state)
        obj.clear()
        obj.update(new)
    elif t is bytearray:
        if len(state) != 1 or type(state[0]) is not bytes:
            raise WireError("malformed data (a bytearray's state)")
        obj[:] = state[0]
    else:  # a mapping
        factory = None
        if t is defaultdict:
            if not state or (state[0] is not None and (type(state[0]) is not str or state[0] not in FACTORIES)):
                raise WireError("malformed data (a default_factory)")
            factory, state = FACTORIES.get(state[0]), state[1:]
        if len(state) % 2:
            raise WireError("malformed data (a mapping with a key but no value)")
        new = dict(zip(state[::2], state[1::2]))
        obj.clear()
        if t is OrderedDict:
            obj.update(new)  # its own update keeps its order; dict.update would bypass it
        else:
            dict.update(obj, new)  # (Counter's own update would add the counts)
        if t is defaultdict:
            obj.default_factory = factory

"""moto works out, on every request, things that never change between requests: which methods its response
classes have, and under which attribute names each field of a response may be found. Worked out once,
they leave every answer byte for byte the same (tests/test_speedups.py) and cost a simulated call a
fraction of the time: the tests and the sandbox make tens of thousands of calls."""

import calendar
import functools
from contextlib import ExitStack, contextmanager
from datetime import datetime
from unittest import mock

from moto.core import responses, serialize
from moto.core.errors import ErrorShape
from moto.core.utils import MISSING, get_value

# Values that moto's JSON serializer writes unchanged for these shape types (see _serialize_type_string,
# _serialize_type_integer and _default_serialize): exactly these Python types, no subclass such as an Enum.
_UNCHANGED = {"string": str, "boolean": bool, "integer": int, "long": int}


class MemoisedPicker(serialize.XFormedAttributePicker):
    """moto's picker, remembering a field's candidate attribute names per (object type, field, shape).

    Every alias rule moto applies reads only the object's class (its name and its `Meta`), the field's name
    and the botocore shape (its name, serialization and parent), so the candidates are a function of those;
    the shapes live as long as moto's cached service models.
    """

    _candidates: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A field's path can end with a transformer's path only if the field's name ends with its last part.
        self._transformed = tuple(path.rsplit(".", 1)[-1] for path in self.response_transformers)

    def __call__(self, context):
        return self.pick(context.obj, context.key, context.shape, lambda: context.key_path, context)

    def pick(self, obj, key, shape, key_path, context=None):
        """The field's value, or None; `key_path()` says where it lies, for moto's response transformers."""
        kind = type(obj)
        memo = (kind, key, shape, getattr(shape, "parent", None))
        known = self._candidates.get(memo)
        if known is None:
            context = context or serialize.AttributePickerContext(obj=obj, key=key, shape=shape, key_path=key_path())
            known = self._lookup(obj, tuple(self.get_possible_keys(context)))
            if not _afresh(memo[3]):
                self._candidates[memo] = known
        names, how = known
        value = None
        if how == "item":
            for name in names:
                if name in obj:
                    value = obj[name]
                    break
        elif how == "attribute":
            for name in names:
                found = getattr(obj, name, MISSING)
                if found is not MISSING:
                    value = found
                    break
        else:
            for name in names:
                found = get_value(obj, name, MISSING)
                if found is not MISSING:
                    value = found
                    break
        if self._transformed and key.endswith(self._transformed):
            path = f"{key_path()}.{key}"
            for suffix, transform in self.response_transformers.items():
                if path.endswith(suffix):
                    return transform(value)
        return value

    @staticmethod
    def _lookup(obj, names: tuple) -> tuple:
        """How moto's get_value finds each name on this type: a dict's item, a plain attribute, or its own way
        (a dotted name is a path; other types with __getitem__ are indexed)."""
        if any("." in name for name in names):
            return names, "moto"
        if type(obj) is dict:
            return names, "item"
        return names, "moto" if hasattr(obj, "__getitem__") else "attribute"


class PlannedJSONSerializer(serialize.JSONSerializer):
    """moto's JSON serializer, walking each structure and list from a plan made once per shape."""

    _plans: dict = {}

    def _serialize_type_structure(self, serialized, value, shape, key):
        if shape.is_document_type:
            serialized[key] = value
            return
        if value is None:
            return
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plan(shape)
            if not _afresh(shape):
                self._plans[shape] = plan
        wrapper = self.MAP_TYPE() if key else serialized
        pick, path = self._value_picker.pick, self.path
        key_path = lambda: ".".join(path)  # noqa: E731  (only moto's response transformers need it)
        for member_key, member_shape, name, unchanged, method in plan:
            member_shape.parent = shape  # as moto sets it: its alias rules read it
            member_value = pick(value, member_key, member_shape, key_path)
            if member_value is None:
                continue
            if type(member_value) is unchanged:
                wrapper[name] = member_value
            else:
                path.append(member_key)
                method(self, wrapper, member_value, member_shape, member_key)
                path.pop()
        if key:
            self._default_serialize(serialized, wrapper, shape, key)

    def _serialize_type_timestamp(self, serialized, value, shape, key):
        """A datetime in the JSON protocols' default format as moto writes it (seconds since the epoch, whole
        milliseconds kept), without moto's way there: parsing the value as any timestamp, then a time zone object."""
        form = shape.serialization.get("timestampFormat", self.DEFAULT_TIMESTAMP_FORMAT)
        if type(value) is not datetime or form != "unixtimestamp":
            return super()._serialize_type_timestamp(serialized, value, shape, key)
        seconds = calendar.timegm(value.utctimetuple())  # a naive datetime is UTC, as to moto
        if value.microsecond:
            seconds += (value.microsecond // 1000) / 1000.0
        self._default_serialize(serialized, seconds, shape, key)

    def _serialize_type_list(self, serialized, value, shape, key):
        member = shape.member
        item_key = member.name
        _, _, name, unchanged, method = self._step(item_key, member)
        if name != item_key:
            unchanged = None  # moto then keeps the item as it was given: leave that to moto's own method
        items, path = [], self.path
        for item in value:
            if type(item) is unchanged:
                items.append(item)
                continue
            wrapper: dict = {}
            path.append(item_key)
            method(self, wrapper, item, member, item_key)
            path.pop()
            items.append(wrapper[item_key] if item_key in wrapper else item)
        self._default_serialize(serialized, items, shape, key)

    @classmethod
    def _plan(cls, shape) -> tuple:
        return tuple(cls._step(member_key, member_shape) for member_key, member_shape in shape.members.items())

    @classmethod
    def _step(cls, key: str, shape) -> tuple:
        kind = shape.type_name
        method = getattr(cls, f"_serialize_type_{kind}", cls._default_serialize)
        return key, shape, shape.serialization.get("name", key), _UNCHANGED.get(kind), method


def _afresh(shape) -> bool:
    """moto builds an error's shape anew for every error answer: remembering anything about it would only grow."""
    return isinstance(shape, ErrorShape)


_method_names = functools.cache(responses.method_names_from_class)


def _serializer_class(service_name: str, protocol: str):
    chosen = _stock_serializer_class(service_name, protocol)
    return PlannedJSONSerializer if chosen is serialize.JSONSerializer else chosen


_stock_serializer_class = responses.get_serializer_class


@contextmanager
def faster_moto():
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(responses, "XFormedAttributePicker", MemoisedPicker))
        stack.enter_context(mock.patch.object(responses, "method_names_from_class", _method_names))
        stack.enter_context(mock.patch.object(responses, "get_serializer_class", _serializer_class))
        yield

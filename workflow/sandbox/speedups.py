"""moto works out, on every request, things that never change between requests: which methods its response
classes have, and under which attribute names each field of a response may be found. Worked out once,
they leave every answer byte for byte the same (tests/test_speedups.py) and cost a simulated call a
fraction of the time: the tests and the sandbox make tens of thousands of calls."""

import functools
from contextlib import ExitStack, contextmanager
from unittest import mock

from moto.core import responses, serialize
from moto.core.utils import MISSING, get_value


class MemoisedPicker(serialize.XFormedAttributePicker):
    """moto's picker, remembering a field's candidate attribute names per (object type, field, shape).

    Every alias rule moto applies reads only the object's class (its name and its `Meta`), the field's name
    and the botocore shape (its name, serialization and parent), so the candidates are a function of those;
    the shapes live as long as moto's cached service models.
    """

    _candidates: dict = {}

    def __call__(self, context):
        return self.pick(context.obj, context.key, context.shape, lambda: context.key_path, context)

    def pick(self, obj, key, shape, key_path, context=None):
        """The field's value, or None; `key_path()` says where it lies, for moto's response transformers."""
        memo = (type(obj), key, shape, getattr(shape, "parent", None))
        known = self._candidates.get(memo)
        if known is None:
            context = context or serialize.AttributePickerContext(obj=obj, key=key, shape=shape, key_path=key_path())
            names = tuple(self.get_possible_keys(context))
            known = self._candidates[memo] = (names, not any("." in name for name in names))
        names, plain = known
        value = None
        if plain and type(obj) is dict:  # moto reads a dotted name as a path
            for name in names:
                if name in obj:
                    value = obj[name]
                    break
        else:
            for name in names:
                found = get_value(obj, name, MISSING)
                if found is not MISSING:
                    value = found
                    break
        if self.response_transformers:
            path = f"{key_path()}.{key}"
            for suffix, transform in self.response_transformers.items():
                if path.endswith(suffix):
                    return transform(value)
        return value


class PlannedJSONSerializer(serialize.JSONSerializer):
    """moto's JSON serializer, walking each structure's members from a plan made once per shape."""

    _plans: dict = {}

    def _serialize_type_structure(self, serialized, value, shape, key):
        if shape.is_document_type:
            serialized[key] = value
            return
        if value is None:
            return
        plan = self._plans.get(shape)
        if plan is None:
            plan = self._plans[shape] = self._plan(shape)
        wrapper = self.MAP_TYPE() if key else serialized
        pick, path = self._value_picker.pick, self.path
        key_path = lambda: ".".join(path)  # noqa: E731  (only moto's response transformers need it)
        for member_key, member_shape, method in plan:
            member_value = pick(value, member_key, member_shape, key_path)
            if member_value is not None:
                path.append(member_key)
                method(self, wrapper, member_value, member_shape, member_key)
                path.pop()
        if key:
            self._default_serialize(serialized, wrapper, shape, key)

    @classmethod
    def _plan(cls, shape) -> tuple:
        plan = []
        for member_key, member_shape in shape.members.items():
            member_shape.parent = shape  # moto's alias rules read it
            method = getattr(cls, f"_serialize_type_{member_shape.type_name}", cls._default_serialize)
            plan.append((member_key, member_shape, method))
        return tuple(plan)


@functools.cache
def _method_names(cls) -> list[str]:
    return _uncached_method_names(cls)


_uncached_method_names = responses.method_names_from_class


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

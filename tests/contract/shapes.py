"""The shape of a JSON document (keys and value types), to tell whether the fake Airflow answers as the real one."""


def shape(value):
    """Keys and JSON types, recursively; null stays None, as a recorded null says nothing of the type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None if value is None else type(value).__name__


def shape_differences(fake, real) -> list[str]:
    """Keys one document has and the other lacks, and values of other types (null matches any type)."""
    problems: list[str] = []

    def walk(a, b, where):
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b:
                    problems.append(f"{where}.{key}: {'missing in the fake' if key not in a else 'not in the real one'}")
                else:
                    walk(a[key], b[key], f"{where}.{key}")
        elif isinstance(a, list) and isinstance(b, list):
            if a and b:
                walk(a[0], b[0], f"{where}[0]")
        elif a is not None and b is not None and a != b:
            problems.append(f"{where}: {a} in the fake, {b} in the real one")

    walk(shape(fake), shape(real), "")
    return problems

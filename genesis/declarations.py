"""The Cython declarations (.pxd) that the build (hatch_build.py) writes beside each module
listed as `extension_types`: the module's slotted classes become extension types, with a
C field per slot, and their methods `cpdef` methods.

Only the source decides what is declared, and it decides in two ways:
- `__slots__`: each class with a literal `__slots__`, no decorator, and no base or one
  base that is itself such a class of the module, becomes an extension type with one
  field per slot. It must define `__reduce__` or inherit one from such a base
  (genesis/engine/slotstate.py): Cython's own pickling would not read back in pure Python.
- annotations that name a container (CONTAINERS) or an extension type (of the module, or
  imported from an earlier `extension_types` module), with or without `| None` and type
  arguments: a slot annotated where it is assigned (`self.heap: list = []`) is a field of
  that type; a method's annotated arguments and locals (`metric: Metric`) are typed.
  Any other annotation stays documentation.

A typed field, argument or local reads and calls without a lookup. What it may hold is
what the annotation says, checked: assigning anything else (None aside) raises
TypeError when compiled, so a wrong annotation fails loudly and never decides differently.
Containers are checked by exact type: a subclass (Counter, defaultdict) would lose its own
behaviour under Cython's fast paths, so annotate those with their own name.
"""
from __future__ import annotations

import ast

CONTAINERS = ("dict", "list", "set", "frozenset", "tuple")


def type_of(annotation: ast.expr | None, known: set) -> str:
    """The type an annotation declares: a name of CONTAINERS or of `known` (extension
    types), with or without `| None` and type arguments; else 'object'."""
    node = annotation
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        node = ast.parse(node.value, mode="eval").body
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        parts = [p for p in (node.left, node.right) if not (isinstance(p, ast.Constant) and p.value is None)]
        node = parts[0] if len(parts) == 1 else None
    if isinstance(node, ast.Subscript):
        node = node.value
    if isinstance(node, ast.Name) and (node.id in CONTAINERS or node.id in known):
        return node.id
    return "object"


def _one_type(types: set) -> str:
    """The one type several annotations of the same thing agree on, else 'object'."""
    named = types - {"object"}
    return named.pop() if len(named) == 1 and "object" not in types else "object"


def _slots(node: ast.ClassDef) -> tuple | None:
    for statement in node.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in statement.targets):
            value = ast.literal_eval(statement.value)
            return (value,) if isinstance(value, str) else tuple(value)
    return None


def _field_types(node: ast.ClassDef, known: set) -> dict:
    """slot -> type, from the class's annotated assignments `self.slot: T = ...`."""
    found: dict = {}
    for statement in ast.walk(node):
        target = getattr(statement, "target", None)
        if isinstance(statement, ast.AnnAssign) and isinstance(target, ast.Attribute) \
                and isinstance(target.value, ast.Name) and target.value.id == "self":
            found.setdefault(target.attr, set()).add(type_of(statement.annotation, known))
    return {slot: _one_type(types) for slot, types in found.items()}


def compiles_as_cpdef(function: ast.FunctionDef) -> bool:
    """A method Cython compiles as `cpdef`: undecorated, not special, with positional
    arguments only, and no closure (lambda, generator expression, nested function),
    yield or `super()` in its body."""
    args = function.args
    if function.decorator_list or function.name.startswith("__") or not args.args \
            or args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        return False
    for node in ast.walk(function):
        if node is not function and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                                      ast.GeneratorExp, ast.Yield, ast.YieldFrom)):
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super":
            return False
    return True


def _argument_type(function: ast.FunctionDef, position: int, known: set) -> str:
    """The declared type of the argument at `position`: its annotation's, unless it has a
    default other than None (`keep: list = ()` would refuse its own default)."""
    args = function.args
    first_default = len(args.args) - len(args.defaults)
    if position >= first_default:
        default = args.defaults[position - first_default]
        if not (isinstance(default, ast.Constant) and default.value is None):
            return "object"
    return type_of(args.args[position].annotation, known)


def _local_types(function: ast.FunctionDef, known: set) -> dict:
    """local -> type, from the function's annotated names (`metric: Metric` before a loop)."""
    found: dict = {}
    for node in ast.walk(function):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.setdefault(node.target.id, set()).add(type_of(node.annotation, known))
    return {name: typed for name, types in found.items() if (typed := _one_type(types)) != "object"}


def _methods(classes: dict, known: set) -> dict:
    """class -> its pxd lines for `cpdef` methods. A method is `cpdef` in a family of
    classes (a class and those derived from it) only where every definition of it there
    compiles as `cpdef` with the same numbers of arguments and defaults (Cython's rule
    for overriding); an argument is typed where the definitions that annotate it agree
    (and its default, if it has one, is None)."""
    def family(name: str) -> str:
        while classes[name]["base"]:
            name = classes[name]["base"]
        return name

    definitions: dict = {}
    for name, info in classes.items():
        for function in info["node"].body:
            if isinstance(function, ast.FunctionDef):
                definitions.setdefault((family(name), function.name), []).append((name, function))
    lines: dict = {name: [] for name in classes}
    for (_, method), found in definitions.items():
        functions = [function for _, function in found]
        shapes = {(len(f.args.args), len(f.args.defaults)) for f in functions}
        if len(shapes) != 1 or not all(compiles_as_cpdef(f) for f in functions):
            continue
        count, defaults = shapes.pop()
        arg_types = [_one_type({_argument_type(f, i, known) for f in functions
                                if f.args.args[i].annotation is not None} or {"object"})
                     for i in range(1, count)]
        for owner, function in found:
            params = ["self"]
            for i, typed in enumerate(arg_types, start=1):
                param = function.args.args[i].arg + ("=*" if i >= count - defaults else "")
                params.append(param if typed == "object" else f"{typed} {param}")
            local_types = {k: v for k, v in _local_types(function, known).items()
                           if k not in {a.arg for a in function.args.args}}
            if local_types:
                lines[owner].append("    @cython.locals(" + ", ".join(f"{k}={v}" for k, v in sorted(local_types.items()))
                                    + ")")
            lines[owner].append(f"    cpdef {method}({', '.join(params)})")
    return lines


def declarations(source: str, module: str = "", imported: dict | None = None) -> str:
    """The .pxd for `source` (the module `module`): see the module's docstring.
    `imported` maps the extension types of modules declared before (name -> module) that
    this one may import and annotate with; those it imports are cimported."""
    tree = ast.parse(source)
    classes: dict = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef) or node.decorator_list or node.keywords:
            continue
        slots = _slots(node)
        bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
        if slots is None or len(bases) != len(node.bases) or len(bases) > 1 or not set(bases) <= set(classes):
            continue
        if not bases and not any(isinstance(f, ast.FunctionDef) and f.name == "__reduce__" for f in node.body):
            raise ValueError(f"{module or 'a module'}: class {node.name} would become an extension type that "
                             "pickles differently when compiled: give it a __reduce__ (genesis/engine/slotstate.py)")
        classes[node.name] = {"node": node, "base": bases[0] if bases else None,
                              "fields": [n for n in slots if n not in ("__dict__", "__weakref__")]}
    cimports = {alias.name: node.module for node in tree.body if isinstance(node, ast.ImportFrom)
                for alias in node.names if alias.asname is None and (imported or {}).get(alias.name) == node.module}
    known = set(classes) | set(cimports)
    methods = _methods(classes, known)
    lines = ["cimport cython"] + [f"from {cimports[name]} cimport {name}" for name in sorted(cimports)]
    lines += [""] + [f"cdef class {name}" for name in classes] + [""]   # declared first: fields may name any
    for name, info in classes.items():
        lines.append(f"cdef class {name}{'(' + info['base'] + ')' if info['base'] else ''}:")
        types = _field_types(info["node"], known)
        by_type: dict = {}
        for field in info["fields"]:
            by_type.setdefault(types.get(field, "object"), []).append(field)
        lines += [f"    cdef public {typed} {', '.join(fields)}" for typed, fields in by_type.items()]
        lines += methods[name]
        if not info["fields"] and not methods[name]:
            lines.append("    pass")
        lines.append("")
    return "\n".join(lines)


def extension_types(pxd: str) -> list[str]:
    """The extension types a .pxd made by `declarations` declares."""
    return [line.split()[2] for line in pxd.splitlines() if line.startswith("cdef class ") and not line.endswith(":")]


def cimported_modules(pxd: str) -> list[str]:
    """The modules whose extension types a .pxd made by `declarations` uses."""
    return sorted({line.split()[1] for line in pxd.splitlines() if line.startswith("from ") and " cimport " in line})

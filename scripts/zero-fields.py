#!/usr/bin/env python3
"""Writes crates/apimachinery/data/zero-fields.json from the Go types of k8s.io/api.

Upstream's managed fields of an Update are the fields that differ from the object before it; for a create that is
the Go type's zero value as the API server converts it, in which a non-pointer struct field is an empty object and
a field without `omitempty` is null. A map, struct or list that is new in the object is owned itself besides its
members (`.` in FieldsV1); one already in the zero value is not. This lists, per OpenAPI definition, the fields
that are present in the zero value and hold an object or a list: a struct's definition name, or null for a field
that is null there.

Usage: scripts/zero-fields.py K8S_IO_API_CHECKOUT > crates/apimachinery/data/zero-fields.json
"""
import json
import pathlib
import re
import sys

STRUCT = re.compile(r"^type (\w+) struct \{$")
NAMED = re.compile(r"^type (\w+) (\[\]|map\[)")
FIELD = re.compile(r"^\t(?:(\w+) )?([\w.*\[\]]+) `(.*)`$")
JSON_TAG = re.compile(r'json:"([^"]*)"')
IMPORT = re.compile(r'^\s*(\w+)?\s*"(k8s\.io/[^"]+)"$')
# Types that convert to a scalar (a custom marshaller), whatever their Go kind.
SCALARS = {"metav1.Time", "metav1.MicroTime", "metav1.Duration", "resource.Quantity", "intstr.IntOrString",
           "runtime.RawExtension", "types.UID"}


def definition_prefix(import_path):
    if import_path.startswith("k8s.io/api/"):
        return "io.k8s.api." + import_path[len("k8s.io/api/"):].replace("/", ".")
    if import_path == "k8s.io/apimachinery/pkg/apis/meta/v1":
        return "io.k8s.apimachinery.pkg.apis.meta.v1"
    return None


def parse(path, package):
    imports, structs, collections = {}, {}, set()
    current = None
    for line in path.read_text().splitlines():
        if current is None:
            if m := IMPORT.match(line):
                alias = m.group(1) or m.group(2).rsplit("/", 1)[1]
                imports[alias] = definition_prefix(m.group(2))
            elif m := STRUCT.match(line):
                current = structs.setdefault(m.group(1), [])
            elif m := NAMED.match(line):
                collections.add(m.group(1))
            continue
        if line == "}":
            current = None
        elif m := FIELD.match(line):
            name, ty, tags = m.groups()
            tag = JSON_TAG.search(tags)
            if tag is None or tag.group(1) == "-":
                continue
            json_name, *options = tag.group(1).split(",")
            # An embedded struct is inlined unless its tag names it.
            inline = "inline" in options or (not name and not json_name)
            current.append((name, ty, json_name, "omitempty" in options, inline))
    return {"package": package, "imports": imports, "structs": structs, "collections": collections}


def qualified(ty, module):
    """The definition a struct type names, or None for anything else."""
    if "." in ty:
        alias, name = ty.split(".", 1)
        prefix = module["imports"].get(alias)
        return f"{prefix}.{name}" if prefix else None
    if ty in module["structs"]:
        return f"{module['package']}.{ty}"
    return None


def main():
    root = pathlib.Path(sys.argv[1])
    modules = {}
    for types in sorted(root.glob("*/*/types.go")):
        group, version = types.parent.parent.name, types.parent.name
        if not re.fullmatch(r"v\d+", version):
            continue  # only the stable versions are served
        package = f"io.k8s.api.{group}.{version}"
        modules[package] = parse(types, package)
    structs = {f"{p}.{name}": (m, fields) for p, m in modules.items() for name, fields in m["structs"].items()}

    def zero_fields(definition):
        module, fields = structs[definition]
        out = {}
        for _, ty, json_name, omitempty, inline in fields:
            if inline:
                target = qualified(ty.lstrip("*"), module)
                if target in structs:
                    out.update(zero_fields(target))
                continue
            if ty in SCALARS:
                continue
            collection = ty.startswith("[]") or ty.startswith("map[") or ty in module["collections"]
            if ty.startswith("*") or collection:
                # Absent when omitempty; null otherwise (only an object or list can hold members).
                target = qualified(ty.lstrip("*").removeprefix("[]"), module)
                if not omitempty and (collection or target in structs or target is not None):
                    out[json_name] = None
                continue
            target = qualified(ty, module)
            if target is not None and target not in (f"io.k8s.apimachinery.pkg.apis.meta.v1.{s}" for s in
                                                     ("Time", "MicroTime", "Duration")):
                # A non-pointer struct is an empty object even with omitempty.
                out[json_name] = target
        return out

    result = {}
    for definition in sorted(structs):
        fields = zero_fields(definition)
        if fields:
            result[definition] = dict(sorted(fields.items()))
    # metav1.ObjectMeta holds no struct by value and every collection of it is omitempty: nothing to list.
    sys.stdout.write("{\n")
    sys.stdout.write(",\n".join(f"{json.dumps(d)}: {json.dumps(f)}" for d, f in result.items()))
    sys.stdout.write("\n}\n")


if __name__ == "__main__":
    main()

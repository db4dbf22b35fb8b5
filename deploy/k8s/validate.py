#!/usr/bin/python3
"""Validates rendered Kubernetes manifests offline, strictly.

    kubectl kustomize deploy/k8s/base | deploy/k8s/validate.py

Each document is checked against the models of Debian's python3-kubernetes
(generated from the Kubernetes OpenAPI schema): every field must exist in its
type (a typo such as `replcas` is an error naming it, with the field it
probably meant), values must have the field's type (integer, string, boolean,
list, map, object), and required fields must be there. Exit 1 with one line
per problem: `DOCUMENT: PATH: what`.
"""
import difflib
import sys

import kubernetes.client as models
import yaml

PRIMITIVES = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "datetime": (str,),
    "date": (str,),
}


def check(value, type_name, path, errors):
    if value is None:
        return
    if type_name.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]", errors)
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = type_name[5:-1].split(", ", 1)[1]
        for k, v in value.items():
            check(v, inner, f"{path}.{k}", errors)
        return
    if type_name == "object":  # IntOrString, Quantity, free-form
        return
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool))
        if not ok:
            errors.append(f"{path}: expected {type_name}, got {type(value).__name__} {value!r}")
        return
    klass = getattr(models, type_name, None)
    if klass is None:
        errors.append(f"{path}: unknown type {type_name}")
        return
    if not isinstance(value, dict):
        errors.append(f"{path}: expected a {type_name} object, got {type(value).__name__}")
        return
    by_json = {json: attr for attr, json in klass.attribute_map.items()}
    kwargs = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            near = difflib.get_close_matches(key, list(by_json), n=1)
            hint = f" (did you mean '{near[0]}'?)" if near else ""
            errors.append(f"{path}.{key}: unknown field in {type_name}{hint}")
            continue
        kwargs[attr] = item
        check(item, klass.openapi_types[attr], f"{path}.{key}", errors)
    try:
        klass(**kwargs)  # the model's own checks: required fields, enums
    except (ValueError, TypeError) as e:
        errors.append(f"{path}: {e}")


def model_for(doc):
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    version = api.split("/")[-1]
    return f"{version[0].upper()}{version[1:]}{kind}" if version and kind else None


def main():
    errors = []
    count = 0
    for i, doc in enumerate(yaml.safe_load_all(sys.stdin)):
        if doc is None:
            continue
        count += 1
        name = f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"
        type_name = model_for(doc)
        if type_name is None or getattr(models, type_name, None) is None:
            errors.append(f"{name}: no schema for apiVersion {doc.get('apiVersion')!r} kind {doc.get('kind')!r}")
            continue
        check(doc, type_name, name, errors)
    for e in errors:
        print(f"validate: {e}", file=sys.stderr)
    if count == 0:
        print("validate: no documents", file=sys.stderr)
        return 1
    if not errors:
        print(f"validate: {count} documents valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""Checks Kubernetes objects (JSON, one list on stdin) field by field against the API's types as
Debian's python3-kubernetes generates them: every key must be a field of its type, every value
of the type's kind. Prints one line per problem, with the object and the field's path; exits 1
when there is any. (kubectl's client-side dry run parses the manifests but checks no field
names without a cluster's OpenAPI document.)"""
import json
import re
import sys

import kubernetes.client as k8s

KINDS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
}
SCALARS = {"str": str, "bool": bool, "int": int, "float": (int, float), "datetime": str,
           "object": object}
problems = []


def check(value, type_name, path):
    if type_name.startswith("list["):
        if not isinstance(value, list):
            problems.append(f"{path}: a list was expected")
            return
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{path}[{i}]")
        return
    m = re.fullmatch(r"dict\((\w+), (.+)\)", type_name)
    if m:
        if not isinstance(value, dict):
            problems.append(f"{path}: a map was expected")
            return
        for key, item in value.items():
            check(item, m.group(2), f"{path}.{key}")
        return
    if type_name in SCALARS:
        want = SCALARS[type_name]
        # Quantities and int-or-string fields are typed "str" by the generator.
        if type_name == "str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            problems.append(f"{path}: {type_name} expected, got {json.dumps(value)}")
        return
    model = getattr(k8s, type_name)
    if not isinstance(value, dict):
        problems.append(f"{path}: an object ({type_name}) was expected")
        return
    by_json = {v: k for k, v in model.attribute_map.items()}
    for key, item in value.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: no such field in {type_name[2:]} "
                            f"(fields: {', '.join(sorted(by_json))})")
            continue
        check(item, model.openapi_types[by_json[key]], f"{path}.{key}")


for obj in json.load(sys.stdin):
    kind = (obj.get("apiVersion"), obj.get("kind"))
    name = f"{kind[1]}/{obj.get('metadata', {}).get('name', '?')}"
    if kind not in KINDS:
        problems.append(f"{name}: kind {kind} is not one these manifests should hold")
        continue
    check(obj, KINDS[kind], name)
for p in problems:
    print(p)
sys.exit(1 if problems else 0)

#!/usr/bin/env python3
"""Checks that the deployment files agree with masad itself.

Reads what masad declares -- its configuration schema and defaults from
yang/masad-config@2026-11-23.yang, the environment variables, health paths and
default configuration path from docs/operations.md, the user and ports of
deploy/Dockerfile -- and checks against them every manifest in deploy/k8s/ and
the compose stack (deploy/compose.yaml, deploy/compose/):

  - each configuration file is valid JSON whose every member is a node of
    masad-config, and its relative paths are files the pod is given;
  - container ports, Service target ports, probe ports and NetworkPolicy ports
    are the listener ports of the configuration (or the YANG defaults);
  - readiness and liveness probes ask the paths the docs give for them, on the
    management listener, which must not be bound to loopback;
  - every MASAD_* variable given to masad is documented, and the secrets come
    from Secrets;
  - the image is the same everywhere, runs as the Dockerfile's user, non-root,
    on a read-only root filesystem, with requests and limits;
  - the Deployment has two replicas or more, spread across nodes; the PDB, the
    HPA and the NetworkPolicy select its pods; the migration Job runs migrate.

Usage: tests/deploy/check_manifests.py [CHECKOUT]   (needs python3-yaml)
Exits 0 when everything agrees, 1 with one line per mismatch otherwise.
"""
import glob
import ipaddress
import json
import os
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("check_manifests: needs PyYAML (Debian package python3-yaml)")

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), "..", ".."))
YANG = os.path.join(ROOT, "yang", "masad-config@2026-11-23.yang")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
K8S = os.path.join(ROOT, "deploy", "k8s")
COMPOSE = os.path.join(ROOT, "deploy", "compose.yaml")

failures = []
passed = []


def fail(where, message):
    failures.append(f"{os.path.relpath(where, ROOT)}: {message}")


def check(condition, where, message):
    if not condition:
        fail(where, message)
    return bool(condition)


# ---------------------------------------------------------------- YANG schema

def yang_tokens(text):
    """Yields YANG tokens: '{', '}', ';' and strings (quoted ones unquoted,
    '+'-concatenations joined)."""
    i, n = 0, len(text)
    pending = None  # a quoted string that may be continued with +
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif text.startswith("/*", i):
            i = text.index("*/", i) + 2
        elif c in "{};":
            if pending is not None:
                yield pending
                pending = None
            yield c
            i += 1
        elif c in "\"'":
            j = i + 1
            buf = []
            while text[j] != c:
                if c == '"' and text[j] == "\\":
                    buf.append({"n": "\n", "t": "\t"}.get(text[j + 1], text[j + 1]))
                    j += 2
                else:
                    buf.append(text[j])
                    j += 1
            s = "".join(buf)
            pending = s if pending is None else pending + s
            i = j + 1
        elif c == "+" and pending is not None:
            i += 1
        else:
            if pending is not None:
                yield pending
                pending = None
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            yield text[i:j]
            i = j
    if pending is not None:
        yield pending


def yang_parse(text):
    """Statements as [keyword, argument, [substatements]]."""
    tokens = list(yang_tokens(text))
    pos = 0

    def block():
        nonlocal pos
        out = []
        while pos < len(tokens) and tokens[pos] != "}":
            keyword = tokens[pos]
            pos += 1
            arg = None
            if tokens[pos] not in "{;":
                arg = tokens[pos]
                pos += 1
            subs = []
            if tokens[pos] == "{":
                pos += 1
                subs = block()
            pos += 1  # ';' or '}'
            out.append([keyword, arg, subs])
        return out

    return block()


DATA_NODES = ("container", "leaf", "leaf-list", "list")


class Node:
    def __init__(self, kind, name):
        self.kind, self.name = kind, name
        self.children = {}
        self.default = None
        self.presence = False


def yang_schema(path):
    text = open(path, encoding="utf-8").read()
    module = yang_parse(text)[0]
    body = module[2]
    groupings = {s[1]: s[2] for s in body if s[0] == "grouping"}

    def build(kind, name, subs):
        node = Node(kind, name)
        for kw, arg, sub in subs:
            if kw in DATA_NODES:
                node.children[arg] = build(kw, arg, sub)
            elif kw == "uses":
                for gkw, garg, gsub in groupings[arg]:
                    if gkw in DATA_NODES:
                        node.children[garg] = build(gkw, garg, gsub)
                for rkw, rarg, rsub in sub:
                    if rkw == "refine":
                        target = node
                        for step in rarg.split("/"):
                            target = target.children[step.split(":")[-1]]
                        for dkw, darg, _ in rsub:
                            if dkw == "default":
                                target.default = darg
            elif kw == "default":
                node.default = arg
            elif kw == "presence":
                node.presence = True
        return node

    root = build("module", module[1], body)
    return module[1], root


def validate_config(config, module, schema, where):
    """Every member must be a schema node of the right kind."""
    ok = True
    for key, value in config.items():
        prefix, _, name = key.partition(":")
        if not check(prefix == module and name in schema.children, where,
                     f'"{key}" is not a top-level node of {module}'):
            ok = False
            continue
        ok &= validate_node(value, schema.children[name], f"/{key}", where)
    return ok


def validate_node(value, node, path, where):
    ok = True
    if node.kind == "container":
        if not check(isinstance(value, dict), where, f"{path} must be an object"):
            return False
        for k, v in value.items():
            if not check(k in node.children, where, f'{path}: unknown member "{k}"'):
                ok = False
                continue
            ok &= validate_node(v, node.children[k], f"{path}/{k}", where)
    elif node.kind == "list":
        if not check(isinstance(value, list), where, f"{path} must be an array"):
            return False
        for i, entry in enumerate(value):
            ok &= validate_node(entry, _as_container(node), f"{path}[{i}]", where)
    elif node.kind == "leaf-list":
        ok &= check(isinstance(value, list) and value, where, f"{path} must be a non-empty array")
    else:
        ok &= check(not isinstance(value, (dict, list)), where, f"{path} must be a value")
    return ok


def _as_container(node):
    c = Node("container", node.name)
    c.children = node.children
    return c


def setting(config, schema, *path):
    """A configuration value, else its YANG default (as the YANG string)."""
    value = config
    for step in path:
        key = f"masad-config:{step}" if value is config else step
        if not isinstance(value, dict) or key not in value:
            value = None
            break
        value = value[key]
    if value is not None:
        return value
    node = schema
    for step in path:
        node = node.children[step]
    return node.default


def is_loopback(address):
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------- what docs say

def documented():
    text = open(OPERATIONS, encoding="utf-8").read()
    env = set()
    section = re.search(r"^## Environment\n(.*?)^## ", text, re.S | re.M)
    if section:
        env = set(re.findall(r"^\|\s*`(MASAD_[A-Z0-9_]+)`\s*\|", section.group(1), re.M))
    health = re.search(r"^## Health and metrics\n(.*?)^## ", text, re.S | re.M)
    probes = {}
    if health:
        for path, rest in re.findall(r"^\|\s*`GET (/\S+)`\s*\|(.*)$", health.group(1), re.M):
            for kind in ("liveness", "readiness"):
                if re.search(rf"\b{kind}\b", rest, re.I):
                    probes[kind] = path
    default_config = re.search(r"else\s+`(/[^`]+\.json)`", text)
    return env, probes, default_config.group(1) if default_config else None


def dockerfile_facts():
    text = open(DOCKERFILE, encoding="utf-8").read()
    runtime = text[text.rindex("\nFROM "):]
    user = re.findall(r"^USER\s+(\S+)", runtime, re.M)
    ports = re.findall(r"^EXPOSE\s+(.+)$", runtime, re.M)
    entry = re.findall(r"^ENTRYPOINT\s+(\[.*\])", runtime, re.M)
    return (user[-1] if user else None,
            {int(p) for line in ports for p in line.split()},
            json.loads(entry[-1]) if entry else None)


# -------------------------------------------------------------- Kubernetes

def load_manifests():
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "**", "*.yaml"), recursive=True)):
        try:
            for doc in yaml.safe_load_all(open(path, encoding="utf-8")):
                if doc:
                    docs.append((path, doc))
        except yaml.YAMLError as e:
            fail(path, f"not YAML: {e}")
    return docs


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_port(container, port):
    """The number of a port given by name or number, or None."""
    for p in container.get("ports", []):
        if port in (p.get("name"), p.get("containerPort")):
            return p.get("containerPort")
    return None


def env_names(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_pod_security(pod, container, where, uid):
    sc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot must be true")
    check(str(sc.get("runAsUser")) == uid.split(":")[0], where,
          f"runAsUser {sc.get('runAsUser')} is not the image's user {uid}")
    check(csc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem must be true")
    check(csc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation must be false")
    check("ALL" in csc.get("capabilities", {}).get("drop", []), where, "capabilities must drop ALL")
    res = container.get("resources", {})
    for part in ("requests", "limits"):
        check(all(k in res.get(part, {}) for k in ("cpu", "memory")), where,
              f"resources.{part} must give cpu and memory")


def projected_files(pod, mount_path, where):
    """The relative paths a projected/configMap/secret volume mounted at
    mount_path holds, as {path: (kind, name, key)}."""
    container = pod["containers"][0]
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == mount_path), None)
    if not check(mount, where, f"no volume is mounted at {mount_path}"):
        return {}
    volume = next((v for v in pod.get("volumes", []) if v["name"] == mount["name"]), {})
    sources = volume.get("projected", {}).get("sources", [])
    for kind in ("configMap", "secret"):
        if kind in volume:
            sources = [{kind: volume[kind]}]
    files = {}
    for source in sources:
        for kind, ref in source.items():
            name = ref.get("name") or ref.get("secretName")
            for item in ref.get("items", []):
                files[item["path"]] = (kind, name, item["key"])
    return files


def check_kubernetes(module, schema, env_documented, probes, default_config, uid, exposed):
    before = len(failures)
    docs = load_manifests()
    if not check(docs, K8S, "no manifests"):
        return
    kustomization = next((d for p, d in docs if d.get("kind") == "Kustomization"), None)
    kpath = os.path.join(K8S, "kustomization.yaml")
    if not check(kustomization, kpath, "missing"):
        return
    listed = {os.path.normpath(os.path.join(K8S, r)) for r in kustomization.get("resources", [])}
    for r in listed:
        check(os.path.isfile(r), kpath, f"resource {os.path.relpath(r, K8S)} does not exist")
    for path in sorted({p for p, _ in docs}):
        if path != kpath and not path.endswith(".example.yaml"):
            check(path in listed, kpath, f"{os.path.relpath(path, K8S)} is not in resources")
    deployed = [(p, d) for p, d in docs if p in listed]
    by_kind = {}
    for p, d in deployed:
        by_kind.setdefault(d["kind"], []).append((p, d))
    image_names = {i["name"] for i in kustomization.get("images", [])}

    # the configuration
    configs = [(p, d) for p, d in by_kind.get("ConfigMap", []) if "masad.json" in d.get("data", {})]
    if not check(len(configs) == 1, K8S, "exactly one ConfigMap must hold masad.json"):
        return
    cpath, cmap = configs[0]
    try:
        config = json.loads(cmap["data"]["masad.json"])
    except json.JSONDecodeError as e:
        fail(cpath, f"masad.json is not JSON: {e}")
        return
    validate_config(config, module, schema, cpath)
    device_port = int(setting(config, schema, "listeners", "device", "port"))
    management_port = int(setting(config, schema, "listeners", "management", "port"))
    management_address = setting(config, schema, "listeners", "management", "address")
    check(not is_loopback(management_address), cpath,
          f"the management listener binds {management_address}: the kubelet's probes and the "
          "management Service cannot reach it")
    check({device_port, management_port} <= exposed, DOCKERFILE,
          f"EXPOSE {sorted(exposed)} does not name the listener ports {device_port}, {management_port}")
    grace = int(setting(config, schema, "service", "shutdown-grace"))

    # the Deployment
    deployments = by_kind.get("Deployment", [])
    if not check(len(deployments) == 1, K8S, "exactly one Deployment expected"):
        return
    dpath, dep = deployments[0]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    check(labels_match(dep["spec"]["selector"]["matchLabels"], pod_labels), dpath,
          "the selector does not match the pod labels")
    check(dep["spec"].get("replicas", 1) >= 2, dpath, "replicas must be 2 or more")
    masad = next((c for c in pod["containers"] if c["name"] == "masad"), None)
    if not check(masad, dpath, 'no container named "masad"'):
        return
    image = masad["image"]
    check(image.split(":")[0] in image_names, dpath,
          f'image "{image}" is not one that kustomization.yaml sets (images: {sorted(image_names)})')
    check(masad.get("args", [None])[0] == "serve" and not masad.get("command"), dpath,
          'the container must run the image entrypoint (masad) with "serve"')
    check_pod_security(pod, masad, dpath, uid)
    check(container_port(masad, "device") == device_port, dpath,
          f"container port \"device\" is {container_port(masad, 'device')}, the configuration says {device_port}")
    check(container_port(masad, "management") == management_port, dpath,
          f"container port \"management\" is {container_port(masad, 'management')}, the configuration says {management_port}")
    for kind, probe_name in (("readiness", "readinessProbe"), ("liveness", "livenessProbe")):
        probe = masad.get(probe_name, {}).get("httpGet", {})
        if not check(probe, dpath, f"no {probe_name} with httpGet"):
            continue
        check(probe.get("path") == probes.get(kind), dpath,
              f"{probe_name} asks {probe.get('path')}; docs/operations.md gives {probes.get(kind)} for {kind}")
        check(probe.get("scheme") == "HTTPS", dpath, f"{probe_name} must use HTTPS (both listeners are TLS only)")
        check(container_port(masad, probe.get("port")) == management_port, dpath,
              f"{probe_name} must ask the management port {management_port} (the device "
              "port may expect the PROXY protocol)")
    env = env_names(masad)
    for name in env:
        if name.startswith("MASAD_"):
            check(name in env_documented, dpath,
                  f"{name} is not documented in docs/operations.md (Environment)")
    for secret in ("MASAD_DATABASE_URL", "MASAD_PKCS11_PIN"):
        check(secret in env and "secretKeyRef" in env[secret].get("valueFrom", {}), dpath,
              f"{secret} must come from a Secret (secretKeyRef)")
    check("MASAD_MIGRATE_DATABASE_URL" not in env, dpath,
          "the replicas must not have the schema owner's URL")
    config_path = env.get("MASAD_CONFIG", {}).get("value", default_config)
    files = projected_files(pod, os.path.dirname(config_path), dpath)
    base = os.path.basename(config_path)
    check(files.get(base, (None, None, None))[1] == cmap["metadata"]["name"], dpath,
          f"{config_path} is not the ConfigMap {cmap['metadata']['name']}'s masad.json")
    for ref in file_settings(config):
        if not ref.startswith("/"):
            check(ref in files, dpath,
                  f"the configuration names {ref}, which the volume at {os.path.dirname(config_path)} does not hold")
    check(dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) > grace, dpath,
          f"terminationGracePeriodSeconds must exceed service/shutdown-grace ({grace} s)")
    spreads = pod.get("topologySpreadConstraints", [])
    check(any(s.get("topologyKey") == "kubernetes.io/hostname" and s.get("whenUnsatisfiable") == "DoNotSchedule"
              and labels_match(s.get("labelSelector", {}).get("matchLabels"), pod_labels) for s in spreads),
          dpath, "replicas must be spread across nodes (topologySpreadConstraints on kubernetes.io/hostname)")

    # Services
    services = {d["metadata"]["name"]: (p, d) for p, d in by_kind.get("Service", [])}
    seen = {}
    for name, (spath, svc) in services.items():
        if not labels_match(svc["spec"].get("selector"), pod_labels):
            continue
        for port in svc["spec"]["ports"]:
            target = container_port(masad, port.get("targetPort", port["port"]))
            check(target in (device_port, management_port), spath,
                  f"port {port['port']} targets {port.get('targetPort')}, which is no listener")
            seen.setdefault(target, []).append((spath, svc))
    device_svcs = seen.get(device_port, [])
    if check(device_svcs, K8S, f"no Service sends traffic to the device port {device_port}"):
        for spath, svc in device_svcs:
            check(svc["spec"].get("type") == "LoadBalancer" and
                  svc["spec"].get("externalTrafficPolicy") == "Local", spath,
                  "the device Service must be an L4 LoadBalancer with externalTrafficPolicy: Local "
                  "(the client's address preserved)")
    mgmt_svcs = seen.get(management_port, [])
    if check(mgmt_svcs, K8S, f"no Service reaches the management port {management_port}"):
        for spath, svc in mgmt_svcs:
            check(svc["spec"].get("type", "ClusterIP") == "ClusterIP", spath,
                  "the management Service must be private (ClusterIP)")

    # the migration Job
    jobs = by_kind.get("Job", [])
    if check(len(jobs) == 1, K8S, "exactly one Job (the migration) expected"):
        jpath, job = jobs[0]
        jpod = job["spec"]["template"]["spec"]
        jc = jpod["containers"][0]
        check(jc["image"] == image, jpath, f'image "{jc["image"]}" differs from the Deployment\'s "{image}"')
        check(jc.get("args") == ["migrate"] and not jc.get("command"), jpath, 'must run "masad migrate"')
        jenv = env_names(jc)
        check("secretKeyRef" in jenv.get("MASAD_MIGRATE_DATABASE_URL", {}).get("valueFrom", {}), jpath,
              "MASAD_MIGRATE_DATABASE_URL must come from a Secret")
        for name in jenv:
            if name.startswith("MASAD_"):
                check(name in env_documented, jpath, f"{name} is not documented in docs/operations.md")
        check_pod_security(jpod, jc, jpath, uid)
        check(not labels_match(pod_labels, job["spec"]["template"]["metadata"].get("labels", {})), jpath,
              "the Job's pods must not carry the replicas' labels (Services would send them traffic)")

    # PDB, HPA, NetworkPolicy
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(any(labels_match(d["spec"]["selector"]["matchLabels"], pod_labels) for _, d in pdbs), K8S,
          "no PodDisruptionBudget selects the replicas")
    hpas = [(p, d) for p, d in by_kind.get("HorizontalPodAutoscaler", [])
            if d["spec"]["scaleTargetRef"].get("name") == dep["metadata"]["name"]]
    if check(hpas, K8S, "no HorizontalPodAutoscaler scales the Deployment"):
        for hpath, hpa in hpas:
            check(hpa["spec"].get("minReplicas", 1) >= 2, hpath, "minReplicas must be 2 or more")
    policies = [(p, d) for p, d in by_kind.get("NetworkPolicy", [])
                if labels_match(d["spec"]["podSelector"].get("matchLabels"), pod_labels)]
    if check(policies, K8S, "no NetworkPolicy selects the replicas"):
        for npath, policy in policies:
            check("Ingress" in policy["spec"].get("policyTypes", []), npath, "must restrict Ingress")
            for rule in policy["spec"].get("ingress", []):
                ports = [container_port(masad, p.get("port")) for p in rule.get("ports", [])]
                if not rule.get("ports") or management_port in ports:
                    sources = rule.get("from", [])
                    check(sources and not any("ipBlock" in s and s["ipBlock"]["cidr"] in ("0.0.0.0/0", "::/0")
                                              for s in sources), npath,
                          f"a rule opens the management port {management_port} to everyone")
            check(any(device_port in [container_port(masad, p.get("port")) for p in r.get("ports", [])]
                      for r in policy["spec"].get("ingress", [])), npath,
                  f"the device port {device_port} is not allowed in")
    if len(failures) == before:
        passed.append(f"Kubernetes: {len(deployed)} objects in {len(listed)} files agree with masad "
                      f"(device {device_port}, management {management_port}, probes "
                      f"{probes.get('readiness')} {probes.get('liveness')}, image {image})")


def file_settings(config):
    """Relative file paths in a configuration: tls, idevid anchors, signer."""
    tls = config.get("masad-config:tls", {})
    signer = config.get("masad-config:signer", {})
    out = [tls.get("certificate"), tls.get("private-key"), signer.get("certificate")]
    for anchor in config.get("masad-config:idevid", {}).get("trust-anchor", []):
        out.append(anchor.get("certificate"))
    key = signer.get("key", "")
    if key and not key.startswith("pkcs11:"):
        out.append(key)
    return [p for p in out if p]


# ------------------------------------------------------------------ compose

def check_compose(module, schema, env_documented, uid):
    before = len(failures)
    compose = yaml.safe_load(open(COMPOSE, encoding="utf-8"))
    cfg_path = os.path.join(ROOT, "deploy", "compose", "masad.json")
    try:
        config = json.load(open(cfg_path, encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        fail(cfg_path, f"not readable JSON: {e}")
        return
    validate_config(config, module, schema, cfg_path)
    device_port = int(setting(config, schema, "listeners", "device", "port"))
    management_port = int(setting(config, schema, "listeners", "management", "port"))
    check(not is_loopback(setting(config, schema, "listeners", "management", "address")), cfg_path,
          "the management listener must not bind loopback: the balancer could not reach it")
    services = compose.get("services", {})
    masad_image = services.get("migrate", {}).get("image")
    replicas = [n for n, s in services.items() if s.get("image") == masad_image and
                (s.get("command") or ["serve"])[0] == "serve"]
    check(len(replicas) >= 2, COMPOSE, f"{len(replicas)} masad replicas; 2 or more expected")
    for name, svc in services.items():
        if svc.get("image") != masad_image:
            continue
        env = svc.get("environment", {})
        for var in env:
            check(not var.startswith("MASAD_") or var in env_documented, COMPOSE,
                  f"service {name}: {var} is not documented in docs/operations.md")
        check(svc.get("read_only") is True, COMPOSE, f"service {name} must have a read-only root filesystem")
        check(svc.get("user") in (None, uid), COMPOSE, f"service {name} must run as the image's user {uid}")
    haproxy = open(os.path.join(ROOT, "deploy", "compose", "haproxy.cfg"), encoding="utf-8").read()
    backends = {int(p) for p in re.findall(r"^\s*server\s+\S+\s+\S+:(\d+)", haproxy, re.M)}
    check(backends == {device_port, management_port}, os.path.join(ROOT, "deploy", "compose", "haproxy.cfg"),
          f"the balancer sends to ports {sorted(backends)}; the listeners are {device_port}, {management_port}")
    if len(failures) == before:
        passed.append(f"compose: masad.json, {len(replicas)} replicas, haproxy.cfg agree with masad")


def main():
    module, schema = yang_schema(YANG)
    env_documented, probes, default_config = documented()
    for what, value in (("environment variables", env_documented), ("liveness path", probes.get("liveness")),
                        ("readiness path", probes.get("readiness")), ("default configuration path", default_config)):
        check(value, OPERATIONS, f"found no {what} (has the section changed?)")
    uid, exposed, entrypoint = dockerfile_facts()
    check(uid and uid.split(":")[0] not in ("0", "root"), DOCKERFILE, f"the runtime stage's USER ({uid}) must not be root")
    check(entrypoint and os.path.basename(entrypoint[0]) == "masad", DOCKERFILE, "masad must be the entrypoint")
    if not failures:
        check_kubernetes(module, schema, env_documented, probes, default_config, uid, exposed)
        check_compose(module, schema, env_documented, uid)
    for line in passed:
        print(f"ok: {line}")
    if failures:
        for line in failures:
            print(f"FAIL: {line}", file=sys.stderr)
        print(f"check_manifests: {len(failures)} mismatch(es)", file=sys.stderr)
        return 1
    print("check_manifests: the deployment files agree with masad's configuration and docs")
    return 0


if __name__ == "__main__":
    sys.exit(main())

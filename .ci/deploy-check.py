"""Checks deploy/'s compose file, Kubernetes manifests, systemd unit and Containerfile parse and
name only what exists: the image .ci/deploy built, pinned third-party images, ROTA_* variables
the code or docs/configuration.md define, probe paths the server serves, and `rota` commands.

  python3 .ci/deploy-check.py IMAGE KUSTOMIZED.yaml|-

IMAGE is the tag .ci/deploy built (its name without the tag must be what the files use).
KUSTOMIZED is `kubectl kustomize deploy/kubernetes` output, or - where kubectl is missing.
Prints the commands and paths that probe a server, for .ci/deploy to run against one:
  exec <argv…>      a health-check command run inside the image (from compose, Containerfile)
  http <path>       an HTTP probe path (Kubernetes, HAProxy)
"""

import pathlib
import re
import sys

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
image_built = sys.argv[1]
kustomized = sys.argv[2]
image_name = image_built.rsplit(":", 1)[0]
errors = []
probes = set()


def fail(msg):
    errors.append(msg)


# Third-party images: pinned to a major version; they cannot be pulled to check offline.
THIRD_PARTY = {"docker.io/library/postgres:17", "docker.io/library/haproxy:3.0"}

# Every ROTA_* variable the code reads (`env = "ROTA_…"`, env::var("ROTA_…")) or the
# configuration reference lists (the config keys' variables are built from their names).
known_vars = set()
for rs in (root / "crates").rglob("*.rs"):
    known_vars |= set(re.findall(r"\bROTA_[A-Z0-9_]+\b", rs.read_text()))
known_vars |= set(re.findall(r"\bROTA_[A-Z0-9_]+\b", (root / "docs/configuration.md").read_text()))


def check_var(where, name):
    if name.startswith("ROTA_") and name not in known_vars:
        fail(f"{where}: {name} is neither read by the code nor in docs/configuration.md")


def check_image(where, image):
    base = image.split("${ROTA_IMAGE:-", 1)[-1].rstrip("}")
    if base.rsplit(":", 1)[0] == image_name:
        return
    if base not in THIRD_PARTY:
        fail(f"{where}: image {image} is neither {image_name} nor a known pinned image")


# --- compose -------------------------------------------------------------------------------
compose_dir = root / "deploy/compose"
compose = yaml.safe_load((compose_dir / "compose.yaml").read_text())
services = compose["services"]
for want in ["postgres", "rota1", "rota2", "rota3", "lb"]:
    if want not in services:
        fail(f"compose: no service {want}")
for name, svc in services.items():
    where = f"compose {name}"
    check_image(where, svc.get("image", ""))
    env = svc.get("environment", {})
    for var in env if isinstance(env, dict) else [e.split("=", 1)[0] for e in env]:
        check_var(where, var)
    for dep in svc.get("depends_on", {}):
        if dep not in services:
            fail(f"{where}: depends on unknown service {dep}")
    for vol in svc.get("volumes", []):
        src = vol.split(":", 1)[0]
        if src.startswith("."):
            if not (compose_dir / src).exists():
                fail(f"{where}: mounts {src}, which does not exist")
        elif src not in (compose.get("volumes") or {}):
            fail(f"{where}: volume {src} is not declared")
    if name.startswith("rota"):
        test = svc["healthcheck"]["test"]
        if test[0] != "CMD" or test[1] != "/usr/local/bin/rota":
            fail(f"{where}: the health check must run /usr/local/bin/rota (no shell in the image)")
        probes.add("exec " + " ".join(test[1:]))
        if svc.get("command") != ["serve"]:
            fail(f"{where}: command is not [serve]")
        url = env.get("ROTA_DATABASE_URL", "")
        if "@postgres:5432/" not in url:
            fail(f"{where}: ROTA_DATABASE_URL does not point at the postgres service")

# HAProxy: its servers are the compose services, its check a path the server serves.
haproxy = (compose_dir / "haproxy.cfg").read_text()
for host, port in re.findall(r"^\s*server \S+ (\S+):(\d+)", haproxy, re.M):
    if host not in services:
        fail(f"haproxy.cfg: server {host} is not a compose service")
    if port != "7070":
        fail(f"haproxy.cfg: port {port} is not the servers' 7070")
for path in re.findall(r"option httpchk GET (\S+)", haproxy):
    probes.add(f"http {path}")

# --- Containerfile ------------------------------------------------------------------------
containerfile = (root / "deploy/container/Containerfile").read_text()
if not re.search(r"^FROM scratch$", containerfile, re.M):
    fail("Containerfile: not FROM scratch")
if not re.search(r"^USER 65532:65532$", containerfile, re.M):
    fail("Containerfile: does not run as 65532")
m = re.search(r'^\s+CMD \[(.*)\]$', containerfile, re.M)  # HEALTHCHECK's continuation line
if not m:
    fail("Containerfile: no HEALTHCHECK CMD")
else:
    argv = [a.strip().strip('"') for a in m.group(1).split(",")]
    probes.add("exec " + " ".join(argv))
env_block = re.search(r"^ENV (.*?[^\\])$", containerfile, re.M | re.S)
for var in re.findall(r"\b(ROTA_[A-Z0-9_]+)=", env_block.group(1) if env_block else ""):
    check_var("Containerfile", var)

# --- systemd unit -------------------------------------------------------------------------
unit = (root / "deploy/systemd/rota.service").read_text()
for var in re.findall(r"^Environment=(ROTA_[A-Z0-9_]+)=", unit, re.M):
    check_var("rota.service", var)
for need in ["DynamicUser=yes", "StateDirectory=rota", "ProtectSystem=strict"]:
    if not re.search(rf"^{re.escape(need)}$", unit, re.M):
        fail(f"rota.service: no {need}")

# --- Kubernetes ---------------------------------------------------------------------------
KINDS = {
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("policy/v1", "PodDisruptionBudget"),
}
k8s_dir = root / "deploy/kubernetes"
docs = []
for f in sorted(k8s_dir.glob("*.yaml")):
    for d in yaml.safe_load_all(f.read_text()):
        if d is None:
            continue
        if d.get("kind") == "Kustomization":
            for r in d.get("resources", []):
                if not (k8s_dir / r).exists():
                    fail(f"{f.name}: resource {r} does not exist")
            for i in d.get("images", []):
                if i["name"] != image_name:
                    fail(f"{f.name}: images: {i['name']} is not {image_name}")
            continue
        docs.append((f.name, d))
if kustomized != "-":
    rendered = [d for d in yaml.safe_load_all(pathlib.Path(kustomized).read_text()) if d]
    if len(rendered) != len(docs):
        fail(f"kustomize rendered {len(rendered)} objects, the files hold {len(docs)}")

by_kind = {}
for fname, d in docs:
    key = (d.get("apiVersion"), d.get("kind"))
    if key not in KINDS:
        fail(f"{fname}: {key} is not one of {sorted(KINDS)}")
    if not d.get("metadata", {}).get("name"):
        fail(f"{fname}: a {d.get('kind')} without a name")
    by_kind.setdefault(d["kind"], []).append(d)

for dep in by_kind.get("Deployment", []):
    spec = dep["spec"]
    if spec.get("replicas") != 3:
        fail("Deployment: replicas is not 3")
    labels = spec["template"]["metadata"]["labels"]
    if spec["selector"]["matchLabels"].items() - labels.items():
        fail("Deployment: the selector does not match the pod's labels")
    pod = spec["template"]["spec"]
    if pod.get("securityContext", {}).get("runAsUser") != 65532:
        fail("Deployment: not run as 65532")
    for c in pod["containers"]:
        check_image(f"Deployment {c['name']}", c["image"])
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for e in c.get("env", []):
            check_var(f"Deployment {c['name']}", e["name"])
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] != "rota":
                fail(f"Deployment: secret {ref['name']} is not the documented `rota`")
        for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")]:
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path:
                fail(f"Deployment: {probe} does not GET {path}")
            if get.get("port") not in ports and get.get("port") not in ports.values():
                fail(f"Deployment: {probe} port {get.get('port')} is no container port")
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"]:
            if probe in c:
                probes.add("http " + c[probe]["httpGet"]["path"])
        if ports.get("http") != 7070:
            fail("Deployment: the http port is not 7070")
        if c.get("args") != ["serve"]:
            fail("Deployment: args are not [serve]")
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"] for v in pod.get("volumes", [])}
        if mounts - vols:
            fail(f"Deployment: mounts undeclared volumes {mounts - vols}")
    for kind in ["Service", "PodDisruptionBudget"]:
        for o in by_kind.get(kind, []):
            sel = o["spec"]["selector"]
            sel = sel.get("matchLabels", sel)
            if sel.items() - labels.items():
                fail(f"{kind} {o['metadata']['name']}: its selector matches no rota pod")
for kind in ["Deployment", "Service", "PodDisruptionBudget"]:
    if kind not in by_kind:
        fail(f"kubernetes: no {kind}")

if errors:
    sys.exit("deploy files:\n  " + "\n  ".join(errors))
for p in sorted(probes):
    print(p)

"""A stateful fake of the Proxmox VMs and Talos nodes the program acts on.

harness/lifecycle.py feeds it what the engine would do in a run: resource operations (a VM
created, a config applied, etcd bootstrapped) and the text of every pulumi-command step, which
the world interprets line by line instead of running. Everything that happens lands in `events`,
in order, so scenarios assert on what an operator would have seen the cluster do.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cluster import steps


class StepError(RuntimeError):
    """A step or provider call the real system would fail (the engine stops the run)."""


@dataclass
class Machine:
    name: str
    ip: str
    proxmox_node: str
    size: tuple[int, int, int]
    pending_size: tuple[int, int, int] | None = None
    # None: maintenance mode (booted from the ISO, no config yet).
    version: str | None = None
    image: str | None = None
    # The Image Factory schematic baked into the running image (its `schematic` extension).
    schematic: str | None = None
    active_config: str | None = None
    staged_config: str | None = None
    controlplane: bool = False
    etcd_member: bool = False
    node_object: bool = False
    down: bool = False
    wiped: bool = False

    @property
    def installed(self) -> bool:
        return self.version is not None and not self.wiped


@dataclass
class World:
    machines: dict[str, Machine] = field(default_factory=dict)  # by VM name
    etcd_bootstrapped: bool = False
    events: list[tuple[str, ...]] = field(default_factory=list)
    vm_names: dict[int, str] = field(default_factory=dict)  # Proxmox VM id → VM name

    # -- lookups ----------------------------------------------------------------------------
    def at(self, ip: str) -> Machine:
        """The machine answering at ip: a call to an address nothing answers at fails."""
        found = [m for m in self.machines.values() if m.ip == ip and not m.down]
        if not found:
            raise StepError(f"nothing answers at {ip}")
        return found[0]

    def log(self, *event: str) -> None:
        self.events.append(event)

    # -- Proxmox ----------------------------------------------------------------------------
    def vm_created(self, inputs: dict[str, Any], ip: str, controlplane: bool) -> None:
        name = inputs["name"]
        self.vm_names[inputs["vmId"]] = name
        self.machines[name] = Machine(
            name=name,
            ip=ip,
            proxmox_node=inputs["nodeName"],
            size=_size(inputs),
            controlplane=controlplane,
        )
        self.log("vm-create", name)

    def vm_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        machine = self.machines[new["name"]]
        if _size(old) != _size(new):
            if new.get("rebootAfterUpdate", True):
                # bpg's default: Proxmox restarts the VM at once to apply the change.
                machine.size = _size(new)
                self._reboot(machine, "vm-update")
            else:
                machine.pending_size = _size(new)
        self.log("vm-update", machine.name)

    def vm_deleted(self, inputs: dict[str, Any]) -> None:
        machine = self.machines.pop(inputs["name"])
        if machine.etcd_member or machine.node_object:
            self.log("vm-destroyed-in-cluster", machine.name)
        self.log("vm-delete", machine.name)

    # -- Talos provider ---------------------------------------------------------------------
    def config_applied(self, inputs: dict[str, Any], config: str) -> None:
        mode = inputs.get("applyMode", "auto")
        machine = self.at(inputs["node"])
        if not config_names(config, machine.name):
            raise StepError(f"config for another node applied to {machine.name}")
        if not machine.installed:
            # Maintenance mode takes only auto/reboot/try (talos internal/app/maintenance).
            if mode not in ("auto", "reboot"):
                raise StepError(f"apply --mode={mode} is not supported in maintenance mode")
            machine.version, machine.image = _image_version(config), _image(config)
            machine.schematic = schematic_of(machine.image)
            machine.active_config = config
            self.log("install", machine.name, machine.version or "")
            self._join(machine)
            return
        if mode == "staged":
            machine.staged_config = config
            self.log("stage", machine.name, _kubernetes(config))
        else:
            machine.active_config = config
            self.log("apply", machine.name, _kubernetes(config))
            self._reboot(machine, "apply")

    def bootstrapped(self, inputs: dict[str, Any]) -> None:
        # The provider retries every error but InvalidArgument until its timeout.
        self._start_etcd(self.at(inputs["node"]), "bootstrap")

    def recovered(self, machine: Machine) -> None:
        """`talosctl bootstrap --recover-from`: refused like a bootstrap when etcd has members;
        the others join the recovered one."""
        self._start_etcd(machine, "bootstrap-recover")

    def _start_etcd(self, machine: Machine, event: str) -> None:
        members = [m for m in self.machines.values() if m.etcd_member and m is not machine]
        if members:
            raise StepError(f"{event} on {machine.name}: etcd already has members")
        self.etcd_bootstrapped = True
        machine.etcd_member = True
        self.log(event, machine.name)
        for other in self.machines.values():
            self._join(other)

    def _join(self, machine: Machine) -> None:
        if machine.installed and (self.etcd_bootstrapped or not machine.controlplane):
            machine.etcd_member = machine.controlplane and self.etcd_bootstrapped
            machine.node_object = self.etcd_bootstrapped

    def _reboot(self, machine: Machine, why: str) -> None:
        if machine.staged_config is not None:
            machine.active_config, machine.staged_config = machine.staged_config, None
        self.log("reboot", machine.name, why)

    def check_health(self, controlplanes: list[str], workers: list[str]) -> None:
        """Tests' question "is the cluster healthy on exactly these nodes?": the same strict
        verdict as `talosctl health` (below), asked at the first control plane."""
        self.health("check", controlplanes[0], ",".join(controlplanes), ",".join(workers))

    def health(self, name: str, endpoint: str, controlplanes: str, workers: str) -> None:
        """`talosctl health` with explicit node lists, as its default checks judge them
        (siderolabs/talos v1.12.4, pkg/cluster/check/default.go): the Kubernetes Nodes must be
        exactly the listed nodes (K8sAllNodesReportedAssertion → cluster.NodesMatch, which also
        fails on an unlisted Node: pkg/cluster/cluster.go), the control-plane-labelled ones exactly
        the listed control planes (K8sFullControlPlaneAssertion), every etcd member a listed
        control plane (EtcdControlPlaneNodesAssertion, pkg/cluster/check/etcd.go) and etcd healthy
        on each listed control plane; every listed node must be up (apid, kubelet Ready)."""
        cps = [ip for ip in controlplanes.split(",") if ip]
        wks = [ip for ip in workers.split(",") if ip]
        self.at(endpoint)
        nodes = [m for m in self.machines.values() if m.node_object]
        problems = []
        if sorted(cps + wks) != sorted(m.ip for m in nodes):
            problems.append(f"nodes {sorted(m.ip for m in nodes)} != listed {cps + wks}")
        if sorted(cps) != sorted(m.ip for m in nodes if m.controlplane):
            problems.append(f"control planes listed {cps}")
        members = [m for m in self.machines.values() if m.etcd_member]
        if not {m.ip for m in members} <= set(cps):
            problems.append(f"etcd members {[m.ip for m in members]} not all listed")
        listed = [m for m in self.machines.values() if m.ip in cps + wks]
        if not self.etcd_bootstrapped or any(m.down or not m.installed for m in listed):
            problems.append("a listed node is not up")
        if any(not m.etcd_member for m in listed if m.ip in cps):
            problems.append("etcd not running on a listed control plane")
        if problems:
            raise StepError(f"{name}: cluster not healthy within the wait timeout: {problems}")
        self.log("health")

    # -- pulumi-command steps ---------------------------------------------------------------
    def run_step(self, name: str, text: str, env: dict[str, str], previous_stdout: str) -> str:
        """Interpret one step's script as bash would run it; returns its stdout."""
        if text.startswith(_ESCROW):
            # An escrow export (settings/escrow.py escrow_command): a sops write, no node touched.
            self.log("escrow", text.split("--output ", 1)[1].split(maxsplit=1)[0])
            return ""
        if not text.startswith(steps.PRELUDE):
            raise AssertionError(f"step {name} does not start with the secrets prelude")
        env = {**env, "PULUMI_COMMAND_STDOUT": previous_stdout}
        stdout: list[str] = []
        self.log("step", name)
        for line in text.removeprefix(steps.PRELUDE).splitlines():
            if line == steps.UNCHANGED:
                if previous_stdout == f"done {env['GUARD']}":
                    return previous_stdout
                continue
            if line == steps.RECORD:
                stdout.append(f"done {env['GUARD']}")
                continue
            if self._line(name, _expand(line, env), env, stdout) == "exit":
                break
        return "\n".join(stdout)

    def _line(self, name: str, line: str, env: dict[str, str], stdout: list[str]) -> str | None:
        if match := re.match(_NODES, line):
            env[match[1]] = self._nodes(controlplane=not match[2], given=match[3])
            return None
        if match := re.match(_ASSIGNMENT, line):
            env[match[1]] = match[2]
            return None
        if match := re.match(_SKIP_IF, line):
            return self._skip_if(name, match[1].split(" && "), env, stdout)
        if match := re.match(_HEALTH, line):
            self.health(name, match[1], match[2], match[3] or "")
            return None
        if match := re.match(_WAIT_PREPARING, line):
            # Talos: etcd waits in Preparing on an installed control plane until etcd exists.
            machine = self.at(match[1])
            if not (machine.installed and machine.controlplane) or self.etcd_bootstrapped:
                raise StepError(f"{name}: etcd on {machine.name} never waited in Preparing")
            self.log("etcd-preparing", machine.name)
            return None
        for pattern, action in self._actions():
            if match := re.match(pattern, line):
                action(match)
                return None
        if not line.startswith(_HARMLESS):
            raise AssertionError(f"step {name}: the world cannot interpret {line!r}")
        return None

    def _actions(self) -> list[tuple[str, Callable[[re.Match[str]], None]]]:
        node = r"talos -e \S+ -n (\S+)"
        return [
            (rf"{node} upgrade --image (\S+) --wait$", self._upgrade),
            (rf"{node} reboot --wait$", lambda m: self._reboot(self.at(m[1]), "reboot")),
            (rf"{node} etcd snapshot ", lambda m: self.log("etcd-snapshot", self.at(m[1]).name)),
            (r'sops encrypt --filename-override "\$out" ', lambda m: self.log("encrypted")),
            (r'pve "?nodes/(\S+)/qemu/(\d+)/status/reboot"?$', self._vm_restart),
            (rf"{node} upgrade-k8s --to (\S+)$", self._upgrade_kubernetes),
            (r"kube drain (\S+) ", lambda m: self.log("drain", m[1])),
            (rf"{node} reset --graceful --wait$", self._reset),
            (r"kube delete node (\S+) ", self._delete_node),
            (r"sops decrypt .* (\S+)$", lambda m: self.log("decrypt-snapshot", m[1])),
            (rf"{node} bootstrap --recover-from ", lambda m: self.recovered(self.at(m[1]))),
        ]

    def _nodes(self, controlplane: bool, given: str) -> str:
        """The prelude's `nodes`: the given IPs, then every other Kubernetes Node of the role."""
        found = [ip for ip in given.split(",") if ip]
        for machine in self.machines.values():
            if machine.node_object and machine.controlplane == controlplane:
                found += [] if machine.ip in found else [machine.ip]
        return ",".join(found)

    def _skip_if(
        self, name: str, conditions: list[str], env: dict[str, str], stdout: list[str]
    ) -> str | None:
        """`cond && cond … && { record; exit 0; }`: each condition asks one node through talosctl,
        either `[ "$(talosctl get …)" = value ]` or `talosctl get … | grep -xF value`."""
        nodes: set[str] = set()
        for condition in conditions:
            if match := re.fullmatch(rf'\[ "\$\({_TALOS_GET}\)" = (\S+) \]', condition):
                holds = self._get(match[1], match[2], match[3]) == match[4]
            elif match := re.fullmatch(rf"{_TALOS_GET} \| grep -xF (\S+) >/dev/null", condition):
                holds = match[4] in self._get(match[1], match[2], match[3]).split("\n")
            else:
                raise AssertionError(f"step {name}: the world cannot interpret {condition!r}")
            nodes.add(match[1])
            if not holds:
                return None
        (ip,) = nodes  # one node's state decides
        self.log("skip", self.at(ip).name)
        stdout.append(f"done {env['GUARD']}")
        return "exit"

    def _get(self, ip: str, resource: str, jsonpath: str) -> str:
        """`talosctl get <resource> -o jsonpath=<path>` as talosctl 1.12 prints it: the path is
        applied to each resource and each scalar printed on its own line (cmd/talosctl/cmd/talos/
        output/jsonpath.go); a missing key is an error (jsonpath.New without AllowMissingKeys)."""
        machine = self.at(ip)
        extensions = [_OTHER_EXTENSION]
        if machine.schematic:
            # Image Factory's virtual extension (siderolabs/image-factory,
            # internal/artifacts/schematic.go): name `schematic`, version the schematic ID.
            extensions.append({"name": "schematic", "version": machine.schematic})
        resources = {
            # pkg/machinery/resources/runtime/version.go; extension_status.go, whose spec is the
            # extension layer {image, metadata} (pkg/machinery/extensions/config.go).
            "version": [{"spec": {"version": machine.version}}],
            "extensions": [
                {"spec": {"image": f"{i:03}.sqsh", "metadata": meta}}
                for i, meta in enumerate(extensions)
            ],
        }[resource]
        keys = re.fullmatch(r"\{((?:\.\w+)+)\}", jsonpath)
        if not keys:
            raise AssertionError(f"the world cannot evaluate jsonpath {jsonpath!r}")
        lines = []
        for found in resources:
            value: Any = found
            for key in keys[1].split(".")[1:]:
                if not isinstance(value, dict) or key not in value:
                    raise StepError(f"error finding result for jsonpath: {key} is not found")
                value = value[key]
            lines.append(str(value))
        return "\n".join(lines)

    def _upgrade(self, match: re.Match[str]) -> None:
        machine = self.at(match[1])
        machine.image, machine.version = match[2], match[2].rsplit(":", 1)[1]
        machine.schematic = schematic_of(match[2])
        self._reboot(machine, "upgrade")
        self.log("upgrade", machine.name, match[2].rsplit(":", 1)[1])

    def _vm_restart(self, match: re.Match[str]) -> None:
        machine = self.machines[self.vm_names[int(match[2])]]
        assert machine.proxmox_node == match[1], "restart sent to the wrong Proxmox node"
        machine.size, machine.pending_size = machine.pending_size or machine.size, None
        self._reboot(machine, "vm-restart")

    def _upgrade_kubernetes(self, match: re.Match[str]) -> None:
        self.at(match[1])
        self.log("upgrade-k8s", match[2])

    def _reset(self, match: re.Match[str]) -> None:
        machine = self.at(match[1])
        if machine.etcd_member:
            machine.etcd_member = False
            self.log("etcd-leave", machine.name)
        machine.wiped = True
        self.log("reset", machine.name)

    def _delete_node(self, match: re.Match[str]) -> None:
        self.machines[match[1]].node_object = False
        self.log("node-delete", match[1])


def config_names(config: str, name: str) -> bool:
    return f"hostname: {name}\n" in config


def _size(inputs: dict[str, Any]) -> tuple[int, int, int]:
    return (
        inputs["cpu"]["cores"],
        inputs["memory"]["dedicated"],
        inputs["disks"][0]["size"],
    )


def _image(config: str) -> str | None:
    match = re.search(r"image: (\S+installer\S+)", config)
    return match[1] if match else None


def schematic_of(image: str | None) -> str | None:
    """The schematic of an Image Factory installer, <registry>/<platform>-installer[-secureboot]/
    <schematic>:<version> (siderolabs/image-factory docs/api.md); None for any other image."""
    match = re.search(r"/[\w-]+-installer(?:-secureboot)?/([0-9a-f]{64}):[^:/]+$", image or "")
    return match[1] if match else None


def _image_version(config: str) -> str | None:
    image = _image(config)
    return image.rsplit(":", 1)[1] if image else None


def _kubernetes(config: str) -> str:
    match = re.search(r"kubelet:v(\S+)", config)
    return match[1] if match else ""


def _expand(line: str, env: dict[str, str]) -> str:
    line = re.sub(
        r"\$\{(\w+):\+([^}]*)\}",  # ${v:+word}: word when v is set and not empty
        lambda m: _expand(m[2], env) if env.get(m[1]) else "",
        line,
    )
    line = re.sub(
        r'"?\$\{(\w+)(##|#|%%|%)([^}]*)\}"?',
        lambda m: _trim(env[m[1]], m[2], m[3]) if m[1] in env else m[0],
        line,
    )
    line = re.sub(r'"\$\{?(\w+)\}?"', lambda m: env.get(m[1], m[0]), line)
    return re.sub(r"\$\{?([A-Z_]+)\}?", lambda m: env.get(m[1], m[0]), line)


def _trim(value: str, op: str, pattern: str) -> str:
    """bash's ${v#p} (shortest prefix), ${v##p} (longest), ${v%p} (shortest suffix), ${v%%p}."""
    cuts = range(len(value) + 1)
    if op in ("#", "##"):
        for i in cuts if op == "#" else reversed(cuts):
            if fnmatch.fnmatchcase(value[:i], pattern):
                return value[i:]
    else:
        for i in reversed(cuts) if op == "%" else cuts:
            if fnmatch.fnmatchcase(value[i:], pattern):
                return value[:i]
    return value


# A shell variable set from an expanded value: `name="…"`.
_ASSIGNMENT = r'([a-z_]\w*)="?([^\s"$]*)"?$'
# `talosctl get <resource> -o jsonpath=<path>` at a node (the path quoted or not).
_TALOS_GET = r"talos -e \S+ -n (\S+) get (\w+) -o '?jsonpath=([^'\s]+)'?"
# Conditions that, when all hold, end the step as done (see steps.skip_if_running).
_SKIP_IF = r'(.+) && \{ echo "done \S+"; exit 0; \}$'
# `name="$(nodes [!]<control-plane label> [given])"`, expanded (the prelude's `nodes`).
_NODES = rf"""(\w+)="\$\(nodes '?(!?){re.escape(steps.CONTROLPLANE_LABEL)}'? ?(\S*)\)"$"""
# `talosctl health` at one node with explicit lists (cluster/steps.py `health`), expanded.
_HEALTH = (
    r"talos -e \S+ -n (\S+) health --control-plane-nodes (\S*) +(?:--worker-nodes (\S+) +)?"
    r"--wait-timeout \S+$"
)
# Another official extension the node runs besides the schematic (its name and version are
# arbitrary here): the check must find the schematic among several lines.
_OTHER_EXTENSION = {"name": "qemu-guest-agent", "version": "1.0.0-stand-in"}
_ESCROW = "sops encrypt --filename-override "
_WAIT_PREPARING = r'until \[ "\$\(talos -e \S+ -n (\S+) service \| awk .*= Preparing \]; do '

# Local bookkeeping lines of the snapshot step: nothing for the world to do.
_HARMLESS = ("mkdir -p backups/etcd", 'tmp="$(mktemp -d)"', 'out="backups/etcd/')

"""The seccomp filter of an image container: the OCI runtime spec's `linux.seccomp` (pure).

A `Policy` is a seccomp profile bound to this host (its architectures, its kernel); its
`render` takes the container's capability set and returns the `linux.seccomp` object
`oci_bundle.build_config` puts in `config.json`. `default_policy` is lichen's built-in
profile; `parse_profile` reads a profile given as JSON, either an OCI `linux.seccomp`
object or a Docker-format profile (`archMap`, per-rule `includes`/`excludes`), which is
a superset of the OCI shape. `load_policy`, at the end, is the one function that touches
the host: it reads the agent's `--seccomp-profile` file, `uname`.

The built-in profile has the effect of Docker's default
(https://docs.docker.com/engine/security/seccomp/): the syscalls Docker's default refuses
to an unprivileged container fail with EPERM, the ones it gates on a capability are
allowed when the container holds that capability, `clone` may not create namespaces
without CAP_SYS_ADMIN, `personality` may only select the harmless personas, and
`socket(AF_VSOCK)` is refused. It is stricter than Docker's current profile in three
places, as Docker's documentation lists them: `ptrace`/`process_vm_*` need CAP_SYS_PTRACE
on every kernel, `clock_adjtime` needs CAP_SYS_TIME and `name_to_handle_at` needs
CAP_DAC_READ_SEARCH.

Why a denylist (`defaultAction: SCMP_ACT_ALLOW`, the refused syscalls `SCMP_ACT_ERRNO`
with `errnoRet` 1) where Docker ships an allowlist: an allowlist refuses every syscall
newer than the list, so a new libc or runtime that calls one fails in a container while
it works on the host (`clone3` and `faccessat2` broke images under Docker's list that way
until it was updated). A denylist keeps
working for syscalls newer than the list; what it gives up is refusing a new *dangerous*
syscall before we list it, and new syscalls that reach privileged kernel paths check
capabilities, which the container lacks. The refused set is small and stable (the
kernel's privileged interfaces), so it is easy to audit. `clone3` is answered with
ENOSYS, as Docker does: seccomp cannot read its flags (they sit in a struct in memory),
and glibc falls back to `clone`, whose flags the filter does check, only on ENOSYS.

Rules that need one argument to be outside a set are written as several rules of one
`SCMP_CMP_MASKED_EQ` comparison each (the rules of one syscall are OR-ed): libseccomp
refuses two comparisons on the same argument in one rule, so "not 0 and not 8" cannot be
said directly. runc (1.1.5 checked) accepts `errnoRet`, `SCMP_CMP_MASKED_EQ` with
`valueTwo` (the mask is `value`, the expected masked value `valueTwo`) and
`defaultErrnoRet`; it applies the filter just before the container's `execve`, after its
own setup, so the profile never constrains runc itself.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT = "default"
UNCONFINED = "unconfined"

EPERM = 1
ENOSYS = 38

ACTIONS = frozenset({
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG",
})
_ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})
OPERATORS = frozenset({
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
})
ARCHITECTURES = frozenset({
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
})
FLAGS = frozenset({"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"})

# `uname -m` -> the architectures a container on this host may run code of (native first).
HOST_ARCHITECTURES: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "i686": ("SCMP_ARCH_X86",),
    "armv7l": ("SCMP_ARCH_ARM",),
}
# `uname -m` -> Go's GOARCH, the names Docker profiles use in `includes.arches`.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "armv7l": "arm",
           "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}

_MAX_ARG = 2**64 - 1
_MAX_ERRNO = 4095


class SeccompError(ValueError):
    """A seccomp profile we cannot use; the message names where and what is wrong."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One comparison on a syscall argument. For SCMP_CMP_MASKED_EQ, `value` is the mask
    and `value_two` what the masked argument must equal."""

    index: int
    value: int
    op: str
    value_two: int = 0

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "value": self.value, "op": self.op}
        if self.value_two:
            out["valueTwo"] = self.value_two
        return out


@dataclass(frozen=True, slots=True)
class Rule:
    """Syscalls `names` take `action` when every comparison in `args` holds.

    `requires`: the rule applies only to a container holding all these capabilities;
    `unless`: it does not apply to one holding any of them (Docker's `includes.caps` and
    `excludes.caps`)."""

    names: tuple[str, ...]
    action: str
    errno_ret: int | None = None
    args: tuple[Arg, ...] = ()
    requires: frozenset[str] = frozenset()
    unless: frozenset[str] = frozenset()

    def applies(self, capabilities: frozenset[str]) -> bool:
        return self.requires <= capabilities and not (self.unless & capabilities)

    def to_oci(self) -> dict[str, Any]:
        out: dict[str, Any] = {"names": list(self.names), "action": self.action}
        if self.errno_ret is not None:
            out["errnoRet"] = self.errno_ret
        if self.args:
            out["args"] = [a.to_oci() for a in self.args]
        return out


@dataclass(frozen=True, slots=True)
class Policy:
    """A seccomp profile bound to a host; `render` it for one container's capabilities.

    An empty `architectures` leaves the choice to the runtime (the native one only)."""

    default_action: str
    rules: tuple[Rule, ...]
    architectures: tuple[str, ...] = ()
    default_errno_ret: int | None = None
    flags: tuple[str, ...] = field(default=())

    def render(self, capabilities: Iterable[str]) -> dict[str, Any]:
        """The OCI `linux.seccomp` object for a container holding `capabilities`."""
        caps = frozenset(capabilities)
        out: dict[str, Any] = {"defaultAction": self.default_action}
        if self.default_errno_ret is not None:
            out["defaultErrnoRet"] = self.default_errno_ret
        if self.architectures:
            out["architectures"] = list(self.architectures)
        if self.flags:
            out["flags"] = list(self.flags)
        out["syscalls"] = [r.to_oci() for r in self.rules if r.applies(caps)]
        return out


# -- the built-in profile ------------------------------------------------------------------

# Refused whatever the capabilities: Docker's default never allows them.
_ALWAYS_REFUSED = (
    "add_key", "create_module", "get_kernel_syms", "kexec_file_load", "kexec_load", "keyctl",
    "move_pages", "nfsservctl", "pivot_root", "query_module", "request_key", "swapoff", "swapon",
    "_sysctl", "sysfs", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)
# Refused unless the container holds one of the capabilities (Docker's capability gates).
_GATED: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("CAP_SYS_ADMIN",), (
        "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount",
        "mount_setattr", "move_mount", "open_tree", "quotactl", "quotactl_fd", "setdomainname",
        "sethostname", "setns", "umount", "umount2", "unshare",
    )),
    (("CAP_SYS_ADMIN", "CAP_BPF"), ("bpf",)),
    (("CAP_SYS_ADMIN", "CAP_PERFMON"), ("perf_event_open",)),
    (("CAP_SYS_ADMIN", "CAP_SYSLOG"), ("syslog",)),
    (("CAP_DAC_READ_SEARCH",), ("name_to_handle_at", "open_by_handle_at")),
    (("CAP_SYS_BOOT",), ("reboot",)),
    (("CAP_SYS_CHROOT",), ("chroot",)),
    (("CAP_SYS_MODULE",), ("delete_module", "finit_module", "init_module")),
    (("CAP_SYS_PACCT",), ("acct",)),
    (("CAP_SYS_PTRACE",), ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv",
                           "process_vm_writev", "ptrace")),
    (("CAP_SYS_RAWIO",), ("ioperm", "iopl")),
    (("CAP_SYS_TIME",), ("clock_adjtime", "clock_adjtime64", "clock_settime", "clock_settime64",
                         "settimeofday", "stime")),
    (("CAP_SYS_TTY_CONFIG",), ("vhangup",)),
    (("CAP_SYS_NICE",), ("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node")),
)
# CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
# PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (query): Docker's harmless set.
HARMLESS_PERSONAS = frozenset({0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF})
AF_VSOCK = 40


def default_policy(machine: str) -> Policy:
    """lichen's built-in profile for a host whose `uname -m` is `machine`."""
    architectures = HOST_ARCHITECTURES.get(machine)
    if architectures is None:
        raise SeccompError(
            f"no built-in seccomp profile for machine '{machine}' (known: {', '.join(sorted(HOST_ARCHITECTURES))});"
            " use --seccomp-profile unconfined or a profile file")
    rules = [_refuse(_ALWAYS_REFUSED)]
    rules += [_refuse(names, unless=caps) for caps, names in _GATED]
    rules += [_refuse(("clone",), Arg(0, flag, "SCMP_CMP_MASKED_EQ", flag), unless=("CAP_SYS_ADMIN",))
              for flag in CLONE_NAMESPACE_FLAGS]
    rules.append(Rule(("clone3",), "SCMP_ACT_ERRNO", ENOSYS, unless=frozenset({"CAP_SYS_ADMIN"})))
    rules += [_refuse(("personality",), arg) for arg in _personality_refusals()]
    rules.append(_refuse(("socket",), Arg(0, AF_VSOCK, "SCMP_CMP_EQ")))
    return Policy("SCMP_ACT_ALLOW", tuple(rules), architectures)


def _refuse(names: tuple[str, ...], *args: Arg, unless: Iterable[str] = ()) -> Rule:
    return Rule(names, "SCMP_ACT_ERRNO", EPERM, args, unless=frozenset(unless))


def _personality_refusals() -> tuple[Arg, ...]:
    """Comparisons on personality's argument that, OR-ed, hold exactly when its low 32 bits
    (the kernel reads an unsigned int) are not a harmless persona.

    The harmless values are those whose bits lie within 0x20008, and 0xffffffff. A value is
    refused when it sets a bit outside 0x20008 while bit 31 is clear, or sets bit 31 while
    some other bit is clear: one masked comparison (two bits of mask) each.
    """
    allowed_bits = 0x20008
    top = 1 << 31
    refusals = [Arg(0, (1 << b) | top, "SCMP_CMP_MASKED_EQ", 1 << b)
                for b in range(31) if not (1 << b) & allowed_bits]
    refusals += [Arg(0, top | (1 << b), "SCMP_CMP_MASKED_EQ", top) for b in range(31)]
    return tuple(refusals)


# -- profiles given as JSON (OCI or Docker format) -------------------------------------------

_TOP_KEYS = frozenset({"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags"})
_RULE_KEYS = frozenset({"names", "name", "action", "errnoRet", "args", "includes", "excludes", "comment"})
_ARG_KEYS = frozenset({"index", "value", "valueTwo", "op"})
_FILTER_KEYS = frozenset({"caps", "arches", "minKernel"})
_KERNEL = re.compile(r"^(\d+)\.(\d+)")


def parse_profile(data: object, *, machine: str, kernel: str, source: str) -> Policy:
    """A Policy from a profile's decoded JSON: an OCI `linux.seccomp` object or a Docker
    profile. Docker's `includes`/`excludes` on `arches` (Go names: amd64, arm64, ...) and
    `minKernel` are decided here for this host (`machine` as `uname -m`, `kernel` as
    `uname -r`); those on `caps` per container by `Policy.render`. Raises SeccompError
    naming `source` and the offending field."""
    where = _Where(source)
    if not isinstance(data, dict):
        raise where.error("", "a seccomp profile must be a JSON object")
    where.unknown_keys("", data, _TOP_KEYS)
    default_action = _action(data.get("defaultAction"), where, "defaultAction", required=True)
    default_errno = _errno(data.get("defaultErrnoRet"), where, "defaultErrnoRet")
    if default_errno is not None and default_action not in _ERRNO_ACTIONS:
        raise where.error("defaultErrnoRet", f"only goes with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {default_action}")
    architectures = _architectures(data, machine, where)
    flags = _string_list(data.get("flags", []), where, "flags", allowed=FLAGS)
    raw_rules = data.get("syscalls", [])
    if not isinstance(raw_rules, list):
        raise where.error("syscalls", "must be a list")
    host = _Host(_GOARCH.get(machine, machine), _kernel_version(kernel))
    rules = [rule for i, raw in enumerate(raw_rules)
             if (rule := _rule(raw, where, f"syscalls[{i}]", host)) is not None]
    return Policy(default_action, tuple(rules), architectures, default_errno, tuple(flags))


@dataclass(frozen=True, slots=True)
class _Host:
    goarch: str
    kernel: tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class _Where:
    source: str

    def error(self, path: str, message: str) -> SeccompError:
        return SeccompError(f"{self.source}: {path + ': ' if path else ''}{message}")

    def unknown_keys(self, path: str, obj: Mapping[str, Any], known: frozenset[str]) -> None:
        unknown = sorted(set(obj) - known)
        if unknown:
            raise self.error(path, f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _action(value: object, where: _Where, path: str, *, required: bool = False) -> str:
    if value is None and required:
        raise where.error(path, "is missing")
    if not isinstance(value, str) or value not in ACTIONS:
        if value == "SCMP_ACT_NOTIFY":
            raise where.error(path, "SCMP_ACT_NOTIFY needs a seccomp agent, which lichen does not run")
        raise where.error(path, f"unknown action {json.dumps(value)} (known: {', '.join(sorted(ACTIONS))})")
    return value


def _errno(value: object, where: _Where, path: str) -> int | None:
    if value is None:
        return None
    errno = _int_in(value, 0, _MAX_ERRNO)
    if errno is None:
        raise where.error(path, f"must be an errno between 0 and {_MAX_ERRNO}, not {json.dumps(value)}")
    return errno


def _int_in(value: object, low: int, high: int) -> int | None:
    """`value` when it is a JSON integer within [low, high], else None."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def _string_list(value: object, where: _Where, path: str, *, allowed: frozenset[str] | None = None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise where.error(path, "must be a list of non-empty strings")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise where.error(path, f"unknown {', '.join(bad)} (known: {', '.join(sorted(allowed))})")
    return list(value)


def _architectures(data: Mapping[str, Any], machine: str, where: _Where) -> tuple[str, ...]:
    if "architectures" in data and "archMap" in data:
        raise where.error("", "give architectures or archMap, not both")
    if "architectures" in data:
        return tuple(_string_list(data["architectures"], where, "architectures", allowed=ARCHITECTURES))
    arch_map = data.get("archMap")
    if arch_map is None:
        return ()
    if not isinstance(arch_map, list):
        raise where.error("archMap", "must be a list")
    native = HOST_ARCHITECTURES.get(machine, ())[:1]
    chosen: tuple[str, ...] = ()
    for i, entry in enumerate(arch_map):
        path = f"archMap[{i}]"
        if not isinstance(entry, dict):
            raise where.error(path, "must be an object")
        where.unknown_keys(path, entry, frozenset({"architecture", "subArchitectures"}))
        arch = _string_list([entry.get("architecture")], where, f"{path}.architecture", allowed=ARCHITECTURES)[0]
        subs = _string_list(entry.get("subArchitectures") or [], where, f"{path}.subArchitectures",
                            allowed=ARCHITECTURES)
        if (arch,) == native:
            chosen = (arch, *subs)
    return chosen


def _rule(raw: object, where: _Where, path: str, host: _Host) -> Rule | None:
    """The rule, or None when its arches/minKernel filters leave it out on this host."""
    if not isinstance(raw, dict):
        raise where.error(path, "must be an object")
    where.unknown_keys(path, raw, _RULE_KEYS)
    if "names" in raw:
        names = _string_list(raw["names"], where, f"{path}.names")
    elif "name" in raw:        # Docker's older single-name form
        names = _string_list([raw["name"]], where, f"{path}.name")
    else:
        raise where.error(path, "has no names")
    if not names:
        raise where.error(f"{path}.names", "is empty")
    action = _action(raw.get("action"), where, f"{path}.action", required=True)
    errno = _errno(raw.get("errnoRet"), where, f"{path}.errnoRet")
    if errno is not None and action not in _ERRNO_ACTIONS:
        raise where.error(f"{path}.errnoRet", f"only goes with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}")
    raw_args = raw.get("args") or []
    if not isinstance(raw_args, list):
        raise where.error(f"{path}.args", "must be a list")
    args = tuple(_arg(a, where, f"{path}.args[{j}]") for j, a in enumerate(raw_args))
    includes = _filter(raw.get("includes"), where, f"{path}.includes")
    excludes = _filter(raw.get("excludes"), where, f"{path}.excludes")
    if includes.arches and host.goarch not in includes.arches:
        return None
    if host.goarch in excludes.arches:
        return None
    if includes.min_kernel is not None and (host.kernel is None or host.kernel < includes.min_kernel):
        return None
    if excludes.min_kernel is not None and host.kernel is not None and host.kernel >= excludes.min_kernel:
        return None
    return Rule(tuple(names), action, errno, args, includes.caps, excludes.caps)


def _arg(raw: object, where: _Where, path: str) -> Arg:
    if not isinstance(raw, dict):
        raise where.error(path, "must be an object")
    where.unknown_keys(path, raw, _ARG_KEYS)
    index = _int_in(raw.get("index"), 0, 5)
    if index is None:
        raise where.error(f"{path}.index", f"must be an argument index 0-5, not {json.dumps(raw.get('index'))}")
    values: list[int] = []
    for key in ("value", "valueTwo"):
        value = _int_in(raw.get(key, 0), 0, _MAX_ARG)
        if value is None:
            raise where.error(f"{path}.{key}", f"must be an unsigned 64-bit integer, not {json.dumps(raw.get(key))}")
        values.append(value)
    op = raw.get("op")
    if not isinstance(op, str) or op not in OPERATORS:
        raise where.error(f"{path}.op", f"unknown operator {json.dumps(op)} (known: {', '.join(sorted(OPERATORS))})")
    return Arg(index, values[0], op, values[1])


@dataclass(frozen=True, slots=True)
class _Filter:
    caps: frozenset[str] = frozenset()
    arches: frozenset[str] = frozenset()
    min_kernel: tuple[int, int] | None = None


def _filter(raw: object, where: _Where, path: str) -> _Filter:
    if raw is None:
        return _Filter()
    if not isinstance(raw, dict):
        raise where.error(path, "must be an object")
    where.unknown_keys(path, raw, _FILTER_KEYS)
    caps = _string_list(raw.get("caps") or [], where, f"{path}.caps")
    bad = [c for c in caps if not c.startswith("CAP_")]
    if bad:
        raise where.error(f"{path}.caps", f"capabilities are named CAP_..., not {', '.join(bad)}")
    arches = _string_list(raw.get("arches") or [], where, f"{path}.arches")
    min_kernel = None
    if raw.get("minKernel"):
        text = raw["minKernel"]
        min_kernel = _kernel_version(text) if isinstance(text, str) else None
        if min_kernel is None or not re.fullmatch(r"\d+\.\d+", text):
            raise where.error(f"{path}.minKernel", f"must look like \"4.8\", not {json.dumps(text)}")
    return _Filter(frozenset(caps), frozenset(arches), min_kernel)


def _kernel_version(release: str) -> tuple[int, int] | None:
    m = _KERNEL.match(release)
    return (int(m[1]), int(m[2])) if m else None


# -- the edge: the agent's --seccomp-profile ------------------------------------------------


def load_policy(value: str) -> Policy | None:
    """The policy `--seccomp-profile VALUE` names: `default`, `unconfined` (None), or a
    JSON file. Reads the file and this host's `uname`. Raises SeccompError."""
    machine, kernel = platform.machine(), platform.release()
    if value == DEFAULT:
        return default_policy(machine)
    if value == UNCONFINED:
        return None
    path = Path(value)
    try:
        text = path.read_text()
    except OSError as e:
        raise SeccompError(f"cannot read seccomp profile {value}: {e.strerror or e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SeccompError(f"{value}: not JSON: {e}") from None
    return parse_profile(data, machine=machine, kernel=kernel, source=value)

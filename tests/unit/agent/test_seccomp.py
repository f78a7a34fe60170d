"""The seccomp profile of image containers (pure): the built-in profile's effect, capability
gating, profiles given as OCI or Docker-format JSON, and bad profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lichen.agent.containerizer.oci_bundle import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    BundleSpec,
    UserIds,
    build_config,
)
from lichen.agent.containerizer.seccomp import (
    CLONE_NAMESPACE_FLAGS,
    EPERM,
    HARMLESS_PERSONAS,
    SeccompError,
    default_policy,
    load_policy,
    parse_profile,
)

ALLOW = ("SCMP_ACT_ALLOW", None)
REFUSED = ("SCMP_ACT_ERRNO", EPERM)
DOCKER_REFUSED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "move_pages", "name_to_handle_at",
    "nfsservctl", "open_by_handle_at", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key",
    "set_mempolicy", "setns", "settimeofday", "stime", "swapon", "swapoff", "sysfs", "_sysctl",
    "umount", "umount2", "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)
CLONE_NS_MASK = sum(CLONE_NAMESPACE_FLAGS)


def _holds(arg: dict[str, Any], value: int) -> bool:
    op, a, b = arg["op"], arg["value"], arg.get("valueTwo", 0)
    return bool({
        "SCMP_CMP_EQ": value == a, "SCMP_CMP_NE": value != a, "SCMP_CMP_LT": value < a,
        "SCMP_CMP_LE": value <= a, "SCMP_CMP_GT": value > a, "SCMP_CMP_GE": value >= a,
        "SCMP_CMP_MASKED_EQ": value & a == b,
    }[op])


def decide(seccomp: dict[str, Any], name: str, *args: int) -> tuple[str, int | None]:
    """What a rendered filter does to `name(args)`: the action of a rule whose comparisons
    all hold (rules of one syscall are OR-ed), else the default action."""
    padded = list(args) + [0] * (6 - len(args))
    for rule in seccomp["syscalls"]:
        if name in rule["names"] and all(_holds(a, padded[a["index"]]) for a in rule.get("args", [])):
            return rule["action"], rule.get("errnoRet")
    return seccomp["defaultAction"], seccomp.get("defaultErrnoRet")


def rendered(*extra_caps: str, machine: str = "x86_64") -> dict[str, Any]:
    return default_policy(machine).render(DEFAULT_CAPABILITIES + extra_caps)


def profile(data: object, *, machine: str = "x86_64", kernel: str = "6.1.0-18-amd64") -> dict[str, Any]:
    return parse_profile(data, machine=machine, kernel=kernel, source="p.json").render(DEFAULT_CAPABILITIES)


# -- the built-in profile --------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKER_REFUSED)
def test_default_profile_refuses_what_docker_refuses_with_eperm(name: str) -> None:
    assert decide(rendered(), name) == REFUSED


@pytest.mark.parametrize("name", ["read", "execve", "openat", "clone", "futex", "io_uring_setup", "chroot",
                                  "cachestat", "some_syscall_newer_than_the_list"])
def test_default_profile_allows_the_rest_even_syscalls_it_does_not_know(name: str) -> None:
    assert decide(rendered(), name) == ALLOW


def test_default_profile_is_a_denylist_for_the_hosts_architectures() -> None:
    assert rendered()["defaultAction"] == "SCMP_ACT_ALLOW"
    assert rendered()["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert rendered(machine="aarch64")["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_unknown_machine_has_no_builtin_profile() -> None:
    with pytest.raises(SeccompError, match="no built-in seccomp profile for machine 'mips'"):
        default_policy("mips")


@pytest.mark.parametrize(("cap", "names"), [
    ("CAP_SYS_PTRACE", ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp")),
    ("CAP_SYS_ADMIN", ("mount", "umount2", "unshare", "setns", "bpf", "perf_event_open", "move_mount", "fsopen")),
    ("CAP_SYS_TIME", ("settimeofday", "clock_settime", "clock_adjtime", "stime")),
    ("CAP_SYS_MODULE", ("init_module", "finit_module", "delete_module")),
    ("CAP_SYS_BOOT", ("reboot",)),
    ("CAP_SYS_RAWIO", ("iopl", "ioperm")),
    ("CAP_SYS_NICE", ("mbind", "get_mempolicy", "set_mempolicy")),
    ("CAP_SYS_PACCT", ("acct",)),
    ("CAP_DAC_READ_SEARCH", ("open_by_handle_at", "name_to_handle_at")),
    ("CAP_BPF", ("bpf",)),
])
def test_a_capability_allows_the_syscalls_docker_gates_on_it(cap: str, names: tuple[str, ...]) -> None:
    assert cap not in DEFAULT_CAPABILITIES
    for name in names:
        assert decide(rendered(), name) == REFUSED, name
        assert decide(rendered(cap), name) == ALLOW, name


def test_capabilities_never_allow_what_docker_never_allows() -> None:
    everything = default_policy("x86_64").render(ALL_CAPABILITIES + ("CAP_BPF", "CAP_PERFMON"))
    for name in ("keyctl", "add_key", "kexec_load", "pivot_root", "swapon", "userfaultfd", "vm86"):
        assert decide(everything, name) == REFUSED, name


def test_clone3_fails_with_enosys_so_libc_falls_back_to_clone() -> None:
    assert decide(rendered(), "clone3") == ("SCMP_ACT_ERRNO", 38)
    assert decide(rendered("CAP_SYS_ADMIN"), "clone3") == ALLOW


# Threads and forks (glibc's pthread_create flags) set no namespace bit; random words mostly do.
@given(st.one_of(st.integers(min_value=0, max_value=0x1FFFF), st.just(0x3D0F00),
                 st.integers(min_value=0, max_value=2**64 - 1)))
def test_clone_is_refused_exactly_when_it_asks_for_a_namespace(flags: int) -> None:
    expected = REFUSED if flags & CLONE_NS_MASK else ALLOW
    assert decide(rendered(), "clone", flags) == expected
    assert decide(rendered("CAP_SYS_ADMIN"), "clone", flags) == ALLOW


@given(st.one_of(st.sampled_from(sorted(HARMLESS_PERSONAS)), st.integers(min_value=0, max_value=2**64 - 1)))
def test_personality_is_refused_exactly_for_harmful_personas(persona: int) -> None:
    # The kernel reads an unsigned int: the upper 32 bits do not matter.
    expected = ALLOW if persona & 0xFFFFFFFF in HARMLESS_PERSONAS else REFUSED
    assert decide(rendered(), "personality", persona) == expected


@pytest.mark.parametrize("persona", [0x0040000, 0x0400000, 0x8000000, 0x1, 0x80000000, 0x80040000, 0xFFFFFFFE])
def test_personality_refuses_address_and_exec_tricks(persona: int) -> None:
    assert decide(rendered(), "personality", persona) == REFUSED


def test_vsock_sockets_are_refused_as_in_docker() -> None:
    assert decide(rendered(), "socket", 40) == REFUSED
    assert decide(rendered(), "socket", 2) == ALLOW


def test_rules_of_one_syscall_agree_on_their_action() -> None:
    # libseccomp cannot resolve two conditional rules of one syscall with different actions.
    for caps in (DEFAULT_CAPABILITIES, ALL_CAPABILITIES):
        seen: dict[str, tuple[str, int | None]] = {}
        for rule in default_policy("x86_64").render(caps)["syscalls"]:
            for name in rule["names"]:
                assert seen.setdefault(name, (rule["action"], rule.get("errnoRet"))) == (
                    rule["action"], rule.get("errnoRet")), name


def test_one_rule_never_compares_one_argument_twice() -> None:
    # libseccomp refuses it (EINVAL), so runc would fail to start the container.
    for rule in rendered()["syscalls"]:
        indexes = [a["index"] for a in rule.get("args", [])]
        assert len(indexes) == len(set(indexes)), rule


# -- the bundle ------------------------------------------------------------------------------


def bundle(**changes: object) -> BundleSpec:
    base: dict[str, object] = {
        "rootfs": "/r", "args": ("/bin/true",), "env": (), "cwd": "/", "user": UserIds(0, 0),
        "sandbox": "/sb", "cgroups_path": "/lichen/c1/ctr", "seccomp": default_policy("x86_64"),
    }
    base.update(changes)
    return BundleSpec(**base)  # type: ignore[arg-type]


def test_bundle_of_an_unprivileged_container_holds_the_profile_for_its_capabilities() -> None:
    config = build_config(bundle())
    assert config["linux"]["seccomp"] == rendered()
    json.dumps(config)


def test_privileged_and_unconfined_containers_have_no_seccomp() -> None:
    assert "seccomp" not in build_config(bundle(privileged=True))["linux"]
    assert "seccomp" not in build_config(bundle(seccomp=None))["linux"]


# -- profiles from files ---------------------------------------------------------------------


def test_an_oci_profile_is_used_as_given() -> None:
    oci = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": CLONE_NS_MASK, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22},
        ],
    }
    assert profile(oci) == oci


def test_a_docker_profile_keeps_the_rules_for_this_hosts_arch_and_the_containers_caps() -> None:
    docker = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
        ],
        "syscalls": [
            {"names": ["read"], "action": "SCMP_ACT_ALLOW", "comment": "kept"},
            {"name": "write", "action": "SCMP_ACT_ALLOW"},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["amd64", "x32"]}},
            {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["arm", "arm64"]}},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
            {"names": ["newer"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "7.0"}},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["chown"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_CHOWN"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ],
    }
    out = profile(docker)
    assert out["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert [r["names"] for r in out["syscalls"]] == [["read"], ["write"], ["arch_prctl"], ["ptrace"], ["chown"], ["clone3"]]
    admin = parse_profile(docker, machine="aarch64", kernel="4.4.0", source="p.json").render(
        DEFAULT_CAPABILITIES + ("CAP_SYS_ADMIN",))
    assert admin["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert [r["names"] for r in admin["syscalls"]] == [["read"], ["write"], ["set_tls"], ["mount"], ["chown"]]


@pytest.mark.parametrize(("data", "message"), [
    ([], "p.json: a seccomp profile must be a JSON object"),
    ({}, "p.json: defaultAction: is missing"),
    ({"defaultAction": "SCMP_ACT_ALOW"}, 'defaultAction: unknown action "SCMP_ACT_ALOW"'),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "needs a seccomp agent"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "sycalls": []}, "unknown field(s) sycalls"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}, "defaultErrnoRet: only goes with"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["x86_64"]}, "architectures: unknown x86_64"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": [], "archMap": []}, "not both"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": {}}, "syscalls: must be a list"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}, "syscalls[0]: has no names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]},
     "syscalls[0].names: is empty"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"]}]}, "syscalls[0].action: is missing"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]},
     "syscalls[0].errnoRet: only goes with"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], "action": "SCMP_ACT_ERRNO", "errnoRet": -1}]},
     "syscalls[0].errnoRet: must be an errno"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].index: must be an argument index 0-5, not 6"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]},
     'syscalls[0].args[0].op: unknown operator "EQ"'),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": "1", "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value: must be an unsigned 64-bit integer"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["SYS_ADMIN"]}}]},
     "syscalls[0].includes.caps: capabilities are named CAP_..., not SYS_ADMIN"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["x"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]},
     "syscalls[0].includes.minKernel: must look like"),
])
def test_a_bad_profile_is_refused_naming_the_file_and_the_field(data: object, message: str) -> None:
    with pytest.raises(SeccompError) as raised:
        profile(data)
    assert str(raised.value).startswith("p.json: ")
    assert message in str(raised.value)


def test_load_policy_names_the_builtin_profiles() -> None:
    assert load_policy("unconfined") is None
    policy = load_policy("default")
    assert policy is not None and policy.default_action == "SCMP_ACT_ALLOW"


def test_load_policy_reads_a_profile_file(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO"}]}))
    policy = load_policy(str(path))
    assert policy is not None
    assert decide(policy.render(DEFAULT_CAPABILITIES), "unshare") == ("SCMP_ACT_ERRNO", None)


def test_load_policy_refuses_a_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text("{defaultAction: ALLOW}")
    with pytest.raises(SeccompError, match=f"^{path}: not JSON"):
        load_policy(str(path))


def test_load_policy_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SeccompError, match=f"cannot read seccomp profile {tmp_path}/none.json: No such file"):
        load_policy(str(tmp_path / "none.json"))

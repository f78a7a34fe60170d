"""The OCI bundle builder: Docker's merge of image and task, and the runtime spec (pure)."""

from __future__ import annotations

import pytest

from lichen.agent.containerizer.oci_bundle import (
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    SANDBOX_PATH,
    BundleError,
    BundleSpec,
    ImageRunConfig,
    UserIds,
    Volume,
    build_config,
    image_name,
    network_mode,
    process_args,
    process_env,
    resolve_user,
    task_only_env,
    volumes,
    working_dir,
)

IMAGE = ImageRunConfig(entrypoint=("/entry",), cmd=("serve", "--port", "80"), env=("PATH=/img/bin", "A=image"))
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\napp:x:1000:1001::/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1001:\nwheel:x:10:app,other\nnogroup:x:65534:\n"


def spec(**changes: object) -> BundleSpec:
    base: dict[str, object] = {
        "rootfs": "/r", "args": ("/bin/true",), "env": ("PATH=/bin",), "cwd": "/",
        "user": UserIds(0, 0), "sandbox": "/sb", "cgroups_path": "/lichen/c1/ctr",
    }
    base.update(changes)
    return BundleSpec(**base)  # type: ignore[arg-type]


def test_image_name_from_docker_type() -> None:
    assert image_name({"type": "DOCKER", "docker": {"image": "busybox:1"}}) == "busybox:1"


def test_image_name_from_mesos_type() -> None:
    container = {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "r:5000/x"}}}}
    assert image_name(container) == "r:5000/x"


def test_no_image_means_none() -> None:
    assert image_name(None) is None
    assert image_name({"type": "MESOS", "volumes": []}) is None


def test_appc_images_are_refused() -> None:
    with pytest.raises(BundleError, match="APPC"):
        image_name({"type": "MESOS", "mesos": {"image": {"type": "APPC", "appc": {"name": "x"}}}})


def test_shell_command_runs_with_image_shell_replacing_entrypoint() -> None:
    assert process_args(IMAGE, ["/bin/sh", "-c", "echo hi"], True) == ("/bin/sh", "-c", "echo hi")


def test_no_command_runs_entrypoint_and_cmd() -> None:
    assert process_args(IMAGE, [""], False) == ("/entry", "serve", "--port", "80")


def test_arguments_replace_cmd_after_entrypoint() -> None:
    assert process_args(IMAGE, ["", "other", "x"], False) == ("/entry", "other", "x")


def test_value_replaces_entrypoint() -> None:
    assert process_args(IMAGE, ["/bin/echo", "a"], False) == ("/bin/echo", "a")


def test_nothing_to_run_is_an_error() -> None:
    with pytest.raises(BundleError, match="no command"):
        process_args(ImageRunConfig(), [""], False)


def test_task_env_overrides_image_env_and_sandbox_is_set() -> None:
    env = process_env(IMAGE.env, {"A": "task", "B": "b", "MESOS_SANDBOX": "/host/path"})
    assert env == ("PATH=/img/bin", "A=task", "B=b", "MESOS_SANDBOX=" + SANDBOX_PATH)


def test_default_path_when_nobody_sets_one() -> None:
    assert any(e.startswith("PATH=/usr/local/sbin") for e in process_env((), {}))


def test_host_environment_is_not_the_tasks() -> None:
    host = {"PATH": "/host", "HOME": "/root"}
    env = {"PATH": "/host", "HOME": "/root", "X": "1", "MESOS_DIRECTORY": "/sb"}
    assert task_only_env(env, host) == {"X": "1"}


def test_working_dir_defaults_to_sandbox() -> None:
    assert working_dir(ImageRunConfig()) == SANDBOX_PATH
    assert working_dir(ImageRunConfig(working_dir="/srv/")) == "/srv"


def test_working_dir_under_proc_is_refused() -> None:
    with pytest.raises(BundleError, match="/proc"):
        working_dir(ImageRunConfig(working_dir="/proc/self/fd/7"))


def test_user_by_name_with_supplementary_groups() -> None:
    assert resolve_user("app", PASSWD, GROUP) == UserIds(1000, 1001, (10,))


def test_numeric_user_without_entry() -> None:
    assert resolve_user("4242", PASSWD, GROUP) == UserIds(4242, 0)


def test_user_and_group() -> None:
    assert resolve_user("nobody:app", PASSWD, GROUP) == UserIds(65534, 1001)
    assert resolve_user("", PASSWD, GROUP) == UserIds(0, 0)


def test_unknown_user_is_an_error() -> None:
    with pytest.raises(BundleError, match="'ghost'"):
        resolve_user("ghost", PASSWD, GROUP)


def test_volumes_host_and_sandbox_relative() -> None:
    container = {"volumes": [
        {"host_path": "/data", "container_path": "/data", "mode": "RO"},
        {"host_path": "cache", "container_path": "/cache", "mode": "RW"},
    ]}
    assert volumes(container, "/sb") == (Volume("/data", "/data", True), Volume("/sb/cache", "/cache", False))


def test_volume_escaping_the_sandbox_is_refused() -> None:
    with pytest.raises(BundleError, match="leaves the sandbox"):
        volumes({"volumes": [{"host_path": "../x", "container_path": "/x", "mode": "RW"}]}, "/sb")


def test_network_defaults_to_host_and_docker_none_is_kept() -> None:
    assert network_mode({"type": "DOCKER", "docker": {"image": "x"}}) == "HOST"
    assert network_mode({"type": "DOCKER", "docker": {"image": "x", "network": "NONE"}}) == "NONE"


def test_config_has_docker_default_privileges() -> None:
    config = build_config(spec())
    assert config["process"]["noNewPrivileges"] is True
    assert config["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert "CAP_SYS_ADMIN" not in config["process"]["capabilities"]["effective"]
    assert config["linux"]["maskedPaths"] == list(MASKED_PATHS)
    assert "/proc/sys" in config["linux"]["readonlyPaths"]


def test_host_network_shares_net_and_uts_namespaces() -> None:
    kinds = {n["type"] for n in build_config(spec())["linux"]["namespaces"]}
    assert kinds == {"pid", "ipc", "mount"}


def test_none_network_gets_own_namespace_and_hostname() -> None:
    config = build_config(spec(network="NONE", hostname="h1"))
    assert {n["type"] for n in config["linux"]["namespaces"]} >= {"network", "uts"}
    assert config["hostname"] == "h1"


def test_sandbox_is_mounted_and_agent_files_hidden() -> None:
    mounts = {m["destination"]: m for m in build_config(spec())["mounts"]}
    assert mounts[SANDBOX_PATH]["source"] == "/sb"
    assert mounts[SANDBOX_PATH + "/.lichen"]["type"] == "tmpfs"
    assert "ro" in mounts[SANDBOX_PATH + "/.lichen"]["options"]


def test_pids_limit_here_cpu_and_memory_on_the_parent_cgroup() -> None:
    resources = build_config(spec(pids_limit=100))["linux"]["resources"]
    assert "cpu" not in resources and "memory" not in resources
    assert resources["pids"] == {"limit": 100}
    assert resources["devices"] == [{"allow": False, "access": "rwm"}]


def test_readonly_volume_mount() -> None:
    mounts = build_config(spec(volumes=(Volume("/data", "/data", True),)))["mounts"]
    assert mounts[-1] == {"destination": "/data", "type": "bind", "source": "/data", "options": ["rbind", "ro"]}


def test_the_bounding_set_names_capabilities_by_number() -> None:
    from lichen.agent.containerizer.oci_bundle import bounding_set

    # This host's mask without bit 24 (CAP_SYS_RESOURCE).
    caps = bounding_set("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    assert caps is not None
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_SYS_ADMIN" in caps and "CAP_CHECKPOINT_RESTORE" in caps
    assert bounding_set("Name:\tx\n") is None
    assert bounding_set("CapBnd:\tzz\n") is None


def test_a_privileged_container_gets_what_the_agent_can_grant() -> None:
    from lichen.agent.containerizer.oci_bundle import ALL_CAPABILITIES, DEFAULT_CAPABILITIES

    everything_but = frozenset(ALL_CAPABILITIES) - {"CAP_SYS_RESOURCE"}
    caps = build_config(spec(privileged=True, available_capabilities=everything_but))["process"]["capabilities"]
    assert "CAP_SYS_RESOURCE" not in caps["bounding"] and "CAP_SYS_ADMIN" in caps["bounding"]
    caps = build_config(spec(available_capabilities=frozenset(DEFAULT_CAPABILITIES) - {"CAP_MKNOD"}))
    assert "CAP_MKNOD" not in caps["process"]["capabilities"]["bounding"]
    assert len(build_config(spec(privileged=True))["process"]["capabilities"]["bounding"]) == len(ALL_CAPABILITIES)

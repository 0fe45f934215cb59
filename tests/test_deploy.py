"""deploy/: the cluster files checked offline by the tools that will read them, and a real two-node Ray.

* ``deploy/aws-cluster.yaml`` goes through Ray's own launcher checks, the way
  ``ray up`` runs them before touching AWS (``prepare_config`` merges the AWS
  defaults, then ``validate_config`` applies ``ray/autoscaler/ray-schema.json``
  and the node-type rules); every ``node_config`` is checked against botocore's
  model of EC2 RunInstances, which is where Ray hands it; every ``ray start``
  line is parsed by Ray's own ``ray start`` command-line parser.
* The KubeRay manifests are checked for the fields the operator needs.
* The Dockerfile for a base image, the CUDA torch pin and the package install.
* ``slow``: tests/raycluster.py starts a real two-node cluster on loopback
  addresses; a driver in a subprocess pins one task to each node, the Jobs API
  runs a job and returns its log, and node B is killed and replaced.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
AWS_YAML = DEPLOY / "aws-cluster.yaml"
RAYCLUSTER_YAML = DEPLOY / "kuberay" / "raycluster.yaml"
RAYJOB_YAML = DEPLOY / "kuberay" / "rayjob.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
IMAGE = "ghcr.io/OWNER/farm:latest"
GPU_FAMILIES = ("g4dn.", "g5.", "g6.", "g6e.", "gr6.", "p4d.", "p5.")


@pytest.fixture(scope="module")
def aws() -> dict:
    return yaml.safe_load(AWS_YAML.read_text())


@pytest.fixture(scope="module")
def kube() -> dict[str, dict]:
    """The KubeRay documents by kind (RayCluster, ServiceAccount, RayJob)."""
    docs = [*yaml.safe_load_all(RAYCLUSTER_YAML.read_text()), *yaml.safe_load_all(RAYJOB_YAML.read_text())]
    return {doc["kind"]: doc for doc in docs if doc}


def worker_types(config: dict) -> dict[str, dict]:
    return {name: t for name, t in config["available_node_types"].items() if name != config["head_node_type"]}


def ray_start_argvs(commands: list[str]) -> list[list[str]]:
    """The ``ray start`` invocations in a list of shell command lines."""
    argvs = []
    for line in commands:
        for part in re.split(r"[;&|]+", line):
            argv = shlex.split(part)
            if argv[:2] == ["ray", "start"]:
                argvs.append(argv[2:])
    return argvs


def parse_ray_start(args: list[str]) -> dict:
    """Parse ``ray start`` arguments with Ray's own click command: unknown flags or bad values raise."""
    from ray.scripts.scripts import start

    return start.make_context("ray start", list(args)).params


def parse_farm(argv: list[str]) -> dict:
    """Parse a ``farm`` command line with farm's own CLI: unknown options or bad values raise."""
    import click
    import typer.main

    from farm.cli import app

    group = typer.main.get_command(app)
    assert argv[0] == "farm", argv
    with click.Context(group) as ctx:
        command = group.get_command(ctx, argv[1])
        assert command is not None, f"farm has no command {argv[1]!r}"
        return command.make_context(argv[1], argv[2:], parent=ctx).params


# --------------------------------------------------------------------------- Ray cluster launcher (AWS)


def test_aws_config_passes_rays_own_validation(aws):
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(aws))  # what `ray up` does first: AWS defaults merged in
    validate_config(prepared)                      # ray-schema.json + node-type rules; raises on any error
    assert prepared["provider"]["type"] == "aws"
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_rays_validation_is_not_a_rubber_stamp(aws):
    """The same check rejects a misspelt key and a fractional resource, so a pass above means something."""
    import jsonschema
    from ray.autoscaler._private.util import prepare_config, validate_config

    typo = copy.deepcopy(aws)
    typo["max_worker"] = 8
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(typo))
    fractional = copy.deepcopy(aws)
    next(iter(worker_types(fractional).values()))["resources"]["GPU"] = 0.5
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(fractional))


def test_every_node_config_is_a_valid_ec2_run_instances_request(aws):
    """Ray passes node_config to EC2 RunInstances as is: botocore's own model of that call checks it."""
    import botocore.session
    from botocore.validate import ParamValidator

    shape = botocore.session.get_session().get_service_model("ec2").operation_model("RunInstances").input_shape
    instance_types = set(shape.members["InstanceType"].enum)
    for name, node_type in aws["available_node_types"].items():
        request = {**node_type["node_config"], "MinCount": 1, "MaxCount": 1}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{name}: {report.generate_report()}"
        assert node_type["node_config"]["InstanceType"] in instance_types, name


def test_gpu_workers_are_spot_with_one_gpu_and_scale_from_zero(aws):
    workers = worker_types(aws)
    assert workers
    for name, node_type in workers.items():
        config = node_type["node_config"]
        assert config["InstanceType"].startswith(GPU_FAMILIES), name
        assert config["InstanceMarketOptions"]["MarketType"] == "spot", name
        assert node_type["resources"]["GPU"] == 1, name
        assert node_type["min_workers"] == 0, name
        assert node_type["max_workers"] >= 1, name
        assert "IamInstanceProfile" in config, name
    assert aws["max_workers"] >= 1
    # spot instances can only be terminated, never stopped and reused
    assert aws["provider"]["cache_stopped_nodes"] is False


def test_head_is_on_demand_cpu_and_reaches_s3_by_instance_profile(aws):
    head = aws["available_node_types"][aws["head_node_type"]]
    assert "InstanceMarketOptions" not in head["node_config"]
    assert not head["node_config"]["InstanceType"].startswith(GPU_FAMILIES)
    assert head["resources"] == {"CPU": 0}  # actors never land on the head
    assert "IamInstanceProfile" in head["node_config"]


def test_no_credentials_in_any_deploy_file():
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"AKIA[0-9A-Z]{16}", text), path
            assert not re.search(r"(?i)aws_(secret_)?access_key(_id)?\s*[:=]", text), path


def test_ray_start_lines_parse_and_serve_the_jobs_api(aws):
    (head,) = ray_start_argvs(aws["head_start_ray_commands"])
    (worker,) = ray_start_argvs(aws["worker_start_ray_commands"])
    head_params, worker_params = parse_ray_start(head), parse_ray_start(worker)
    assert head_params["head"] and head_params["port"] == 6379
    assert head_params["dashboard_host"] == "0.0.0.0" and head_params["dashboard_port"] == 8265
    assert head_params["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    assert not worker_params["head"] and worker_params["address"] == "$RAY_HEAD_IP:6379"


def test_docker_image_and_synced_code(aws):
    assert aws["docker"]["image"] == IMAGE
    assert aws["docker"]["container_name"]
    # the synced folders land exactly where the image installed farm (editable), so they are what runs
    workdir = next(args for op, args in dockerfile_instructions() if op == "WORKDIR")
    copied = {args.split()[-1].removeprefix("./") for op, args in dockerfile_instructions() if op == "COPY"}
    assert aws["file_mounts"]
    for remote, local in aws["file_mounts"].items():
        assert (ROOT / local).is_dir(), local
        assert remote == f"{workdir}/{Path(local).name}" and Path(local).name in copied, (remote, local)


# --------------------------------------------------------------------------- KubeRay


def containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def test_raycluster_has_what_the_operator_needs(kube):
    cluster = kube["RayCluster"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert cluster["metadata"]["name"]
    spec = cluster["spec"]
    head = spec["headGroupSpec"]
    groups = [head, *spec["workerGroupSpecs"]]
    for group in groups:
        # KubeRay's CRD types rayStartParams as map[string]string: a bare 0 or true is rejected
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), group["rayStartParams"]
        for container in containers(group):
            assert container["name"] and container["image"] == IMAGE
            assert container["resources"]["requests"] and container["resources"]["limits"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert {p["containerPort"] for p in containers(head)[0]["ports"]} >= {6379, 8265}
    assert spec["rayVersion"] == dockerfile_ray_version()


def test_raycluster_rayStartParams_are_flags_ray_start_accepts(kube):
    for group in [kube["RayCluster"]["spec"]["headGroupSpec"], *kube["RayCluster"]["spec"]["workerGroupSpecs"]]:
        parse_ray_start([f"--{key}={value}" for key, value in group["rayStartParams"].items()])


def test_gpu_worker_group_asks_for_one_gpu_and_scales_from_zero(kube):
    (group,) = kube["RayCluster"]["spec"]["workerGroupSpecs"]
    assert group["groupName"]
    assert group["minReplicas"] == 0 <= group["replicas"] <= group["maxReplicas"]
    (worker,) = containers(group)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == 1
    tolerations = group["template"]["spec"]["tolerations"]
    assert any(t["key"] == "nvidia.com/gpu" for t in tolerations)


def test_pods_reach_s3_through_an_irsa_service_account(kube):
    account = kube["ServiceAccount"]
    role = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role.startswith("arn:aws:iam::") and ":role/" in role
    spec = kube["RayCluster"]["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        assert group["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]


def test_rayjob_runs_farm_submit_on_the_farm_cluster(kube):
    job = kube["RayJob"]
    assert job["apiVersion"] == "ray.io/v1" and job["metadata"]["name"]
    assert job["spec"]["clusterSelector"]["ray.io/cluster"] == kube["RayCluster"]["metadata"]["name"]
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["farm", "submit"] and argv[2].startswith("s3://")
    params = parse_farm(argv)  # farm's own CLI accepts every option
    assert params["style"] == "vangogh"
    assert params["store"].startswith("s3://")


def readme_commands(program: str) -> list[list[str]]:
    """The ``program ...`` command lines in deploy/README.md's shell blocks (continuations joined)."""
    text = (DEPLOY / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith(program + " "):
                commands.append(shlex.split(line))
    return commands


def test_every_farm_command_in_the_deploy_readme_parses():
    commands = readme_commands("farm")
    assert any(argv[1] == "submit" and "--address" in argv for argv in commands)
    for argv in commands:
        parse_farm(argv)


def test_every_ray_command_in_the_deploy_readme_parses(monkeypatch):
    import click
    from ray.scripts.scripts import cli

    monkeypatch.chdir(ROOT)  # `ray up deploy/aws-cluster.yaml` and friends run from the repo root
    commands = readme_commands("ray")
    assert {tuple(argv[:2]) for argv in commands} >= {("ray", "up"), ("ray", "dashboard"), ("ray", "job")}
    for argv in commands:
        command, args, ctx = cli, argv[1:], None
        while isinstance(command, click.Group):
            ctx = click.Context(command, parent=ctx)
            name, args = args[0], args[1:]
            command = command.get_command(ctx, name)
            assert command is not None, f"ray has no command {name!r}: {argv}"
        command.make_context(name, args, parent=ctx)


def test_ray_job_submit_in_the_deploy_readme_runs_a_farm_command_that_parses():
    (argv,) = [a for a in readme_commands("ray") if a[:3] == ["ray", "job", "submit"]]
    parse_farm(argv[argv.index("--") + 1:])


# --------------------------------------------------------------------------- image


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [tuple(entry.split(None, 1)) for entry in logical]  # type: ignore[misc]


def dockerfile_ray_version() -> str:
    text = DOCKERFILE.read_text()
    return re.search(r"rayproject/ray:(\d+\.\d+\.\d+)", text).group(1)


def test_dockerfile_builds_on_ray_and_installs_cuda_torch_then_farm():
    instructions = dockerfile_instructions()
    assert any(op == "FROM" for op, _ in instructions)
    assert re.search(r"^ARG RAY_IMAGE=rayproject/ray:[\d.]+-py311-gpu$", DOCKERFILE.read_text(), re.M)
    runs = [args for op, args in instructions if op == "RUN"]
    torch_pin = next(d for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
                     if d.startswith("torch"))
    assert f"ARG TORCH_VERSION={torch_pin.split('==')[1]}" in DOCKERFILE.read_text()
    torch_run = next(i for i, run in enumerate(runs) if '"torch==${TORCH_VERSION}"' in run)
    farm_run = next(i for i, run in enumerate(runs) if re.search(r"pip install .*-e \.", run))
    assert torch_run < farm_run  # the CUDA torch first, so `pip install .` keeps it


def test_dockerfile_copies_only_what_exists_and_the_build_context_sends():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for op, args in dockerfile_instructions():
        if op != "COPY":
            continue
        *sources, _dest = [a for a in args.split() if not a.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert f"!{source.split('/')[0]}" in ignore, f"{source} is not re-included in Dockerfile.dockerignore"


# --------------------------------------------------------------------------- a real two-node cluster

DRIVER = r"""
import json, sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)

@ray.remote
def node_id():
    return ray.get_runtime_context().get_node_id()

a = node_id.options(resources={"node_a": 1}).remote()
b = node_id.options(resources={"node_b": 1}).remote()
print(json.dumps({
    "a": ray.get(a, timeout=300), "b": ray.get(b, timeout=300),
    "alive": sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]),
    "addresses": sorted(n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]),
}))
"""


@pytest.fixture(scope="module")
def cluster():
    from tests.raycluster import RayCluster

    cluster = RayCluster().start()
    print(f"\n[raycluster] started in {cluster.startup_s:.1f} s; {len(cluster.pids())} processes, "
          f"PSS {cluster.pss_mib():.0f} MiB (RSS summed {cluster.rss_mib():.0f} MiB)")
    yield cluster
    cluster.stop()
    assert not cluster.pids(), "processes left behind"


@pytest.mark.slow
def test_two_nodes_on_one_machine_each_run_their_pinned_task(cluster):
    result = subprocess.run([sys.executable, "-c", DRIVER, cluster.address], env=cluster.client_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["a"] != seen["b"]
    assert seen["alive"] == sorted([seen["a"], seen["b"]])
    assert cluster.alive_nodes() == {"node_a": seen["a"], "node_b": seen["b"]}
    assert seen["addresses"] == [cluster.ip_a, cluster.ip_b]  # loopback addresses only


@pytest.mark.slow
def test_jobs_api_runs_a_job_and_returns_its_log(cluster):
    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard_url)
    job = client.submit_job(entrypoint="python -c \"print('hi')\"")
    deadline = time.monotonic() + 300  # a hang guard, not a speed expectation
    while (status := client.get_job_status(job)) not in {JobStatus.SUCCEEDED, JobStatus.FAILED,
                                                          JobStatus.STOPPED}:
        assert time.monotonic() < deadline, f"job {job} still {status}"
        time.sleep(0.5)
    assert status == JobStatus.SUCCEEDED, client.get_job_logs(job)
    assert "hi" in client.get_job_logs(job).splitlines()


@pytest.mark.slow
def test_node_b_can_die_and_come_back(cluster):
    from tests.raycluster import session_members

    before = cluster.alive_nodes()
    killed = cluster.node_b
    cluster.stop_node_b()  # returns once the GCS has marked it dead
    try:
        assert set(cluster.alive_nodes()) == {"node_a"}
        assert not session_members(killed.proc.pid), "node_b left processes behind"
    finally:
        cluster.start_node_b()
    after = cluster.alive_nodes()
    assert after["node_a"] == before["node_a"] and after["node_b"] != before["node_b"]

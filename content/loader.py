"""Loading the content folder into validated models, with errors an admin can act on."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from content.schema import (
    Commitment,
    Department,
    DepartmentsFile,
    Figure,
    LabelledMessages,
    Measure,
    Plan,
    PlansFile,
    SmallTalkFile,
    SynonymsFile,
    TargetsFile,
    squash,
)

PLAN_TEXT = Path("source") / "action-plan-final-2025.txt"
MESSAGES = Path("messages")
MEASURE_COUNT = 24
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, order=True)
class ContentError:
    """One problem in one file, pointing at the line an admin has to fix."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(file)'}: {self.message}"


class ContentInvalid(Exception):
    def __init__(self, errors: list[ContentError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Content:
    """All content, validated and cross-checked. Immutable: a reload builds a new one."""

    measures: dict[int, Measure]
    plans: dict[int, Plan]
    departments: dict[str, Department]
    targets: TargetsFile
    synonyms: SynonymsFile
    smalltalk: SmallTalkFile
    messages: LabelledMessages
    coordinator: str
    version: str
    folder: Path = Path()
    files: dict[int, str] = field(default_factory=dict, compare=False)

    def measures_of(self, plan: int) -> list[Measure]:
        return [m for m in self.measures.values() if m.plan == plan]

    def department_names(self, ids: Iterable[str], lang: str) -> list[str]:
        """Names as the plan gives them, with the translation beside the official Chinese."""
        names = []
        for dept_id in ids:
            name = self.departments[dept_id].name
            names.append(name.zh if lang == "zh" else f"{name.get(lang)} ({name.zh})")
        return names


# libyaml's parser when PyYAML was built with it (the wheels are): content loads on every start and reload.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Source:
    """One YAML file: its data and the line of every node, for error messages."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.name = str(path.relative_to(root))
        self.node: yaml.Node | None = None
        self.data: Any = None

    def parse(self) -> list[ContentError]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return [ContentError(self.name, 0, "", f"cannot read the file: {exc}")]
        loader = _YAML_LOADER(text)
        try:
            self.node = loader.get_single_node()
            self.data = loader.construct_document(self.node) if self.node is not None else None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            problem = getattr(exc, "problem", None) or str(exc)
            return [ContentError(self.name, line, "", f"broken YAML: {problem}")]
        finally:
            loader.dispose()
        if self.node is None:
            return [ContentError(self.name, 1, "", "the file is empty")]
        return [
            ContentError(self.name, line, path, "this key is written twice")
            for path, line in _duplicate_keys(self.node, "")
        ]

    def line_of(self, loc: tuple[int | str, ...]) -> int:
        """The line of the deepest node on the path `loc` that exists."""
        node = self.node
        line = node.start_mark.line + 1 if node else 0
        for key in loc:
            if isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == key), None)
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                node = None
            if node is None:
                break
            line = node.start_mark.line + 1
        return line

    def validate(self, model: type[M]) -> tuple[M | None, list[ContentError]]:
        try:
            return model.model_validate(self.data), []
        except ValidationError as exc:
            errors = []
            for err in exc.errors(include_url=False):
                loc = tuple(err["loc"])
                message = err["msg"].removeprefix("Value error, ")
                if err["type"] == "missing":
                    message = "this field is required but missing"
                errors.append(ContentError(self.name, self.line_of(loc), _dotted(loc), message))
            return None, errors

    def error(self, loc: tuple[int | str, ...], message: str) -> ContentError:
        return ContentError(self.name, self.line_of(loc), _dotted(loc), message)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _duplicate_keys(node: yaml.Node, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            sub = f"{path}.{key.value}" if path else str(key.value)
            if key.value in seen:
                yield sub, key.start_mark.line + 1
            seen.add(key.value)
            yield from _duplicate_keys(value, sub)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{path}[{i}]")


def load_content(folder: Path) -> Content:
    """Load and validate the whole content folder; raise ContentInvalid listing every problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ContentInvalid([ContentError(str(folder), 0, "", "no such content folder")])
    errors: list[ContentError] = []

    def read(path: Path, model: type[M]) -> tuple[M | None, _Source]:
        source = _Source(path, folder)
        if not path.is_file():
            errors.append(ContentError(source.name, 0, "", "the file is missing"))
            return None, source
        problems = source.parse()
        if problems:
            errors.extend(problems)
            return None, source
        value, problems = source.validate(model)
        errors.extend(problems)
        return value, source

    plans_file, _ = read(folder / "plans.yaml", PlansFile)
    departments_file, _ = read(folder / "departments.yaml", DepartmentsFile)
    targets, targets_source = read(folder / "targets.yaml", TargetsFile)
    synonyms, _ = read(folder / "synonyms.yaml", SynonymsFile)
    smalltalk, _ = read(folder / "smalltalk.yaml", SmallTalkFile)
    messages = _read_messages(folder, errors)
    plan_text = _read_plan_text(folder, errors)

    departments = departments_file.departments if departments_file else {}
    plans: dict[int, Plan] = {}
    if plans_file and departments and plans_file.coordinator not in departments:
        errors.append(ContentError("plans.yaml", 0, "coordinator", "unknown department (see departments.yaml)"))
    for plan in plans_file.plans if plans_file else []:
        if plan.number in plans:
            errors.append(ContentError("plans.yaml", 0, "plans", f"plan {plan.number} is listed twice"))
        plans[plan.number] = plan

    measures: dict[int, Measure] = {}
    files: dict[int, str] = {}
    measure_paths = sorted((folder / "measures").glob("*.yaml")) if (folder / "measures").is_dir() else []
    for path in measure_paths:
        measure, source = read(path, Measure)
        if measure is None:
            continue
        if measure.number in measures:
            errors.append(
                source.error(("number",), f"measure {measure.number} is already defined in {files[measure.number]}")
            )
            continue
        errors.extend(_cross_check(measure, source, plans, departments, plan_text))
        measures[measure.number] = measure
        files[measure.number] = source.name

    if targets:
        errors.extend(_check_quotes(targets_source, targets.source.text, plan_text, "targets", targets.targets))
        errors.extend(_check_quotes(targets_source, targets.source.text, "", "commitments", targets.commitments))
    missing = sorted(set(range(1, MEASURE_COUNT + 1)) - set(measures))
    if missing and not any(e.file.startswith("measures") for e in errors):
        numbers = ", ".join(str(n) for n in missing)
        errors.append(ContentError("measures", 0, "", f"measures missing: {numbers}"))
    if errors or targets is None or synonyms is None or smalltalk is None or messages is None or plans_file is None:
        raise ContentInvalid(sorted(set(errors)))
    return Content(
        measures=dict(sorted(measures.items())),
        plans=dict(sorted(plans.items())),
        departments=departments,
        targets=targets,
        synonyms=synonyms,
        smalltalk=smalltalk,
        messages=messages,
        coordinator=plans_file.coordinator,
        version=_fingerprint(folder),
        folder=folder,
        files=files,
    )


def _read_messages(folder: Path, errors: list[ContentError]) -> LabelledMessages | None:
    """The labelled messages: one a line, in plain text so that any message can be pasted as it is;
    blank lines and lines starting with # are left out. A message may be in one of the two files only."""
    found: dict[str, list[tuple[int, str]]] = {}
    for label in LabelledMessages.model_fields:
        name = (MESSAGES / f"{label}.txt").as_posix()
        try:
            lines = (folder / name).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            errors.append(ContentError(name, 0, "", "the file is missing"))
            return None
        except (OSError, UnicodeDecodeError) as exc:
            errors.append(ContentError(name, 0, "", f"cannot read the file: {exc}"))
            return None
        messages = ((n, " ".join(line.split())) for n, line in enumerate(lines, 1))
        found[label] = [(n, message) for n, message in messages if message and not message.startswith("#")]
    about = {message: n for n, message in found["about_the_plan"]}
    clashes = [
        ContentError(
            (MESSAGES / "not_about_the_plan.txt").as_posix(),
            n,
            "",
            f"also in about_the_plan.txt (line {about[message]}): a message is about the plan or not",
        )
        for n, message in found["not_about_the_plan"]
        if message in about
    ]
    errors.extend(clashes)
    if clashes:
        return None
    return LabelledMessages(**{label: [message for _n, message in lines] for label, lines in found.items()})


def _read_plan_text(folder: Path, errors: list[ContentError]) -> str:
    try:
        return squash((folder / PLAN_TEXT).read_text(encoding="utf-8"))
    except OSError:
        errors.append(ContentError(str(PLAN_TEXT), 0, "", "the final plan's text is missing"))
        return ""


def _cross_check(
    measure: Measure,
    source: _Source,
    plans: dict[int, Plan],
    departments: dict[str, Department],
    plan_text: str,
) -> list[ContentError]:
    errors = []
    if plans and measure.plan not in plans:
        errors.append(source.error(("plan",), f"there is no plan {measure.plan} in plans.yaml"))
    for role in ("lead", "support", "shared"):
        for i, dept_id in enumerate(getattr(measure.departments, role)):
            if dept_id not in departments:
                errors.append(
                    source.error(("departments", role, i), f"unknown department {dept_id!r} (see departments.yaml)")
                )
    text = squash(measure.source.text)
    if plan_text and text in plan_text and not text.startswith(f"{measure.number}."):
        errors.append(source.error(("source", "text"), f"the quoted text is not measure {measure.number}"))
    if squash(measure.title.zh) not in text:
        errors.append(source.error(("title", "zh"), "must be the measure's official title, as in its source text"))
    errors.extend(_check_quotes(source, measure.source.text, plan_text, "figures", measure.figures))
    return errors


def _check_quotes(
    source: _Source, official_text: str, plan_text: str, key: str, items: Sequence[Figure | Commitment]
) -> list[ContentError]:
    """The official text must be in the final plan, and every quote in the official text."""
    errors = []
    text = squash(official_text)
    if plan_text and text not in plan_text:
        errors.append(source.error(("source", "text"), "this text is not in the final plan"))
    for i, item in enumerate(items):
        if squash(item.quote) not in text:
            errors.append(source.error((key, i, "quote"), "this quote is not in the source text"))
    return errors


def _fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted([*folder.rglob("*.yaml"), *folder.rglob("*.txt")]):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


Validator = Callable[[Content], list[ContentError]]


def load_checked(folder: Path, validators: Sequence[Validator] = ()) -> Content:
    """Load the folder and run further checks on the result (such as the matching examples)."""
    content = load_content(folder)
    errors = [error for validate in validators for error in validate(content)]
    if errors:
        raise ContentInvalid(sorted(set(errors)))
    return content


def check_content(folder: Path, validators: Sequence[Validator] = ()) -> list[ContentError]:
    """Every problem in the folder; an empty list when it is good to serve."""
    try:
        load_checked(folder, validators)
    except ContentInvalid as exc:
        return exc.errors
    return []


def locate(content: Content, measure: int, loc: tuple[int | str, ...], message: str) -> ContentError:
    """An error about a field of a loaded measure, pointing at its line in the file."""
    source = _Source(content.folder / content.files[measure], content.folder)
    source.parse()
    return source.error(loc, message)

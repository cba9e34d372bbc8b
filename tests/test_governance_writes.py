"""Governance is the only writer of its rows and of the audit log: walk every module outside it and refuse
a write.

A write is (a) an attribute set (or `setattr`) on an ORM row of `governance.schema`, (b) a session's
`add`/`add_all`/`delete`/`merge`, or an `update`/`insert`/`delete` statement, (c) the raw append
`governance.audit.record.record` (or `record_event`), an `AuditEvent(...)` or a `Refusal(...)` built by
hand, or `governance.uow.record_refusal`. Calling a governance service that does these (`jobs.transition`,
`audit.record_export`) is the point, and allowed.

Which names hold ORM rows is inferred per function, without importing the code under test: parameters
annotated with a mapped class, the result of `session.get(Model, ...)`, of a query over `select(Model)`,
of `Model(...)`, and of any function (anywhere in the tree) whose return annotation names a mapped class
(`get_job -> Job`, `jobs_of_batch -> list[Job]`), also through `for` loops (`zip`, `enumerate`). A plain
dataclass or an in-memory session object is none of these, so setting its fields is not flagged.
`bench/` is not scanned: it measures the append service itself.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from governance.schema import Base

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("flows", "console", "pipeline", "models")
ORM_CLASSES = frozenset(mapper.class_.__name__ for mapper in Base.registry.mappers)
SESSION_WRITES = frozenset({"add", "add_all", "delete", "merge", "bulk_save_objects", "bulk_insert_mappings"})
QUERY_CALLS = frozenset({"get", "get_one", "scalar", "scalars", "first", "one", "one_or_none", "all"})
SESSION_FACTORIES = frozenset(
    {"unit_of_work", "sessions", "session_factory", "sf", "Session", "sessionmaker"}
)
HAND_BUILT = frozenset({"AuditEvent", "Refusal"})
RAW_APPENDS = frozenset({"record", "record_event"})


def _names(node: ast.AST | None) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} if node is not None else set()


def _annotated_orm(annotation: ast.AST | None) -> bool:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return any(word in ORM_CLASSES for word in _words(annotation.value))
    return bool(_names(annotation) & ORM_CLASSES)


def _words(text: str) -> set[str]:
    return {part for part in "".join(c if c.isalnum() or c == "_" else " " for c in text).split()}


def _callee(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def row_functions(files: Iterable[Path]) -> frozenset[str]:
    """Names of functions whose return annotation names a mapped class (they hand out ORM rows)."""
    found: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _annotated_orm(node.returns):
                found.add(node.name)
    return frozenset(found)


@dataclass
class Checker:
    """Finds governance writes in one module's source."""

    row_funcs: frozenset[str]
    problems: list[str] = field(default_factory=list)

    def is_row(self, expr: ast.AST | None) -> bool:
        """Whether `expr` evaluates to an ORM row (or a list/iterable of them)."""
        if not isinstance(expr, ast.Call):
            return False
        name = _callee(expr)
        if name in self.row_funcs or name in ORM_CLASSES:
            return True
        if name in QUERY_CALLS:
            for inner in ast.walk(expr):
                if isinstance(inner, ast.Call) and _callee(inner) in {"select", "get", "get_one"}:
                    first = inner.args[0] if inner.args else None
                    if isinstance(first, ast.Name) and first.id in ORM_CLASSES:
                        return True
        return False

    def bind_loop(self, target: ast.AST, iterable: ast.AST, rows: set[str]) -> None:
        if isinstance(target, ast.Name) and (
            self.is_row(iterable) or (isinstance(iterable, ast.Name) and iterable.id in rows)
        ):
            rows.add(target.id)
        elif isinstance(target, ast.Tuple) and isinstance(iterable, ast.Call):
            name = _callee(iterable)
            if name == "zip":
                for elt, source in zip(target.elts, iterable.args, strict=False):
                    self.bind_loop(elt, source, rows)
            elif name == "enumerate" and len(target.elts) == 2 and iterable.args:
                self.bind_loop(target.elts[1], iterable.args[0], rows)

    def check_scope(self, where: str, body: list[ast.stmt], args: ast.arguments | None) -> None:
        rows: set[str] = set()
        sessions: set[str] = set()
        if args is not None:
            for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
                if _annotated_orm(arg.annotation):
                    rows.add(arg.arg)
                if "Session" in _names(arg.annotation):
                    sessions.add(arg.arg)
        for node in self._walk(body):
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name) and self.is_row(node.value):
                        rows.add(target.id)
            elif isinstance(node, ast.For | ast.comprehension):
                self.bind_loop(node.target, node.iter, rows)
            elif isinstance(node, ast.With):
                for item in node.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and _callee(call) in SESSION_FACTORIES:
                        if isinstance(item.optional_vars, ast.Name):
                            sessions.add(item.optional_vars.id)
        for node in self._walk(body):
            line = f"{where}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for sub in ast.walk(target):
                        if (
                            isinstance(sub, ast.Attribute)
                            and isinstance(sub.ctx, ast.Store)
                            and isinstance(sub.value, ast.Name)
                            and sub.value.id in rows
                        ):
                            self.problems.append(f"{line}: sets {ast.unparse(sub)} on an ORM row")
            elif isinstance(node, ast.Call):
                name = _callee(node)
                func = node.func
                if name in {"setattr", "delattr"} and node.args and _names(node.args[0]) & rows:
                    self.problems.append(f"{line}: {name} on an ORM row")
                elif (
                    name in SESSION_WRITES
                    and isinstance(func, ast.Attribute)
                    and isinstance(func.value, ast.Name)
                    and func.value.id in sessions
                ):
                    self.problems.append(f"{line}: session.{name}(...) writes rows")

    @staticmethod
    def _walk(body: list[ast.stmt]) -> Iterator[ast.AST]:
        """Every node of a scope, not descending into nested functions or classes (their own scopes)."""
        nested = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda
        stack: list[ast.AST] = [node for node in reversed(body) if not isinstance(node, nested)]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(
                child for child in reversed(list(ast.iter_child_nodes(node))) if not isinstance(child, nested)
            )

    def check_module(self, where: str, tree: ast.Module) -> list[str]:
        audit_modules: set[str] = set()  # aliases of governance.audit.record
        raw_names: set[str] = set()  # record / record_event / record_refusal imported by name
        statements: set[str] = set()  # sqlalchemy update/insert/delete
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    local = alias.asname or alias.name
                    if node.module == "governance.audit" and alias.name == "record":
                        audit_modules.add(local)
                    elif node.module == "governance.audit.record" and alias.name in RAW_APPENDS:
                        raw_names.add(local)
                    elif node.module == "governance.uow" and alias.name == "record_refusal":
                        raw_names.add(local)
                    elif node.module.startswith("sqlalchemy") and alias.name in {
                        "update",
                        "insert",
                        "delete",
                    }:
                        statements.add(local)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == "governance.audit.record" and alias.asname:
                        audit_modules.add(alias.asname)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            line, func = f"{where}:{node.lineno}", node.func
            if isinstance(func, ast.Attribute) and func.attr in RAW_APPENDS | {"record_refusal"}:
                base = func.value
                dotted = ast.unparse(base)
                if (isinstance(base, ast.Name) and base.id in audit_modules) or dotted in {
                    "governance.audit.record",
                    "governance.uow",
                }:
                    self.problems.append(f"{line}: {ast.unparse(func)}(...) appends to the audit log")
            elif isinstance(func, ast.Name) and func.id in raw_names:
                self.problems.append(f"{line}: {func.id}(...) appends to the audit log")
            elif isinstance(func, ast.Name) and func.id in HAND_BUILT:
                self.problems.append(f"{line}: builds a {func.id} by hand")
            elif isinstance(func, ast.Name) and func.id in statements:
                self.problems.append(f"{line}: a sqlalchemy {func.id}() statement writes rows")
        self.check_scope(where, tree.body, None)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                self.check_scope(where, node.body, node.args)
            elif isinstance(node, ast.Lambda):
                self.check_scope(where, [ast.Expr(node.body)], node.args)
        return self.problems


def scanned_files() -> list[Path]:
    return sorted(path for package in SCANNED for path in (ROOT / package).rglob("*.py"))


def all_row_functions() -> frozenset[str]:
    sources = [*sorted((ROOT / "governance").rglob("*.py")), *scanned_files()]
    return row_functions(sources)


def problems_in(source: str, row_funcs: frozenset[str], where: str = "snippet.py") -> list[str]:
    return Checker(row_funcs).check_module(where, ast.parse(source))


def test_no_module_outside_governance_writes_rows_or_audit_events() -> None:
    row_funcs = all_row_functions()
    assert {"get_job", "jobs_of_batch"} <= row_funcs  # the inference sees governance's row getters
    problems = [
        problem
        for path in scanned_files()
        for problem in problems_in(path.read_text(encoding="utf-8"), row_funcs, str(path.relative_to(ROOT)))
    ]
    assert problems == [], "governance is the only writer of its rows and of the audit log:\n" + "\n".join(
        problems
    )


FLAGGED = {
    "a column of a loaded job": """
from flows.jobs.data import load_job
def f(session, job_id):
    job = load_job(session, job_id)
    job.last_error = "x"
""",
    "a row from session.get": """
def f(session, job_id):
    job = session.get(Job, job_id)
    job.consent_id = "c"
""",
    "a row from a select": """
def f(session):
    found = session.scalars(select(Publication).where(Publication.job_id == 1)).first()
    found.object_key += "x"
""",
    "an annotated parameter": """
def f(job: Job | None) -> None:
    setattr(job, "seed", 1)
""",
    "a list of rows, looped over": """
def f(session, batch_id):
    found = jobs_of_batch(session, batch_id)
    for each in found:
        each.state = "failed"
""",
    "rows zipped with requests": """
def f(session, batch, request):
    for row, wanted in zip(batches.jobs_of_batch(session, batch.id), request.jobs, strict=True):
        row.seed = wanted.seed
""",
    "a session add": """
def f(rt, thing):
    with unit_of_work(rt.sessions) as session:
        session.add(thing)
""",
    "the raw append": """
from governance.audit import record as audit
def f(session):
    audit.record(session, action="x.y", actor="a")
""",
    "a hand-built refusal": """
def f():
    raise GovernanceError("no", refusal=Refusal(action="x.y", actor="a"))
""",
    "an update statement": """
from sqlalchemy import update
def f(session):
    session.execute(update(Job).values(state="failed"))
""",
}


@pytest.mark.parametrize("source", FLAGGED.values(), ids=FLAGGED.keys())
def test_the_check_flags_a_write(source: str) -> None:
    assert len(problems_in(source, frozenset({"load_job", "jobs_of_batch"}))) == 1


def test_the_check_leaves_plain_objects_and_governance_services_alone() -> None:
    source = """
from governance.audit import record as audit
def f(rt, session, token, request, now):
    result = DemoResult()
    result.batch = batch_report(rt, "b")          # a dataclass
    web = self_sessions.get(token)
    web.last_seen = now                           # an in-memory web session
    request.state.user = None
    rt.store.delete("inputs", "k")                # an object store, not a database session
    seen = set()
    seen.add(1)
    audit.record_export(session, actor="a", details={})   # a governance service
    jobs.transition(session, jobs.get_job(session, "j"), to="failed", actor="a")
    rows = session.execute(select(Job.id, Job.state)).all()   # columns, not rows
    for row in rows:
        row.x = 1
"""
    assert problems_in(source, frozenset({"get_job"})) == []

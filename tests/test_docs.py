"""Every ```python block of README.md and docs/*.md runs (issue 15: docs that run).

The blocks of one Markdown file run in order, in one namespace per file (a
later block may use what an earlier one defined), with a fresh temporary
directory of that file as the working directory. One test per block, named
``<file>:<line of the fence>``; running one block alone runs the earlier
blocks of its file first. Tracebacks carry the Markdown file and line.

Conventions: HTML comments on the lines just before a fence (invisible once
rendered, plain in the source):

``<!-- not run: <reason> -->``
    the block is not executed; the reason is required (tested).
``<!-- needs: vpcd-card <profile> -->``
    while the block runs, an emulated card of that profile is in pcscd's
    vsmartcard-vpcd reader (``CPS_VPCD_PORT``, default 35963), as with the
    plugin's ``cps_vpcd_card``; its PIN is the profile's ("1234" for the
    cps3-* profiles).
``<!-- needs: pcscd -->``
    the block plugs a card in itself (``emu.serve_vpcd()``, reader
    ``Virtual PCD 00 00``): pcscd must run and that reader be free.

Blocks with a ``needs``, and the later blocks of their file, are marked ``pcsc``
(``-m "not pcsc"`` leaves them out).
Anything else in a ``needs`` comment fails the test: say what is needed in a
way this file knows, or add it here.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*)$")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<body>.*?)\s*-->\s*$")
_NOT_RUN = re.compile(r"^not[ -]run\s*:?\s*(?P<reason>.*)$", re.IGNORECASE)
_NEEDS = re.compile(r"^needs\s*:\s*(?P<what>.*)$", re.IGNORECASE)
_KNOWN_NEEDS = {"vpcd-card", "pcscd"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int                           # 1-based line of the opening fence
    code: str
    not_run: str | None = None       # the reason, when not run ("" when none was given)
    needs: tuple[tuple[str, ...], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"

    @property
    def pcsc(self) -> bool:
        return bool(self.needs)


def blocks_of(path: Path) -> list[Block]:
    """The ```python blocks of a Markdown file, with the comments just before them."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        info = match["info"].strip().split()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if info and info[0] == "python":
            body = [line[indent:] if not line[:indent].strip() else line.lstrip()
                    for line in lines[i + 1:end]]
            not_run: str | None = None
            needs: list[tuple[str, ...]] = []
            j = i - 1
            while j >= 0 and (comment := _COMMENT.match(lines[j])):
                text = comment["body"]
                if skip := _NOT_RUN.match(text):
                    not_run = skip["reason"].strip()
                elif need := _NEEDS.match(text):
                    needs.append(tuple(need["what"].split()))
                j -= 1
            blocks.append(Block(path, i + 1, "\n".join(body) + "\n", not_run, tuple(needs)))
        i = end + 1
    return blocks


ALL_BLOCKS = [block for path in DOCS for block in blocks_of(path)]


def _params() -> list[Any]:
    """One per block; ``pcsc`` from the first block of a file that needs a reader on
    (the later ones run after it, in its namespace)."""
    params, pcsc = [], set()
    for block in ALL_BLOCKS:
        if block.pcsc and block.not_run is None:
            pcsc.add(block.path)
        marks = [pytest.mark.pcsc] if block.path in pcsc else []
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


# ---------------------------------------------------------------- running a file's blocks

@dataclass
class _FileRun:
    directory: Path
    namespace: dict[str, Any] = field(default_factory=dict)
    done: dict[int, str | None] = field(default_factory=dict)   # line -> failure, or None


_RUNS: dict[Path, _FileRun] = {}


def _my_port() -> int:
    return int(os.environ.get("CPS_VPCD_PORT", "35963"))


def _wait_reader_free(name: str, timeout: float = 60) -> None:
    """Another process may serve a card in that reader: wait for it to leave."""
    import cps

    deadline = time.monotonic() + timeout
    while any(r.name == name and r.card_present for r in cps.list_readers()):
        if time.monotonic() > deadline:
            pytest.fail(f"{name} stays busy: another process serves a card in it")
        time.sleep(0.2)


def _reader_name(port: int) -> str:
    return f"Virtual PCD 00 {port - 35963:02d}"


@contextlib.contextmanager
def _needs(block: Block, request: pytest.FixtureRequest) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for need in block.needs:
            kind, args = need[0] if need else "", need[1:]
            if kind not in _KNOWN_NEEDS:
                pytest.fail(f"{block.name}: unknown `needs: {' '.join(need)}` "
                            f"(known: {', '.join(sorted(_KNOWN_NEEDS))})")
            request.getfixturevalue("cps_pcscd")
            if kind == "pcscd":
                _wait_reader_free(_reader_name(35963))
            elif kind == "vpcd-card":
                if len(args) != 1:
                    pytest.fail(f"{block.name}: `needs: vpcd-card <profile>` names one profile")
                emu = request.getfixturevalue("cps_card_factory")(args[0])
                _wait_reader_free(_reader_name(_my_port()))
                stack.enter_context(emu.serve_vpcd(port=_my_port()))
        yield


def _run(block: Block, run: _FileRun, request: pytest.FixtureRequest) -> None:
    code = compile("\n" * block.line + block.code, str(block.path), "exec")
    previous = os.getcwd()
    os.chdir(run.directory)
    try:
        with _needs(block, request):
            exec(code, run.namespace)  # noqa: S102 - our own docs
    finally:
        os.chdir(previous)


@pytest.mark.parametrize("block", _params())
def test_block_runs(block: Block, request: pytest.FixtureRequest,
                    tmp_path_factory: pytest.TempPathFactory) -> None:
    if block.not_run is not None:
        assert block.not_run, f"{block.name}: a block not run must say why"
        pytest.skip(f"not run: {block.not_run}")
    run = _RUNS.get(block.path)
    if run is None:
        run = _RUNS[block.path] = _FileRun(tmp_path_factory.mktemp(block.path.stem))
        run.namespace["__name__"] = "__docs__"
    for earlier in blocks_of(block.path):   # the blocks this one may build on
        if earlier.line >= block.line:
            break
        if earlier.not_run is not None:
            continue
        if earlier.line not in run.done:
            try:
                _run(earlier, run, request)
                run.done[earlier.line] = None
            except BaseException as exc:  # noqa: BLE001 - reported below
                run.done[earlier.line] = f"{type(exc).__name__}: {exc}"
        if run.done[earlier.line] is not None:
            pytest.fail(f"{earlier.name}, which this block follows, failed: "
                        f"{run.done[earlier.line]}")
    try:
        _run(block, run, request)
    except BaseException as exc:
        run.done[block.line] = f"{type(exc).__name__}: {exc}"
        raise
    run.done[block.line] = None


# ---------------------------------------------------------------- the conventions

def test_blocks_are_found() -> None:
    names = {b.name for b in ALL_BLOCKS}
    assert "README.md" in {n.split(":")[0] for n in names}
    assert len(ALL_BLOCKS) >= 10


def test_every_skipped_block_says_why() -> None:
    assert [b.name for b in ALL_BLOCKS if b.not_run == ""] == []


def test_every_needs_is_known() -> None:
    unknown = [(b.name, n) for b in ALL_BLOCKS for n in b.needs
               if not n or n[0] not in _KNOWN_NEEDS or (n[0] == "vpcd-card" and len(n) != 2)]
    assert unknown == []


def test_markers_sit_on_python_blocks() -> None:
    """A `not run` or `needs` comment anywhere but just before a python fence does nothing:
    it is a mistake."""
    stray = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            comment = _COMMENT.match(line)
            body = comment["body"] if comment else ""
            if not (_NOT_RUN.match(body) or _NEEDS.match(body)):
                continue
            following = number   # index of the next line
            while following < len(lines) and _COMMENT.match(lines[following]):
                following += 1
            fence = _FENCE.match(lines[following]) if following < len(lines) else None
            if not fence or fence["info"].strip().split()[:1] != ["python"]:
                stray.append(f"{path.relative_to(ROOT).as_posix()}:{number}")
    assert stray == []


def test_blocks_of_reads_the_conventions(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n<!-- not run: needs the ANS Cryptolib -->\n```python\nboom()\n```\n\n"
                   "<!-- needs: vpcd-card cps3-medecin -->\n```python\n  a = 1\n```\n"
                   "```sh\n```python\n```\n- item\n\n  ```python\n  b = 2\n  ```\n",
                   encoding="utf-8")
    first, second, third = blocks_of(doc)
    assert (first.line, first.not_run, first.code) == (4, "needs the ANS Cryptolib", "boom()\n")
    assert (second.needs, second.code) == ((("vpcd-card", "cps3-medecin"),), "  a = 1\n")
    assert (third.line, third.code, third.not_run, third.needs) == (17, "b = 2\n", None, ())

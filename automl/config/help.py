"""``automl <command> --help``: every key of a command's schema with its type, default and doc.

One source of truth: a key's doc is the comment on its dataclass field in ``automl/config/fit.py``
or ``commands.py`` (the comment at the end of the field's line, else the comment lines right
above it); a section's heading is its dataclass's docstring. Nothing here lists keys by hand.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import shutil
import textwrap
import tokenize
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

REQUIRED = "???"  # OmegaConf's MISSING: a value the user must give


@dataclass(frozen=True)
class KeyDoc:
    """One dotted key: its type's name, its default (as the command would use it) and its doc."""

    key: str
    type: str
    default: Any
    doc: str


@functools.lru_cache(maxsize=None)
def field_docs(schema: type) -> Dict[str, str]:
    """``{field name: doc}`` of one dataclass, read from the comments of its source."""
    try:
        source = textwrap.dedent(inspect.getsource(schema))
    except (OSError, TypeError):  # no source (a frozen build): no docs, never an error
        return {}
    lines = source.splitlines()
    comments: Dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    full_line = {n for n in comments if lines[n - 1].lstrip().startswith("#")}
    docs: Dict[str, str] = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        trailing = [comments[n] for n in range(node.lineno, node.end_lineno + 1) if n in comments and n not in full_line]
        above: List[str] = []
        n = node.lineno - 1
        while n in full_line:
            above.insert(0, comments[n])
            n -= 1
        docs[node.target.id] = " ".join(trailing or above)
    return docs


def section_doc(schema: type) -> str:
    """The first line of a dataclass's own docstring ('' when it has none)."""
    doc = (schema.__dict__.get("__doc__") or "").strip()
    if not doc or doc.startswith(f"{schema.__name__}("):  # the signature dataclasses writes in
        return ""
    return doc.splitlines()[0]


def type_name(annotation: Any) -> str:
    """``Optional[int]`` -> ``int``; ``List[str]`` -> ``list``; ``Dict[...]`` -> ``dict``."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin is typing.Union and args:
        return type_name(args[0])
    if origin in (list, List):
        return "list"
    if origin in (dict, Dict):
        return "dict"
    return getattr(annotation, "__name__", str(annotation))


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def mapped_schema(annotation: Any) -> Optional[type]:
    """The dataclass of a ``Dict[str, <dataclass>]`` field (``candidates``), else None."""
    if typing.get_origin(annotation) in (dict, Dict):
        value = typing.get_args(annotation)[-1]
        return value if dataclasses.is_dataclass(value) else None
    return None


def key_docs(schema: type, prefix: str = "") -> List[KeyDoc]:
    """Every dotted key of a (nested) dataclass schema, in declaration order, with its doc.
    A ``Dict[str, <dataclass>]`` field (``candidates``) is listed as ``<field>.<name>.<key>``."""
    hints = typing.get_type_hints(schema)
    docs = field_docs(schema)
    out: List[KeyDoc] = []
    for f in dataclasses.fields(schema):
        name, hint = f"{prefix}{f.name}", hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += key_docs(hint, f"{name}.")
        elif mapped_schema(hint) is not None:
            out += key_docs(mapped_schema(hint), f"{name}.<name>.")
        else:
            default = _default(f)
            out.append(KeyDoc(name, type_name(hint), REQUIRED if default == REQUIRED else default, docs.get(f.name, "")))
    return out


def sections(schema: type) -> Dict[str, str]:
    """``{dotted prefix: heading}`` of the nested dataclasses of a schema ('' for the top level)."""
    hints = typing.get_type_hints(schema)
    out = {"": section_doc(schema)}
    for f in dataclasses.fields(schema):
        inner = hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else mapped_schema(hints[f.name])
        if inner is not None:
            under = f"{f.name}." if inner is hints[f.name] else f"{f.name}.<name>."
            out.update({under + k if k else under: v for k, v in sections(inner).items()})
    return out


def show(value: Any) -> str:
    """A value as it would be typed on the command line (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value if value else "''"
    if isinstance(value, (list, dict, tuple)):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return str(value)


def _width() -> int:
    return max(80, min(120, shutil.get_terminal_size((100, 24)).columns))


def key_lines(keys: Sequence[KeyDoc], heads: Dict[str, str]) -> List[str]:
    """One entry per key, ``key: type = default`` then its doc, grouped under section headings."""
    width, col = _width(), 46
    out: List[str] = []
    section = None
    groups: Dict[str, List[KeyDoc]] = {"": []}  # the top-level keys first, then each section in order
    for k in keys:
        groups.setdefault(max((p for p in heads if p and k.key.startswith(p)), key=len, default=""), []).append(k)
    for under, k in ((u, k) for u, ks in groups.items() for k in ks):
        if under != section:
            section = under
            title = under.rstrip(".") or "top-level keys"
            out += ["", f"{title}:" + (f" {heads[under]}" if heads.get(under) else "")]
        left = f"  {k.key}: {k.type} = {show(k.default)}"
        doc = k.doc or "-"
        if len(left) > col - 2:
            out.append(left)
            left = ""
        wrapped = textwrap.wrap(doc, max(30, width - col)) or [""]
        out.append(f"{left:<{col}}{wrapped[0]}")
        out += [" " * col + w for w in wrapped[1:]]
    return out


def config_groups(conf_dir: Path) -> Dict[str, List[str]]:
    """``{group: [options]}``: the folders of ``conf/`` and the YAML files in them."""
    return {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in sorted(conf_dir.iterdir())
            if d.is_dir() and any(d.glob("*.yaml"))}


def default_choices(conf_dir: Path, config_name: str = "config") -> Dict[str, str]:
    """``{group: option}`` from the defaults list of ``conf/<config_name>.yaml``."""
    text = (conf_dir / f"{config_name}.yaml").read_text(encoding="utf-8")
    chosen: Dict[str, str] = {}
    for entry in (yaml.safe_load(text) or {}).get("defaults", []):
        if isinstance(entry, dict):
            chosen.update({str(k): str(v) for k, v in entry.items()})
    return chosen


def render(usage: str, summary: str, options: Sequence[str], keys: Sequence[KeyDoc], heads: Dict[str, str],
           extra: Sequence[str] = ()) -> str:
    """The whole help text of one command."""
    opts = [w for o in options for w in textwrap.wrap(o, _width() - 2, initial_indent="  ", subsequent_indent=" " * 22)]
    lines = [f"usage: {usage}", "", *textwrap.wrap(summary, _width()), "", "options:", *opts, *extra, "",
             "keys (key: type = default, then its doc):"]
    lines += key_lines(keys, heads)
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- the commands
FIT_USAGE = "automl fit [-m] [--cfg job] [key=value | +key=value | ~key | group=option ...]"
FIT_OPTIONS = (
    "-h, --help          this help (defaults as composed with the overrides given)",
    "--cfg job           print the composed config as YAML and exit; nothing runs",
    "-m, --multirun      sweep: key=a,b runs one fit per value, each in its own folder, then a summary "
    "table (sweep.parallel=N at a time)",
    "--version           automl's version",
    "--shell-completion install=bash|zsh|fish   Hydra's tab completion for `automl` (eval \"$(automl "
    "--shell-completion install=bash)\")",
)
FIT_SYNTAX = (
    "key=value sets a key; +key=value adds a key the config does not have yet (a storage option "
    "+data.storage_options.anon=true, a candidate +candidates.NAME.algorithm=xgboost); ~key drops one "
    "(~candidates.dpp2-mlp); group=option picks a file of a config group. Values are YAML; quote "
    "values with spaces or commas. See docs/configuration.md and docs/cli.md."
)
COMMAND_OPTIONS = (
    "-h, --help          this help",
    "--cfg job           print the parsed config as YAML and exit; nothing runs",
    "--version           automl's version",
)


def _with_values(keys: Sequence[KeyDoc], cfg: Any) -> List[KeyDoc]:
    """The keys with their values in a composed config (what the command would use)."""
    from omegaconf import OmegaConf

    out = []
    for k in keys:
        if "<name>" in k.key:
            out.append(k)
            continue
        value = OmegaConf.select(cfg, k.key, default=k.default)
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        out.append(dataclasses.replace(k, default=value))
    return out


def fit_help(summary: str, overrides: Sequence[str]) -> str:
    """`automl fit --help`: options, override syntax, config groups, every key as composed."""
    from automl.config.compose import compose_overrides
    from automl.config.fit import Config
    from automl.resources import project_dir

    conf = project_dir("conf")
    cfg = compose_overrides(list(overrides))
    chosen = default_choices(conf)
    groups = [f"  {g}: {chosen.get(g, '(none)')}   options: {', '.join(opts)}   (conf/{g}/<option>.yaml)"
              for g, opts in config_groups(conf).items()]
    cands = ", ".join(f"{name} ({c.get('algorithm')})" for name, c in (cfg.get("candidates") or {}).items())
    extra = ["", "overrides:", *["  " + w for w in textwrap.wrap(FIT_SYNTAX, _width() - 2)], "",
             "config groups (group=option):", *groups, "",
             "candidates (each takes the candidates.<name>.* keys below):",
             *["  " + w for w in textwrap.wrap(cands or "(none)", _width() - 2)]]
    keys = _with_values(key_docs(Config), cfg)
    return render(FIT_USAGE, summary, FIT_OPTIONS, keys, sections(Config), extra)


def command_help(command: str, summary: str, overrides: Sequence[str] = ()) -> str:
    """``automl <command> --help`` for fit and for every command with a schema in ``commands.py``."""
    from automl.config.commands import SCHEMAS

    if command == "fit":
        return fit_help(summary, overrides)
    schema = SCHEMAS[command]
    return render(f"automl {command} key=value ... [--cfg job]", summary, COMMAND_OPTIONS, key_docs(schema),
                  sections(schema))

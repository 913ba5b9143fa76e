"""The parameter set of a pipeline run: a typed schema, read from YAML, checked before anything runs.

The schema is `Params`: the run's own keys (`RunParams`), one section per registered model family
(`rbp.families.FAMILIES`; each family's module defines its section and its checks), then the sections
of the later stages (sweep, predict, interpret, variants). The defaults are the main job (`params/default.yaml`
lists the same values with comments). A params file may leave keys out; it may not add unknown ones.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from rbp.errors import ParamsError
from rbp.families import FAMILIES, settings_class
from rbp.motifs import IUPAC
from rbp.schema import build

DATA_KEYS = ("dataset", "data_dir", "positives", "negatives", "labelled", "test_set", "label_key", "ambiguous", "k",
             "length", "short_sequences",
             "max_sequence_length",
             "folds", "test_fraction", "val_fraction", "group_overlap", "seed")
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # data set names: an experiment and a folder
MODEL_NOTEBOOKS = tuple(info.notebook for info in FAMILIES.values())
NOTEBOOKS = ("01_preprocess", *MODEL_NOTEBOOKS, "04_compare", "05_length_sweep", "06_predict", "07_interpret",
             "09_variants")


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `2e-4` as a string; learning rates are written that way, so read it as a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """A mapping whose keys are each given once: a key given twice (`folds: 2`, later `folds: 3`) is
    an error naming both lines, not a silent win for the last."""
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line)
        except TypeError:  # an unhashable key: construct_mapping says so
            break
        if first != key_node.start_mark.line:
            raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice (first at line "
                                                    f"{first + 1})", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)


@dataclass
class SweepParams:
    lengths: list[int] = field(default_factory=list)  # non-empty: the model notebooks run once per length


@dataclass
class PredictParams:
    model: str | None = None  # a model URI or name; null = the models this pipeline run registered
    fasta: str | None = None  # sequences to score; null = a synthetic transcript (synthetic data only)
    stride: int = 1  # nt between scanning windows
    threshold: float | None = None  # call at or above this probability; null = each model's own
    motif: str | None = None  # IUPAC motif marked in the profiles; null = UGUAHAUA on synthetic data


@dataclass
class VariantsParams:
    model: str | None = None  # a model URI or name; null = the models this pipeline run registered
    fasta: str | None = None  # the reference sequences the variants name; null = the synthetic transcript
    file: str | None = None  # a TSV (sequence_id, position, ref, alt) or a VCF; null = synthetic known-answer ones
    threshold: float | None = None  # call sites at or above this probability; null = each model's own
    figures: int = 5  # figures of each model's top variants


@dataclass
class InterpretParams:
    sequences: int = 60  # confident binding sites explained per model (out of fold)
    method: Literal["ism", "ig", "attention"] = "ism"  # ism: in-silico mutagenesis | ig: Integrated Gradients
    known_motifs: list[str] = field(default_factory=list)  # IUPAC, e.g. [UGUAHAUA]; [] on synthetic data: its own
    max_motifs: int = 5  # discovered motifs kept per model


@dataclass
class RunParams:
    """The keys of the run itself: the data, the folds, where it runs and which notebooks."""

    dataset: str | None = None  # MLflow experiment; null = "synthetic" or data_dir's folder name
    data_dir: str | None = None  # holds the two FASTA files; null = the built-in synthetic set
    positives: str = "positives.fa"
    negatives: str = "negatives.fa"
    labelled: str | None = None  # one FASTA of both classes, each header's label_key giving it; replaces the two
    test_set: str | None = None  # a labelled FASTA scored once per model, never trained on (a fixed test set)
    label_key: str = "class"  # a labelled header carries `class:1` (bound) or `class:0` (not)
    ambiguous: Literal["skip", "keep", "error"] = "skip"
    k: int = 3
    length: int | None = None  # centred window of this many nt cut from each sequence; null = whole
    short_sequences: Literal["keep", "drop"] = "keep"  # sequences shorter than `length`
    max_sequence_length: int = 100_000  # a longer record is refused: it cannot be trained on
    folds: int = 5  # 0 = one stratified train/test split of test_fraction
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    group_overlap: int | None = 40  # sequences sharing this many nt stay on one side of every split; null = off
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    jobs: int | Literal["auto"] = "auto"  # model notebooks side by side (`rbp.schedule`); auto: 2 on 2+ CPU cores
    output_dir: str = "outputs"
    notebooks: list[str] = field(default_factory=lambda: [
        "01_preprocess", "02_dnabert_cv", "03_lstm_cv", "03_cnn_cv", "03_kmer_lr_cv", "03_ensemble_cv", "04_compare",
        "06_predict", "07_interpret"])

    @property
    def synthetic(self) -> bool:
        return self.data_dir is None

    @property
    def dataset_name(self) -> str:
        if self.dataset:
            return self.dataset
        from rbp.config import resolve

        return "synthetic" if self.synthetic else resolve(self.data_dir).name

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def flat(self) -> dict:
        """Dotted keys (`lstm.lr`), as logged to MLflow."""
        return flatten(self.to_dict())


def _schema() -> type[RunParams]:
    """`Params`: `RunParams`, then a section per family (its settings class, named in the registry),
    then the stages' sections; every section defaults to its class's defaults."""
    sections = [(name, settings_class(name)) for name in FAMILIES]
    sections += [("sweep", SweepParams), ("predict", PredictParams), ("interpret", InterpretParams),
                 ("variants", VariantsParams)]
    cls = dataclasses.make_dataclass(
        "Params", [(name, section, field(default_factory=section)) for name, section in sections],
        bases=(RunParams,))
    cls.__module__ = __name__
    cls.__doc__ = "A run's parameters: its own keys, a section per model family, the stages' sections."
    return cls


Params = _schema()


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check(p: Params, source: str) -> Params:
    for problem in _problems(p):
        raise ParamsError(f"{source}: {problem}")
    return p


def _problems(p: Params) -> Iterator[str]:
    """What is wrong with `p`, one full message each, in the order they are reported: the data and
    folds, the notebooks, the stages' sections, then each family's section (its own checks)."""
    yield from _data_problems(p)
    yield from _notebook_problems(p)
    yield from _stage_problems(p)
    for name in FAMILIES:
        yield from getattr(p, name).problems(name, p)


def _data_problems(p: Params) -> Iterator[str]:
    if not 3 <= p.k <= 6:
        yield f"k must be 3, 4, 5 or 6 (DNABERT's k), got {p.k}"
    if p.max_sequence_length < p.k:
        yield f"max_sequence_length must be at least k = {p.k}, got {p.max_sequence_length}"
    if not 0 <= p.seed < 2**32:
        yield f"seed must lie between 0 and 2**32 - 1, got {p.seed}"
    name = p.dataset_name
    if not NAME.fullmatch(name):
        yield (f"{'dataset' if p.dataset else 'data_dir'} gives the data set name {name!r}, which names an MLflow "
               "experiment and a folder: use letters, digits, '-', '_' and '.' only, not starting with '.'"
               + ("" if p.dataset else "; or set dataset"))
    if p.length is not None and p.length < p.k:
        yield f"length must be at least k = {p.k} nt, got {p.length}"
    for length in p.sweep.lengths:
        if length < p.k:
            yield f"sweep.lengths must each be at least k = {p.k} nt, got {length}"
    if len(set(p.sweep.lengths)) != len(p.sweep.lengths):
        yield "sweep.lengths holds a length twice"
    if p.sweep.lengths and p.length:
        yield "length and sweep.lengths cannot both be set: the sweep sets the length of each run"
    if p.synthetic:
        for key in ("labelled", "test_set"):
            if getattr(p, key):
                yield f"{key} names a file inside data_dir: set data_dir too (the synthetic set has its own files)"
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", p.label_key):
        yield f"label_key must be a word such as class or label (headers carry `class:1`), got {p.label_key!r}"
    if p.test_set and p.folds != 0:
        yield (f"folds must be 0 with a test_set, got {p.folds}: a fixed test set is scored once, after one training "
               "on the training data (split into training and validation by val_fraction)")
    if not (p.folds == 0 or p.folds >= 2):
        yield f"folds must be 0 (one split) or at least 2, got {p.folds}"
    if not 0 < p.test_fraction < 1:
        yield f"test_fraction must lie between 0 and 1, got {p.test_fraction}"
    if not 0 < p.val_fraction < 1:
        yield f"val_fraction must lie between 0 and 1, got {p.val_fraction}"
    if p.group_overlap is not None and p.group_overlap < 1:
        yield f"group_overlap must be a length in nt (at least 1) or null, got {p.group_overlap}"


def _notebook_problems(p: Params) -> Iterator[str]:
    if p.jobs != "auto" and p.jobs < 1:
        yield f"jobs must be auto or at least 1 (model notebooks trained side by side), got {p.jobs}"
    for name in p.notebooks:
        if name not in NOTEBOOKS:
            yield f"notebooks holds {name!r}; known notebooks: {', '.join(NOTEBOOKS)}"
    models = [n for n in p.notebooks if n in MODEL_NOTEBOOKS]
    if "06_predict" in p.notebooks and not (models or p.predict.model):
        yield "notebooks holds 06_predict but neither a model notebook nor predict.model: there is no model to apply"
    if "09_variants" in p.notebooks and not (models or p.variants.model):
        yield "notebooks holds 09_variants but neither a model notebook nor variants.model: there is no model to apply"
    if "07_interpret" in p.notebooks and not models:
        yield (f"notebooks holds 07_interpret but no model notebook ({', '.join(MODEL_NOTEBOOKS)}) whose models it "
               "could explain")
    if "04_compare" in p.notebooks and not models:
        yield (f"notebooks holds 04_compare but no model notebook ({', '.join(MODEL_NOTEBOOKS)}) whose runs it "
               "could compare")
    if "05_length_sweep" in p.notebooks and not (p.sweep.lengths and models):
        yield "notebooks holds 05_length_sweep: it needs sweep.lengths and a model notebook"


def _stage_problems(p: Params) -> Iterator[str]:
    if not (p.predict.motif is None or (p.predict.motif and _iupac(p.predict.motif))):
        yield f"predict.motif must be written in IUPAC nucleotide letters (e.g. UGUAHAUA), got {p.predict.motif!r}"
    if p.predict.stride < 1:
        yield f"predict.stride must be at least 1, got {p.predict.stride}"
    if not (p.predict.threshold is None or 0 <= p.predict.threshold <= 1):
        yield f"predict.threshold must lie between 0 and 1, got {p.predict.threshold}"
    if bool(p.variants.fasta) != bool(p.variants.file):
        yield ("variants.fasta and variants.file go together: the variants file names records of the FASTA (leave "
               "both out for the synthetic known-answer variants)")
    if not (p.variants.threshold is None or 0 <= p.variants.threshold <= 1):
        yield f"variants.threshold must lie between 0 and 1, got {p.variants.threshold}"
    if p.variants.figures < 0:
        yield f"variants.figures must be 0 or more, got {p.variants.figures}"
    if p.interpret.sequences < 10:
        yield f"interpret.sequences must be at least 10, got {p.interpret.sequences}"
    if p.interpret.max_motifs < 1:
        yield f"interpret.max_motifs must be at least 1, got {p.interpret.max_motifs}"
    for motif in p.interpret.known_motifs:
        if not (motif and _iupac(motif)):
            yield f"interpret.known_motifs must be written in IUPAC nucleotide letters (e.g. UGUAHAUA), got {motif!r}"


def _iupac(motif: str) -> bool:
    return set(motif.upper()) <= set(IUPAC)


def from_dict(values: dict, source: str = "params") -> Params:
    return _check(build(Params, values, source, ParamsError), source)


def set_dotted(values: dict, key: str, value) -> None:
    node = values
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"override {key}: {part} is not a section")
    node[last] = value


def parse_overrides(pairs: list[str]) -> dict:
    """`key=value` strings (dotted keys for sections, values in YAML) into a nested mapping."""
    values: dict = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ParamsError(f"override {pair!r}: expected key=value, e.g. -p lstm.lr=0.001")
        try:
            value = yaml_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ParamsError(f"override {pair!r}: the value is not valid YAML ({problem}); write a list as "
                              "[a, b], and quote text holding ':', '#', '[' or a tab") from None
        set_dotted(values, key.strip(), value)
    return values


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        values = yaml_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise ParamsError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return values or {}


def load_params(path: str | Path | None = None, overrides: dict | list[str] | None = None) -> Params:
    """Read and check a params file (None: the schema defaults), with overrides applied on top."""
    values = read_yaml(path) if path else {}
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    source = str(path) if path else "params"
    if not isinstance(values, dict):
        raise ParamsError(f"{source}: must be a mapping of keys to values")
    try:
        return from_dict(merge(values, overrides or {}), source)
    except ParamsError as exc:
        if overrides and _valid(values, source):  # the file alone is fine: an override is at fault
            raise ParamsError(str(exc).replace(f"{source}: ", f"{source} with -p overrides: ", 1)) from None
        raise


def _valid(values: dict, source: str) -> bool:
    try:
        from_dict(values, source)
    except ParamsError:
        return False
    return True


def collect(namespace: dict, source: str = "notebook parameters") -> Params:
    """The parameters a notebook defines (its `parameters` cell plus what papermill injected).

    Only plain values (None, numbers, strings, lists, mappings) count as parameters: a notebook may
    rebind a parameter's name to an object of its own (`folds = Folds(...)`, `device = torch.device(...)`)
    and run this cell again; the value collected the first time then stands for that name.
    """
    first = namespace.setdefault(_COLLECTED, {})
    values = {}
    for key in typing.get_type_hints(Params):
        if key in namespace and _plain(namespace[key]):
            values[key] = namespace[key]
        elif key in first:
            values[key] = first[key]
    first.update(values)
    return from_dict(values, source)


_COLLECTED = "_rbp_collected_parameters"


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(_plain(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)

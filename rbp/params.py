"""The parameter set of a pipeline run: a typed schema, read from YAML, checked before anything runs.

The dataclasses below are the schema; their defaults are the main job (`params/default.yaml` lists
the same values with comments). A params file may leave keys out; it may not add unknown ones.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from rbp.errors import RbpError
from rbp.families import FAMILIES
from rbp.motifs import IUPAC
from rbp.schema import build

DATA_KEYS = ("dataset", "data_dir", "positives", "negatives", "ambiguous", "k", "length", "short_sequences",
             "max_sequence_length",
             "folds", "test_fraction", "val_fraction", "seed")
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # data set names: an experiment and a folder
MODEL_NOTEBOOKS = tuple(info.notebook for info in FAMILIES.values())
NOTEBOOKS = ("01_preprocess", *MODEL_NOTEBOOKS, "04_compare", "05_length_sweep", "06_predict", "07_interpret")


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


def yaml_load(text: str):
    return yaml.load(text, Loader=_Loader)


class ParamsError(RbpError):
    """A params file or override that does not fit the schema; the message names the key."""


@dataclass
class TrainParams:
    """The training loop's knobs, the same for every model (rbp.train)."""

    max_epochs: int = 50
    min_epochs: int = 0  # early stopping never ends a fold before this many epochs
    patience: int = 5  # epochs without a better validation AUC before stopping
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "rmsprop"
    lr: float = 2e-4
    weight_decay: float = 0.0  # never applied to biases and LayerNorm weights
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    warmup_fraction: float = 0.0  # share of all steps spent warming the learning rate up
    grad_clip: float | None = None  # max gradient norm; null = no clipping
    ema_decay: float | None = None  # validate and keep an exponential moving average of the weights; null = off
    mask_fraction: float = 0.0  # share of k-mer tokens replaced by [MASK] in each training batch
    # validation: choose the epoch on a validation split (`val_fraction`) | final: train on the whole
    # training part and keep the last epoch, no selection (DNABERT's own protocol: params/dnabert_parity.yaml)
    selection: Literal["validation", "final"] = "validation"
    amp: bool = True  # bf16 autocast on CUDA for families that use it (DNABERT); false: fp32 throughout


@dataclass
class LSTMParams(TrainParams):
    max_epochs: int = 6
    patience: int = 3
    embedding_dim: int = 128
    hidden_size: int = 100
    num_layers: int = 1  # the original exercise has 2 (params/paper.yaml)
    dropout: float = 0.1  # between LSTM layers: no effect with one layer
    dense_size: int = 64
    readout: Literal["last", "max"] = "max"  # max over positions | last: the final states (the original)


@dataclass
class CNNParams(TrainParams):
    """Convolutions over one-hot nucleotides, then each filter's maximum over all positions (the
    DeepBind / iDeepS line). One entry per layer in `channels`, `kernel_size` and `dilation`."""

    channels: list[int] = field(default_factory=lambda: [128])  # filters per layer
    kernel_size: list[int] = field(default_factory=lambda: [12])  # nt (layer 1) or positions (later layers)
    dilation: list[int] = field(default_factory=lambda: [1])  # spacing of a kernel's taps
    dropout: float = 0.2  # after each convolution and before the dense layer
    dense_size: int = 64
    max_epochs: int = 15
    patience: int = 4
    batch_size: int = 64
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3


@dataclass
class KmerLRParams:
    """Logistic regression on k-mer frequencies (scikit-learn); its regularisation is chosen on each
    fold's validation split. Not a neural model: the training loop's knobs do not apply."""

    k_min: int = 3
    k_max: int = 6
    c_grid: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])  # inverse L2 strengths tried
    max_iter: int = 1000
    selection: Literal["validation"] = "validation"
    eval_batch_size: int = 1024


@dataclass
class EnsembleParams:
    """The mean probability of other families' fold models, fold by fold (nothing is trained)."""

    members: list[str] = field(default_factory=list)  # families to average; [] = every other model of the run
    selection: Literal["validation"] = "validation"
    eval_batch_size: int = 256


@dataclass
class DNABERTParams(TrainParams):
    # pretrained: fine-tune `checkpoint` | scratch: DNABERT's architecture from random weights, on purpose;
    # null = pretrained when a checkpoint is given, else scratch
    init: Literal["pretrained", "scratch"] | None = None
    checkpoint: str | None = None  # a local DNABERT directory (config.json, vocab.txt, weights)
    size: Literal["small", "base"] = "small"  # scratch only: base = DNABERT-3's own size
    max_seq_length: int = 100  # tokens, counting [CLS] and [SEP]
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    log_checkpoints: bool | None = None  # log each fold's best model; null = when it is under 50 MB
    max_epochs: int = 2  # its validation AUC levels off by epoch 2 at CPU size; paper.yaml: 5
    patience: int = 5
    optimizer: Literal["rmsprop", "adam", "adamw", "sgd"] = "adamw"
    lr: float = 2e-4
    weight_decay: float = 0.01
    schedule: Literal["constant", "linear", "cosine"] = "linear"
    warmup_fraction: float = 0.1
    grad_clip: float | None = 1.0


    @property
    def initialisation(self) -> str:
        """`pretrained` or `scratch`, as every tag and label says."""
        return self.init or ("pretrained" if self.checkpoint else "scratch")


def needs_checkpoint(k: int) -> str:
    """What to say when DNABERT is to be fine-tuned but no checkpoint is named."""
    return (f"dnabert.init is pretrained, but dnabert.checkpoint names no checkpoint. DNABERT-{k} is a BERT "
            f"model pre-trained on the human genome with {k}-mer tokens (Ji et al. 2021, Bioinformatics 37:2112); "
            f"its authors publish the weights at https://github.com/jerryji1993/DNABERT (README, section "
            f"'Download pre-trained DNABERT': DNABERT{k}). Unzip it and point dnabert.checkpoint at the unpacked "
            f"folder (the one holding config.json, vocab.txt and pytorch_model.bin), e.g. "
            f"-p dnabert.checkpoint=/data/dnabert/{k}-new-12w-0. To train DNABERT's architecture from random "
            f"weights on purpose (its scores then measure the architecture, not the pre-training), "
            f"set -p dnabert.init=scratch.")


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
class InterpretParams:
    sequences: int = 60  # confident binding sites explained per model (out of fold)
    method: Literal["ism", "ig", "attention"] = "ism"  # ism: in-silico mutagenesis | ig: Integrated Gradients
    known_motifs: list[str] = field(default_factory=list)  # IUPAC, e.g. [UGUAHAUA]; [] on synthetic data: its own
    max_motifs: int = 5  # discovered motifs kept per model


@dataclass
class Params:
    dataset: str | None = None  # MLflow experiment; null = "synthetic" or data_dir's folder name
    data_dir: str | None = None  # holds the two FASTA files; null = the built-in synthetic set
    positives: str = "positives.fa"
    negatives: str = "negatives.fa"
    ambiguous: Literal["skip", "keep", "error"] = "skip"
    k: int = 3
    length: int | None = None  # centred window of this many nt cut from each sequence; null = whole
    short_sequences: Literal["keep", "drop"] = "keep"  # sequences shorter than `length`
    max_sequence_length: int = 100_000  # a longer record is refused: it cannot be trained on
    folds: int = 5  # 0 = one stratified train/test split of test_fraction
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 42
    device: Literal["auto", "cpu", "cuda"] = "auto"
    output_dir: str = "outputs"
    notebooks: list[str] = field(default_factory=lambda: [
        "01_preprocess", "02_dnabert_cv", "03_lstm_cv", "03_cnn_cv", "03_kmer_lr_cv", "03_ensemble_cv", "04_compare",
        "06_predict", "07_interpret"])
    lstm: LSTMParams = field(default_factory=LSTMParams)
    dnabert: DNABERTParams = field(default_factory=DNABERTParams)
    cnn: CNNParams = field(default_factory=CNNParams)
    kmer_lr: KmerLRParams = field(default_factory=KmerLRParams)
    ensemble: EnsembleParams = field(default_factory=EnsembleParams)
    sweep: SweepParams = field(default_factory=SweepParams)
    predict: PredictParams = field(default_factory=PredictParams)
    interpret: InterpretParams = field(default_factory=InterpretParams)

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


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check(p: Params, source: str) -> Params:
    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise ParamsError(f"{source}: {key} {what}")

    need(3 <= p.k <= 6, "k", f"must be 3, 4, 5 or 6 (DNABERT's k), got {p.k}")
    need(p.max_sequence_length >= p.k, "max_sequence_length",
         f"must be at least k = {p.k}, got {p.max_sequence_length}")
    need(0 <= p.seed < 2**32, "seed", f"must lie between 0 and 2**32 - 1, got {p.seed}")
    name = p.dataset_name
    need(bool(NAME.fullmatch(name)), "dataset" if p.dataset else "data_dir",
         f"gives the data set name {name!r}, which names an MLflow experiment and a folder: use letters, "
         "digits, '-', '_' and '.' only, not starting with '.'" + ("" if p.dataset else "; or set dataset"))
    need(p.length is None or p.length >= p.k, "length", f"must be at least k = {p.k} nt, got {p.length}")
    for length in p.sweep.lengths:
        need(length >= p.k, "sweep.lengths", f"must each be at least k = {p.k} nt, got {length}")
    need(len(set(p.sweep.lengths)) == len(p.sweep.lengths), "sweep.lengths", "holds a length twice")
    need(not (p.sweep.lengths and p.length), "length",
         "and sweep.lengths cannot both be set: the sweep sets the length of each run")
    need(p.folds == 0 or p.folds >= 2, "folds", f"must be 0 (one split) or at least 2, got {p.folds}")
    need(0 < p.test_fraction < 1, "test_fraction", f"must lie between 0 and 1, got {p.test_fraction}")
    need(0 < p.val_fraction < 1, "val_fraction", f"must lie between 0 and 1, got {p.val_fraction}")
    for name in p.notebooks:
        need(name in NOTEBOOKS, "notebooks", f"holds {name!r}; known notebooks: {', '.join(NOTEBOOKS)}")
    models = [n for n in p.notebooks if n in MODEL_NOTEBOOKS]
    need(p.predict.motif is None or (bool(p.predict.motif) and set(p.predict.motif.upper()) <= set(IUPAC)),
         "predict.motif", f"must be written in IUPAC nucleotide letters (e.g. UGUAHAUA), got {p.predict.motif!r}")
    need(p.predict.stride >= 1, "predict.stride", f"must be at least 1, got {p.predict.stride}")
    need(p.predict.threshold is None or 0 <= p.predict.threshold <= 1, "predict.threshold",
         f"must lie between 0 and 1, got {p.predict.threshold}")
    need("06_predict" not in p.notebooks or bool(models or p.predict.model), "notebooks",
         "holds 06_predict but neither a model notebook nor predict.model: there is no model to apply")
    need("07_interpret" not in p.notebooks or bool(models), "notebooks",
         f"holds 07_interpret but no model notebook ({', '.join(MODEL_NOTEBOOKS)}) whose models it could explain")
    need(p.interpret.sequences >= 10, "interpret.sequences", f"must be at least 10, got {p.interpret.sequences}")
    need(p.interpret.max_motifs >= 1, "interpret.max_motifs", f"must be at least 1, got {p.interpret.max_motifs}")
    for motif in p.interpret.known_motifs:
        need(bool(motif) and set(motif.upper()) <= set(IUPAC), "interpret.known_motifs",
             f"must be written in IUPAC nucleotide letters (e.g. UGUAHAUA), got {motif!r}")
    need("04_compare" not in p.notebooks or bool(models), "notebooks",
         f"holds 04_compare but no model notebook ({', '.join(MODEL_NOTEBOOKS)}) whose runs it could compare")
    need("05_length_sweep" not in p.notebooks or bool(p.sweep.lengths and models), "notebooks",
         "holds 05_length_sweep: it needs sweep.lengths and a model notebook")
    for section in FAMILIES:
        t = getattr(p, section)
        need(t.eval_batch_size >= 1, f"{section}.eval_batch_size", f"must be at least 1, got {t.eval_batch_size}")
        if not isinstance(t, TrainParams):  # not trained by the loop: checked below
            continue
        need(t.max_epochs >= 1, f"{section}.max_epochs", "must be at least 1")
        need(0 <= t.min_epochs <= t.max_epochs, f"{section}.min_epochs", "must lie between 0 and max_epochs")
        need(t.patience >= 1, f"{section}.patience", "must be at least 1")
        need(t.batch_size >= 1, f"{section}.batch_size", f"must be at least 1, got {t.batch_size}")
        need(0 < t.lr < math.inf, f"{section}.lr", f"must be a positive finite number, got {t.lr}")
        need(0 <= t.weight_decay < math.inf, f"{section}.weight_decay", f"must be 0 or more, got {t.weight_decay}")
        need(t.grad_clip is None or 0 < t.grad_clip < math.inf, f"{section}.grad_clip",
             f"must be positive, or null for none; got {t.grad_clip}")
        for key in ("dropout", "hidden_dropout", "attention_dropout"):
            value = getattr(t, key, 0.0)
            need(0 <= value < 1, f"{section}.{key}", f"must lie in [0, 1), got {value}")
        need(0 <= t.warmup_fraction < 1, f"{section}.warmup_fraction", "must lie in [0, 1)")
        need(0 <= t.mask_fraction < 1, f"{section}.mask_fraction", f"must lie in [0, 1), got {t.mask_fraction}")
        need(t.ema_decay is None or 0 < t.ema_decay < 1, f"{section}.ema_decay",
             f"must lie between 0 and 1 (e.g. 0.998), or be null for none; got {t.ema_decay}")
    c = p.cnn
    need(len(c.channels) >= 1 and len(c.channels) == len(c.kernel_size) == len(c.dilation), "cnn.channels",
         f"cnn.kernel_size and cnn.dilation need one entry per convolution layer, got {len(c.channels)}, "
         f"{len(c.kernel_size)} and {len(c.dilation)}")
    for key in ("channels", "kernel_size", "dilation"):
        need(all(v >= 1 for v in getattr(c, key)), f"cnn.{key}", f"must all be at least 1, got {getattr(c, key)}")
    need(c.dense_size >= 1, "cnn.dense_size", f"must be at least 1, got {c.dense_size}")
    r = p.kmer_lr
    need(1 <= r.k_min <= r.k_max <= 8, "kmer_lr.k_min",
         f"and kmer_lr.k_max must satisfy 1 <= k_min <= k_max <= 8, got {r.k_min} and {r.k_max}")
    need(bool(r.c_grid) and all(0 < c < math.inf for c in r.c_grid), "kmer_lr.c_grid",
         f"must list positive inverse regularisation strengths, e.g. [0.01, 0.1, 1], got {r.c_grid}")
    need(r.max_iter >= 1, "kmer_lr.max_iter", f"must be at least 1, got {r.max_iter}")
    for member in p.ensemble.members:
        need(member in FAMILIES and member != "ensemble", "ensemble.members",
             f"holds {member!r}; members are model families: {', '.join(f for f in FAMILIES if f != 'ensemble')}")
    if "03_ensemble_cv" in p.notebooks:
        before = p.notebooks[:p.notebooks.index("03_ensemble_cv")]
        trained = [name for name in FAMILIES if FAMILIES[name].notebook in before]
        members = p.ensemble.members or trained
        missing = [m for m in members if m not in trained]
        need(len(members) >= 2 and not missing, "notebooks",
             "runs 03_ensemble_cv, which averages models trained earlier in the same run: "
             + (f"{', '.join(FAMILIES[m].notebook for m in missing)} must come before it" if missing else
                f"it needs at least two model notebooks before it, got {len(trained)}"))
    need(not (p.dnabert.init == "scratch" and p.dnabert.checkpoint), "dnabert.init",
         f"is scratch, but dnabert.checkpoint names {p.dnabert.checkpoint!r}: drop the checkpoint to train from "
         "random weights, or set dnabert.init: pretrained to fine-tune it")
    if p.dnabert.init == "pretrained" and not p.dnabert.checkpoint and "02_dnabert_cv" in p.notebooks:
        raise ParamsError(f"{source}: {needs_checkpoint(p.k)}")
    need(3 <= p.dnabert.max_seq_length <= 512, "dnabert.max_seq_length",
         f"must lie between 3 and 512 tokens (DNABERT's position limit), got {p.dnabert.max_seq_length}")
    return p


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
        set_dotted(values, key.strip(), yaml_load(text) if text.strip() else None)
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

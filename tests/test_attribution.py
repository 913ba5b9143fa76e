"""Attributions: in-silico mutagenesis exact on a hand-made scorer, k-mer to nucleotide mapping,
Integrated Gradients and attention on both families, and the motif similarity."""

import numpy as np
import pytest
import torch

from rbp.attribution import contributions, integrated_gradients, ism, kmer_to_nucleotide, one_hot
from rbp.errors import RbpError
from rbp.motif_discovery import MATCH, iupac_ppm, match_table, similarity


def count_motif(sequences):
    """A scorer that counts GTA: the logit is the number of GTA occurrences."""
    return np.array([float(s.count("GTA")) for s in sequences])


def test_ism_is_exact_on_a_known_scorer():
    sequence = "AAGTAAAA"
    hyp = ism(count_motif, [sequence])[0]
    raw = np.zeros((8, 4))  # every single-base change, scored directly
    for i in range(8):
        for b, base in enumerate("ACGT"):
            if base != sequence[i]:
                raw[i, b] = count_motif([sequence[:i] + base + sequence[i + 1:]])[0] - 1
    np.testing.assert_allclose(hyp, raw - raw.mean(axis=1, keepdims=True), atol=1e-6)
    scores = contributions(hyp[None], [sequence])[0]
    assert scores[2:5].min() > 0.7 and np.abs(np.delete(scores, [2, 3, 4])).max() < 0.3  # the motif stands out


def test_ism_handles_many_sequences_in_chunks(monkeypatch):
    import rbp.attribution as attribution

    monkeypatch.setattr(attribution, "CHUNK", 7)  # chunks that cut sequences apart
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), 12)) for _ in range(5)]
    np.testing.assert_allclose(ism(count_motif, sequences), np.stack([ism(count_motif, [s])[0] for s in sequences]))


def test_one_hot_and_its_refusals():
    assert one_hot(["ACGTN"])[0].tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]
    with pytest.raises(RbpError, match="sequences of one length"):
        one_hot(["ACG", "ACGT"])


def test_kmer_scores_become_nucleotide_scores_as_dnabert_maps_them():
    # 3 tokens of k = 3 cover 5 nucleotides: 1 / (1+2)/2 / (1+2+3)/3 / (2+3)/2 / 3
    np.testing.assert_allclose(kmer_to_nucleotide(np.array([1.0, 2.0, 3.0]), 3), [1, 1.5, 2, 2.5, 3])
    np.testing.assert_allclose(kmer_to_nucleotide(np.array([[1.0, 2.0, 3.0]] * 2), 3)[1], [1, 1.5, 2, 2.5, 3])


@pytest.mark.parametrize("family_name", ["lstm", "dnabert", "cnn"])
def test_integrated_gradients_sum_to_the_logit_difference(family_name):
    from rbp.attribution import _forward, _kmer_tokens
    from rbp.families import make_family
    from rbp.kmers import MASK_ID
    from rbp.params import load_params
    from tests.conftest import ROOT

    family = make_family(family_name, load_params(ROOT / "params" / "smoke.yaml"))
    torch.manual_seed(0)
    model = family.build().eval()
    sequences = ["ACGTACGTTAGCATGCAATG", "TTGTAAATAAGGCCATTAGC"]
    scores = integrated_gradients(family, model, sequences, steps=64)
    assert scores.shape == (2, 20) and np.isfinite(scores).all()
    # completeness: the token attributions add up to f(input) - f(baseline); checked on tokens
    from captum.attr import LayerIntegratedGradients

    batch = family.encode(sequences)
    ids = batch.pop("input_ids")
    baseline = ids.masked_fill(_kmer_tokens(ids, family.k, 20), MASK_ID)
    forward = _forward(model, list(batch))
    explainer = LayerIntegratedGradients(forward, family.embeddings(model))
    tokens, delta = explainer.attribute(ids, baselines=baseline, additional_forward_args=tuple(batch.values()),
                                        n_steps=64, return_convergence_delta=True)
    assert delta.abs().max() < 0.05 * (forward(ids, *batch.values()) - forward(baseline, *batch.values())).abs().max()


def test_dnabert_attention_from_cls_is_a_distribution_over_tokens():
    from rbp.attribution import cls_attention
    from rbp.families import make_family
    from rbp.params import load_params
    from tests.conftest import ROOT

    family = make_family("dnabert", load_params(ROOT / "params" / "smoke.yaml"))
    model = family.build().eval()
    built_with = model.config._attn_implementation
    sequences = ["ACGTACGTTAGCATGCAATG"] * 3
    scores = cls_attention(family, model, sequences)
    assert scores.shape == (3, 20) and (scores > 0).all()
    assert model.config._attn_implementation == built_with != "eager"  # set back after the eager pass
    model.set_attn_implementation("eager")
    with torch.no_grad():
        attention = model(**family.encode(sequences[:1]), output_attentions=True).attentions[-1][0]
    row = attention[:, 0, :].mean(dim=0).numpy()  # [CLS] to every token, mean over heads
    assert row.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(scores[0], kmer_to_nucleotide(row[1:-1], 3), rtol=1e-5)  # without [CLS], [SEP]
    lstm = make_family("lstm", load_params(ROOT / "params" / "smoke.yaml"))
    with pytest.raises(RbpError, match="no attention layers; use ism or ig"):
        cls_attention(lstm, lstm.build(), sequences)


def test_similarity_finds_the_known_motif_its_offset_and_strand():
    known = iupac_ppm("UGUAHAUA")
    assert known.shape == (8, 4) and known[4].tolist() == pytest.approx([1 / 3, 1 / 3, 0, 1 / 3])
    exact = np.vstack([np.full((2, 4), 0.25), known, np.full((3, 4), 0.25)])
    score, offset, reverse = similarity(exact, known)
    assert (score, offset, reverse) == (pytest.approx(1.0), 2, False)
    score, _, reverse = similarity(exact[::-1, ::-1], known)  # the reverse complement
    assert score == pytest.approx(1.0) and reverse
    half = exact[:6]  # holds UGUA only: half the known motif's columns
    assert similarity(half, known)[0] == pytest.approx(0.5)
    unrelated = iupac_ppm("CCGGCCGG")
    assert similarity(unrelated, known)[0] < MATCH
    with pytest.raises(RbpError, match="'UGXA' has 'X'"):
        iupac_ppm("UGXA")


def test_the_match_table_says_which_motif_matches():
    from rbp.motif_discovery import Motif

    motifs = [Motif("motif 1", iupac_ppm("UGUAAAUA"), np.ones((8, 4)), 30, 28, 0.5),
              Motif("motif 2", iupac_ppm("GGCCGC"), np.ones((6, 4)), 12, 12, 0.2)]
    table = match_table(motifs, ["UGUAHAUA"])
    assert table.match.tolist() == [True, False] and table.consensus.tolist() == ["UGUAAAUA", "GGCCGC"]
    assert table.columns.tolist() == ["motif", "consensus", "seqlets_hold", "known", "similarity", "offset", "strand",
                                      "match"]


def test_a_motif_is_compared_by_what_its_seqlets_hold_not_only_its_core():
    from rbp.motif_discovery import Motif

    pattern = np.vstack([np.full((3, 4), 0.25), iupac_ppm("UGUAAAUA"), np.full((3, 4), 0.25)])
    core_only = Motif("motif 1", pattern[3:7], np.ones((4, 4)), 30, 28, 0.5, pattern=pattern)  # the core: UGUA
    (row,) = match_table([core_only], ["UGUAHAUA"]).to_dict("records")
    assert row["consensus"] == "UGUA" and row["seqlets_hold"] == "aaaUGUAAAUAaaa"
    assert row["match"] and row["similarity"] == pytest.approx(similarity(pattern, iupac_ppm("UGUAHAUA"))[0], abs=1e-3)
    assert similarity(pattern[3:7], iupac_ppm("UGUAHAUA"))[0] == pytest.approx(0.5)


def test_integrated_gradients_say_where_there_are_no_token_embeddings():
    from rbp.families import make_family
    from rbp.params import load_params
    from tests.conftest import ROOT

    family = make_family("kmer_lr", load_params(ROOT / "params" / "smoke.yaml"))
    model = family.fit(1, family.encode(["ACGTAC", "TTTTGA"]), torch.tensor([1, 0]),
                       family.encode(["ACGTAA", "TTTGGA"]), torch.tensor([1, 0]), torch.device("cpu"), 0)[0]
    with pytest.raises(RbpError, match="Integrated Gradients does not apply to it; use ism"):
        integrated_gradients(family, model, ["ACGTAC"])


def test_motif_discovery_runs_on_the_threads_torch_has_and_leaves_them_so():
    """TF-MoDISco's parallel numba kernels set the OpenMP thread count torch shares (to every core by
    default): a one-thread job would then score its next models on two threads beside the other jobs."""
    import numba

    from rbp.motif_discovery import _thread_budget

    @numba.njit(parallel=True)
    def kernel(values):  # a parallel kernel, as TF-MoDISco's
        total = 0.0
        for i in numba.prange(values.shape[0]):
            total += values[i]
        return total

    saved, kernels = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _thread_budget():
            assert numba.get_num_threads() == 1
            assert kernel(np.ones(1000)) == 1000.0
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == kernels
    finally:
        torch.set_num_threads(saved)


def test_motif_discovery_names_windows_of_one_sign_instead_of_failing_inside_tf_modisco():
    from rbp.motif_discovery import discover

    sequences = ["ACGTACGTAC" * 3] * 4
    hypothetical = one_hot(sequences) * 0.5  # every base raises the score: no negative contribution
    with pytest.raises(RbpError, match="needs 10-nt windows of both signs.*no window lowers"):
        discover(sequences, hypothetical)
    with pytest.raises(RbpError, match="no window raises"):
        discover(sequences, -hypothetical)


def test_motif_discovery_names_a_null_model_of_one_sign_instead_of_failing_inside_tf_modisco():
    from rbp.motif_discovery import discover

    # windows of both signs, but all but one raise the score by the same small amount: the null model
    # TF-MoDISco fits around that mode draws no negative window (it divided by zero there)
    rng = np.random.default_rng(0)
    sequences = ["".join(rng.choice(list("ACGT"), 101)) for _ in range(60)]
    hypothetical = np.full((60, 101, 4), 0.01, dtype=np.float32)
    hypothetical[0, 40:60] = -1.0
    with pytest.raises(RbpError, match="null model of the 10-nt windows drew no window of one sign"):
        discover(sequences, hypothetical)


def test_tf_modisco_kernels_are_cached_on_disk_where_they_cannot_be_compiled_ahead():
    """A Jupyter kernel has threads, so modisco-lite does not fork its compiling children there and
    leaves numba's cache off: every notebook run compiled its kernels again (about 10 s)."""
    import importlib
    import pkgutil

    import modiscolite
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    from rbp.motif_discovery import _cache_kernels

    _cache_kernels()
    kernels = [kernel for module in pkgutil.iter_modules(modiscolite.__path__)
               for kernel in vars(importlib.import_module(f"modiscolite.{module.name}")).values()
               if isinstance(kernel, Dispatcher)]
    assert len(kernels) >= 20
    assert not [kernel.py_func.__name__ for kernel in kernels if isinstance(kernel._cache, NullCache)]

"""aelab.reports.summary: the Markdown summary rendered from each entry's seeds and resamples,
its verdicts judged on paired differences (the half-widths worked by hand)."""

from __future__ import annotations

import numpy as np
from test_evaluation import PARAMS

from aelab.analysis.intervals import Estimate
from aelab.reports.summary import summary

PARAMS_USED = PARAMS.model_copy(update={"scores": ["recon", "knn"], "clusterers": ["umap"]})
# The test digits' noise, the same on every entry's two resamples unless said otherwise:
# u_test = sd(-0.005, 0.005) = 0.0070711, so an entry without seed spread is ± 1.959964 x
# that = ± 0.0139, and the difference of two such entries is exact (± 0).
SHARED = np.array([-0.005, 0.005])


def entry(mean: float, seeds=(0.0, 0.0, 0.0), resampled=SHARED) -> Estimate:
    """Three seeds at `mean` + `seeds` (offsets summing to 0), resampled means at `mean` +
    `resampled`."""
    return Estimate(mean + np.array(seeds), mean + np.asarray(resampled))


CONSTANT = Estimate(np.full(3, 24.5), np.full(2, 24.5))
ESTIMATES = {
    # net's knn: seeds 0.92, 0.93, 0.94: u_seed 0.01/sqrt(3), dof 2; with u_test, dof 12.5
    # (t 2.16919): ± 2.16919 sqrt(0.01^2/3 + 0.005^2 * 2) = ± 0.0198
    "net": {"roc_auc_recon": entry(0.90), "roc_auc_knn": entry(0.93, (-0.01, 0, 0.01)),
            "ari_all_umap": entry(0.60), "ari_normal_umap": entry(0.90), "psnr": entry(20.0),
            "mse": entry(0.01), "compression_ratio": CONSTANT},
    "pca": {"roc_auc_recon": entry(0.80), "roc_auc_knn": entry(0.94), "ari_all_umap": entry(0.45),
            "ari_normal_umap": entry(0.88), "psnr": entry(18.0), "mse": entry(0.02),
            "compression_ratio": CONSTANT},
    # pixels' ARI moves against the others on the resamples: its difference keeps a test term
    "pixels": {"roc_auc_knn": entry(0.92), "ari_all_umap": entry(0.61, resampled=-SHARED),
               "ari_normal_umap": entry(0.89)},
}  # fmt: skip


def test_the_summary_has_a_table_per_task_and_judges_paired_differences():
    text = summary(ESTIMATES, PARAMS_USED, pca=["pca"])
    assert text.count("\n## ") == 3  # anomaly, clustering, compression
    assert "verdicts judge the *paired* difference" in text
    assert "| net | 0.9000 ± 0.0139 | 0.9300 ± 0.0198 |" in text
    assert "| pixels | — | 0.9200 ± 0.0139 |" in text
    # pca · knn against net · knn: two variants, the test terms cancel, net's seed term is
    # left: ± t(0.975, 2) 0.01/sqrt(3) = ± 4.302653 x 0.0057735 = ± 0.0248 holds 0.01: a
    # tie. pixels · knn, 0.02 below with no seed spread, is told apart (± 0).
    assert ("- **Best ROC AUC:** a tie among 2: pca · knn 0.9400 ± 0.0139, net · knn "
            "0.9300 ± 0.0198 (-0.0100 ± 0.0248)\n") in text  # fmt: skip
    assert ("net · knn 0.9300 ± 0.0198, ties with PCA: -0.0100 ± 0.0248 against pca · knn "
            "0.9400 ± 0.0139, within the interval") in text  # fmt: skip
    # pixels and net move apart on the resamples: differences 0.01 +- 0.01, sd 0.0141421,
    # ± 1.959964 x that = ± 0.0277 holds 0.01: a tie.
    assert ("- **Best ARI, k = 10:** a tie among 2: pixels · umap k=10 0.6100 ± 0.0139, "
            "net · umap k=10 0.6000 ± 0.0139 (-0.0100 ± 0.0277)") in text  # fmt: skip
    assert "beats PCA: +0.1500 ± 0.0000 against pca · umap k=10 0.4500 ± 0.0139, beyond" in text
    assert "| pixels |" not in text.split("## Compression")[1]  # no reconstruction: no row
    assert "| net | 24.50 | 0.0100 ± 0.0139 | 20.00 ± 0.01 |" in text


def test_the_paired_rule_names_a_winner_where_the_intervals_overlap():
    # 0.02 apart, each ± 0.0139: the intervals overlap, the unpaired rule would call a tie;
    # the test digits' noise is shared, so the difference is exact.
    text = summary(ESTIMATES, PARAMS_USED, pca=["pca"])
    assert ("- **Best ARI, normal digits:** net · umap normal 0.9000 ± 0.0139, +0.0100 ± "
            "0.0000 over pixels · umap normal 0.8900 ± 0.0139") in text  # fmt: skip
    assert "- **Best PSNR:** net 20.00 ± 0.01, +2.00 ± 0.00 over pca 18.00 ± 0.01" in text


def test_a_variant_with_an_unconverged_seed_is_marked_with_one_line_under_each_table():
    text = summary(ESTIMATES, PARAMS_USED, pca=["pca"], unconverged={"net": "1 of 3 seeds"})
    assert text.count("| net † | ") == 3
    line = (
        "† Not converged: net (1 of 3 seeds) stopped at `max_epochs` while the validation "
        "loss still improved; raise it (docs/tuning.md), these rows understate them."
    )
    assert text.count(line) == 3
    assert "| pca † |" not in text
    assert "†" not in summary(ESTIMATES, PARAMS_USED, pca=["pca"])


def test_the_generation_table_ranks_by_kid_and_pairs_the_articles_claims():
    distance = np.array([-0.5, 0.5])  # u_test 0.70711: ± 1.39 without seed spread
    vae_seeds = (-0.5, 0, 0.5)  # the same networks draw both samplers' digits

    def at(mean: float, seeds=(0.0, 0.0, 0.0), resampled=distance) -> Estimate:
        return entry(mean, seeds, resampled)

    generated = {
        "net": {"fd_gmm": at(3.0), "kid_gmm": at(2.0, (-1, 0, 1)), "fd_interp": at(9.0),
                "kid_interp": at(20.0), "confident_gmm": entry(0.9), "coverage_gmm": entry(0.99),
                "interp_jump": entry(0.2)},
        "vae": {"fd_gmm": at(2.0), "kid_gmm": at(1.0, vae_seeds), "fd_prior": at(20.0),
                "kid_prior": at(50.0, vae_seeds), "fd_interp": at(8.0),
                "kid_interp": at(22.0, resampled=-distance), "interp_jump": entry(0.2)},
        "pca": {"fd_gmm": at(9.0), "kid_gmm": at(8.0), "fd_interp": at(30.0),
                "kid_interp": at(40.0), "interp_jump": entry(0.1)},
        "pixels": {"fd_real": at(1.0), "kid_real": at(0.0), "confident_real": entry(0.95),
                   "coverage_real": entry(1.0)},
    }  # fmt: skip
    estimates = {name: ESTIMATES.get(name, {}) | row for name, row in generated.items()}
    text = summary(estimates, PARAMS_USED, pca=["pca"], samplers=["prior", "gmm"],
                   kinds={"net": "ae", "vae": "vae", "pca": "pca"})  # fmt: skip
    table = text.split("## Generation")[1]
    assert "| variant | FD prior | KID prior | FD gmm | KID gmm | FD interp | KID interp |" in table
    # net's KID: seeds 1, 2, 3: ± 2.16919 sqrt(1/3 + 0.5) = ± 1.98
    assert "| net | — | — | 3.00 ± 1.39 | 2.00 ± 1.98 | 9.00 ± 1.39 | 20.00 ± 1.39 |" in table
    assert "Floor: the real validation digits are at FD 1.00 ± 1.39 and KID 0.00 ± 1.39" in table
    # vae against net, two variants: seed terms 0.5/sqrt(3) and 1/sqrt(3), u^2 = 5/12,
    # dof (5/12)^2 / ((1/12)^2/2 + (1/3)^2/2) = 2.94118, t = 3.218759: ± 2.08
    assert ("- **Best KID of samples:** a tie among 2: vae · KID gmm 1.00 ± 1.52, net · KID gmm "
            "2.00 ± 1.98 (+1.00 ± 2.08)") in table  # fmt: skip
    # against pca: vae's seed term alone, ± 4.302653 x 0.5/sqrt(3) = ± 1.24
    assert "vae · KID gmm 1.00 ± 1.52, beats PCA: -7.00 ± 1.24 against pca · KID gmm 8.00" in table
    assert ("- **Best KID of interpolation midpoints:** a tie among 2: net · KID interp 20.00 "
            "± 1.39, vae · KID interp 22.00 ± 1.39 (+2.00 ± 2.77)") in table  # fmt: skip
    assert "net kid_gmm 2.00 ± 1.98 beats vae kid_prior 50.00 ± 1.52 (-48.00 ± 2.08;" in table
    # moving apart on the resamples: differences -2 +- 1, sd 1.41421, ± 1.959964 x that
    assert "kid_interp 20.00 ± 1.39 ties with vae kid_interp 22.00 ± 1.39 (-2.00 ± 2.77;" in table
    # the same networks: each seed's prior and mixture move together, the difference is exact
    assert "vae kid_prior 50.00 ± 1.52 loses to vae kid_gmm 1.00 ± 1.52 (+49.00 ± 0.00;" in table

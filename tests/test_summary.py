"""aelab.reports.summary: the Markdown summary rendered from means and half-widths."""

from __future__ import annotations

from test_evaluation import PARAMS

from aelab.reports.summary import summary

PARAMS_USED = PARAMS.model_copy(update={"scores": ["recon", "knn"], "clusterers": ["umap"]})
RESULTS = {
    "net": {"roc_auc_recon": 0.90, "roc_auc_knn": 0.93, "ari_all_umap": 0.60,
            "ari_normal_umap": 0.90, "psnr": 20.0, "mse": 0.01, "compression_ratio": 24.5},
    "pca": {"roc_auc_recon": 0.80, "roc_auc_knn": 0.94, "ari_all_umap": 0.45,
            "ari_normal_umap": 0.88, "psnr": 18.0, "mse": 0.02, "compression_ratio": 24.5},
    "pixels": {"roc_auc_recon": None, "roc_auc_knn": 0.92, "ari_all_umap": 0.61,
               "ari_normal_umap": 0.89},
}  # fmt: skip
HALF_WIDTHS = {name: {key: (None if value is None else 0.01) for key, value in row.items()}
               for name, row in RESULTS.items()}  # fmt: skip


def test_the_summary_has_a_table_per_task_names_winners_or_ties_and_judges_pca():
    text = summary(RESULTS, HALF_WIDTHS, PARAMS_USED, pca=["pca"])
    assert text.count("\n## ") == 3  # anomaly, clustering, compression
    assert "| net | 0.9000 ± 0.0100 | 0.9300 ± 0.0100 |" in text
    assert "| pixels | — | 0.9200 ± 0.0100 |" in text
    assert "- **Best ROC AUC:** a tie between pca · knn 0.9400 ± 0.0100, net · knn" in text
    assert "net · knn 0.9300 ± 0.0100, ties with PCA: -0.0100 against pca · knn" in text
    assert ("- **Best ARI, k = 10:** a tie between pixels · umap k=10 0.6100 ± 0.0100, "
            "net · umap k=10 0.6000 ± 0.0100") in text  # fmt: skip
    assert "beats PCA: +0.1500 against pca · umap k=10 0.4500 ± 0.0100, beyond the" in text
    assert "- **Best PSNR:** net 20.00 ± 0.01, +2.00 over pca 18.00 ± 0.01" in text
    assert "| pixels |" not in text.split("## Compression")[1]  # no reconstruction: no row


def test_a_variant_with_an_unconverged_seed_is_marked_with_one_line_under_each_table():
    text = summary(
        RESULTS, HALF_WIDTHS, PARAMS_USED, pca=["pca"], unconverged={"net": "1 of 3 seeds"}
    )
    assert text.count("| net † | ") == 3
    line = (
        "† Not converged: net (1 of 3 seeds) stopped at `max_epochs` while the validation "
        "loss still improved; raise it (docs/tuning.md), these rows understate them."
    )
    assert text.count(line) == 3
    assert "| pca † |" not in text
    assert "†" not in summary(RESULTS, HALF_WIDTHS, PARAMS_USED, pca=["pca"])


def test_the_generation_table_has_the_floor_the_verdicts_and_the_articles_claims():
    generated = {
        "net": {"fd_gmm": 3.0, "fd_interp": 9.0, "confident_gmm": 0.9, "coverage_gmm": 0.99,
                "interp_jump": 0.2, "fd_prior": None},
        "vae": {"fd_gmm": 2.0, "fd_prior": 20.0, "fd_interp": 8.0, "interp_jump": 0.2},
        "pca": {"fd_gmm": 9.0, "fd_interp": 30.0, "interp_jump": 0.1, "fd_prior": None},
        "pixels": {"fd_real": 1.0, "confident_real": 0.95, "coverage_real": 1.0},
    }  # fmt: skip
    results = {name: RESULTS.get(name, {}) | row for name, row in generated.items()}
    half_widths = {name: {key: None if value is None else 1.0 for key, value in row.items()}
                   for name, row in results.items()}  # fmt: skip
    text = summary(results, half_widths, PARAMS_USED, pca=["pca"], samplers=["prior", "gmm"],
                   kinds={"net": "ae", "vae": "vae", "pca": "pca"})  # fmt: skip
    table = text.split("## Generation")[1]
    assert "| variant | FD prior | FD gmm | FD interp | confident prior |" in table
    assert "| net | — | 3.00 ± 1.00 | 9.00 ± 1.00 |" in table
    assert "Floor: the real validation digits are at FD 1.00 ± 1.00" in table
    assert "- **Best FD of samples:** a tie between vae · FD gmm 2.00 ± 1.00, net · FD gmm" in table
    assert "vae · FD gmm 2.00 ± 1.00, beats PCA: -7.00 against pca · FD gmm 9.00" in table
    assert "net fd_gmm 3.00 ± 1.00 beats vae fd_prior 20.00 ± 1.00" in table
    assert "net fd_interp 9.00 ± 1.00 ties with vae fd_interp 8.00 ± 1.00" in table
    assert "vae fd_prior 20.00 ± 1.00 loses to vae fd_gmm 2.00 ± 1.00" in table

"""Golden values for the similarities of the sanity checks (src/quality/similarity.rs).

Library versions used to make tests/fixtures/quality_golden.json:
    scikit-image 0.26.0, scipy 1.17.1, numpy 2.4.6 (Python 3.11)

Run by hand (the tests only read the fixture):
    /work/main/.venv-ref/bin/python scripts/golden/quality.py

- SSIM: skimage.metrics.structural_similarity on 2-D maps in [0, 1] with data_range=1, both with
  Wang et al.'s setting (gaussian_weights=True, sigma=1.5, use_sample_covariance=False: an 11x11
  Gaussian window) and with scikit-image's default (uniform 7x7 window, sample covariances).
- Spearman: scipy.stats.spearmanr (ties get their average rank) on maps with many ties.
The maps are stored row-major with their height and width; the maps are non-square so that a
transposition would show.
"""

import json
import os

import numpy as np
import scipy
import skimage
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "quality_golden.json")

rng = np.random.default_rng(6)
h, w = 16, 13
cases = []
for k in range(3):
    a = rng.random((h, w))
    if k == 0:
        b = np.clip(a + 0.1 * rng.standard_normal((h, w)), 0, 1)
    elif k == 1:
        b = rng.random((h, w))
    else:
        # A smooth blob against a shifted blob.
        yy, xx = np.mgrid[0:h, 0:w]
        a = np.exp(-((yy - 6) ** 2 + (xx - 5) ** 2) / 8.0)
        b = np.exp(-((yy - 8) ** 2 + (xx - 7) ** 2) / 10.0)
    gauss = structural_similarity(
        a, b, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    uniform = structural_similarity(a, b, data_range=1.0)
    # Ties: quantise to a few levels.
    qa, qb = np.round(a * 4) / 4, np.round(b * 3) / 3
    rho = spearmanr(qa.ravel(), qb.ravel()).statistic
    cases.append(
        {
            "h": h,
            "w": w,
            "a": a.ravel().tolist(),
            "b": b.ravel().tolist(),
            "ssim_gaussian": float(gauss),
            "ssim_uniform": float(uniform),
            "qa": qa.ravel().tolist(),
            "qb": qb.ravel().tolist(),
            "spearman_quantised": float(rho),
        }
    )

meta = {"skimage": skimage.__version__, "scipy": scipy.__version__, "numpy": np.__version__}
with open(OUT, "w") as f:
    json.dump({"versions": meta, "cases": cases}, f)
print(meta, [(c["ssim_gaussian"], c["ssim_uniform"], c["spearman_quantised"]) for c in cases])

"""benchmark stage: ILSVRC-style scoring, independent of the project store.

* `data`: the dense arrays every scorer consumes (`ClassList`, `Submission`, `GroundTruth`).
* `formats`: classic devkit and Kaggle files in and out, with line/field-precise errors.
* `metrics`: `score()` -> `Scores` (flat, hierarchical, localization error; per class; confusions).
* `leaderboard`: bootstrap intervals, paired tests, public/private split, the Ladder.
* `cli`: `synsetforge benchmark score|compare`.
"""

"""training stage: deep baselines (AlexNet, ResNet) trained on a release, and transfer learning.

Needs torch (the `test` extra pins the CPU wheel); nothing is imported here, so the rest of synsetforge
loads without it.
"""

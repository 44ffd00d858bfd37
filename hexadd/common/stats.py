"""The one-sided 95% upper bound on an error rate that every certificate, band and table reports."""
import math


def upper_bound_95(wrong: int, n: int) -> float:
    """One-sided 95% (Clopper-Pearson) upper bound on the error rate after `wrong` errors in `n` trials.

    For 0 wrong it is 1 - 0.05**(1/n) ~ 3/n (the rule of three); otherwise the p at which seeing
    at most `wrong` errors has probability 5%, found by bisection on the binomial CDF.
    """
    if n <= 0 or wrong >= n:
        return 1.0
    if wrong == 0:
        return -math.expm1(math.log(0.05) / n)

    import torch  # only for a bound above some errors: the figures and the ablation table need no torch at start-up

    k = torch.arange(wrong + 1, dtype=torch.float64)
    log_choose = math.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)

    def cdf(p):  # P(X <= wrong), X ~ Binomial(n, p), summed in log space (pooled tables reach 10^4 errors)
        return torch.logsumexp(log_choose + k * math.log(p) + (n - k) * math.log1p(-p), 0).exp().item()

    lo, hi = wrong / n, 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi

"""Turns the raw results of bench/protocol.sh into Markdown: the machine, the
rates per implementation, the ratios, and issue 2's targets with whether each
is met.

    python bench/report.py DIR

Every rate is in operations per CPU-second of one core. DIR holds machine.txt
and one directory per round (round1, round2, …), each with openssl.txt
(`sign <sign/s>`, `verify <verify/s>`), node.txt and python.txt
(`<operation> <median batch> <best batch> <overall>` lines) and criterion/
(the Rust samples). For every implementation and operation the figure compared
is the median batch's rate of its best round: the median is robust to a burst
of other work within a measurement without picking the luckiest batch, and the
best round drops a measurement that such a burst hit throughout.
"""

import json
import os
import sys

OPERATIONS = [
    ("build_and_sign_request", "build and sign a request (`alipay.trade.pay`)"),
    ("verify_request", "verify a request (parse + authenticate)"),
    ("sign_response", "sign a response (pay node)"),
    ("verify_response", "verify a response (+ classify)"),
    ("verify_notification", "verify a notification"),
]
MEDIAN, BEST, OVERALL = 0, 1, 2


def fail(message):
    sys.exit("bench/report.py: " + message)


def read_rates(path, source):
    """`<name> <median> <best> <overall>` lines."""
    rates = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                name, *values = line.split()
                rates[name] = [float(v) for v in values]
    for name, _ in OPERATIONS:
        if len(rates.get(name, [])) != 3:
            fail("%s gave no figures for %s (%s)" % (source, name, path))
    return rates


def criterion_rates(directory):
    """Median, best and overall rates from criterion's raw samples (each sample
    times a batch of iterations)."""
    rates = {}
    for name, _ in OPERATIONS:
        path = os.path.join(directory, "criterion", name, "new", "sample.json")
        try:
            with open(path, encoding="utf-8") as f:
                sample = json.load(f)
        except OSError:
            fail("no criterion samples for %s (%s)" % (name, path))
        iters, times_ns = sample["iters"], sample["times"]
        per_sample = sorted(i / t * 1e9 for i, t in zip(iters, times_ns))
        n = len(per_sample)
        median = (per_sample[(n - 1) // 2] + per_sample[n // 2]) / 2
        rates[name] = [median, per_sample[-1], sum(iters) / sum(times_ns) * 1e9]
    return rates


def read_pairs(path):
    pairs = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                key, value = line.rstrip("\n").split(" ", 1)
                pairs[key] = value
    return pairs


def best_round(rounds, name):
    """The figures of the round whose median is highest, and the medians' range."""
    medians = [r[name][MEDIAN] for r in rounds]
    best = max(rounds, key=lambda r: r[name][MEDIAN])[name]
    return best, (min(medians), max(medians))


def main(directory):
    machine = read_pairs(os.path.join(directory, "machine.txt"))
    round_dirs = [os.path.join(directory, "round%d" % i) for i in range(1, int(machine["rounds"]) + 1)]
    sources = {
        "Rust": [criterion_rates(d) for d in round_dirs],
        "Node": [read_rates(os.path.join(d, "node.txt"), "the Node SDK") for d in round_dirs],
        "Python": [read_rates(os.path.join(d, "python.txt"), "the Python SDK") for d in round_dirs],
    }
    openssl = [read_pairs(os.path.join(d, "openssl.txt")) for d in round_dirs]
    sign_raw = max(float(o["sign"]) for o in openssl)
    verify_raw = max(float(o["verify"]) for o in openssl)
    figures = {src: {name: best_round(rounds, name) for name, _ in OPERATIONS}
               for src, rounds in sources.items()}
    rate = {src: {name: figures[src][name][0] for name, _ in OPERATIONS} for src in figures}

    print("Machine: %s, %s cores; every measurement pinned to CPU %s; %s rounds of %s s "
          "per measurement; load average %s before and %s after." % (
              machine["cpu"], machine["cores"], machine["pinned"], machine["rounds"],
              machine["seconds"], machine["load_before"], machine["load"]))
    print("%s; Node %s; %s; %s; %s." % (machine["rustc"], machine["node"], machine["python"],
                                        machine["openssl"], machine["date"]))
    print()
    print("| Operation (ops per CPU-second, one core) | Rust (jianlian) | Node SDK | Python SDK "
          "| Rust ÷ Node | Rust ÷ Python |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, label in OPERATIONS:
        r, n, p = (rate[src][name][MEDIAN] for src in ("Rust", "Node", "Python"))
        print("| %s | %.0f | %.0f | %.0f | %.1f× | %.1f× |" % (label, r, n, p, r / n, r / p))
    print("| raw RSA-2048, `openssl speed` | sign %.0f, verify %.0f | | | | |"
          % (sign_raw, verify_raw))
    print()
    print("Median of the best round; across rounds the medians ranged: " + "; ".join(
        "%s: %s" % (name, ", ".join(
            "%s %.0f–%.0f" % (src, figures[src][name][1][0], figures[src][name][1][1])
            for src in ("Rust", "Node", "Python")))
        for name, _ in OPERATIONS) + ".")
    print()
    rust, node = rate["Rust"], rate["Node"]
    # The last field: what an implementation doing nothing but the RSA operation
    # (at OpenSSL's raw rate) would reach, for the ratios against the Node SDK.
    targets = [
        ("build-and-sign ÷ raw RSA-2048 sign", 0.9,
         lambda k: rust["build_and_sign_request"][k] / sign_raw, None),
        ("build-and-sign ÷ Node SDK", 3.5,
         lambda k: rust["build_and_sign_request"][k] / node["build_and_sign_request"][k],
         sign_raw / node["build_and_sign_request"][MEDIAN]),
        ("verify response ÷ raw RSA-2048 verify", 0.7,
         lambda k: rust["verify_response"][k] / verify_raw, None),
        ("verify response ÷ Node SDK", 7.0,
         lambda k: rust["verify_response"][k] / node["verify_response"][k],
         verify_raw / node["verify_response"][MEDIAN]),
    ]
    print("| Target (issue 2) | Required | Median batch | Met | Best batch | Overall "
          "| Raw RSA rate ÷ Node (ceiling) |")
    print("|---|---:|---:|---|---:|---:|---:|")
    missed = 0
    for label, required, ratio, ceiling in targets:
        met = ratio(MEDIAN) >= required
        missed += 0 if met else 1
        print("| %s | ≥ %.1f× | %.2f× | %s | %.2f× | %.2f× | %s |" % (
            label, required, ratio(MEDIAN), "yes" if met else "**no**", ratio(BEST),
            ratio(OVERALL), "%.2f×" % ceiling if ceiling else "–"))
    if missed:
        print()
        print("%d target(s) missed in this run (median batch)." % missed)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])

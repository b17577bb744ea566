#!/usr/bin/env python3
"""The results of one GPU run (scripts/gpu_run.sh): reads what the run left in RAW (nvidia-smi's CSV, the GoogleTest and
Google Benchmark JSON files, the memcheck log, the HBM copy figure) and writes OUT/results.json (every figure, with the
raw benchmark rows) and OUT/results.md (the tables: each GPU figure beside its CPU counterpart from the same run and
its target). Every figure comes from the files; nothing is typed in. Usage: gpu_results.py RAW OUT"""
import json
import os
import re
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def gtest_summary(doc):
    if not doc:
        return None
    failed, skipped = [], []
    for suite in doc.get("testsuites", []):
        for t in suite.get("testsuite", []):
            name = suite["name"] + "." + t["name"]
            if t.get("failures"):
                failed.append({"test": name, "failure": t["failures"][0].get("failure", "")[:600]})
            elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                skipped.append(name)
    return {"tests": doc.get("tests", 0), "failures": doc.get("failures", 0), "skipped": skipped, "failed": failed}


def bench_rows(doc):
    rows = {}
    for b in (doc or {}).get("benchmarks", []):
        if b.get("run_type") == "aggregate":
            continue
        base = re.sub(r"/(iterations|min_time|real_time|repeats).*$", "", b["name"])
        keep = {k: v for k, v in b.items() if isinstance(v, (int, float)) and k not in ("family_index", "per_family_instance_index",
                                                                                         "repetitions", "repetition_index", "threads")}
        keep["time_unit"] = b.get("time_unit", "")
        rows[base] = keep
    return rows


def ncu_metrics(csv_text):
    """Metric name -> "value unit" from ncu's --csv --page details rows (a header row "ID",...,"Metric Name","Metric
    Unit","Metric Value" when present; else the rows alone, whose last three fields are name, unit and value)."""
    import csv
    out = {}
    rows = [r for r in csv.reader(l for l in csv_text.splitlines() if l.startswith('"')) if r]
    head = next((r for r in rows if "Metric Name" in r), None)
    for r in rows:
        if r is head:
            continue
        r = r[:-1] if r and r[-1] == "" else r  # a trailing comma
        if head is not None:
            i_name, i_unit, i_val = head.index("Metric Name"), head.index("Metric Unit"), head.index("Metric Value")
            if len(r) > max(i_name, i_unit, i_val):
                out[r[i_name]] = (r[i_val] + " " + r[i_unit]).strip()
        elif len(r) >= 3:
            out[r[-3]] = (r[-1] + " " + r[-2]).strip()
    return out


def fmt(x, digits=4):
    if x is None:
        return "-"
    return f"{x:.{digits}g}"


def main(raw, out):
    os.makedirs(out, exist_ok=True)
    res = {"device": {}, "tests": {}, "memcheck": {}, "benchmarks": {}, "figures": {}}
    smi = text(os.path.join(raw, "nvidia-smi.csv")).strip().splitlines()
    if len(smi) >= 2:
        res["device"] = dict(zip([h.strip() for h in smi[0].split(",")], [v.strip() for v in smi[1].split(",")]))
    res["configure_ok"] = "Build files have been written" in text(os.path.join(raw, "configure.log"))
    build = text(os.path.join(raw, "build.log"))
    res["build_errors"] = [l for l in build.splitlines() if "error" in l.lower() or "FAILED" in l][:30]
    for suite in ("cuda", "models"):
        res["tests"][suite] = gtest_summary(load(os.path.join(raw, f"gtest_{suite}.json")))
    mc = text(os.path.join(raw, "memcheck.log"))
    m = re.search(r"ERROR SUMMARY: (\d+) error", mc)
    rc = re.search(r"memcheck rc=(\d+)", mc)
    res["memcheck"] = {"ran": bool(mc), "errors": int(m.group(1)) if m else None, "rc": int(rc.group(1)) if rc else None,
                       "tail": mc.strip().splitlines()[-12:]}
    for name in ("bench_indicators", "bench_backtest", "bench_models", "bench_ranking"):
        doc = load(os.path.join(raw, name + ".json"))
        res["benchmarks"][name] = {"context": (doc or {}).get("context", {}), "rows": bench_rows(doc)}
    hbm = re.search(r"hbm_copy_bytes_per_s ([0-9.eE+]+)", text(os.path.join(raw, "hbm.txt")))
    hbm_bw = float(hbm.group(1)) if hbm else None
    res["figures"]["hbm_copy_bytes_per_s"] = hbm_bw

    md = ["# GPU run: " + res["device"].get("name", "no device read"), ""]
    if res["device"]:
        md += ["| " + " | ".join(res["device"].keys()) + " |", "|" + "---|" * len(res["device"]),
               "| " + " | ".join(res["device"].values()) + " |", ""]
    md += [f"Configure: {'ok' if res['configure_ok'] else 'FAILED'}; build errors: {len(res['build_errors'])}", ""]
    md += ["## Tests", "", "| suite | tests | failures | skipped |", "|---|---|---|---|"]
    for suite, s in res["tests"].items():
        if s is None:
            md.append(f"| {suite} | not run | | |")
        else:
            md.append(f"| {suite} | {s['tests']} | {s['failures']} | {len(s['skipped'])} |")
    for suite, s in res["tests"].items():
        for f in (s or {}).get("failed", []):
            md.append(f"- FAILED {f['test']}: `{f['failure'].splitlines()[0] if f['failure'] else ''}`")
    mcs = res["memcheck"]
    md += ["", f"compute-sanitizer memcheck: {'not run' if not mcs['ran'] else str(mcs['errors']) + ' errors (rc ' + str(mcs['rc']) + ')'}", ""]

    ind = res["benchmarks"]["bench_indicators"]["rows"]
    rows = []
    for key, r in sorted(ind.items()):
        if not key.startswith("BM_Indicators/cuda/"):
            continue
        case = key.split("/", 2)[2]
        cpu = ind.get("BM_Indicators/cpu/" + case, {})
        frac = r.get("bytes_per_s") / hbm_bw if hbm_bw and r.get("bytes_per_s") else None
        rows.append({"indicator": case, "cuda_bar_updates_per_s": r.get("bar_updates_per_s"), "cpu_bar_updates_per_s": cpu.get("bar_updates_per_s"),
                     "cuda_bytes_per_s": r.get("bytes_per_s"), "of_hbm_copy": frac})
    res["figures"]["indicators"] = rows
    if rows:
        md += ["## Indicator batch (5,000 symbols x 2,520 bars x 10 periods)", "",
               "| indicator | CUDA bar-updates/s | CPU (all cores) | CUDA / CPU | CUDA bytes/s | of HBM copy (target >= 50%) |",
               "|---|---|---|---|---|---|"]
        for r in rows:
            ratio = r["cuda_bar_updates_per_s"] / r["cpu_bar_updates_per_s"] if r["cuda_bar_updates_per_s"] and r["cpu_bar_updates_per_s"] else None
            md.append(f"| {r['indicator']} | {fmt(r['cuda_bar_updates_per_s'])} | {fmt(r['cpu_bar_updates_per_s'])} | {fmt(ratio, 3)} | "
                      f"{fmt(r['cuda_bytes_per_s'])} | {fmt(100 * r['of_hbm_copy'], 3) + '%' if r['of_hbm_copy'] else '-'} |")
        md += ["", f"HBM copy bandwidth measured in the same run (read + write): {fmt(hbm_bw)} B/s", ""]

    bt = res["benchmarks"]["bench_backtest"]["rows"]
    cuda_bt = next((r for k, r in bt.items() if k.startswith("BM_Backtest/cuda")), None)
    tbb_bt = bt.get("BM_Backtest/tbb")
    res["figures"]["backtest"] = {"cuda_bar_steps_per_s": (cuda_bt or {}).get("bar_steps_per_s"),
                                  "tbb_bar_steps_per_s": (tbb_bt or {}).get("bar_steps_per_s")}
    if cuda_bt or tbb_bt:
        c, t = res["figures"]["backtest"]["cuda_bar_steps_per_s"], res["figures"]["backtest"]["tbb_bar_steps_per_s"]
        md += ["## Population backtest", "", "| backend | bar-steps/s | target |", "|---|---|---|",
               f"| CUDA, P=8,192 x S=1,000 x T=2,520 | {fmt(c)} | 1e11: {'met' if c and c >= 1e11 else 'not met'} |",
               f"| TBB, all cores (bench_backtest's market) | {fmt(t)} | |", ""]

    mo = res["benchmarks"]["bench_models"]["rows"]
    mrows = []
    for kind in ("mlp", "gru", "transformer"):
        e = mo.get(f"BM_train_cuda_steps_per_s/{kind}_eager", {}).get("steps/s")
        g = mo.get(f"BM_train_cuda_steps_per_s/{kind}_graph", {}).get("steps/s")
        mrows.append({"model": kind, "eager_steps_per_s": e, "graph_steps_per_s": g, "graph_over_eager": g / e if e and g else None})
    res["figures"]["training"] = mrows
    if any(r["eager_steps_per_s"] for r in mrows):
        md += ["## Training steps on CUDA", "", "| model | eager steps/s | CUDA-graph steps/s | graph / eager (target >= 2) |", "|---|---|---|---|"]
        for r in mrows:
            md.append(f"| {r['model']} | {fmt(r['eager_steps_per_s'])} | {fmt(r['graph_steps_per_s'])} | {fmt(r['graph_over_eager'], 3)} |")
        cpu_mlp = mo.get("BM_train_samples_per_s/mlp", {}).get("samples/s")
        md += ["", f"CPU MLP training in the same run: {fmt(cpu_mlp)} samples/s", ""]

    rk = res["benchmarks"]["bench_ranking"]["rows"]
    full = rk.get("BM_FullRecompute")
    inc = rk.get("BM_IncrementalUpdate")
    res["figures"]["ranking_cpu"] = {"full_ms": (full or {}).get("real_time"), "incremental_us": (inc or {}).get("real_time")}
    if full or inc:
        md += ["## Ranking 5,000 x 252 (CPU, the machine's cores; the ranking has no CUDA path)", "",
               f"full recompute {fmt(res['figures']['ranking_cpu']['full_ms'])} ms; incremental update "
               f"{fmt(res['figures']['ranking_cpu']['incremental_us'])} us (target <= 1 ms)", ""]

    ev = {}
    for line in text(os.path.join(raw, "evolve.txt")).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "evolve_wall_s":
            ev[(parts[1], int(parts[2]))] = float(parts[3])
    per_gen = {dev: (ev[(dev, 4)] - ev[(dev, 1)]) / 3 for dev in ("cpu", "cuda") if (dev, 1) in ev and (dev, 4) in ev}
    res["figures"]["evolve_s_per_generation"] = per_gen
    if per_gen:
        md += ["## qtos evolve, 1,000 symbols x 2,520 bars, population 512 (wall s per generation: 4 generations minus 1)", "",
               "| device | s per generation |", "|---|---|"] + [f"| {d} | {fmt(v)} |" for d, v in per_gen.items()]
        if "cpu" in per_gen and "cuda" in per_gen and per_gen["cuda"] > 0:
            md.append(f"\nGPU / CPU speed-up: {fmt(per_gen['cpu'] / per_gen['cuda'], 3)}")
        md.append("")
    res["figures"]["ncu_backtest_kernel"] = ncu = ncu_metrics(text(os.path.join(raw, "ncu.csv")))
    if ncu:
        keys = [k for k in ("Duration", "Compute (SM) Throughput", "Memory Throughput", "DRAM Throughput", "Achieved Occupancy",
                            "Theoretical Occupancy", "Registers Per Thread", "Block Size", "Grid Size") if k in ncu]
        md += ["## ncu --set basic, backtest_kernel (one launch)", "", "| metric | value |", "|---|---|"] + [f"| {k} | {ncu[k]} |" for k in keys] + [""]

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))


def add_ncu_from_log(log, out):
    """For a run whose ncu.csv did not come back: the ncu rows it printed into run.log, added to OUT's results."""
    metrics = ncu_metrics(text(log))
    path = os.path.join(out, "results.json")
    res = load(path)
    res["figures"]["ncu_backtest_kernel"] = metrics
    with open(path, "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    keys = [k for k in ("Duration", "Compute (SM) Throughput", "Memory Throughput", "DRAM Throughput", "Achieved Occupancy",
                        "Theoretical Occupancy", "Registers Per Thread") if k in metrics]
    with open(os.path.join(out, "results.md"), "a") as f:
        f.write("\n".join(["## ncu --set basic, backtest_kernel (one launch; the rows run.log printed)", "", "| metric | value |",
                           "|---|---|"] + [f"| {k} | {metrics[k]} |" for k in keys]) + "\n")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--ncu-from-log":
        add_ncu_from_log(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3:
        main(sys.argv[1], sys.argv[2])
    else:
        sys.exit("usage: gpu_results.py RAW OUT | gpu_results.py --ncu-from-log RUN_LOG OUT")

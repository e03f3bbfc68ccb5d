"""results.json → the targets, a Markdown table and a chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _m(stats: dict[str, float]) -> float:
    return stats["median"]


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    sp, cmd, ctd, dens = r["start_path"], r["commands"], r["containerd"], r["density"]
    timed = [
        ("runtime overhead to first guest output (urunc create+start − bare monitor), ms",
         sp["pairs"]["first_line_overhead_ms"], 25),
        ("urunc state − python3 -I -S -c pass, ms", cmd["pairs"]["state_minus_python_ms"], 3),
        ("ctr run unikernel − ctr run busybox true (runc) − bare monitor, ms",
         ctd["pairs"]["unikernel_minus_busybox_minus_floor_ms"], 25),
    ]
    rows = [{"target": t, "value": _m(s), "ci95": [s.get("ci95_lo"), s.get("ci95_hi")], "goal": f"<= {g}",
             "met": _m(s) <= g} for t, s, g in timed]
    big = r.get("large_rootfs") or {}
    if "pairs" in big:
        ratio = big["pairs"]["first_output_ratio"]
        same_memory = big["busybox"]["memory_mib"] == big["large"]["memory_mib"]
        rows.append({"target": f"linux guest, busybox + {big['large_extra_mib']} MiB rootfs / busybox rootfs, "
                               "time to first output (ratio)",
                     "value": _m(ratio), "ci95": [ratio.get("ci95_lo"), ratio.get("ci95_hi")], "goal": "<= 1.5",
                     "met": _m(ratio) <= 1.5})
        rows.append({"target": f"linux guest memory with + {big['large_extra_mib']} MiB rootfs, MiB",
                     "value": max(big["large"]["memory_mib"]),
                     "goal": f"= busybox's {max(big['busybox']['memory_mib'])}", "met": same_memory})
    ex = r.get("exec") or {}
    if "pairs" in ex:
        rows.append({"target": "ctr task exec true: linux guest (urunc) - busybox (runc), ms (reported)",
                     "value": _m(ex["pairs"]["urunc_minus_runc_ms"]), "goal": "report", "met": True})
    tpl = r.get("templates") or {}
    if "pairs" in tpl:
        warm = tpl["pairs"]["warm_over_runc"]
        rows.append({"target": "ctr run --rm linux guest `echo hi` from a template / same image under runc (ratio)",
                     "value": _m(warm), "ci95": [warm.get("ci95_lo"), warm.get("ci95_hi")], "goal": "<= 3",
                     "met": _m(warm) <= 3})
        pss = tpl["idle_pss_sum_mib"]
        rows.append({"target": f"{tpl['idle_guests']} idle linux guests, monitors' summed PSS: from one template "
                               f"vs cold ({pss.get('cold')} MiB), MiB",
                     "value": pss.get("warm"), "goal": "< cold", "met": pss.get("warm", 0) < pss.get("cold", 0)})
    rows += [
        {"target": f"density {dens['n']}: failures", "value": dens["failures"], "goal": "0",
         "met": dens["failures"] == 0},
        {"target": "resident urunc (python) processes with all containers up",
         "value": dens["urunc_python_processes"], "goal": "0", "met": dens["urunc_python_processes"] == 0},
    ]
    return rows


def _cell(stats: dict[str, float]) -> str:
    if not stats:
        return "n/a"
    return f"{stats['median']:.1f} ({stats['p10']:.1f}–{stats['p90']:.1f})"


def markdown(r: dict[str, Any]) -> str:
    meta, sp, cmd, ctd, dens = r["meta"], r["start_path"], r["commands"], r["containerd"], r["density"]
    out = [
        "# urunc benchmark",
        "",
        f"{meta['date']} · {meta['host']} · Linux {meta['kernel']} · {meta['cpus']} CPUs · "
        f"accelerator **{', '.join(meta['accel_used'])}** (requested {meta['accel_requested']}) · "
        f"{meta['qemu']} · {meta['runc']} · interpreter {meta['interpreter']} · "
        f"{meta['runs']} runs ({meta['ctr_runs']} through containerd) · {meta['duration_s']} s"
        + (" · **quick**" if meta["quick"] else ""),
        "",
        "All times in ms: median (p10–p90). Differences and ratios are taken pair by pair (run i of one",
        "contender against run i of the other, run alternately), then summarised.",
        "",
        "## Targets",
        "",
        "| target | value (median) | 95% CI of the median | goal | met |",
        "|---|---:|---:|---:|:---:|",
    ]
    for t in r["targets"]:
        ci = t.get("ci95") or [None, None]
        interval = f"{ci[0]:.1f}–{ci[1]:.1f}" if None not in ci else ""
        out.append(f"| {t['target']} | {t['value']} | {interval} | {t['goal']} | {'yes' if t['met'] else '**no**'} |")
    out += [
        "",
        "## Start path: bare monitor against urunc create + start (same guest, same argv)",
        "",
        "| contender | first guest line | monitor exit |",
        "|---|---:|---:|",
        f"| bare monitor (floor) | {_cell(sp['floor']['first_line_ms'])} | {_cell(sp['floor']['exit_ms'])} |",
        f"| urunc create + start | {_cell(sp['runtime']['first_line_ms'])} | {_cell(sp['runtime']['exit_ms'])} |",
        f"| urunc, timestamps on | {_cell(sp['runtime_with_timestamps']['first_line_ms'])} | "
        f"{_cell(sp['runtime_with_timestamps']['exit_ms'])} |",
        f"| urunc − floor (pairwise) | {_cell(sp['pairs']['first_line_overhead_ms'])} | "
        f"{_cell(sp['pairs']['exit_overhead_ms'])} |",
        f"| urunc / floor (pairwise) | {_cell(sp['pairs']['first_line_ratio'])} | {_cell(sp['pairs']['exit_ratio'])} |",
        "",
        "### Where urunc's time goes (timestamps on; each row is the gap since the previous point)",
        "",
        "| phase | ms |",
        "|---|---:|",
    ]
    for name, stats in sp["phases_ms"].items():
        out.append(f"| {name} | {_cell(stats)} |")
    out += [
        "",
        "## Per command: urunc (unikernel bundle) against runc (busybox `sleep` bundle)",
        "",
        "| command | urunc | runc | urunc − runc | urunc / runc |",
        "|---|---:|---:|---:|---:|",
    ]
    for n in ("create", "start", "state", "kill", "delete"):
        out.append(f"| {n} | {_cell(cmd['urunc_ms'][n])} | {_cell(cmd['runc_ms'][n])} | "
                   f"{_cell(cmd['pairs'][f'{n}_urunc_minus_runc_ms'])} | "
                   f"{_cell(cmd['pairs'][f'{n}_urunc_over_runc'])} |")
    out += [
        f"| `{' '.join(cmd['interpreter'])}` | {_cell(cmd['python_floor_ms'])} | | | |",
        f"| urunc state − interpreter floor | {_cell(cmd['pairs']['state_minus_python_ms'])} | | | |",
        "",
        "## containerd: `ctr run --rm` (private containerd 1.6, runc shim)",
        "",
        "| contender | wall |",
        "|---|---:|",
        f"| sample unikernel, `--runtime io.containerd.urunc.v2` | {_cell(ctd['urunc_unikernel']['wall_ms'])} "
        f"(first line {_cell(ctd['urunc_unikernel']['first_line_ms'])}) |",
        f"| busybox `true`, runc | {_cell(ctd['runc_busybox_true']['wall_ms'])} |",
        f"| bare monitor, same guest (exit) | {_cell(ctd['floor_exit_ms'])} |",
        f"| unikernel − busybox | {_cell(ctd['pairs']['unikernel_minus_busybox_ms'])} |",
        f"| unikernel − busybox − bare monitor | {_cell(ctd['pairs']['unikernel_minus_busybox_minus_floor_ms'])} |",
        "",
        f"## Density: {dens['n']} unikernels (`hello wait`) up at once, created and started one after another",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| failures | {dens['failures']} |",
        f"| running after start | {dens['running']} |",
        f"| create + start of all, ms | {dens['create_start_all_ms']} |",
        f"| until every guest printed `waiting`, ms | {dens['all_up_ms']} |",
        f"| per instance, spawn to `waiting`, ms | {_cell(dens['per_instance_up_ms'])} |",
        f"| RSS per monitor, KiB | {_cell(dens['rss_kib'])} |",
        f"| PSS per monitor, KiB | {_cell(dens['pss_kib'])} |",
        f"| container PIDs are the monitor itself ({', '.join(dens['monitor_executables'])}) "
        f"| {'yes' if dens['monitor_parents_are_bench'] else 'no'} |",
        f"| resident urunc python processes | {dens['urunc_python_processes']} |",
        f"| other python processes on the host (not urunc) | {dens['python_processes_other']} |",
        "",
    ]
    tpl = r.get("templates") or {}
    if "pairs" in tpl:
        t = tpl["ctr_run_ms"]
        out += [
            "## Linux guest templates: `ctr run --rm` of a busybox Linux-guest image (`echo hi`)",
            "",
            "| contender | wall | / runc (pairwise) |",
            "|---|---:|---:|",
            f"| runc (the same image as a process container) | {_cell(t['runc'])} | |",
            f"| urunc, cold boot | {_cell(t['cold'])} | {_cell(tpl['pairs']['cold_over_runc'])} |",
            f"| urunc, from a template | {_cell(t['warm'])} | {_cell(tpl['pairs']['warm_over_runc'])} |",
            "",
            f"{tpl['idle_guests']} idle Linux guests (`sleep`) at once, their monitors' PSS: "
            f"from one template {tpl['idle_pss_sum_mib']['warm']} MiB in all "
            f"({tpl['idle_pss_each_mib']['warm']} each), cold-booted {tpl['idle_pss_sum_mib']['cold']} MiB "
            f"({tpl['idle_pss_each_mib']['cold']} each).",
            "",
        ]
    return "\n".join(out)


def chart(r: dict[str, Any], path: Path) -> bool:
    """Bars of medians with p10–p90 whiskers; False (no chart) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sp, cmd, ctd = r["start_path"], r["commands"], r["containerd"]
    start_rows = [
        ("bare monitor: first line", sp["floor"]["first_line_ms"], "#999999"),
        ("urunc: first line", sp["runtime"]["first_line_ms"], "#1f77b4"),
        ("bare monitor: exit", sp["floor"]["exit_ms"], "#999999"),
        ("urunc: exit", sp["runtime"]["exit_ms"], "#1f77b4"),
        ("ctr run busybox true (runc)", ctd["runc_busybox_true"]["wall_ms"], "#ff7f0e"),
        ("ctr run unikernel (urunc)", ctd["urunc_unikernel"]["wall_ms"], "#1f77b4"),
    ]
    cmd_rows = [("python -I -S -c pass", cmd["python_floor_ms"], "#999999")]
    for n in ("create", "start", "state", "kill", "delete"):
        cmd_rows += [(f"runc {n}", cmd["runc_ms"][n], "#ff7f0e"), (f"urunc {n}", cmd["urunc_ms"][n], "#1f77b4")]
    fig, axes = plt.subplots(1, 2, figsize=(13, 6))
    for ax, rows, title in ((axes[0], start_rows, "start path, ms"), (axes[1], cmd_rows, "per command, ms")):
        labels = [x[0] for x in rows][::-1]
        med = [x[1]["median"] for x in rows][::-1]
        lo = [x[1]["median"] - x[1]["p10"] for x in rows][::-1]
        hi = [x[1]["p90"] - x[1]["median"] for x in rows][::-1]
        colors = [x[2] for x in rows][::-1]
        ax.barh(labels, med, xerr=[lo, hi], color=colors, capsize=3)
        for y, v in enumerate(med):
            ax.text(v, y, f" {v:.1f}", va="center", fontsize=8)
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    meta = r["meta"]
    fig.suptitle(f"urunc bench · accel {', '.join(meta['accel_used'])} · median, whiskers p10–p90 · {meta['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True

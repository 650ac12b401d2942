"""The printed report."""


def fmt(v, spec=".1f", none="-"):
    return none if v is None else format(v, spec)


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b else "-"


def report(runs, args, latency_mode):
    ok = lambda n: n in runs and "error" not in runs[n]  # noqa: E731
    print("\n1. CPU per second of recording (% of one core, mean over the window; max 1-s sample), peak RSS")
    print(f"{'run':<28} {'process':<22} {'cpu %':>7} {'max 1s':>7} {'RSS MiB':>8} | {'neon-sim cpu %':>14}")
    labels = {"plain": "pilogger, overlay off", "overlay": "pilogger, overlay on",
              "noscene": "pilogger, scene: false", "baseline": "ffmpeg -c copy + python"}
    totals = {}
    for name in ("plain", "overlay", "noscene", "baseline"):
        if name not in runs:
            continue
        r = runs[name]
        if "error" in r:
            print(f"{labels[name]:<28} FAILED: {r['error']}")
            continue
        cpu = r["cpu"]
        procs = [("pilogger-eyetracker", "module"), ("  its ffmpeg child", "ffmpeg")] if name != "baseline" else \
            [("ffmpeg -c copy", "ffmpeg"), ("python gaze client", "python")]
        # No ffmpeg child (the scene is written in process): the module alone.
        procs = [(label, key) for label, key in procs if key in cpu and (name != "noscene" or key != "ffmpeg")
                 and (name == "baseline" or key != "ffmpeg" or cpu[key]["rss_max_mib"] > 0)]
        total = sum(cpu[k]["cpu_pct"] for _, k in procs)
        totals[name] = total
        for i, (label, key) in enumerate(procs):
            c = cpu[key]
            sim = f"{cpu['sim']['cpu_pct']:>14.1f}" if i == 0 else ""
            print(f"{labels[name] if i == 0 else '':<28} {label:<22} {c['cpu_pct']:>7.1f} {c['max_1s_pct']:>7.1f} "
                  f"{c['rss_max_mib']:>8.1f} | {sim}")
        print(f"{'':<28} {'total':<22} {total:>7.1f}")

    print("\n2. kept in the measured window (rows whose sample the simulator produced in it / samples it sent)")
    print(f"{'run':<28} {'gaze':>14} {'imu':>14} {'events':>9} {'scene frames in file / sent':>30}")
    print(f"{'':<28} (scene: the whole recording, frames the simulator produced before the recorder was stopped)")
    for name in ("plain", "overlay", "noscene", "baseline"):
        if not ok(name):
            continue
        r = runs[name]
        g = r["gaze"]
        imu = r.get("imu")
        ev = r.get("events")
        sc = r.get("scene")
        print(f"{labels[name]:<28} {g['rows']:>6}/{g['sent']:<5} {fmt(g['kept_pct'], '.1f'):>1}% "
              f"{(str(imu['rows']) + '/' + str(imu['sent'])) if imu else '-':>14} "
              f"{(str(ev['rows']) + '/' + str(ev['sent'])) if ev else '-':>9} "
              f"{(str(sc['mp4_frames']) + '/' + str(sc['produced_until_stop']) + ' = ' + fmt(sc['kept_pct']) + ' %') if sc else '-':>30}"
              + (f" ({sc['complete_until_stop']} sent whole)" if sc and sc['complete_until_stop'] != sc['produced_until_stop'] else ""))
        ms = r.get("module_stats")
        if ms:
            print(f"{'':<28} module stats: lost {ms.get('packets_lost')}, late {ms.get('packets_late')}, "
                  f"reordered {ms.get('packets_reordered')}, untimed {ms.get('untimed_samples')}, "
                  f"scene frames dropped {ms.get('scene_frames_dropped')}, drops {ms.get('drops')}")
        if r.get("ffmpeg_warnings"):
            print(f"{'':<28} ffmpeg stderr: {len(r['ffmpeg_warnings'])} warning lines, first: "
                  f"{r['ffmpeg_warnings'][0][:90]}")

    if "latency" in runs or "baseline_latency" in runs:
        latency_table(runs, latency_mode)
    ratios(runs, args, latency_mode, totals)


def latency_table(runs, latency_mode):
    print(f"\n3. latency, gaze sample produced (device time) -> its CSV row "
          f"{'durable (fdatasync/fsync returned)' if latency_mode == 'strace' else 'VISIBLE in the file (written, not yet durable)'}, ms")
    print(f"{'recorder':<34} {'n':>6} {'p50':>8} {'p99':>8} {'max':>8} | {'written p50':>11} {'p99':>8} {'max':>8}")
    for name, label in (("latency", "pilogger-eyetracker"), ("baseline_latency", "python client (fsync once a s)")):
        if name not in runs:
            continue
        r = runs[name]
        if "error" in r:
            print(f"{label:<34} FAILED: {r['error']}")
            continue
        L = r["latency"]
        d, w = L["durable_ms"], L["written_ms"]
        print(f"{label:<34} {d['n'] or w['n']:>6} {fmt(d['p50'], '.1f'):>8} {fmt(d['p99'], '.1f'):>8} "
              f"{fmt(d['max'], '.1f'):>8} | {fmt(w['p50'], '.1f'):>11} {fmt(w['p99'], '.1f'):>8} {fmt(w['max'], '.1f'):>8}")
        if "syncs" in L:
            print(f"{'':<34} {L['writes']} writes, {L['syncs']} syncs (gap between syncs p50 "
                  f"{fmt(L['sync_gap_ms']['p50'], '.0f')} max {fmt(L['sync_gap_ms']['max'], '.0f')} ms; a sync call "
                  f"p50 {fmt(L['sync_call_ms']['p50'], '.2f')} max {fmt(L['sync_call_ms']['max'], '.1f')} ms)"
                  + (f"; {L['unmatched_rows']} rows unmatched" if L['unmatched_rows'] else ""))


def ratios(runs, args, latency_mode, totals):
    ok = lambda n: n in runs and "error" not in runs[n]  # noqa: E731
    lat = {n: runs[n]["latency"] for n in ("latency", "baseline_latency") if ok(n)}
    print("\n4. ratios, theirs / ours (above 1: pilogger does better)")
    if ok("plain") and ok("baseline"):
        b, p = runs["baseline"], runs["plain"]
        ours_all = totals["plain"]
        theirs_all = totals["baseline"]
        print(f"   CPU, everything recorded: (ffmpeg + python) {theirs_all:.1f} % / pilogger {ours_all:.1f} % = "
              f"{ratio(theirs_all, ours_all)}  (pilogger also records IMU, eye events, time echo)")
        if ok("noscene"):
            gaze_ours = totals["noscene"]
            scene_ours = ours_all - gaze_ours
            print(f"   CPU, gaze: python {b['cpu']['python']['cpu_pct']:.1f} % / pilogger scene: false "
                  f"{gaze_ours:.1f} % (gaze + IMU + events) = {ratio(b['cpu']['python']['cpu_pct'], gaze_ours)}")
            print(f"   CPU, scene: ffmpeg -c copy {b['cpu']['ffmpeg']['cpu_pct']:.1f} % / pilogger's scene share "
                  f"{scene_ours:.1f} % (overlay off minus scene: false{', preview included' if args.preview == 'on' else ''}) = "
                  f"{ratio(b['cpu']['ffmpeg']['cpu_pct'], scene_ours)}")
        print(f"   scene frames kept: ffmpeg {fmt(b['scene']['kept_pct'])} % / pilogger {fmt(p['scene']['kept_pct'])} % = "
              f"{ratio(b['scene']['kept_pct'], p['scene']['kept_pct'])}")
        print(f"   gaze rows kept: python {fmt(b['gaze']['kept_pct'])} % / pilogger {fmt(p['gaze']['kept_pct'])} % = "
              f"{ratio(b['gaze']['kept_pct'], p['gaze']['kept_pct'])}")
    if "latency" in lat and "baseline_latency" in lat:
        key = "durable_ms" if latency_mode == "strace" else "written_ms"
        o, t = lat["latency"][key], lat["baseline_latency"][key]
        for p in ("p50", "p99", "max"):
            print(f"   latency {p} ({'durable' if key == 'durable_ms' else 'written'}): python {fmt(t[p])} ms / "
                  f"pilogger {fmt(o[p])} ms = {ratio(t[p], o[p])}")

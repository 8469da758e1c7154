"""``edge-ecg sound wav|play|check``: the IEC 60601-1-8 alarm bursts, for checking a unit's speaker."""

from __future__ import annotations

import json
from pathlib import Path

PRIORITIES = ("high", "medium", "low")


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    p = cli.subcommand("sound", "wav", "write an alarm burst (high, medium, low) as a 48 kHz WAV")
    p.add_argument("priority", choices=PRIORITIES)
    p.add_argument("out", type=Path)
    p.add_argument("--level", type=float, default=-6.0, help="peak level, dBFS (default -6)")
    p.set_defaults(func=_wav)
    p = cli.subcommand("sound", "play", "play an alarm burst on an ALSA device with aplay (the daemon's path)")
    p.add_argument("priority", choices=PRIORITIES)
    p.add_argument("--device", default="default", help="ALSA PCM (default: default)")
    p.add_argument("--level", type=float, default=-6.0)
    p.set_defaults(func=_play)
    p = cli.subcommand("sound", "check", "measure a WAV (e.g. a recording of the speaker): pulses, timing, frequencies, levels")
    p.add_argument("wav", type=Path)
    p.set_defaults(func=_check)


def _wav(args) -> int:
    from edge_ecg.sound.tones import BURSTS, burst, write_wav

    path = write_wav(args.out, burst(BURSTS[args.priority], level_dbfs=args.level))
    print(path)
    return 0


def _play(args) -> int:
    import tempfile

    from edge_ecg.sound.player import AplayPlayer
    from edge_ecg.sound.tones import BURSTS, burst, write_wav

    player = AplayPlayer(args.device)
    missing = player.available()
    if missing:
        print(f"edge-ecg: {missing}")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pb = player.play(write_wav(Path(tmp) / f"{args.priority}.wav", burst(BURSTS[args.priority], level_dbfs=args.level)))
        rc = pb.proc.wait()
        if rc != 0:
            print(f"edge-ecg: {args.device}: {pb.error()}")
            return 1
    print(f"played the {args.priority}-priority burst on {args.device}")
    return 0


def _check(args) -> int:
    from edge_ecg.sound.measure import bursts, measure
    from edge_ecg.sound.tones import read_wav

    x, rate = read_wav(args.wav)
    m = measure(x, rate)
    for i, group in enumerate(bursts(m)):
        print(f"burst {i + 1}: {len(group)} pulses")
        for p in group:
            print(f"  t={p.start_s:7.3f} s  td={1000 * p.td_s:6.1f} ms  rise={1000 * p.rise_s:5.1f} ms  fall={1000 * p.fall_s:5.1f} ms  "
                  f"f0={p.f0_hz:6.1f} Hz  harmonics(dB)={[round(h, 1) for h in p.harmonics_db[:6]]}  level={p.level_dbfs:.1f} dBFS")
    print("gaps (ms): " + json.dumps([round(1000 * g, 1) for g in m.gaps_s]))
    return 0

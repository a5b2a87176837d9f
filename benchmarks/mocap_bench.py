"Time parsing + forward kinematics + joint mapping of every bundled motion clip (run: python benchmarks/mocap_bench.py)."
import time

from poselab.data.mocap import load_clip, mocap_root, read_manifest, read_motion


def main():
    rows = read_manifest()
    t_all = time.perf_counter()
    for r in rows:
        t0 = time.perf_counter()
        m = read_motion(mocap_root() / r["file"])
        t1 = time.perf_counter()
        c = load_clip(mocap_root() / r["file"])
        t2 = time.perf_counter()
        print(f"{r['file']:48s} {c.num_frames:5d} frames  parse {1e3 * (t1 - t0):6.1f} ms  parse+fk+map {1e3 * (t2 - t1):6.1f} ms")
    print(f"all {len(rows)} clips (each parsed twice): {time.perf_counter() - t_all:.2f} s")


if __name__ == "__main__":
    main()
